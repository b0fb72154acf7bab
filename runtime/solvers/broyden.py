"""Broyden's ("good") method on ``g(x) = f(x) - x = 0`` with a limited-memory inverse Jacobian."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._generic import FixedPointMap, generic_solution, start_iteration, threshold
from .config import SolverConfig
from .result import Solution, row_norm


def broyden(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> Solution:
    """Broyden's ("good") method on ``g(x) = f(x) - x = 0`` with a low-rank inverse Jacobian.

    ``J_inv = -I + U V^T`` (``-I`` is exact when ``f`` is constant), step
    ``x <- x - damping * J_inv g(x)``, and the Sherman-Morrison update
    ``J_inv += (dx - J_inv dg) (dx^T J_inv) / (dx^T J_inv dg)``, at most ``memory`` rank-one
    terms (the history is cleared when full). Safeguard: a sample whose residual exceeds
    ``restart_growth`` times its best goes back to its best iterate keeping the secant
    information; one whose residual is not finite also resets ``J_inv = -I``. Returns the best
    iterate of every sample.
    """
    st = start_iteration(f, z0, config)
    cfg, shape, g, x, fx, best = st.cfg, st.shape, st.g, st.x, st.fx, st.best
    iterations, failed = st.iterations, st.failed
    n, dim = x.shape
    m = cfg.memory
    gx = fx - x
    us = torch.zeros(n, dim, m, dtype=x.dtype, device=x.device)
    vs = torch.zeros_like(us)
    eps = torch.finfo(x.dtype).eps

    def apply_jinv(v: Tensor) -> Tensor:  # (-I + U V^T) v
        return -v + torch.einsum("ndm,nm->nd", us, torch.einsum("ndm,nd->nm", vs, v))

    def apply_jinv_t(v: Tensor) -> Tensor:  # v^T (-I + U V^T)
        return -v + torch.einsum("ndm,nm->nd", vs, torch.einsum("ndm,nd->nm", us, v))

    slot = 0
    for _ in range(cfg.max_iter):
        thr = threshold(cfg, best.fx)
        active = (best.res > thr) & ~failed
        if not bool(active.any()):
            break
        dx = -cfg.damping * apply_jinv(gx)
        dx = torch.where(active[:, None], dx, torch.zeros_like(dx))
        x_new = x + dx
        fx_new = g(x_new)
        g_new = fx_new - x_new
        res = row_norm(g_new)
        iterations += active.long()
        best.update(x_new, fx_new, res, active)
        dg = g_new - gx
        jdg = apply_jinv(dg)
        vt = apply_jinv_t(dx)
        den = (dx * jdg).sum(-1)
        # Skip the update where the denominator is at rounding level (ill-posed secant).
        usable = active & (den.abs() > eps * row_norm(dx) * row_norm(jdg)) & (den != 0)
        u = torch.where(usable[:, None], (dx - jdg) / torch.where(usable, den, 1.0)[:, None], 0.0)
        if slot == m:  # limited memory: clear and start again from -I
            us.zero_()
            vs.zero_()
            slot = 0
        us[:, :, slot] = u
        vs[:, :, slot] = torch.where(usable[:, None], vt, 0.0)
        slot += 1
        # Back to the best iterate when the residual grew too much. The secant pair of the bad
        # step is still valid information about the Jacobian, so the low-rank memory is kept;
        # it is cleared only when the step produced non-finite values.
        blown = active & ~torch.isfinite(res)
        restart = blown | (active & (res > cfg.restart_growth * best.res))
        us = torch.where(blown[:, None, None], torch.zeros_like(us), us)
        vs = torch.where(blown[:, None, None], torch.zeros_like(vs), vs)
        x = torch.where(restart[:, None], best.x, x_new)
        fx = torch.where(restart[:, None], best.fx, fx_new)
        gx = fx - x
    return generic_solution("broyden", best, cfg, iterations, failed, shape)
