"""Implicit-function-theorem backward passes, checked by gradcheck, closed forms and unrolling."""

from __future__ import annotations

import pytest
import torch
from oracles.families import FAMILIES, family_params, problem

from deqfam.runtime.implicit import implicit_fixed_point, newton_equilibrium
from deqfam.runtime.solvers import ConvergenceError

F64 = torch.float64
TIGHT = {"tol": 1e-13, "max_iter": 100}


def with_grad(*tensors):
    return tuple(t.clone().requires_grad_(True) for t in tensors)


def deq_map(family, W, B, Y, lam):
    T = family.sufficient_statistic(Y)
    return lambda z: (T - family.activation(z @ W.T + B)) @ W / lam


@pytest.mark.parametrize("method", ["newton", "cg_newton"])
@pytest.mark.parametrize("name", family_params())
def test_gradcheck_objective_layer(name, method):
    fam = FAMILIES[name]
    W, B, Y = with_grad(*problem(name, n=3, d=5, l=2, w_scale=0.5, seed=20))

    def layer(W, B, Y):
        return newton_equilibrium(fam, W, B, Y, 0.1, TIGHT, method=method)[0]

    # Full (column-by-column) Jacobian check for one case; the randomised fast mode for the
    # others keeps the suite fast.
    fast = not (name == "poisson" and method == "newton")
    assert torch.autograd.gradcheck(layer, (W, B, Y), atol=1e-7, rtol=1e-6, fast_mode=fast)


@pytest.mark.parametrize("solver", ["fixed_point", "anderson", "broyden"])
def test_gradcheck_generic_ift(solver):
    """Contractive configuration: |W|^2 sup sigma' < lam for the Bernoulli map (10)."""
    fam = FAMILIES["bernoulli"]
    W, B, Y = with_grad(*problem("bernoulli", n=3, d=5, l=2, w_scale=0.3, seed=21))
    lam = 1.0
    cfg = {"tol": 1e-14, "max_iter": 500}

    def layer(W, B, Y):
        z0 = torch.zeros(3, 2, dtype=F64)
        return implicit_fixed_point(
            deq_map(fam, W, B, Y, lam), z0, solver, cfg, on_backward_nonconvergence="raise"
        ).z

    fast = solver != "anderson"
    assert torch.autograd.gradcheck(layer, (W, B, Y), atol=1e-7, rtol=1e-6, fast_mode=fast)


def closed_form_gaussian(W, B, Y, lam):
    """Z* = (lam I + W^T W)^{-1} W^T (Y - B), differentiable by plain autograd."""
    H = lam * torch.eye(W.shape[1], dtype=F64) + W.T @ W
    return torch.linalg.solve(H, W.T @ (Y - B).T).T


@pytest.mark.parametrize("path", ["newton", "cg_newton", "anderson", "broyden"])
def test_gaussian_gradients_match_closed_form(path):
    """Gradients of a random linear functional of Z* agree with autograd of the closed form,
    in an expansive configuration (|W|^2 > lam) where the plain map (10) diverges."""
    W, B, Y = problem("gaussian", n=6, d=8, l=3, w_scale=0.7, seed=22)
    weights = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    lam = 0.1
    ref_inputs = with_grad(W, B, Y)
    (closed_form_gaussian(*ref_inputs, lam) * weights).sum().backward()
    inputs = with_grad(W, B, Y)
    if path in ("newton", "cg_newton"):
        z = newton_equilibrium(FAMILIES["gaussian"], *inputs, lam, TIGHT, method=path)[0]
    else:
        f = deq_map(FAMILIES["gaussian"], *inputs, lam)
        z = implicit_fixed_point(
            f,
            torch.zeros(6, 3, dtype=F64),
            path,
            {"tol": 1e-13, "max_iter": 200},
            on_backward_nonconvergence="raise",
        ).z
    (z * weights).sum().backward()
    for got, want in zip(inputs, ref_inputs, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-9, atol=1e-10)


def unrolled_newton(family, W, B, Y, lam, steps):
    """Plain full-step Newton written directly with torch ops; autograd unrolls every step."""
    z = torch.zeros(Y.shape[0], W.shape[1], dtype=F64)
    eye = torch.eye(W.shape[1], dtype=F64)
    for _ in range(steps):
        eta = z @ W.T + B
        grad = lam * z - (Y - family.activation(eta)) @ W
        hess = lam * eye + W.T @ (family.activation_grad(eta)[..., None] * W)
        z = z - torch.linalg.solve(hess, grad[..., None])[..., 0]
    return z, grad


@pytest.mark.parametrize("name", family_params())
def test_implicit_gradients_match_unrolled_newton(name):
    fam = FAMILIES[name]
    W, B, Y = problem(name, n=5, d=12, l=2, w_scale=0.3, seed=23)
    weights = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    ref_inputs = with_grad(W, B, Y)
    z_ref, grad_ref = unrolled_newton(fam, *ref_inputs, 0.1, steps=40)
    assert float(grad_ref.detach().abs().max()) < 1e-10  # the unrolled solve has converged
    (z_ref * weights).sum().backward()
    inputs = with_grad(W, B, Y)
    z, stats = newton_equilibrium(fam, *inputs, 0.1, TIGHT)
    assert stats.all_converged
    (z * weights).sum().backward()
    torch.testing.assert_close(z, z_ref.detach(), rtol=0, atol=1e-10)
    for got, want in zip(inputs, ref_inputs, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("solver", ["fixed_point", "anderson", "broyden"])
def test_generic_ift_matches_unrolled_fixed_point(solver):
    fam = FAMILIES["poisson"]
    W, B, Y = problem("poisson", n=5, d=12, l=2, w_scale=0.1, seed=24)
    lam = 2.0
    weights = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    ref_inputs = with_grad(W, B, Y)
    f_ref = deq_map(fam, *ref_inputs, lam)
    z_ref = torch.zeros(5, 2, dtype=F64)
    for _ in range(300):
        z_ref = f_ref(z_ref)
    assert float((f_ref(z_ref) - z_ref).detach().abs().max()) < 1e-13
    (z_ref * weights).sum().backward()
    inputs = with_grad(W, B, Y)
    result = implicit_fixed_point(
        deq_map(fam, *inputs, lam),
        torch.zeros(5, 2, dtype=F64),
        solver,
        {"tol": 1e-13},
        on_backward_nonconvergence="raise",
    )
    (result.z * weights).sum().backward()
    assert len(result.backward_stats) == 1 and result.backward_stats[0].all_converged
    for got, want in zip(inputs, ref_inputs, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-6, atol=1e-9)


def test_backward_nonconvergence_raises():
    """Forward by Anderson converges on the linear Gaussian map, but the adjoint fixed-point
    iteration u = J^T u + g diverges (|J| > 1) and the policy makes that loud."""
    W, B, Y = with_grad(*problem("gaussian", n=4, d=10, l=2, seed=25))
    result = implicit_fixed_point(
        deq_map(FAMILIES["gaussian"], W, B, Y, 0.1),
        torch.zeros(4, 2, dtype=F64),
        "anderson",
        {"tol": 1e-12},
        backward_solver="fixed_point",
        on_backward_nonconvergence="raise",
    )
    assert result.stats.all_converged
    with pytest.raises(ConvergenceError, match="implicit backward: fixed_point"):
        result.z.sum().backward()


def saved_bytes(fn):
    """Bytes of tensors autograd saves for backward while running ``fn``."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


@pytest.mark.parametrize("path", ["newton", "anderson"])
def test_memory_independent_of_iteration_count(path):
    W, B, Y = with_grad(*problem("bernoulli", n=50, d=20, l=3, w_scale=0.5, seed=26))
    fam = FAMILIES["bernoulli"]

    def run(max_iter):
        cfg = {"max_iter": max_iter, "tol": 1e-300, "rtol": 0.0}  # never converges: all iterate
        if path == "newton":
            return lambda: newton_equilibrium(fam, W, B, Y, 0.1, cfg)
        f = deq_map(fam, W, B, Y, 1.0)
        return lambda: implicit_fixed_point(f, torch.zeros(50, 3, dtype=F64), path, cfg)

    small, large = saved_bytes(run(3)), saved_bytes(run(60))
    assert small == large
    assert small <= 8 * (4 * 50 * 20 + 50 * 3 * 3 + 4 * 20 * 3)  # O(N d + N l^2) doubles
