"""Anderson acceleration (type II, Walker & Ni) of the damped fixed-point iteration."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._generic import FixedPointMap, generic_solution, start_iteration, threshold
from .config import SolverConfig
from .result import Solution, row_norm


def _anderson_weights(xs: Tensor, fs: Tensor, valid: Tensor, reg: float) -> Tensor:
    """Anderson mixing weights: ``argmin |sum_j a_j g_j|^2 + reg`` s.t. ``sum_j a_j = 1``
    over the valid history columns, with residuals ``g_j = f_j - x_j`` (shape ``(N, m, D)``).

    Solved via the bordered (KKT) system ``[[0, 1^T], [1, G G^T + mu I]] [nu; a] = [1; 0]``;
    invalid columns get a zero border and unit diagonal so their weight is exactly 0.
    """
    n, m, _ = xs.shape
    vf = valid.to(xs.dtype)
    gmat = (fs - xs) * vf[..., None]
    gram = gmat @ gmat.transpose(1, 2)
    # Regularise relative to the residual scale so the weights are scale invariant.
    mean_sq = torch.diagonal(gram, dim1=1, dim2=2).sum(-1) / vf.sum(-1).clamp_min(1)
    mu = reg * mean_sq.clamp_min(torch.finfo(xs.dtype).tiny)
    eye = torch.eye(m, dtype=xs.dtype, device=xs.device)
    block = gram + mu[:, None, None] * eye + torch.diag_embed(1 - vf)
    kkt = torch.zeros(n, m + 1, m + 1, dtype=xs.dtype, device=xs.device)
    kkt[:, 0, 1:] = vf
    kkt[:, 1:, 0] = vf
    kkt[:, 1:, 1:] = block
    rhs = torch.zeros(n, m + 1, 1, dtype=xs.dtype, device=xs.device)
    rhs[:, 0] = 1.0
    sol, info = torch.linalg.solve_ex(kkt, rhs)
    weights = sol[:, 1:, 0]
    # A singular system (e.g. non-finite history) falls back to the newest column alone.
    return torch.where(
        (info == 0)[:, None] & torch.isfinite(weights).all(-1, keepdim=True),
        weights,
        torch.zeros_like(weights),
    )


def anderson(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> Solution:
    """Anderson acceleration (type II, Walker & Ni) with relaxation ``beta`` = ``damping``.

    ``x_{k+1} = sum_j a_j ((1 - beta) x_j + beta f(x_j))`` over the last ``memory`` iterates,
    ``a`` minimising ``|sum_j a_j (f(x_j) - x_j)|`` subject to ``sum_j a_j = 1``. Safeguard: a
    sample whose residual exceeds ``restart_growth`` times its best (or is not finite) restarts
    from its best iterate with an empty history. Returns the best iterate of every sample.
    """
    st = start_iteration(f, z0, config)
    cfg, shape, g, x, fx, best = st.cfg, st.shape, st.g, st.x, st.fx, st.best
    iterations, failed = st.iterations, st.failed
    n, dim = x.shape
    m = cfg.memory
    xs = torch.zeros(n, m, dim, dtype=x.dtype, device=x.device)
    fs = torch.zeros_like(xs)
    valid = torch.zeros(n, m, dtype=torch.bool, device=x.device)
    xs[:, 0], fs[:, 0], valid[:, 0] = x, fx, True
    beta = cfg.damping
    for k in range(1, cfg.max_iter + 1):
        thr = threshold(cfg, best.fx)
        active = (best.res > thr) & ~failed
        if not bool(active.any()):
            break
        a = _anderson_weights(xs, fs, valid, cfg.anderson_reg)
        mixed = torch.einsum("nm,nmd->nd", a, (1 - beta) * xs + beta * fs)
        ok = a.abs().sum(-1) > 0  # otherwise (singular system) take a damped Picard step
        x_new = torch.where(ok[:, None], mixed, (1 - beta) * x + beta * fx)
        x_new = torch.where(active[:, None], x_new, x)
        fx_new = g(x_new)
        res = row_norm(fx_new - x_new)
        iterations += active.long()
        best.update(x_new, fx_new, res, active)
        restart = active & (~torch.isfinite(res) | (res > cfg.restart_growth * best.res))
        x = torch.where(restart[:, None], best.x, x_new)
        fx = torch.where(restart[:, None], best.fx, fx_new)
        slot = k % m
        xs[:, slot], fs[:, slot] = x, fx
        valid[:, slot] = True
        # A restarted sample keeps only the slot that now holds its best iterate.
        only_slot = torch.zeros_like(valid)
        only_slot[:, slot] = True
        valid = torch.where(restart[:, None], only_slot, valid)
    return generic_solution("anderson", best, cfg, iterations, failed, shape)
