"""Data-driven starting points for ExpFamPCA: the bias at the link of the column means.

With ``z = 0`` the model says ``E[T(y_i)] = sigma(B_i)``; the maximum-likelihood ``B_i`` for
that model is the canonical link of the column mean, ``B_i = (A')^{-1}(mean_s T(y_si))``.
Starting there, training spends its first epochs on the latent structure rather than on
finding each column's level (with ``B = 0`` a Poisson column of mean 20 starts ``log 20``
away from where it belongs).

Generated family modules carry ``A'`` and ``A''`` but no inverse link, so it is computed
here: ``A'`` is strictly increasing (``A'' > 0``), so bisection on a bracket inside the
domain finds ``(A')^{-1}(m)`` for every column at once, for any family. A mean on the edge
of what ``A'`` can reach (an all-zero Bernoulli column: link ``-inf``) ends at the
bracket's end, a finite point inside the domain.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .family import TorchFamily

#: Half-width of the eta bracket on an unbounded side (sigma(+-30) saturates for Bernoulli
#: to 1e-13; for Poisson it spans counts from 1e-13 to 1e13).
BRACKET = 30.0
#: Bisection steps: halves a bracket of width <= 60 to below 1e-16 * 60.
BISECTION_STEPS = 60


def link_bracket(domain: tuple[float, float]) -> tuple[float, float]:
    """A closed interval strictly inside the open ``domain`` for the bisection: finite ends
    moved inwards by a relative 1e-9, infinite ends replaced by ``BRACKET`` away."""
    lo, hi = (float(v) for v in domain)
    if math.isfinite(lo) and math.isfinite(hi):
        pad = 1e-9 * (hi - lo)
        return lo + pad, hi - pad
    if math.isfinite(hi):
        return hi - BRACKET, hi - 1e-9 * max(1.0, abs(hi))
    if math.isfinite(lo):
        return lo + 1e-9 * max(1.0, abs(lo)), lo + BRACKET
    return -BRACKET, BRACKET


def inverse_activation(family: TorchFamily, mean: Tensor) -> Tensor:
    """``(A')^{-1}(mean)`` elementwise by bisection (``A'`` is increasing), clipped to
    :func:`link_bracket` of the family's domain."""
    lo_v, hi_v = link_bracket(family.domain)
    lo = torch.full_like(mean, lo_v)
    hi = torch.full_like(mean, hi_v)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = family.activation(mid) < mean  # the root lies above mid
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def bias_at_column_means(family: TorchFamily, Y: Tensor) -> Tensor:
    """``B_i = (A')^{-1}(mean_s T(y_si))`` for each column ``i`` of ``Y``."""
    mean_t = family.sufficient_statistic(Y).mean(0)
    return inverse_activation(family, mean_t)


__all__ = [
    "BISECTION_STEPS",
    "BRACKET",
    "bias_at_column_means",
    "inverse_activation",
    "link_bracket",
]
