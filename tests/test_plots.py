"""Plots say what they show: labelled axes, legends naming the clusters, the training
objective's meaning, the law of T(y) in the check plot, and an informative quartic plot.

The matplotlib Figure objects are inspected (Agg backend), not pixels.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from deqfam.derive.admissibility import check, plot_report
from deqfam.derive.admissibility.plot import T_LABEL, report_figure
from deqfam.derive.family import derive_family
from deqfam.derive.spec import parse_spec
from deqfam.runtime.datasets import SHAPE_NAMES
from deqfam.runtime.plots import embedding_figure, history_figure

QUARTIC = "name: quartic\nsupport: real\nlog_partition: eta**4\nparameters: {}\ndomain: [-oo, oo]\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_embedding_axes_are_labelled_and_the_legend_names_the_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    z = rng.normal(size=(60, 2)) + labels[:, None] * 3.0
    fig = embedding_figure(z, labels, label_names=SHAPE_NAMES, axis_labels=("z1 (a)", "z2 (b)"))
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1 (a)", "z2 (b)")
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [SHAPE_NAMES[k] for k in (0, 1, 2)]
    # each legend entry's points are exactly that cluster's rows
    for coll, k in zip(ax.collections, (0, 1, 2), strict=True):
        np.testing.assert_array_equal(coll.get_offsets(), z[labels == k])


def test_embedding_legend_falls_back_to_label_numbers():
    labels = np.array([3, 3, 7])
    fig = embedding_figure(np.zeros((3, 2)), labels)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "z1" and ax.get_ylabel() == "z2"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["label 3", "label 7"]


def test_history_plot_says_what_the_loss_is_and_shows_the_convergence_test():
    losses = [10.0, 5.0, 4.0, 3.9, 3.89, 3.889, 3.8889]
    lrs = [1e-2] * 5 + [1e-3] * 2
    fig = history_figure(losses, lrs=lrs, tol=1e-3, window=2, stop_message="converged ...")
    loss_ax, rel_ax = fig.axes
    assert "nats per sample" in loss_ax.get_ylabel() and "log p" in loss_ax.get_ylabel()
    assert "mean over samples" in loss_ax.get_title()
    assert loss_ax.get_xlabel() == "epoch" == rel_ax.get_xlabel()
    assert "relative decrease over 2 epochs" in rel_ax.get_ylabel()
    assert rel_ax.get_yscale() == "log"
    # the relative decreases drawn, by hand: the window restarts at epoch 6 (new lr), so
    # epochs 3-5 have one and epochs 6-7 none yet
    points = rel_ax.lines[0].get_xydata()
    gain = [(losses[k - 3] - losses[k - 1]) / (losses[0] - losses[k - 1]) for k in (3, 4, 5)]
    expected = list(zip((3, 4, 5), gain, strict=True))
    np.testing.assert_allclose(points, expected, rtol=1e-12)
    tol_line = rel_ax.lines[1]
    assert tol_line.get_ydata()[0] == 1e-3 and "tol" in tol_line.get_label()
    assert any("converged" in t.get_text() for t in fig.texts)


def test_history_plot_without_a_test_has_one_labelled_panel():
    fig = history_figure([3.0, 2.0, 1.5])
    (ax,) = fig.axes
    assert "nats per sample" in ax.get_ylabel()
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])


def test_check_plot_labels_the_law_of_the_sufficient_statistic(tmp_path):
    rep = check("poisson", hankel=False)
    assert rep.curves
    fig = report_figure(rep)
    for phi_ax, law_ax in np.reshape(fig.axes, (-1, 2)):
        assert phi_ax.get_xlabel() == "r" and "phi" in phi_ax.get_ylabel()
        assert law_ax.get_xlabel() == T_LABEL == "t = T(y)"
        assert "T(y)" in law_ax.get_ylabel() and "T(y)" in law_ax.get_title()
    assert plot_report(rep, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_quartic_check_plot_shows_the_witnesses_and_says_why_no_law():
    """A = eta^4 is rejected (Marcinkiewicz): no tilted law exists to draw. The plot shows
    the bound stage's witnesses log10 |phi(r)|, checked against the closed form
    |phi(r)| = exp(Re (t + i r)^4 - t^4) = exp(r^4 - 6 t^2 r^2), and a text panel."""
    fam = derive_family(parse_spec(QUARTIC, source="<test>"))
    rep = check(fam, hankel=False)
    assert rep.verdict == "not_admissible" and not rep.curves
    fig = report_figure(rep)
    left, right = fig.axes
    (points,) = [ln for ln in left.lines if ln.get_marker() == "v"]
    tilts, logs = points.get_xdata(), points.get_ydata()
    assert len(tilts) == len(rep.tilts) and np.all(np.asarray(logs) > 0)
    witnesses = {e.details["tilt"]: e.details["witness"] for e in rep.stage("bound")}
    for t, lg in zip(tilts, logs, strict=True):
        r = float(witnesses[t]["points"][-1])
        closed_form = (r**4 - 6 * t**2 * r**2) / math.log(10)
        assert lg == pytest.approx(closed_form, rel=1e-9)
    assert left.get_xlabel() and left.get_ylabel() and left.get_visible()
    text = "\n".join(t.get_text() for t in right.texts if t.get_visible())
    assert "could not be drawn" in text and "overflows" in text
    assert "not_admissible" in text and "Marcinkiewicz" in text
