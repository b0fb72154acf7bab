"""Newton's method with the Armijo line search over a problem protocol.

A ``NewtonProblem`` is a batch of independent smooth minimisation problems, one per sample
(row of ``z``). It gives the gradient blocks, a descent direction (the Newton step
``-H^{-1} g``, or a safeguarded substitute) and the objective along trial steps; the loop here
owns the rest: convergence test, line search, step-scale bookkeeping, stall detection and the
``Solution``. The dense ExpFamPCA Hessian (``dense.DenseNewtonProblem``) and the deep stack's
block-tridiagonal Hessian (``runtime.deep.solve.StackNewtonProblem``) implement it.

Iteration, for every still-active sample: ``z <- z + t d`` with ``t`` the largest admissible
step of ``line_search.armijo_search`` among ``t_k = s * factor^k``; ``s`` restarts at 1 after
an accepted step (quadratic convergence near the solution) and continues from the smallest
step tried after a fully rejected batch; a sample whose ``s`` falls below ``min_step`` stalls.
Sample ``s`` has converged when every gradient block satisfies ``|g_b| <= tol + rtol scale_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from .config import SolverConfig, as_config
from .line_search import armijo_search
from .result import Solution, SolverStats, sample_status


@dataclass
class Linearisation:
    """What a problem computes at an iterate ``z`` (``N`` samples).

    Attributes:
        z: the iterate, ``(N, D)``.
        grad: the gradient ``g(z)``, ``(N, D)``.
        residual: per-block gradient norms ``|g_b|_2``, ``(B, N)`` (``B = 1`` for one block).
        scale: per-block magnitude of the terms that cancel in ``g_b``, ``(B, N)``.
        cache: problem-specific intermediates reused by ``direction``/``trial_values``.
    """

    z: Tensor
    grad: Tensor
    residual: Tensor
    scale: Tensor
    cache: Any = None


class NewtonProblem(Protocol):
    """A batch of minimisation problems that ``newton_solve`` can solve."""

    name: str

    def check_start(self, z: Tensor) -> None:
        """Raise ``ValueError`` if ``z`` is not a feasible starting point."""

    def linearise(self, z: Tensor) -> Linearisation:
        """Gradient, residual blocks and scales at ``z``."""

    def direction(self, lin: Linearisation, active: Tensor) -> Tensor:
        """A descent direction for every sample (only ``active`` rows are used)."""

    def trial_values(
        self, lin: Linearisation, direction: Tensor, steps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``J(z + t d)`` for ``steps`` ``(K, N)``, ``J(z)`` and the magnitude of its terms."""

    def factor(self, lin: Linearisation) -> tuple[Any, Tensor | None]:
        """The Hessian factor at the solution for the backward, and a mask of samples whose
        factor is unusable (they are then not converged), or ``None``."""


def newton_solve(
    problem: NewtonProblem, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> Solution:
    """Newton with Armijo line search on every sample of ``problem`` from ``z0`` (module
    docstring). ``stats.residual``/``threshold`` are the norms over blocks; the per-block
    values are in ``stats.extra["block_residual"]``/``["block_threshold"]`` (``(B, N)``)."""
    cfg = as_config(config)
    z = z0.clone()
    problem.check_start(z)
    n = z.shape[0]
    rtol = cfg.resolved_rtol(z.dtype)
    iterations = torch.zeros(n, dtype=torch.long, device=z.device)
    failed = torch.zeros(n, dtype=torch.bool, device=z.device)
    step_scale = torch.ones(n, dtype=z.dtype, device=z.device)
    shrink_all = cfg.backtrack_factor**cfg.line_search_steps
    for it in range(cfg.max_iter + 1):
        lin = problem.linearise(z)
        threshold = cfg.tol + rtol * lin.scale
        active = (lin.residual > threshold).any(0) & ~failed
        if not bool(active.any()) or it == cfg.max_iter:  # one host synchronisation
            break
        direction = problem.direction(lin, active)

        def values(steps: Tensor, lin: Linearisation = lin, d: Tensor = direction) -> Any:
            return problem.trial_values(lin, d, steps)

        step, found = armijo_search(values, lin.grad, direction, step_scale, cfg)
        move = active & found
        z = torch.where(move[:, None], z + step[:, None] * direction, z)
        iterations += move.long()
        step_scale = torch.where(
            move,
            torch.ones_like(step_scale),
            torch.where(active, step_scale * shrink_all, step_scale),
        )
        failed = failed | (active & (step_scale < cfg.min_step))
    block_ok = lin.residual <= threshold
    converged = block_ok.all(0) & ~failed
    factor, unusable = problem.factor(lin)
    singular = None
    if unusable is not None:
        singular = converged & unusable
        converged = converged & ~unusable
    stats = SolverStats(
        solver=problem.name,
        iterations=iterations,
        residual=_over_blocks(lin.residual),
        threshold=_over_blocks(threshold),
        converged=converged,
        residual_kind="grad_norm",
        extra={"stalled": failed, "block_residual": lin.residual, "block_threshold": threshold},
    )
    status = sample_status(converged, stalled=failed, singular=singular)
    return Solution(value=z, stats=stats, factor=factor, status=status)


def _over_blocks(x: Tensor) -> Tensor:
    """Norm over the block axis of ``(B, N)``; the block itself when ``B = 1`` (exact)."""
    return x[0] if x.shape[0] == 1 else torch.linalg.vector_norm(x, dim=0)
