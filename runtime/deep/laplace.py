"""Laplace approximations of the deep stack: per-layer conditionals with dense precisions and
the joint approximation with the block-tridiagonal precision in factored form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .linalg import BlockTridiagonalCholesky, assemble_dense


@dataclass
class GaussianPrecision:
    """``N(mean_s, P_s^{-1})`` per sample with a dense precision ``P`` (``N x n x n``)."""

    mean: Tensor
    precision: Tensor
    chol: Tensor

    @classmethod
    def from_precision(cls, mean: Tensor, precision: Tensor, what: str = "") -> GaussianPrecision:
        chol, info = torch.linalg.cholesky_ex(precision)
        if bool((info != 0).any()):
            bad = torch.nonzero(info != 0).flatten().tolist()
            raise ValueError(f"{what} precision is not positive definite for samples {bad[:10]}")
        return cls(mean, precision, chol)

    def covariance(self) -> Tensor:
        return torch.cholesky_inverse(self.chol)

    def logdet_covariance(self) -> Tensor:
        return -2.0 * torch.log(torch.diagonal(self.chol, dim1=-2, dim2=-1)).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        """``log N(z; mean, P^{-1})`` for ``z`` of shape ``(..., N, n)``."""
        delta = z - self.mean
        quad = (delta[..., None, :] @ self.precision @ delta[..., None])[..., 0, 0]
        n = self.mean.shape[-1]
        return -0.5 * (quad + n * math.log(2 * math.pi) + self.logdet_covariance())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws per sample ``mean + L^{-T} e`` (``P = L L^T``), shape ``(n, N, d)``."""
        eps = torch.randn(
            (n, *self.mean.shape),
            dtype=self.mean.dtype,
            device=self.mean.device,
            generator=generator,
        )
        x = torch.linalg.solve_triangular(self.chol.mT, eps[..., None], upper=True)[..., 0]
        return self.mean + x


@dataclass
class JointLaplace:
    """Joint Laplace approximation ``N(z*, H(z*)^{-1})`` over the whole stack, with the
    block-tridiagonal precision ``H`` kept in factored form (``BlockTridiagonalCholesky``).

    Latents are per-layer tuples or the concatenated ``(..., N, D)`` state.
    """

    mean: tuple[Tensor, ...]
    diag: list[Tensor]
    off: list[Tensor]
    factor: BlockTridiagonalCholesky

    @property
    def sizes(self) -> list[int]:
        return [m.shape[-1] for m in self.mean]

    def precision(self) -> Tensor:
        """Dense ``H`` (``N x D x D``)."""
        return assemble_dense(self.diag, self.off)

    def covariance(self) -> Tensor:
        """Dense ``H^{-1}`` (``N x D x D``) by block solves against the identity."""
        total = sum(self.sizes)
        ref = self.mean[0]
        eye = torch.eye(total, dtype=ref.dtype, device=ref.device).expand(ref.shape[0], -1, -1)
        blocks = list(torch.split(eye, self.sizes, dim=1))
        return torch.cat(self.factor.solve_upper(self.factor.solve_lower(blocks)), 1)

    def marginal_covariance(self, layer: int) -> Tensor:
        """``Cov(z_layer)`` under the joint approximation (``layer`` 1-based)."""
        sizes = self.sizes
        s = sum(sizes[: layer - 1])
        return self.covariance()[:, s : s + sizes[layer - 1], s : s + sizes[layer - 1]]

    def logdet_covariance(self) -> Tensor:
        return -self.factor.logdet()

    def _split(self, z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        if isinstance(z, Tensor):
            return list(torch.split(z, self.sizes, dim=-1))
        return list(z)

    def log_prob(self, z: Tensor | Sequence[Tensor]) -> Tensor:
        """``log N(z; z*, H^{-1})``; the quadratic form uses the blocks, no inverse."""
        deltas = [a - m for a, m in zip(self._split(z), self.mean, strict=True)]
        quad = sum(
            (d[..., None, :] @ b @ d[..., None])[..., 0, 0]
            for d, b in zip(deltas, self.diag, strict=True)
        )
        for l, o in enumerate(self.off):
            quad = quad + 2 * (deltas[l][..., None, :] @ o @ deltas[l + 1][..., None])[..., 0, 0]
        total = sum(self.sizes)
        return -0.5 * (quad + total * math.log(2 * math.pi) + self.logdet_covariance())

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        """``n`` joint draws ``z* + L^{-T} e``, per layer of shape ``(n, N, d_l)``."""
        ref = self.mean[0]
        opts = {"dtype": ref.dtype, "device": ref.device, "generator": generator}
        eps = [torch.randn((ref.shape[0], d, n), **opts) for d in self.sizes]
        xs = self.factor.solve_upper(eps)
        return tuple(m + x.permute(2, 0, 1) for m, x in zip(self.mean, xs, strict=True))
