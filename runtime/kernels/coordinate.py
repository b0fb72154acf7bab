"""Coordinate kernels ``k(x, x')`` (squared exponential, periodic, white noise, channel
covariance, truncation; sums, products and scalings) that give the kernel matrices ``K = k(X, X)``
and ``k(X~, X)`` of Theorem 3."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_points(X: Any) -> Tensor:
    """Coordinates as a float64 tensor of shape ``(n, d)`` (a 1-D input is ``(n, 1)``)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    if X.dim() == 1:
        X = X[:, None]
    if X.dim() != 2:
        raise ValueError(f"coordinates must have shape (n, d) or (n,), got {tuple(X.shape)}")
    return X


class Kernel:
    """A kernel ``k(x, x')`` on coordinates; ``k(X1, X2)`` is the ``(n1, n2)`` matrix.

    Kernels combine with ``+`` and ``*`` (with each other or with a non-negative number); sums
    and products of PSD kernels are PSD.
    """

    def __call__(self, X1: Any, X2: Any = None) -> Tensor:
        A = as_points(X1)
        B = A if X2 is None else as_points(X2)
        if A.shape[1] != B.shape[1]:
            raise ValueError(f"coordinate dimensions differ: {A.shape[1]} vs {B.shape[1]}")
        return self._eval(A, B)

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __add__(self, other: Kernel) -> Kernel:
        if not isinstance(other, Kernel):
            return NotImplemented
        return SumKernel(self, other)

    def __mul__(self, other: Kernel | float) -> Kernel:
        if isinstance(other, Kernel):
            return ProductKernel(self, other)
        if isinstance(other, int | float) and other >= 0:
            return ScaledKernel(self, float(other))
        return NotImplemented

    __rmul__ = __mul__


def _select(X: Tensor, dims: Sequence[int] | None) -> Tensor:
    return X if dims is None else X[:, list(dims)]


def _differences(A: Tensor, B: Tensor, dims: Sequence[int] | None) -> Tensor:
    """``(n1, n2, d)`` coordinate differences ``x - x'`` (exact, no ``|x|^2 - 2x.x'`` trick)."""
    return _select(A, dims)[:, None, :] - _select(B, dims)[None, :, :]


def _sqdist(A: Tensor, B: Tensor, dims: Sequence[int] | None) -> Tensor:
    return _differences(A, B, dims).square().sum(-1)


@dataclass(frozen=True)
class SquaredExponential(Kernel):
    """``variance * exp(-|x - x'|^2 / (2 lengthscale^2))`` on the coordinates ``dims``."""

    lengthscale: float = 1.0
    variance: float = 1.0
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.variance * torch.exp(-_sqdist(A, B, self.dims) / (2 * self.lengthscale**2))


@dataclass(frozen=True)
class Periodic(Kernel):
    """``variance * exp(-2 sin^2(pi |x - x'| / period) / lengthscale^2)`` (MacKay's periodic
    kernel; ``|.|`` Euclidean). With ``period = pi`` and ``lengthscale = sqrt(2)`` it is
    ``exp(-sin^2 |x - x'|)``, the periodic factor of the sequence task of section 4."""

    period: float = 1.0
    lengthscale: float = 1.0
    variance: float = 1.0
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        d = _sqdist(A, B, self.dims).sqrt()
        s = torch.sin(math.pi * d / self.period)
        return self.variance * torch.exp(-2.0 * s.square() / self.lengthscale**2)


@dataclass(frozen=True)
class WhiteNoise(Kernel):
    """``variance * 1(x == x')``: jitter on the diagonal of ``k(X, X)`` (Assumption 1)."""

    variance: float = 1e-8
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        same = (_differences(A, B, self.dims) == 0).all(-1)
        return self.variance * same.to(torch.float64)


@dataclass(frozen=True)
class ChannelCovariance(Kernel):
    """``B[x_dim, x'_dim]`` for an integer channel coordinate ``dim`` and a PSD ``C x C``
    matrix ``B`` (a coregionalisation kernel)."""

    matrix: Any
    dim: int = -1

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        M = torch.as_tensor(np.asarray(self.matrix, dtype=np.float64))
        i = A[:, self.dim].round().long()
        j = B[:, self.dim].round().long()
        return M[i[:, None], j[None, :]]


@dataclass(frozen=True)
class Truncation(Kernel):
    """Compact support of radius ``radius`` in the coordinates ``dims`` (Appendix E (18)).

    ``taper="box"``: ``1(max_k |x_k - x'_k| <= radius)`` (the seed's ``h1 h2``; not PSD in
    general). ``taper="bartlett"``: ``prod_k max(0, 1 - |x_k - x'_k| / (radius + 1))`` (PSD).
    """

    radius: float = 1.0
    dims: tuple[int, ...] | None = None
    taper: str = "box"

    def __post_init__(self) -> None:
        if self.taper not in ("box", "bartlett"):
            raise ValueError(f"taper must be 'box' or 'bartlett', got {self.taper!r}")

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        d = _differences(A, B, self.dims).abs()
        if self.taper == "box":
            return (d <= self.radius).all(-1).to(torch.float64)
        return (1.0 - d / (self.radius + 1.0)).clamp_min(0.0).prod(-1)


@dataclass(frozen=True)
class SumKernel(Kernel):
    left: Kernel
    right: Kernel

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.left._eval(A, B) + self.right._eval(A, B)


@dataclass(frozen=True)
class ProductKernel(Kernel):
    left: Kernel
    right: Kernel

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.left._eval(A, B) * self.right._eval(A, B)


@dataclass(frozen=True)
class ScaledKernel(Kernel):
    kernel: Kernel
    scale: float

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.scale * self.kernel._eval(A, B)
