"""Solvers of the inner problem of Theorem 1, checked against independent references."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from oracles.families import FAMILIES, family_params, problem, scipy_map_latents

from deqfam.runtime.solvers import (
    ConvergenceError,
    ConvergenceWarning,
    SolverConfig,
    anderson,
    batched_cg,
    broyden,
    cg_newton,
    check_convergence,
    contraction_certificate,
    fixed_point,
    make_config,
    newton,
)

LAM = 0.1
F64 = torch.float64


def deq_map(family, W, B, Y, lam):
    """The DEQ map (10) z -> (1/lam) W^T (T(Y) - sigma(Wz + B)) on rows."""
    T = family.sufficient_statistic(Y)
    return lambda z: (T - family.activation(z @ W.T + B)) @ W / lam


def gaussian_closed_form(W, B, Y, lam):
    """Z* = (lam I + W^T W)^{-1} W^T (Y - B), computed with numpy."""
    Wn, Bn, Yn = W.numpy(), B.numpy(), Y.numpy()
    H = lam * np.eye(Wn.shape[1]) + Wn.T @ Wn
    return np.linalg.solve(H, Wn.T @ (Yn - Bn).T).T


# ------------------------------------------------------------------------------ Newton


@pytest.mark.parametrize("solver", [newton, cg_newton])
@pytest.mark.parametrize("name", family_params())
@pytest.mark.parametrize("w_scale", [math.sqrt(0.5), 0.01])
def test_objective_solvers_match_scipy(name, solver, w_scale):
    """Z* agrees with scipy (BFGS + MINPACK polish) to 1e-9 abs; every sample converges."""
    W, B, Y = problem(name, n=20, d=50, l=2, w_scale=w_scale, seed=1)
    result = solver(FAMILIES[name], W, B, FAMILIES[name].sufficient_statistic(Y), LAM)
    assert result.stats.all_converged, str(result.stats)
    assert result.stats.residual_kind == "grad_norm"
    reference = scipy_map_latents(name, W, B, Y, LAM)
    np.testing.assert_allclose(result.z.numpy(), reference, rtol=0, atol=1e-9)


def test_newton_returns_cholesky_of_hessian_at_solution():
    W, B, Y = problem("poisson", n=6, d=10, l=3, w_scale=0.5, seed=2)
    fam = FAMILIES["poisson"]
    result = newton(fam, W, B, Y, LAM)
    L = result.cholesky.numpy()
    eta = (result.z @ W.T + B).numpy()
    Wn = W.numpy()
    for s in range(6):
        H = LAM * np.eye(3) + Wn.T @ np.diag(np.exp(eta[s])) @ Wn
        np.testing.assert_allclose(L[s] @ L[s].T, H, rtol=1e-12)
        assert np.allclose(L[s], np.tril(L[s]))


def test_newton_gradient_norm_is_reported_residual():
    W, B, Y = problem("bernoulli", n=8, seed=3)
    fam = FAMILIES["bernoulli"]
    result = newton(fam, W, B, Y, LAM)
    Wn, z = W.numpy(), result.z.numpy()
    eta = z @ Wn.T + B.numpy()
    grad = LAM * z - (Y.numpy() - 1 / (1 + np.exp(-eta))) @ Wn
    np.testing.assert_allclose(
        result.stats.residual.numpy(), np.linalg.norm(grad, axis=1), atol=1e-13
    )


def test_newton_keeps_negative_binomial_inside_domain_from_far_start():
    """A start where the first full Newton step would leave eta < 0 still converges."""
    W, B, Y = problem("negative_binomial", n=20, seed=4)
    Y = Y * 20  # large counts pull eta towards the boundary 0
    fam = FAMILIES["negative_binomial"]
    result = newton(fam, W, B, Y, LAM)
    assert result.stats.all_converged
    assert bool(((result.z @ W.T + B) < 0).all())
    np.testing.assert_allclose(
        result.z.numpy(), scipy_map_latents("negative_binomial", W, B, Y, LAM), atol=1e-9
    )


def test_newton_rejects_infeasible_start():
    W, B, Y = problem("negative_binomial", n=3, seed=5)
    with pytest.raises(ValueError, match="outside the domain"):
        newton(FAMILIES["negative_binomial"], W, torch.zeros_like(B), Y, LAM)


def test_newton_reports_nonconvergence_with_max_iter_1():
    W, B, Y = problem("poisson", n=10, seed=6)
    result = newton(FAMILIES["poisson"], W, B, Y, LAM, config=make_config(max_iter=1))
    assert not result.stats.all_converged
    assert int(result.stats.iterations.max()) == 1
    with pytest.raises(ConvergenceError, match=r"did not converge for \d+ of 10 samples"):
        check_convergence(result.stats, "raise")


def test_newton_converges_quadratically():
    """Gradient norms over Newton iterations satisfy r_{k+1} <= C r_k^2 near the solution."""
    W, B, Y = problem("poisson", n=1, d=50, l=2, seed=7)
    fam = FAMILIES["poisson"]
    norms = [
        float(
            newton(
                fam, W, B, Y, LAM, config={"max_iter": k, "tol": 1e-300, "rtol": 0.0}
            ).stats.residual[0]
        )
        for k in range(1, 9)
    ]
    tail = [(a, b) for a, b in itertools.pairwise(norms) if 1e-9 < b and a < 1.0]
    assert tail, norms
    assert all(b <= 10.0 * a * a for a, b in tail), norms


# ------------------------------------------------------------------------------ Gaussian


def test_gaussian_newton_matches_closed_form_where_fixed_point_diverges():
    W, B, Y = problem("gaussian", n=20, d=50, l=2, seed=8)
    fam = FAMILIES["gaussian"]
    cert = contraction_certificate(W, LAM, fam.sup_activation_grad)
    assert cert.ratio > 1  # |W|^2 > lam: the plain map (10) is expansive
    reference = gaussian_closed_form(W, B, Y, LAM)
    for solver in (newton, cg_newton):
        result = solver(fam, W, B, Y, LAM)
        np.testing.assert_allclose(result.z.numpy(), reference, rtol=0, atol=1e-12)
    _, stats = fixed_point(deq_map(fam, W, B, Y, LAM), torch.zeros(20, 2, dtype=F64))
    assert stats.n_failed == 20  # diverges, and says so
    with pytest.raises(ConvergenceError, match="fixed_point did not converge for 20 of 20"):
        check_convergence(stats, "raise")
    with pytest.warns(ConvergenceWarning, match="20 of 20"):
        check_convergence(stats, "warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_convergence(stats, "ignore")


@pytest.mark.parametrize("solver", [anderson, broyden])
def test_accelerated_solvers_solve_linear_gaussian_map(solver):
    """Anderson/Broyden solve the (expansive but linear) Gaussian map (10) exactly."""
    W, B, Y = problem("gaussian", n=20, d=50, l=2, seed=9)
    fam = FAMILIES["gaussian"]
    z, stats = solver(
        deq_map(fam, W, B, Y, LAM), torch.zeros(20, 2, dtype=F64), {"max_iter": 100, "memory": 5}
    )
    assert stats.all_converged, str(stats)
    np.testing.assert_allclose(z.numpy(), gaussian_closed_form(W, B, Y, LAM), atol=1e-10)


@pytest.mark.parametrize("solver", [fixed_point, anderson, broyden])
@pytest.mark.parametrize("name", ["bernoulli", "ising", "poisson"])
def test_generic_solvers_in_contractive_regime_match_scipy(solver, name):
    W, B, Y = problem(name, n=10, d=20, l=2, w_scale=0.05, seed=10)
    fam = FAMILIES[name]
    z, stats = solver(
        deq_map(fam, W, B, Y, 1.0), torch.zeros(10, 2, dtype=F64), {"max_iter": 300, "tol": 1e-12}
    )
    assert stats.all_converged, str(stats)
    assert stats.residual_kind == "fixed_point_residual"
    np.testing.assert_allclose(z.numpy(), scipy_map_latents(name, W, B, Y, 1.0), atol=1e-10)


def test_converged_samples_are_frozen():
    """A sample starting at its fixed point is never moved; others iterate on."""
    W, B, Y = problem("gaussian", n=5, d=10, l=2, w_scale=0.05, seed=11)
    fam = FAMILIES["gaussian"]
    lam = 1.0
    exact = torch.tensor(gaussian_closed_form(W, B, Y, lam))
    z0 = torch.zeros(5, 2, dtype=F64)
    z0[2] = exact[2]
    for solver in (fixed_point, anderson, broyden):
        z, stats = solver(deq_map(fam, W, B, Y, lam), z0, {"tol": 1e-12})
        assert int(stats.iterations[2]) == 0, solver.__name__
        assert torch.equal(z[2], z0[2])
        assert bool((stats.iterations[[0, 1, 3, 4]] > 0).all())


def test_fixed_point_residual_statistic_is_independent():
    W, B, Y = problem("bernoulli", n=4, d=10, l=2, w_scale=0.1, seed=12)
    f = deq_map(FAMILIES["bernoulli"], W, B, Y, 1.0)
    z, stats = fixed_point(f, torch.zeros(4, 2, dtype=F64), {"max_iter": 3})
    Wn, zn = W.numpy(), z.numpy()
    fz = (Y.numpy() - 1 / (1 + np.exp(-(zn @ Wn.T + B.numpy())))) @ Wn
    np.testing.assert_allclose(
        stats.residual.numpy(), np.linalg.norm(fz - zn, axis=1), rtol=0, atol=1e-15
    )


# ------------------------------------------------------------------------------ certificate


def test_contraction_certificate_values_and_damped_convergence():
    W, B, Y = problem("bernoulli", n=20, d=20, l=2, w_scale=0.5, seed=13)
    fam = FAMILIES["bernoulli"]
    cert = contraction_certificate(W, LAM, fam.sup_activation_grad)
    norm_sq = np.linalg.svd(W.numpy(), compute_uv=False)[0] ** 2
    L = 0.25 * norm_sq
    assert cert.spectral_norm_sq == pytest.approx(norm_sq, rel=1e-12)
    assert cert.ratio == pytest.approx(L / LAM, rel=1e-12)
    assert not cert.plain_contracts
    assert cert.optimal_damping == pytest.approx(2 * LAM / (2 * LAM + L), rel=1e-12)
    assert cert.damped_rate == pytest.approx(L / (2 * LAM + L), rel=1e-12)
    f = deq_map(fam, W, B, Y, LAM)
    _, plain = fixed_point(f, torch.zeros(20, 2, dtype=F64), {"max_iter": 300})
    assert plain.n_failed > 0
    z, damped = fixed_point(
        f,
        torch.zeros(20, 2, dtype=F64),
        {"max_iter": 2000, "damping": cert.optimal_damping, "tol": 1e-11},
    )
    assert damped.all_converged, str(damped)
    np.testing.assert_allclose(z.numpy(), scipy_map_latents("bernoulli", W, B, Y, LAM), atol=1e-9)


def test_damped_rate_bounds_gaussian_iteration_matrix():
    """For the Gaussian the damped iteration is linear, z <- (I - alpha H) z + c; its spectral
    radius (numpy eigenvalues) never exceeds the certified rate and attains it at the top."""
    rng = np.random.default_rng(14)
    W = torch.tensor(rng.normal(size=(6, 3)))
    cert = contraction_certificate(W, LAM, 1.0)
    H = LAM * np.eye(3) + W.numpy().T @ W.numpy()
    eig = np.linalg.eigvalsh(np.eye(3) - cert.optimal_step * H)
    assert np.abs(eig).max() <= cert.damped_rate + 1e-12
    assert eig.min() == pytest.approx(-cert.damped_rate, rel=1e-10)


def test_contraction_certificate_unbounded_slope():
    W = torch.ones(3, 2, dtype=F64)
    cert = contraction_certificate(W, LAM, math.inf)
    assert not cert.plain_contracts and cert.damped_rate == 1.0 and cert.optimal_damping == 0
    assert contraction_certificate(W, LAM, None).lipschitz == math.inf


# ------------------------------------------------------------------------------ config & CG


def test_unknown_option_names_key_and_suggestion():
    with pytest.raises(ValueError, match=r"unknown solver option 'max_iters'.*'max_iter'"):
        SolverConfig.from_dict({"max_iters": 3})
    with pytest.raises(ValueError, match=r"'memroy'.*did you mean 'memory'"):
        make_config(memroy=3)
    with pytest.raises(ValueError, match="tol must be > 0"):
        make_config(tol=0.0)
    with pytest.raises(ValueError, match="max_iter must be an integer"):
        make_config(max_iter=2.5)
    with pytest.raises(ValueError, match="on_nonconvergence must be one of"):
        check_convergence(fixed_point(lambda z: z, torch.zeros(1, 1))[1], "loud")
    assert make_config(tol=1e-6, memory=3) == SolverConfig(tol=1e-6, memory=3)


def test_batched_cg_matches_numpy_solve():
    rng = np.random.default_rng(15)
    mats = [(lambda a: a @ a.T + 0.1 * np.eye(7))(rng.normal(size=(7, 7))) for _ in range(4)]
    A = torch.tensor(np.stack(mats))
    b = torch.tensor(rng.normal(size=(4, 7)))
    x, _, converged = batched_cg(lambda v: (A @ v[..., None])[..., 0], b, 1e-13, 100)
    assert bool(converged.all())
    expected = np.stack([np.linalg.solve(m, bb) for m, bb in zip(mats, b.numpy(), strict=True)])
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-9, atol=1e-10)
