"""The canonical link ``(A')^{-1}`` evaluated numerically, and the offsets ``B`` it gives.

The runtime has no SymPy, so the inverse of the activation ``sigma = A'`` is found by a
safeguarded Newton iteration on ``sigma(eta) = m``: ``sigma`` is strictly increasing on the
domain (``sigma' = A'' > 0``), so a bracket ``lo < eta < hi`` with ``sigma(lo) < m <
sigma(hi)`` is kept, a Newton step ``eta - (sigma(eta) - m) / sigma'(eta)`` is taken when it
lands inside the bracket, and the bracket's midpoint otherwise (bisection never fails, Newton
makes it quadratic near the root).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..family import TorchFamily

#: largest bracket half-width ``2^k`` tried on an infinite side of the domain
_MAX_DOUBLINGS = 60


def _expand(family: TorchFamily, mean: Tensor, start: float, sign: float, end: float) -> Tensor:
    """Bracket end on one side: ``end`` itself if finite, else ``start + sign 2^k`` for the
    smallest ``k`` with ``sign (sigma(start + sign 2^k) - m) >= 0`` (elementwise)."""
    if math.isfinite(end):
        return torch.full_like(mean, end)
    out = torch.full_like(mean, math.nan)
    for k in range(_MAX_DOUBLINGS):
        point = torch.full_like(mean, start + sign * 2.0**k)
        with torch.no_grad():
            s = family.activation(point)
        past = (sign * (s - mean) >= 0) | (sign > 0) & (s == math.inf)
        out = torch.where(torch.isnan(out) & past, point, out)
        if not bool(torch.isnan(out).any()):
            return out
    raise ValueError(
        f"family {family.name!r}: a mean of T(y) lies outside the range of sigma = A' over "
        f"eta in [{start - 2.0**_MAX_DOUBLINGS:g}, {start + 2.0**_MAX_DOUBLINGS:g}]"
    )


def invert_activation(
    family: TorchFamily, mean: Tensor, max_iter: int = 200, rtol: float | None = None
) -> Tensor:
    """``eta = (A')^{-1}(mean)`` elementwise, for means strictly inside the range of ``A'``.

    Safeguarded Newton (module docstring), stopped when the Newton step
    ``|sigma(eta) - m| / sigma'(eta) <= rtol (|eta| + 1)`` (default ``rtol = 16 eps``) or the
    bracket has shrunk to rounding level.

    Raises ``ValueError`` when a mean is not finite or no bracket is found on an infinite
    side (the mean is outside the range of ``sigma``).
    """
    if not bool(torch.isfinite(mean).all()):
        raise ValueError("invert_activation: the means must be finite")
    eps = torch.finfo(mean.dtype).eps
    rtol = 16 * eps if rtol is None else rtol
    start = family.interior_point()
    lo = _expand(family, mean, start, -1.0, family.domain[0])
    hi = _expand(family, mean, start, 1.0, family.domain[1])
    eta = torch.full_like(mean, start).clamp(lo, hi)
    eta = torch.where((eta > lo) & (eta < hi), eta, 0.5 * (lo + hi))
    for _ in range(max_iter):
        with torch.no_grad():
            s = family.activation(eta)
            slope = family.activation_grad(eta)
        diff = s - mean
        # stop on the size of the Newton step in eta (a flat sigma makes |diff| tiny long
        # before eta is accurate), or on a bracket shrunk to rounding level
        newton_step = (diff / slope).abs()
        done = (diff == 0) | (newton_step <= rtol * (eta.abs() + 1))
        done = done | (hi - lo <= 4 * eps * (eta.abs() + 1))
        if bool(done.all()):
            break
        lo = torch.where(diff < 0, eta, lo)
        hi = torch.where(diff > 0, eta, hi)
        step = eta - diff / slope
        inside = torch.isfinite(step) & (step > lo) & (step < hi)
        eta = torch.where(done, eta, torch.where(inside, step, 0.5 * (lo + hi)))
    return eta


def shrunk_means(family: TorchFamily, T: Tensor) -> Tensor:
    """Column means of ``T(Y)`` with one pseudo-observation at the interior mean
    ``mu0 = sigma(eta0)`` (``eta0`` = the family's interior point):
    ``m_j = (sum_s T_sj + mu0) / (N + 1)``.

    A column at the edge of the mean range (all zeros for Poisson or Bernoulli) has no finite
    link; the pseudo-observation moves every mean strictly inside the range (a convex
    combination with positive weight on an interior point), by ``O(1/N)``.
    """
    mu0 = family.activation(torch.tensor(family.interior_point(), dtype=T.dtype))
    return (T.sum(0) + mu0) / (T.shape[0] + 1)


def initial_offsets(family: TorchFamily, T: Tensor) -> Tensor:
    """``B_j = (A')^{-1}(m_j)`` at the shrunk column means of :func:`shrunk_means`: the
    maximum-likelihood offsets of the model with ``W = 0`` (up to the pseudo-observation)."""
    return invert_activation(family, shrunk_means(family, T))


__all__ = ["initial_offsets", "invert_activation", "shrunk_means"]
