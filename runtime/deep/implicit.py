"""The deep stack as an implicit layer: the joint MAP with the exact implicit backward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..solvers import SolverConfig, as_config
from .functions import LayerFunctions
from .linalg import assemble_dense
from .problem import StackProblem
from .solve import StackSolution, solve_stack
from .stats import DeepSolverStats


class _DeepRecord:
    def __init__(self, layers: Sequence[LayerFunctions], lam: float, config: SolverConfig) -> None:
        self.layers, self.lam, self.config = list(layers), float(lam), config
        self.solution: StackSolution | None = None


class DeepEquilibrium(torch.autograd.Function):
    """``z* = argmin J(z; W, b, Y)`` over the whole stack with the exact implicit backward.

    ``apply(record, Y, W_1, b_1, ..., W_L, b_L)`` returns the concatenated ``(N, D)`` state.
    """

    @staticmethod
    def forward(ctx: Any, record: _DeepRecord, Y: Tensor, *params: Tensor) -> Tensor:
        problem = StackProblem(record.layers, params[0::2], params[1::2], record.lam, Y)
        solution = solve_stack(problem, None, record.config)
        record.solution = solution
        ctx.record = record
        ctx.save_for_backward(solution.z, Y, *params)
        return solution.z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        z, Y, *params = ctx.saved_tensors
        record: _DeepRecord = ctx.record
        solution = record.solution
        problem = StackProblem(record.layers, params[0::2], params[1::2], record.lam, Y)
        u = _solve_hessian(problem, solution, grad_z)
        zs, us = problem.split(z), problem.split(u)
        etas, xs = problem.etas(zs), problem.observations(zs)
        grads: list[Tensor | None] = []
        grad_Y = None
        for l, layer in enumerate(problem.layers):
            W = problem.Ws[l]
            wu = us[l] @ W.T
            dphi = -(wu * layer.d2_eta(xs[l], etas[l]))
            if l > 0:
                dphi = dphi - us[l - 1] * layer.d2_xeta(xs[l], etas[l])
            need_W, need_b = ctx.needs_input_grad[2 + 2 * l], ctx.needs_input_grad[3 + 2 * l]
            grads.append(
                layer.score_eta(xs[l], etas[l]).T @ us[l] - dphi.T @ zs[l] if need_W else None
            )
            grads.append(-dphi.sum(0) if need_b else None)
            if l == 0 and ctx.needs_input_grad[1]:
                grad_Y = wu * layer.d2_xeta(Y, etas[0])
        return (None, grad_Y, *grads)


def deep_equilibrium(
    layers: Sequence[LayerFunctions],
    Ws: Sequence[Tensor],
    bs: Sequence[Tensor],
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
) -> tuple[Tensor, DeepSolverStats]:
    """Differentiable joint MAP ``z* = (z_1*, ..., z_L*)`` concatenated (``N x D``) and the
    solver stats; gradients w.r.t. ``Ws``, ``bs`` and ``Y`` by the implicit backward."""
    record = _DeepRecord(layers, lam, as_config(config))
    params = [p for pair in zip(Ws, bs, strict=True) for p in pair]
    z = DeepEquilibrium.apply(record, Y, *params)
    assert record.solution is not None
    return z, record.solution.stats


def _solve_hessian(problem: StackProblem, solution: StackSolution, rhs: Tensor) -> Tensor:
    """``H(z*)^{-1} rhs`` by the block Cholesky factor; LU for samples whose ``H`` is not
    positive definite (a saddle: the implicit function theorem needs only invertibility)."""
    fac = solution.factor
    u = torch.cat(fac.solve(problem.split(rhs)), -1)
    if not bool(fac.ok.all()):
        H = assemble_dense(solution.diag, solution.off)[~fac.ok]
        u[~fac.ok] = torch.linalg.solve(H, rhs[~fac.ok])
    return u
