"""The one solver protocol (runtime/solvers/): the Solution object, the batched Armijo line
search alone, Newton through the NewtonProblem protocol on the dense and the block-tridiagonal
problems (checked against scipy's trust-region solver), and the solver registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oracles.families import FAMILIES, problem, scipy_map_latents
from scipy.optimize import minimize

from deqfam.runtime.deep import LayerFunctions, StackNewtonProblem, StackProblem, solve_stack
from deqfam.runtime.implicit import implicit_fixed_point
from deqfam.runtime.solvers import (
    DenseNewtonProblem,
    InnerProblem,
    Solution,
    SolverConfig,
    Status,
    anderson,
    armijo_search,
    fixed_point,
    get_solver,
    list_solvers,
    newton,
    newton_solve,
    objective_trials,
    register_solver,
)
from deqfam.runtime.solvers.registry import GENERIC_SOLVERS

F64 = torch.float64
LAM = 0.1


# ------------------------------------------------------------------------------ Solution


def test_newton_solution_fields_and_factor_is_the_hessian_cholesky():
    W, B, Y = problem("poisson", n=6, d=8, l=3, seed=2)
    sol = newton(FAMILIES["poisson"], W, B, Y, LAM)
    assert isinstance(sol, Solution)
    assert sol.value.shape == (6, 3) and sol.z is sol.value
    assert sol.all_converged and torch.equal(sol.converged, sol.stats.converged)
    assert sol.status.tolist() == [int(Status.CONVERGED)] * 6
    assert sol.stats.residual_kind == "grad_norm" and sol.stats.solver == "newton"
    # factor L satisfies L L^T = lam I + W^T diag(exp(eta)) W at z*, built here with numpy
    Wn, z = W.numpy(), sol.value.numpy()
    for s in range(6):
        H = LAM * np.eye(3) + Wn.T @ np.diag(np.exp(Wn @ z[s] + B.numpy())) @ Wn
        L = sol.factor[s].numpy()
        np.testing.assert_allclose(L @ L.T, H, rtol=1e-12, atol=1e-12)
    assert sol.cholesky is sol.factor
    value, stats = sol  # the former (z, stats) tuple
    assert value is sol.value and stats is sol.stats


def test_generic_solution_status_codes():
    # f(z) = 2z + 1: Picard iterates 2^k - 1 from 0, residual |z + 1| doubles -> diverged
    sol = fixed_point(lambda z: 2 * z + 1, torch.zeros(2, 1, dtype=F64), {"max_iter": 60})
    assert sol.status.tolist() == [int(Status.DIVERGED)] * 2 and not sol.all_converged
    assert sol.factor is None
    # f(z) = z/2 + 1 (fixed point 2): one iteration is not enough, residual 1/2 left
    short = fixed_point(lambda z: z / 2 + 1, torch.zeros(3, 2, dtype=F64), {"max_iter": 1})
    assert short.status.tolist() == [int(Status.MAX_ITER)] * 3
    assert torch.allclose(short.stats.residual, torch.full((3,), 0.5 * math.sqrt(2), dtype=F64))
    done = anderson(lambda z: z / 2 + 1, torch.zeros(3, 2, dtype=F64))
    assert done.status.tolist() == [int(Status.CONVERGED)] * 3
    assert torch.allclose(done.value, torch.full((3, 2), 2.0, dtype=F64), atol=1e-9)


# ------------------------------------------------------------------------------ line search


def quadratic(q, b):
    """f(z) = q/2 z^2 - b z per sample (1-D), with trailing dim 1; magnitude of its terms."""

    def f(z):
        quad, lin = 0.5 * q * z[..., 0] ** 2, b * z[..., 0]
        return quad - lin, quad.abs() + lin.abs()

    return f


def test_armijo_step_on_a_convex_quadratic_matches_the_closed_form():
    # Steepest descent d = -f'(z): f(z + t d) <= f(z) + c t f' d  <=>  t <= 2 (1 - c) / q,
    # so the accepted step is the largest 2^-k below that bound.
    cfg = SolverConfig(line_search_steps=12, armijo_c=1e-4)
    q = torch.tensor([0.3, 1.0, 2.5, 7.0, 40.0], dtype=F64)
    b = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=F64)
    z = torch.tensor([[4.0], [1.0], [-3.0], [2.0], [0.7]], dtype=F64)
    grad = q[:, None] * z - b[:, None]
    d = -grad
    step, found = armijo_search(
        objective_trials(quadratic(q, b), z, d), grad, d, torch.ones(5, dtype=F64), cfg
    )
    bound = 2 * (1 - cfg.armijo_c) / q.numpy()
    expected = 2.0 ** -np.maximum(0, np.ceil(-np.log2(bound)))
    assert found.all()
    np.testing.assert_array_equal(step.numpy(), expected)
    # Newton direction -f'/q: the full step is accepted and lands on the minimiser b/q
    d_newton = -grad / q[:, None]
    step, found = armijo_search(
        objective_trials(quadratic(q, b), z, d_newton), grad, d_newton, torch.ones(5), cfg
    )
    assert found.all() and torch.equal(step, torch.ones(5, dtype=F64))
    np.testing.assert_allclose((z + d_newton)[:, 0].numpy(), (b / q).numpy(), rtol=1e-14)


def test_armijo_rejects_an_ascent_direction():
    q, b = torch.tensor([1.0], dtype=F64), torch.tensor([0.0], dtype=F64)
    z = torch.tensor([[1.0]], dtype=F64)
    grad = q[:, None] * z - b[:, None]
    cfg = SolverConfig(line_search_steps=4)
    _, found = armijo_search(
        objective_trials(quadratic(q, b), z, grad), grad, grad, torch.ones(1, dtype=F64), cfg
    )
    assert not found.any()


# ------------------------------------------------------------------------------ Newton


def scipy_minimise(fun, jac, hess, x0):
    """Independent minimiser: scipy's exact trust-region method to a tight gradient norm."""
    res = minimize(fun, x0, jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-13})
    return res.x


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "negative_binomial"])
@pytest.mark.parametrize("use_cholesky", [True, False])
def test_newton_on_the_dense_problem_matches_scipy(name, use_cholesky):
    W, B, Y = problem(name, n=4, d=10, l=2, seed=5)
    fam = FAMILIES[name]
    inner = InnerProblem(fam, W, B, fam.sufficient_statistic(Y), LAM)
    cfg = SolverConfig(tol=1e-12)
    sol = newton_solve(DenseNewtonProblem(inner, use_cholesky, cfg), torch.zeros(4, 2, dtype=F64))
    assert sol.all_converged
    # independent reference: scipy BFGS polished by MINPACK's root finder on grad J = 0
    ref = scipy_map_latents(name, W, B, Y, LAM)
    np.testing.assert_allclose(sol.value.numpy(), ref, rtol=0, atol=1e-8)


def _ones(x, eta):
    return torch.ones_like(eta)


#: Hand-written layer functions (independent of derive/): Poisson data, Gaussian latent.
POISSON_LAYER = LayerFunctions(
    name="poisson", domain=(-math.inf, math.inf),
    core=lambda x, e: x * e - torch.exp(e), score_eta=lambda x, e: x - torch.exp(e),
    d2_eta=lambda x, e: -torch.exp(e), d2_xeta=_ones,
    scale_eta=lambda x, e: x.abs() + torch.exp(e), activation=torch.exp, statistic=lambda x: x,
)  # fmt: skip
GAUSSIAN_LAYER = LayerFunctions(
    name="gaussian", domain=(-math.inf, math.inf),
    core=lambda x, e: x * e - e * e / 2, score_eta=lambda x, e: x - e,
    d2_eta=lambda x, e: -torch.ones_like(e), d2_xeta=_ones,
    scale_eta=lambda x, e: x.abs() + e.abs(), activation=lambda e: e, statistic=lambda x: x,
    log_base=lambda x: -x * x / 2 - 0.5 * math.log(2 * math.pi), score_x=lambda x, e: e - x,
    d2_x=lambda x, e: -torch.ones_like(x), scale_x=lambda x, e: e.abs() + x.abs(),
)  # fmt: skip


def random_stack(layers, widths, lam, n, seed):
    g = torch.Generator().manual_seed(seed)
    Ws = [
        0.5 * torch.randn(widths[l], widths[l + 1], generator=g, dtype=F64)
        for l in range(len(layers))
    ]
    bs = [0.1 * torch.randn(widths[l], generator=g, dtype=F64) for l in range(len(layers))]
    Y = torch.poisson(torch.full((n, widths[0]), 2.0, dtype=F64), generator=g)
    return StackProblem(layers, Ws, bs, lam, Y)


def test_newton_on_the_block_tridiagonal_problem_matches_scipy():
    # Poisson data layer under a Gaussian latent layer: J is strongly convex, and with
    # r = z1 - W2 z2 - b2 it reads sum(exp(eta1) - Y eta1) + |r|^2/2 + lam/2 |z2|^2 + const.
    lam, n = 0.5, 3
    prob = random_stack([POISSON_LAYER, GAUSSIAN_LAYER], [5, 3, 2], lam, n, seed=4)
    solution = solve_stack(prob, config={"tol": 1e-13})
    assert solution.stats.all_converged and solution.status.tolist() == [0] * n
    W1, W2 = (W.numpy() for W in prob.Ws)
    b1, b2 = (b.numpy() for b in prob.bs)

    for s in range(n):
        y = prob.Y[s].numpy()

        def fun(x, y=y):
            z1, z2 = x[:3], x[3:]
            eta, r = W1 @ z1 + b1, z1 - W2 @ z2 - b2
            return (np.exp(eta) - y * eta).sum() + r @ r / 2 + lam / 2 * z2 @ z2

        def jac(x, y=y):
            z1, z2 = x[:3], x[3:]
            eta, r = W1 @ z1 + b1, z1 - W2 @ z2 - b2
            return np.concatenate([W1.T @ (np.exp(eta) - y) + r, -W2.T @ r + lam * z2])

        def hess(x):
            eta = W1 @ x[:3] + b1
            top = np.hstack([W1.T @ (np.exp(eta)[:, None] * W1) + np.eye(3), -W2])
            bottom = np.hstack([-W2.T, W2.T @ W2 + lam * np.eye(2)])
            return np.vstack([top, bottom])

        ref = scipy_minimise(fun, jac, hess, np.zeros(5))
        np.testing.assert_allclose(solution.z[s].numpy(), ref, rtol=0, atol=1e-8)


def test_stack_problem_implements_the_protocol_like_the_dense_one():
    # One Poisson layer: the stack's J equals the inner problem of Theorem 1 up to log h(Y),
    # so newton_solve on the two protocol implementations reaches the same z*.
    prob = random_stack([POISSON_LAYER], [6, 2], LAM, 5, seed=7)
    cfg = SolverConfig(tol=1e-13)
    block = newton_solve(StackNewtonProblem(prob, 5, F64, "cpu"), torch.zeros(5, 2, dtype=F64), cfg)
    dense = newton(FAMILIES["poisson"], prob.Ws[0], prob.bs[0], prob.Y, LAM, config=cfg)
    assert block.all_converged and dense.all_converged
    torch.testing.assert_close(block.value, dense.value, rtol=0, atol=1e-11)


# ------------------------------------------------------------------------------ registry


def test_registry_lists_and_dispatches():
    assert list_solvers("generic") == ["anderson", "broyden", "fixed_point"]
    assert list_solvers("objective") == ["cg_newton", "newton"]
    assert list_solvers() == sorted([*list_solvers("generic"), *list_solvers("objective")])
    assert get_solver("anderson") is anderson and get_solver("newton", "objective") is newton
    with pytest.raises(ValueError, match=r"unknown generic solver 'newton'.*anderson"):
        get_solver("newton", "generic")
    with pytest.raises(ValueError, match="already registered"):
        register_solver("anderson", fixed_point)
    with pytest.raises(ValueError, match="kind must be one of"):
        list_solvers("quantum")


def test_a_registered_solver_is_dispatched_by_name():
    calls = []

    def half_damped(f, z0, config=None):
        """Picard iteration with damping 1/2, recording that it was called."""
        calls.append(z0.shape)
        cfg = SolverConfig.from_dict(None) if config is None else config
        return fixed_point(f, z0, SolverConfig(**{**cfg.__dict__, "damping": 0.5}))

    register_solver("half_damped", half_damped)
    try:
        assert "half_damped" in list_solvers("generic")
        c = torch.tensor([1.0, -2.0], dtype=F64)
        # z = -z + c has fixed point c/2; plain iteration oscillates, damping 1/2 solves it
        result = implicit_fixed_point(lambda z: -z + c, torch.zeros(1, 2, dtype=F64), "half_damped")
        assert calls and result.stats.all_converged
        torch.testing.assert_close(result.z, (c / 2)[None], rtol=0, atol=1e-9)
    finally:
        GENERIC_SOLVERS.pop("half_damped", None)
