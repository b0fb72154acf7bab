"""fit's defaults: B at the link of the column means (an option), the convergence test on by
default, the stop reason in fit's outputs and on the console."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch

from deqfam import fitting
from deqfam.cli import build_parser, main
from deqfam.demo import DemoConfig
from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.family import as_torch_family
from deqfam.runtime.initialisation import (
    bias_at_column_means,
    inverse_activation,
    link_bracket,
)

POISSON = importlib.import_module("deqfam.generated.poisson")
BERNOULLI = importlib.import_module("deqfam.generated.bernoulli")
GAMMA = importlib.import_module("deqfam.generated.gamma")


def test_cli_defaults_are_the_library_defaults(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("1,2\n3,4\n")
    args = build_parser().parse_args(["fit", str(data), "--family", "poisson", "--latent-dim", "2"])
    assert args.epochs == fitting.DEFAULT_MAX_EPOCHS
    assert args.lr == fitting.DEFAULT_LR and args.tol == fitting.DEFAULT_TOL
    assert args.weight_decay == fitting.DEFAULT_WEIGHT_DECAY and args.optimizer == "newton"
    demo = build_parser().parse_args(["demo"])
    assert demo.epochs == DemoConfig().epochs == fitting.DEFAULT_MAX_EPOCHS


@pytest.mark.parametrize(
    ("module", "means", "closed_form"),
    [
        (BERNOULLI, [0.1, 0.5, 0.93], lambda m: math.log(m / (1 - m))),  # logit
        (POISSON, [0.02, 1.0, 250.0], math.log),
        (GAMMA, [0.5, 2.0, 40.0], lambda m: -2.0 / m),  # A = -2 log(-eta): A' = -2/eta
    ],
)
def test_inverse_activation_is_the_canonical_link(module, means, closed_form):
    fam = as_torch_family(module)
    got = inverse_activation(fam, torch.tensor(means, dtype=torch.float64))
    expected = [closed_form(m) for m in means]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bias_of_a_constant_column_stays_inside_the_domain():
    """An all-zero Bernoulli column has link -inf: B ends at the bracket, finite."""
    fam = as_torch_family(BERNOULLI)
    y = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    b = bias_at_column_means(fam, y)
    lo, _ = link_bracket(fam.domain)
    assert b[0] == pytest.approx(lo, abs=1e-12) and math.isfinite(float(b[0]))
    assert float(b[1]) == pytest.approx(math.log(3.0), rel=1e-12)
    g_lo, g_hi = link_bracket(as_torch_family(GAMMA).domain)
    assert g_lo < g_hi < 0.0  # strictly inside (-oo, 0)


def test_fit_reports_why_it_stopped(tmp_path, capsys):
    ds = make_dataset(POISSON, n_grid=12, data_dim=8, seed=2)
    data = tmp_path / "counts.npy"
    np.save(data, ds.Y.numpy())
    out = tmp_path / "fit"
    argv = ["fit", str(data), "--family", "poisson", "--latent-dim", "2", "--out", str(out)]
    argv += ["--optimizer", "adam"]  # the stopping rule of the first-order path
    assert main([*argv, "--epochs", "400", "--tol", "1e-3", "--quiet"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["stop_reason"] == "converged" and len(hist["loss"]) < 400
    console = capsys.readouterr().out
    assert f"training converged: {hist['stop_message']}" in console
    assert main([*argv, "--epochs", "3", "--tol", "0", "--quiet", "--overwrite"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["stop_reason"] == "max_epochs" and len(hist["loss"]) == 3
    assert "training max_epochs: stopped at the maximum of 3 epochs" in capsys.readouterr().out
