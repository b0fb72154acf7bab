"""Shared pieces of the generic fixed-point solvers (``fixed_point``, ``anderson``,
``broyden``): they find ``z = f(z)`` for any batched map ``f`` with no objective, e.g. the DEQ
(10) ``z = (1/lam) W^T (T(Y) - sigma(W z + B))``. Their ``residual`` statistic is
``|f(z) - z|_2``; they converge only under conditions such as the contraction certificate.

Every solver works on rows ``(N, D)`` of a batch of any shape ``(N, ...)``, keeps a per-sample
``active`` mask so converged (or failed) samples stop being updated, synchronises with the host
once per iteration, and returns each sample's best (lowest residual) iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .config import SolverConfig, as_config
from .result import Solution, SolverStats, row_norm, sample_status

FixedPointMap = Callable[[Tensor], Tensor]


def flat_map(f: FixedPointMap, shape: torch.Size) -> FixedPointMap:
    """Run ``f`` on ``shape``-shaped batches while the solver works on ``(N, D)`` rows."""

    def flat(x: Tensor) -> Tensor:
        return f(x.reshape(shape)).reshape(shape[0], -1)

    return flat


class BestTracker:
    """Per-sample best (lowest residual) iterate, returned at the end and used for restarts."""

    def __init__(self, x: Tensor, fx: Tensor, res: Tensor) -> None:
        self.x, self.fx = x.clone(), fx.clone()
        self.res = torch.where(torch.isfinite(res), res, torch.full_like(res, math.inf))

    def update(self, x: Tensor, fx: Tensor, res: Tensor, mask: Tensor) -> None:
        better = mask & (res < self.res)
        self.x = torch.where(better[:, None], x, self.x)
        self.fx = torch.where(better[:, None], fx, self.fx)
        self.res = torch.where(better, res, self.res)


@dataclass
class IterationStart:
    """Where every generic solver starts: ``z0`` as rows ``x`` (a copy), the row map ``g``,
    ``fx = g(x)``, the residual ``res = |fx - x|`` per row, the best-iterate tracker, the
    samples that failed at once (non-finite residual) and zero iteration counts."""

    cfg: SolverConfig
    shape: torch.Size
    g: FixedPointMap
    x: Tensor
    fx: Tensor
    res: Tensor
    best: BestTracker
    failed: Tensor
    iterations: Tensor


def start_iteration(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None
) -> IterationStart:
    """Evaluate ``f`` once at ``z0`` and set up the per-sample state (:class:`IterationStart`)."""
    cfg = as_config(config)
    shape = z0.shape
    g = flat_map(f, shape)
    x = z0.reshape(shape[0], -1).clone()
    fx = g(x)
    res = row_norm(fx - x)
    return IterationStart(
        cfg=cfg,
        shape=shape,
        g=g,
        x=x,
        fx=fx,
        res=res,
        best=BestTracker(x, fx, res),
        failed=~torch.isfinite(res),
        iterations=torch.zeros(shape[0], dtype=torch.long, device=x.device),
    )


def threshold(cfg: SolverConfig, fx: Tensor) -> Tensor:
    """``tol + rtol |f(z)|`` per row."""
    return cfg.tol + cfg.resolved_rtol(fx.dtype) * row_norm(fx)


def generic_solution(
    name: str,
    best: BestTracker,
    cfg: SolverConfig,
    iterations: Tensor,
    failed: Tensor,
    shape: torch.Size,
) -> Solution:
    """The ``Solution`` of a generic solver: every sample's best iterate in ``shape``."""
    thr = threshold(cfg, best.fx)
    converged = (best.res <= thr) & ~failed
    stats = SolverStats(
        solver=name,
        iterations=iterations,
        residual=best.res,
        threshold=thr,
        converged=converged,
        residual_kind="fixed_point_residual",
    )
    status = sample_status(converged, diverged=failed)
    return Solution(value=best.x.reshape(shape), stats=stats, status=status)
