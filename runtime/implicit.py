"""Exact implicit-function-theorem gradients for equilibrium layers.

Objective-based layers (Theorem 1 (6)). ``z*(W, B, Y)`` is the root of eq. (9),

    F(z; W, B, Y) = lam z - W^T (T(Y) - sigma(W z + B)) = 0,

with ``dF/dz = H = lam I + W^T diag(sigma') W`` (Appendix D), so by the implicit function theorem
``dz*/dtheta = -H^{-1} dF/dtheta``. The backward pass therefore solves ``H u = grad_out`` once
(with the Cholesky factor kept from the Newton forward, or by CG for ``cg_newton``) and returns
the vector-Jacobian products ``-u^T dF/dtheta`` in closed form, per sample ``s``:

    grad_W = sum_s (T_s - sigma_s) u_s^T - (sigma'_s * (W u_s)) z_s^T
    grad_B = -sum_s sigma'_s * (W u_s)
    grad_Y_s = T'(Y_s) * (W u_s)            (T' by one autograd VJP through T)

No backward iteration, no unrolled graph: memory ``O(N l^2)``.

Generic layers ``z* = f(z*, params)`` (the DEQ (10) or any map): the usual DEQ pattern. The
forward solves without a graph, then applies ``f`` once more with grad, ``z = f(z*, params)``,
and a hook on ``z`` replaces the incoming gradient ``g`` by the solution ``u`` of
``u = J_f(z*)^T u + g`` (i.e. ``(I - J_f)^T u = g``), computed by a generic solver from autograd
VJPs; autograd then carries ``u`` through ``f`` to the parameters, giving
``u^T df/dparams = g^T (I - J_f)^{-1} df/dparams``, the IFT gradient. Memory is one application
of ``f`` regardless of the iteration count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .family import as_torch_family
from .solvers import (
    OBJECTIVE_SOLVERS,
    SolverConfig,
    SolverStats,
    as_config,
    batched_cg,
    check_convergence,
    get_generic_solver,
)


class _SolveRecord:
    """Carries what the autograd Function's forward learned (stats) back to the caller."""

    def __init__(
        self, family: Any, lam: float, config: SolverConfig, method: str, backward_policy: str
    ) -> None:
        self.family = as_torch_family(family)
        self.lam = float(lam)
        self.config = config
        self.method = method
        self.backward_policy = backward_policy
        self.stats: SolverStats | None = None
        self.backward_stats: SolverStats | None = None
        self.z0: Tensor | None = None


def _statistic_vjp(family: Any, Y: Tensor, cotangent: Tensor) -> Tensor:
    """``T'(Y) * cotangent`` by one autograd VJP through the elementwise statistic ``T``."""
    with torch.enable_grad():
        y = Y.detach().requires_grad_(True)
        t = family.sufficient_statistic(y)
        if not t.requires_grad:  # T does not depend on y
            return torch.zeros_like(Y)
        (grad,) = torch.autograd.grad(t, y, cotangent, allow_unused=True)
    return torch.zeros_like(Y) if grad is None else grad


class NewtonEquilibrium(torch.autograd.Function):
    """``Z* = argmin_z J(z; W, B, Y)`` (Theorem 1) with the exact implicit backward.

    ``apply(W, B, Y, record)``; ``record`` is a ``_SolveRecord`` naming the family, ``lam``,
    config and method (``"newton"`` or ``"cg_newton"``) and receives the solver stats.
    """

    @staticmethod
    def forward(ctx: Any, W: Tensor, B: Tensor, Y: Tensor, record: _SolveRecord) -> Tensor:
        family = record.family
        T = family.sufficient_statistic(Y)
        result = OBJECTIVE_SOLVERS[record.method](
            family, W, B, T, record.lam, record.z0, record.config
        )
        record.stats = result.stats
        ctx.record = record
        chol = result.cholesky if result.cholesky is not None else torch.empty(0)
        ctx.save_for_backward(result.z, W, B, Y, chol)
        return result.z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        z, W, B, Y, chol = ctx.saved_tensors
        record: _SolveRecord = ctx.record
        family, lam = record.family, record.lam
        eta = z @ W.T + B
        sp = family.activation_grad(eta)
        u = _solve_hessian(record, W, sp, lam, chol, grad_z)
        wu = u @ W.T  # rows W u_s
        p = sp * wu  # rows sigma'_s * (W u_s)
        grad_W = grad_B = grad_Y = None
        if ctx.needs_input_grad[0]:
            resid = family.sufficient_statistic(Y) - family.activation(eta)
            grad_W = resid.T @ u - p.T @ z
        if ctx.needs_input_grad[1]:
            grad_B = -p.sum(0)
        if ctx.needs_input_grad[2]:
            grad_Y = _statistic_vjp(family, Y, wu)
        return grad_W, grad_B, grad_Y, None


def _solve_hessian(
    record: _SolveRecord, W: Tensor, sp: Tensor, lam: float, chol: Tensor, rhs: Tensor
) -> Tensor:
    """``H^{-1} rhs`` row by row: Cholesky solve with the forward's factor, or CG."""
    if chol.numel():
        return torch.cholesky_solve(rhs[..., None], chol)[..., 0]

    def hvp(v: Tensor) -> Tensor:
        return lam * v + (sp * (v @ W.T)) @ W

    cfg = record.config
    max_iter = cfg.cg_max_iter or 2 * W.shape[1] + 20
    u, iters, converged = batched_cg(hvp, rhs, cfg.cg_rtol, max_iter)
    resid = torch.linalg.vector_norm(rhs - hvp(u), dim=-1)
    stats = SolverStats(
        "cg (implicit backward)",
        iters,
        resid,
        cfg.cg_rtol * torch.linalg.vector_norm(rhs, dim=-1),
        converged,
        "linear_residual",
    )
    record.backward_stats = stats
    check_convergence(stats, record.backward_policy, what="implicit backward")
    return u


def newton_equilibrium(
    family: Any,
    W: Tensor,
    B: Tensor,
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
    method: str = "newton",
    on_backward_nonconvergence: str = "warn",
    z0: Tensor | None = None,
) -> tuple[Tensor, SolverStats]:
    """Differentiable MAP latents ``Z*`` (shape ``(N, l)``) of Theorem 1 and the solver stats.

    ``method`` is ``"newton"`` (Cholesky; backward reuses the factor) or ``"cg_newton"``
    (matrix-free; backward by CG to ``cg_rtol``). Gradients w.r.t. ``W``, ``B`` and ``Y`` are
    the exact IFT gradients described in the module docstring. ``z0`` is an optional warm
    start (the gradient does not depend on it: it is taken at the solution).
    """
    if method not in OBJECTIVE_SOLVERS:
        raise ValueError(
            f"unknown objective solver {method!r}; choose one of {sorted(OBJECTIVE_SOLVERS)}"
        )
    record = _SolveRecord(family, lam, as_config(config), method, on_backward_nonconvergence)
    record.z0 = None if z0 is None else z0.detach()
    z = NewtonEquilibrium.apply(W, B, Y, record)
    assert record.stats is not None
    return z, record.stats


class ImplicitResult:
    """Output of ``implicit_fixed_point``: the layer output, forward stats, and the stats of
    each backward solve (appended when a backward pass runs)."""

    def __init__(self, z: Tensor, stats: SolverStats) -> None:
        self.z = z
        self.stats = stats
        self.backward_stats: list[SolverStats] = []


def implicit_fixed_point(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    solver: str = "anderson",
    config: SolverConfig | dict[str, Any] | None = None,
    backward_solver: str | None = None,
    backward_config: SolverConfig | dict[str, Any] | None = None,
    on_backward_nonconvergence: str = "warn",
) -> ImplicitResult:
    """Solve ``z = f(z)`` and attach the IFT backward (module docstring).

    ``f`` closes over its parameters (they receive gradients through the one graph-building
    application ``z = f(z*)``). The output is ``f(z*)``, equal to ``z*`` up to the solver's
    residual. The backward solves ``u = J_f^T u + g`` with ``backward_solver`` (default: the
    forward solver) and ``backward_config`` (default: the forward config), starting at ``g``;
    its non-convergence is handled by ``on_backward_nonconvergence``.
    """
    cfg = as_config(config)
    bcfg = cfg if backward_config is None else as_config(backward_config)
    solve = get_generic_solver(solver)
    bsolve = get_generic_solver(backward_solver or solver)
    with torch.no_grad():
        z_star, stats = solve(f, z0.detach(), cfg)
    if not torch.is_grad_enabled():
        return ImplicitResult(z_star, stats)
    z_out = f(z_star.detach())
    result = ImplicitResult(z_out, stats)
    if not z_out.requires_grad:  # nothing upstream needs a gradient
        return result
    z_in = z_star.detach().requires_grad_(True)
    f_in = f(z_in)  # the graph for the VJPs J_f(z*)^T v

    def backward_hook(grad: Tensor | None) -> Tensor | None:
        if grad is None:  # undefined incoming gradient: nothing to transform
            return None

        def adjoint_map(u: Tensor) -> Tensor:
            (vjp,) = torch.autograd.grad(f_in, z_in, u, retain_graph=True)
            return vjp + grad

        with torch.no_grad():
            u, bstats = bsolve(adjoint_map, grad.detach(), bcfg)
        result.backward_stats.append(bstats)
        check_convergence(bstats, on_backward_nonconvergence, what="implicit backward")
        return u

    z_out.register_hook(backward_hook)
    return result


def layer_fixed_point(layer: Any, f: Callable[[Tensor], Tensor], z0: Tensor) -> ImplicitResult:
    """:func:`implicit_fixed_point` with a layer's settings (ExpFamPCA, the kGLM-DEQs): the
    solver ``layer.solver`` both ways, ``layer.config`` forward, ``layer.backward_config``
    backward, ``layer.on_nonconvergence`` for the backward; kept in ``layer.last_implicit``."""
    result = implicit_fixed_point(
        f,
        z0,
        layer.solver,
        layer.config,
        layer.solver,
        layer.backward_config,
        layer.on_nonconvergence,
    )
    layer.last_implicit = result
    return result


__all__ = [
    "ImplicitResult",
    "NewtonEquilibrium",
    "implicit_fixed_point",
    "layer_fixed_point",
    "newton_equilibrium",
]
