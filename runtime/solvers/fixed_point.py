"""Damped Picard iteration ``z <- (1 - beta) z + beta f(z)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._generic import FixedPointMap, generic_solution, start_iteration, threshold
from .config import SolverConfig
from .result import Solution, row_norm

#: ``monitor(x, f(x), updated)`` is called after every evaluation of ``f`` on rows ``(N, D)``;
#: ``updated`` marks the samples whose iterate ``x`` is new (all of them at the start).
Monitor = Callable[[Tensor, Tensor, Tensor], None]


def fixed_point(
    f: FixedPointMap,
    z0: Tensor,
    config: SolverConfig | dict[str, Any] | None = None,
    monitor: Monitor | None = None,
) -> Solution:
    """Damped Picard iteration ``z <- (1 - beta) z + beta f(z)`` (``beta`` = ``damping``).

    Converges when the damped map is a contraction (see ``contraction_certificate``). A sample
    whose residual ``|f(z) - z|`` becomes non-finite or exceeds ``divergence_factor`` times its
    initial residual is declared failed and frozen; every sample returns its best iterate.
    ``monitor`` observes the iterates (e.g. step ratios for a certificate) without changing them.
    """
    st = start_iteration(f, z0, config)
    cfg, shape, g, x, fx, best = st.cfg, st.shape, st.g, st.x, st.fx, st.best
    iterations, failed = st.iterations, st.failed
    if monitor is not None:
        monitor(x, fx, torch.ones_like(st.res, dtype=torch.bool))
    res0 = best.res.clamp_min(torch.finfo(x.dtype).tiny)
    beta = cfg.damping
    for _ in range(cfg.max_iter):
        active = (best.res > threshold(cfg, best.fx)) & ~failed
        if not bool(active.any()):
            break
        x = torch.where(active[:, None], (1 - beta) * x + beta * fx, x)
        fx = g(x)
        res = row_norm(fx - x)
        if monitor is not None:
            monitor(x, fx, active)
        iterations += active.long()
        best.update(x, fx, res, active)
        diverged = active & (~torch.isfinite(res) | (res > cfg.divergence_factor * res0))
        failed = failed | diverged
    return generic_solution("fixed_point", best, cfg, iterations, failed, shape)
