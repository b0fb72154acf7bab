"""The plain iteration ``z_{k+1} = T(z_k)`` that the certificate observes: the solver's
fixed-point loop with a monitor of step ratios (the observed contraction) and monotonicity."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..solvers import SolverConfig, fixed_point


class StepMonitor:
    """Observer of plain iteration ``z_{k+1} = T(z_k)`` run by ``solvers.fixed_point``.

    Per sample it keeps the asymptotic (last) and maximal ratio ``|s_k| / |s_{k-1}|`` of
    successive steps ``s_k = T(z_k) - z_k`` (only ratios of steps well above rounding level),
    whether every step was componentwise ``>= 0`` up to rounding (monotone iterates), and the
    latest image ``T(z_k)``, which is non-finite where the iteration blew up.
    """

    def __init__(self) -> None:
        self.prev_step: Tensor | None = None
        self.last_ratio = self.max_ratio = self.image = self.monotone = torch.empty(0)

    def __call__(self, z: Tensor, image: Tensor, updated: Tensor) -> None:
        eps = torch.finfo(z.dtype).eps
        step = image - z
        norm = torch.linalg.vector_norm(step, dim=1)
        scale = torch.linalg.vector_norm(image, dim=1)
        up = (step >= -1e3 * eps * image.abs().clamp_min(1.0)).all(-1) | ~updated
        if self.prev_step is None:
            self.last_ratio = torch.zeros_like(norm)
            self.max_ratio = torch.zeros_like(norm)
            self.monotone, self.image, self.prev_step = up, image.clone(), norm
            return
        valid = updated & (self.prev_step > 1e4 * eps * scale.clamp_min(1.0))
        ratio = torch.where(valid, norm / self.prev_step.clamp_min(1e-300), torch.zeros_like(norm))
        self.last_ratio = torch.where(valid, ratio, self.last_ratio)
        self.max_ratio = torch.maximum(self.max_ratio, ratio)
        self.monotone = self.monotone & up
        self.prev_step = torch.where(updated, norm, self.prev_step)
        self.image = torch.where(updated[:, None], image, self.image)


def plain_iteration(
    T: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int, tol: float
) -> tuple[Tensor, int, Tensor, Tensor, bool, bool]:
    """``z_{k+1} = T(z_k)`` by ``solvers.fixed_point`` (undamped) until every sample has
    ``|T(z) - z| <= tol (1 + |T(z)|)``, at most ``max_iter`` evaluations of ``T``; a sample stops
    only when its iterate is non-finite. Returns the last image ``T(z)``, the number of
    evaluations, the asymptotic and maximal step ratios per sample, convergence and
    monotonicity of the iterates."""
    cfg = SolverConfig(tol=tol, rtol=tol, max_iter=max(1, max_iter - 1), divergence_factor=math.inf)
    monitor = StepMonitor()
    stats = fixed_point(T, z0, cfg, monitor=monitor).stats
    evaluations = int(stats.iterations.max()) + 1 if stats.n_samples else 1
    return (
        monitor.image,
        evaluations,
        monitor.last_ratio,
        monitor.max_ratio,
        stats.all_converged,
        bool(monitor.monotone.all()),
    )
