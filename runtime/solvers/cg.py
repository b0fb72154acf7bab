"""Batched conjugate gradients for symmetric positive definite systems, one per row."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def batched_cg(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    rtol: Tensor | float,
    max_iter: int,
    check_every: int = 8,
) -> tuple[Tensor, Tensor, Tensor]:
    """Conjugate gradients for ``M x = b`` row by row (``M`` symmetric positive definite).

    Stops a row when ``|b - M x| <= rtol |b|``. Returns ``(x, iterations, converged)``. The
    host is consulted every ``check_every`` iterations only.
    """
    rtol = torch.as_tensor(rtol, dtype=b.dtype, device=b.device)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(-1)
    target = (rtol * torch.sqrt(rs)) ** 2
    active = rs > target
    iterations = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    tiny = torch.finfo(b.dtype).tiny
    for k in range(max_iter):
        mp = matvec(p)
        pmp = (p * mp).sum(-1)
        alpha = torch.where(active & (pmp > 0), rs / pmp.clamp_min(tiny), torch.zeros_like(rs))
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * mp
        iterations += active.long()
        rs_new = (r * r).sum(-1)
        beta = rs_new / rs.clamp_min(tiny)
        active = active & (rs_new > target) & (pmp > 0)
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        rs = torch.where(active, rs_new, rs)
        if k % check_every == check_every - 1 and not bool(active.any()):
            break
    converged = (r * r).sum(-1) <= target
    return x, iterations, converged
