"""Linear algebra of the block-tridiagonal Hessian: dense assembly, the block Cholesky
factorisation (``O(sum_l d_l^3)``) and the absolute-value modified Newton direction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def assemble_dense(diag: Sequence[Tensor], off: Sequence[Tensor]) -> Tensor:
    """The full symmetric block-tridiagonal matrix (``N x D x D``) from its blocks."""
    sizes = [d.shape[-1] for d in diag]
    starts = [sum(sizes[:l]) for l in range(len(sizes))]
    n, total = diag[0].shape[0], sum(sizes)
    H = diag[0].new_zeros(n, total, total)
    for l, block in enumerate(diag):
        s, e = starts[l], starts[l] + sizes[l]
        H[:, s:e, s:e] = block
        if l < len(off):
            s2, e2 = starts[l + 1], starts[l + 1] + sizes[l + 1]
            H[:, s:e, s2:e2] = off[l]
            H[:, s2:e2, s:e] = off[l].mT
    return H


@dataclass
class BlockTridiagonalCholesky:
    """``H = L L^T`` with ``L`` block lower bidiagonal: diagonal blocks ``lower[l]`` (lower
    triangular) and sub-diagonal blocks ``sub[l] = L_{l+1,l}``.

    Recurrence: ``L_00 L_00^T = H_00``; ``L_{l+1,l} = H_{l+1,l} L_ll^{-T}``;
    ``L_{l+1,l+1} L_{l+1,l+1}^T = H_{l+1,l+1} - L_{l+1,l} L_{l+1,l}^T`` (the Schur complement).
    ``ok[s]`` is True iff every pivot of sample ``s`` was positive definite, i.e. iff ``H_s`` is.
    """

    lower: list[Tensor]
    sub: list[Tensor]
    ok: Tensor

    @classmethod
    def factor(cls, diag: Sequence[Tensor], off: Sequence[Tensor]) -> BlockTridiagonalCholesky:
        lower, sub = [], []
        ok = torch.ones(diag[0].shape[0], dtype=torch.bool, device=diag[0].device)
        pivot = diag[0]
        for l in range(len(diag)):
            chol, info = torch.linalg.cholesky_ex(pivot)
            ok = ok & (info == 0) & torch.isfinite(chol).all(-1).all(-1)
            # keep failed samples finite (identity pivots) so the other samples are unaffected
            eye = torch.eye(chol.shape[-1], dtype=chol.dtype, device=chol.device)
            chol = torch.where(ok[:, None, None], chol, eye)
            lower.append(chol)
            if l + 1 < len(diag):
                x = torch.linalg.solve_triangular(chol, off[l], upper=False)  # L^{-1} H_l,l+1
                sub.append(x.mT)
                pivot = diag[l + 1] - x.mT @ x
        return cls(lower, sub, ok)

    def solve_lower(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``L^{-1} r`` for blocks ``r_l`` of shape ``(N, d_l, k)``."""
        out = []
        for l, chol in enumerate(self.lower):
            r = rhs[l] if l == 0 else rhs[l] - self.sub[l - 1] @ out[-1]
            out.append(torch.linalg.solve_triangular(chol, r, upper=False))
        return out

    def solve_upper(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``L^{-T} r`` for blocks ``r_l`` of shape ``(N, d_l, k)``."""
        out: list[Tensor] = [None] * len(self.lower)  # type: ignore[list-item]
        for l in range(len(self.lower) - 1, -1, -1):
            r = rhs[l] if l == len(self.lower) - 1 else rhs[l] - self.sub[l].mT @ out[l + 1]
            out[l] = torch.linalg.solve_triangular(self.lower[l].mT, r, upper=True)
        return out

    def solve(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``H^{-1} r`` for per-layer vectors ``r_l`` of shape ``(N, d_l)``."""
        y = self.solve_lower([r[..., None] for r in rhs])
        return [x[..., 0] for x in self.solve_upper(y)]

    def logdet(self) -> Tensor:
        """``log det H = 2 sum_l sum_i log (L_ll)_ii``."""
        return sum(2.0 * torch.log(torch.diagonal(c, dim1=-2, dim2=-1)).sum(-1) for c in self.lower)


def modified_newton(H: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``-V |Lambda|^{-1} V^T g`` (eigenvalues floored at ``sqrt(eps) max|Lambda|``) and the
    smallest eigenvalue, for every row."""
    evals, evecs = torch.linalg.eigh(H)
    mag = evals.abs()
    floor = (math.sqrt(torch.finfo(H.dtype).eps) * mag.amax(-1, keepdim=True)).clamp_min(
        torch.finfo(H.dtype).tiny
    )
    coef = (evecs.mT @ g[..., None])[..., 0] / torch.maximum(mag, floor)
    return -(evecs @ coef[..., None])[..., 0], evals[..., 0]
