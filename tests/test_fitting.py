"""Second-order fitting (runtime/fitting): each piece against an independent reference."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import expit, logit

from deqfam.cli import main
from deqfam.fitting import fit
from deqfam.runtime.fitting import (
    NewtonFitConfig,
    fit_newton,
    initial_offsets,
    invert_activation,
    joint_objective,
    loadings_step,
    rebalance,
    shrunk_means,
)
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.solvers import SolverConfig

POISSON = importlib.import_module("deqfam.generated.poisson").FAMILY
BERNOULLI = importlib.import_module("deqfam.generated.bernoulli").FAMILY


def _poisson_data(n: int = 40, d: int = 6, l: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, l, generator=g, dtype=torch.float64)
    w = 0.5 * torch.randn(d, l, generator=g, dtype=torch.float64)
    return torch.poisson(torch.exp(z @ w.T + 0.5), generator=g)


def test_invert_activation_matches_the_closed_form_links():
    means = torch.tensor([1e-6, 0.01, 0.3, 0.5, 0.77, 0.999999], dtype=torch.float64)
    np.testing.assert_allclose(invert_activation(BERNOULLI, means), logit(means.numpy()), 1e-10)
    counts = torch.tensor([1e-8, 0.02, 1.0, 7.5, 3e4], dtype=torch.float64)
    np.testing.assert_allclose(invert_activation(POISSON, counts), np.log(counts.numpy()), 1e-10)


def test_initial_offsets_are_the_link_of_the_shrunk_column_means():
    y = torch.tensor([[0.0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.float64)
    expected = logit((y.sum(0).numpy() + 0.5) / 5)  # one pseudo-observation at mean 1/2
    np.testing.assert_allclose(shrunk_means(BERNOULLI, y), (y.sum(0) + 0.5) / 5)
    np.testing.assert_allclose(initial_offsets(BERNOULLI, y), expected, rtol=1e-10)
    assert torch.isfinite(initial_offsets(POISSON, torch.zeros(3, 2, dtype=torch.float64))).all()


def test_loadings_step_is_the_poisson_glm_fit_of_each_column():
    y = _poisson_data()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(y.shape[0], 2, generator=g, dtype=torch.float64)
    wd = 0.3
    W, B, sol = loadings_step(
        POISSON,
        z,
        y,
        torch.zeros(6, 2, dtype=torch.float64),
        torch.zeros(6, dtype=torch.float64),
        wd,
        SolverConfig(max_iter=50),
    )
    assert bool(sol.stats.converged.all())
    x = np.hstack([z.numpy(), np.ones((y.shape[0], 1))])
    for j in range(y.shape[1]):
        yj = y[:, j].numpy()

        def f(beta, yj=yj):
            eta = x @ beta
            return np.sum(np.exp(eta) - yj * eta) + 0.5 * wd * beta @ beta

        def grad(beta, yj=yj):
            return x.T @ (np.exp(x @ beta) - yj) + wd * beta

        ref = minimize(f, np.zeros(3), jac=grad, method="BFGS", options={"gtol": 1e-11}).x
        got = np.concatenate([W[j].numpy(), B[j : j + 1].numpy()])
        np.testing.assert_allclose(got, ref, atol=1e-7)


def test_rebalance_keeps_eta_and_reaches_the_nuclear_norm_bound():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(30, 3, generator=g, dtype=torch.float64) * 4
    w = torch.randn(7, 3, generator=g, dtype=torch.float64) * 0.1
    lam, wd = 0.1, 2.0
    z2, w2 = rebalance(z, w, lam, wd)
    torch.testing.assert_close(z2 @ w2.T, z @ w.T, rtol=1e-12, atol=1e-12)
    penalty = 0.5 * lam * float(z2.square().sum()) + 0.5 * wd * float(w2.square().sum())
    # min over factorisations of lam/2|Z|^2 + w/2|W|^2 = sqrt(lam w) * nuclear norm of Z W^T
    bound = np.sqrt(lam * wd) * np.linalg.svd((z @ w.T).numpy(), compute_uv=False).sum()
    assert penalty == pytest.approx(bound, rel=1e-10)


def _numpy_joint(theta, y, n, d, l, lam, wd, family):
    """The joint objective and its gradient in numpy, written out independently."""
    z = theta[: n * l].reshape(n, l)
    w = theta[n * l : n * l + d * l].reshape(d, l)
    b = theta[n * l + d * l :]
    eta = z @ w.T + b
    if family == "poisson":
        a, mean = np.exp(eta), np.exp(eta)
    else:
        a, mean = np.logaddexp(0, eta), expit(eta)
    f = (a - y * eta).sum() + 0.5 * lam * (z * z).sum() + 0.5 * wd * ((w * w).sum() + b @ b)
    r = mean - y
    grad = np.concatenate(
        [(r @ w + lam * z).ravel(), (r.T @ z + wd * w).ravel(), r.sum(0) + wd * b]
    )
    return f / n, grad / n


@pytest.mark.parametrize("name", ["poisson", "bernoulli"])
def test_newton_fit_reaches_the_joint_optimum_of_scipy_and_of_the_adam_loss(name):
    family = POISSON if name == "poisson" else BERNOULLI
    y = _poisson_data(n=30, d=5)
    if name == "bernoulli":
        y = (y > 1).to(torch.float64)
    n, d, l, lam, wd = 30, 5, 2, 0.5, 1.0
    model = ExpFamPCA(family, d, l, lam=lam, weight_decay=wd, dtype=torch.float64)
    cfg = NewtonFitConfig(rtol=1e-13, gtol=1e-9, max_iter=3000, progress=False)
    hist = fit_newton(model, y, cfg)
    assert hist.stop_reason == "converged"
    best = np.inf
    for seed in range(3):  # the joint objective is non-convex: best of a few L-BFGS starts
        theta0 = np.random.default_rng(seed).normal(scale=0.3, size=n * l + d * l + d)
        res = minimize(
            _numpy_joint,
            theta0,
            args=(y.numpy(), n, d, l, lam, wd, name),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-15},
        )
        best = min(best, res.fun)
    assert hist.loss[-1] == pytest.approx(best, rel=1e-6)
    # the Adam path's objective (ExpFamPCA.loss at the MAP latents) is the same function
    with torch.no_grad():
        adam_loss = float(model.loss(y))
    assert adam_loss == pytest.approx(hist.loss[-1], rel=1e-9)
    W, B = model.W.detach(), model.B.detach()
    assert joint_objective(family, y, model.last_z, W, B, lam, wd) == hist.loss[-1]


def test_stop_reason_is_reported_and_the_objective_never_increases():
    y = _poisson_data()
    model = ExpFamPCA(POISSON, 6, 2, lam=0.5, weight_decay=1.0, dtype=torch.float64)
    hist = fit_newton(model, y, NewtonFitConfig(max_iter=2, progress=False))
    assert (hist.stop_reason, hist.iterations, len(hist.loss)) == ("max_iterations", 2, 3)
    hist = fit_newton(model, y, NewtonFitConfig(progress=False))
    assert hist.stop_reason == "converged"
    assert np.all(np.diff(hist.loss) <= 1e-12 * np.abs(hist.loss[1:]))


def test_resumed_newton_fit_equals_an_uninterrupted_one(tmp_path):
    y = _poisson_data()
    ck = tmp_path / "last.pt"
    a = ExpFamPCA(POISSON, 6, 2, lam=0.5, weight_decay=1.0, dtype=torch.float64)
    full = fit_newton(a, y, NewtonFitConfig(max_iter=6, progress=False))
    b = ExpFamPCA(POISSON, 6, 2, lam=0.5, weight_decay=1.0, dtype=torch.float64)
    fit_newton(b, y, NewtonFitConfig(max_iter=3, progress=False, checkpoint_path=str(ck)))
    c = ExpFamPCA(POISSON, 6, 2, lam=0.5, weight_decay=1.0, dtype=torch.float64)
    resumed = fit_newton(c, y, NewtonFitConfig(max_iter=6, progress=False), resume=ck)
    assert resumed.loss == full.loss
    torch.testing.assert_close(c.W, a.W, rtol=0, atol=0)


def test_fit_cli_defaults_to_newton(tmp_path):
    data = tmp_path / "y.npy"
    np.save(data, _poisson_data().numpy())
    out = tmp_path / "out"
    assert (
        main(
            [
                "fit",
                str(data),
                "--family",
                "poisson",
                "--latent-dim",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    history = json.loads((out / "history.json").read_text())
    assert history["optimizer"] == "newton"
    assert history["stop_reason"] == "converged"
    assert len(history["loss"]) == history["iterations"] + 1
    assert np.load(out / "latents.npy").shape == (40, 2)


def test_pipeline_fit_rejects_an_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        fit(_poisson_data(), POISSON, 2, optimizer="sgd", progress=False)
