"""``fit(weight_decay="auto")``: the held-out half loss (``runtime.fitting.heldout``) against
closed forms and scipy, and the choice it drives (``deqfam.prior_choice``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from deqfam.api import family_module, torch_family
from deqfam.cli import main
from deqfam.fitting import fit
from deqfam.prior_choice import AUTO_PER_SAMPLE, choose_weight_decay
from deqfam.runtime.fitting.heldout import column_halves, heldout_half_loss, holdout_rows

LAM = 0.1


def _family(name: str):
    return torch_family(family_module(name))


def _low_rank(n: int, d: int, seed: int, family: str) -> tuple[torch.Tensor, ...]:
    """Rows of a rank-2 natural parameter, and loadings and offsets to score them with."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    W = 0.6 * torch.randn(d, 2, generator=gen, dtype=torch.float64)
    B = 0.3 * torch.randn(d, generator=gen, dtype=torch.float64)
    eta = z @ W.T + B
    if family == "poisson":
        y = torch.poisson(torch.exp(eta), generator=gen)
    elif family == "bernoulli":
        y = torch.bernoulli(torch.sigmoid(eta), generator=gen)
    else:
        y = eta + torch.randn(n, d, generator=gen, dtype=torch.float64)
    return y, W, B


def test_gaussian_loss_matches_the_ridge_closed_form():
    """Gaussian (A = eta^2/2, T = y): the MAP latent from half ``a`` is the ridge solution
    ``(lam I + W_a^T W_a)^{-1} W_a^T (y_a - B_a)``, computed here in numpy; the loss of the
    other half is ``sum (eta^2/2 - y eta)``. Newton on a quadratic is exact in one step, so
    the two agree to rounding (1e-10 relative)."""
    y, W, B = _low_rank(30, 9, seed=0, family="gaussian")
    Yn, Wn, Bn = (t.numpy() for t in (y, W, B))
    expected = 0.0
    a, b = (h.numpy() for h in column_halves(9, seed=3))
    for seen, unseen in ((a, b), (b, a)):
        Wa = Wn[seen]
        z = np.linalg.solve(LAM * np.eye(2) + Wa.T @ Wa, Wa.T @ (Yn[:, seen] - Bn[seen]).T).T
        eta = z @ Wn[unseen].T + Bn[unseen]
        expected += (eta**2 / 2 - Yn[:, unseen] * eta).sum() / 30
    got = heldout_half_loss(_family("gaussian"), y, W, B, LAM, seed=3)
    assert got == pytest.approx(expected, rel=1e-10)


def test_poisson_loss_is_the_scipy_negative_log_likelihood_less_log_h():
    """Poisson: each row's latent from one half by scipy's BFGS on Theorem 1's objective,
    and the other half scored by ``-scipy.stats.poisson.logpmf`` less ``log y!`` (``log h``,
    which the loss leaves out). BFGS stops near 1e-8 in the gradient, so 1e-6 relative."""
    y, W, B = _low_rank(12, 8, seed=1, family="poisson")
    Yn, Wn, Bn = (t.numpy() for t in (y, W, B))
    expected = 0.0
    a, b = (h.numpy() for h in column_halves(8, seed=0))
    for seen, unseen in ((a, b), (b, a)):
        for row in Yn:

            def objective(z, row=row, seen=seen):
                eta = Wn[seen] @ z + Bn[seen]
                return LAM / 2 * z @ z + np.sum(np.exp(eta) - row[seen] * eta)

            z = optimize.minimize(objective, np.zeros(2), method="BFGS", tol=1e-12).x
            mu = np.exp(Wn[unseen] @ z + Bn[unseen])
            nll = -stats.poisson.logpmf(row[unseen], mu).sum()
            expected += (nll - sum(math.lgamma(v + 1) for v in row[unseen])) / len(Yn)
    got = heldout_half_loss(_family("poisson"), y, W, B, LAM, seed=0)
    assert got == pytest.approx(expected, rel=1e-6)


def test_splits_partition_and_are_seeded():
    a, b = column_halves(7, seed=5)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(7)) and len(a) == 3
    assert all(torch.equal(x, y) for x, y in zip(column_halves(7, 5), (a, b), strict=True))
    fitted, held = holdout_rows(50, 0.1, seed=2)
    assert len(held) == 5 and sorted(torch.cat([fitted, held]).tolist()) == list(range(50))
    assert len(holdout_rows(3, 0.01)[1]) == 1 and len(holdout_rows(3, 0.99)[0]) == 1
    with pytest.raises(ValueError, match="at least 2 columns"):
        column_halves(1)
    with pytest.raises(ValueError, match="fraction"):
        holdout_rows(10, 1.0)


def test_choice_is_the_lowest_finite_loss():
    """A candidate whose offsets make the Poisson prediction overflow (loss inf) never
    wins; among the rest the lowest held-out half loss does; none finite is an error."""
    y, W, B = _low_rank(60, 8, seed=2, family="poisson")
    fam = _family("poisson")
    # per-sample c -> (scale of the true W, shift of B); exp(800) overflows float64
    change = {1.0: (1.0, 0.0), 2.0: (0.5, 0.0), 3.0: (1.0, 800.0)}

    def fit_at(rows, w):
        scale, shift = change[round(w / len(rows))]
        return W * scale, B + shift

    choice = choose_weight_decay(y, fam, LAM, fit_at, per_sample=(1.0, 2.0, 3.0))
    assert choice.losses[2] == math.inf
    assert choice.chosen_per_sample == (1.0, 2.0)[int(np.argmin(choice.losses[:2]))]
    assert (choice.n_fitted, choice.n_heldout) == (54, 6)
    assert choice.weight_decay(60) == 60 * choice.chosen_per_sample
    with pytest.raises(ValueError, match="no prior tried gave a finite"):
        choose_weight_decay(y, fam, LAM, fit_at, per_sample=(3.0,))


def test_auto_fits_all_rows_at_the_chosen_prior_and_records_it(tmp_path):
    y, _, _ = _low_rank(120, 10, seed=3, family="bernoulli")
    res = fit(y, "bernoulli", 2, weight_decay="auto", progress=False, out_dir=tmp_path / "fit")
    choice = res.prior_choice
    assert choice["per_sample"] == list(AUTO_PER_SAMPLE)
    assert choice["chosen_per_sample"] == AUTO_PER_SAMPLE[int(np.argmin(choice["losses"]))]
    assert res.model.weight_decay == pytest.approx(choice["chosen_per_sample"] * 120)
    assert json.loads((tmp_path / "fit" / "history.json").read_text())["prior_choice"] == choice
    fixed = fit(y, "bernoulli", 2, weight_decay=res.model.weight_decay, progress=False)
    assert np.allclose(res.latents, fixed.latents, atol=1e-8)  # the same fit, reached directly
    with pytest.raises(ValueError, match="weight_decay"):
        fit(y, "bernoulli", 2, weight_decay="strong", progress=False)


def test_cli_weight_decay_auto_and_its_bad_inputs(tmp_path, capsys):
    y, _, _ = _low_rank(80, 6, seed=4, family="poisson")
    y[:, 0] = (y[:, 0] > 0).double()  # a binary column for the column map below
    data = tmp_path / "y.npy"
    np.save(data, y.numpy())
    base = ["fit", str(data), "--latent-dim", "2", "--quiet"]
    assert main([*base, "--family", "poisson", "--out", str(tmp_path / "a"), "--weight-decay",
                 "auto"]) == 0  # fmt: skip
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert history["prior_choice"]["rule"] == "held-out half loss"
    capsys.readouterr()
    bad = main([*base, "--family", "poisson", "--out", str(tmp_path / "b"), "--weight-decay",
                "strong"])  # fmt: skip
    assert bad == 2 and "--weight-decay" in capsys.readouterr().err
    table = tmp_path / "y.csv"
    np.savetxt(table, y.numpy(), delimiter=",", header=",".join("abcdef"), comments="")
    mixed = main(["fit", str(table), "--latent-dim", "2", "--quiet", "--family",
                  "a:bernoulli,*:poisson", "--out", str(tmp_path / "c"), "--weight-decay",
                  "auto"])  # fmt: skip
    err = capsys.readouterr().err
    assert mixed == 2 and "one scalar family" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
