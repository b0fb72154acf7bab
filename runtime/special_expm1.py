r"""Torch forms of log(e^x - 1) and of the nested G(x) = log(e^{e^x} - 1) with its derivatives.

``logexpm1(x)`` is a plain TorchScript-compatible function; ``torch.ops.deqfam.logexpm1exp``
is a custom operator (float64 inside, fake kernel, autograd calling order k + 1), like
``logexpm1x`` in :mod:`deqfam.runtime.special`, which re-exports both.

G is the zero-truncated Poisson log-partition. With u = e^x, G' = u + phi(u) where
phi(u) = u/(e^u - 1) = sum_n B_n u^n/n! (B_1 = -1/2), and d/dx = u d/du =: D, so

    G^(k)(x) = u + D^(k-1) phi(u) = u + sum_n B_n n^(k-1) u^n / n!       (k >= 1).

Branches (the same as the SymPy primitive's numpy reference in derive/primitives.py):

* k = 0: u + log1p(-e^{-u}) for u > 1, log(expm1(u)) for 1e-290 < u <= 1 (expm1 keeps every
  digit of small u), x + u/2 below (u would be subnormal);
* k >= 1, u < 1: the Taylor series in u above (radius 2 pi; 36 terms reach 1e-19);
* k >= 1, 1 <= u <= 60: u + sum coef u^a b^c, b = 1/expm1(u), from
  D(u^a b^c) = a u^a b^c - c u^(a+1) (b^c + b^(c+1)) (exact integer coefficients);
* k >= 1, u > 60: u (the neglected terms are below u^k e^{-u} < 1e-17 relative for k <= 5,
  and u^a would overflow to inf while b underflows to 0 past u ~ 1e77).
"""

import torch

from deqfam.expansions import (
    LOGEXPM1EXP_U_LINEAR,
    LOGEXPM1EXP_U_SERIES,
    logexpm1exp_far_terms,
    logexpm1exp_series,
)

from .order_ops import register_order_op

__all__ = ["LOGEXPM1EXP_K_MAX", "logexpm1", "logexpm1exp"]

#: Largest derivative order (A''' of a family needs k = 3; its backward k = 4, then 5).
LOGEXPM1EXP_K_MAX = 6


def logexpm1(x: torch.Tensor) -> torch.Tensor:
    """log(e^x - 1) for x > 0 (NaN for x <= 0 except -inf at 0); derivative 1/(1 - e^{-x}).

    x + log1p(-e^{-x}) for x > log 2 (no overflow of e^x; e^{-x} <= 1/2), log(expm1(x))
    below (expm1 exact for small x). Each branch is fed a harmless value where unused, so
    the result and autograd stay finite on the branch that is taken.
    """
    big = x > 0.6931471805599453
    xb = torch.where(big, x, torch.ones_like(x))
    xs = torch.where(big, torch.ones_like(x), x)
    return torch.where(big, xb + torch.log1p(-torch.exp(-xb)), torch.log(torch.expm1(xs)))


def _g0(x: torch.Tensor) -> torch.Tensor:
    """G(x) = log(e^{e^x} - 1) by the three k = 0 branches."""
    u = torch.exp(x)
    far = u > 1.0
    mid = (u > 1e-290) & ~far
    uf = torch.where(far, u, torch.ones_like(u))
    um = torch.where(mid, u, torch.ones_like(u))
    out = torch.where(far, uf + torch.log1p(-torch.exp(-uf)), torch.log(torch.expm1(um)))
    return torch.where(far | mid, out, x + 0.5 * u)


def series_below(u: torch.Tensor, low: torch.Tensor, coeffs: tuple[float, ...]) -> torch.Tensor:
    """sum_n coeffs[n] u^n by Horner where ``low`` (0 fed elsewhere, so the unused branch
    stays finite): the series-in-u branch of the nested primitives (also ``special_li1``)."""
    us = torch.where(low, u, torch.zeros_like(u))
    series = torch.zeros_like(u)
    for c in reversed(coeffs):
        series = series * us + c
    return series


def _gk(x: torch.Tensor, k: int) -> torch.Tensor:
    """G^(k)(x), k >= 1: series in u below 1, closed form to 60, u above."""
    u = torch.exp(x)
    low = u < LOGEXPM1EXP_U_SERIES
    series = series_below(u, low, logexpm1exp_series(k))
    uf = torch.where(low, torch.ones_like(u), torch.clamp(u, max=LOGEXPM1EXP_U_LINEAR))
    b = 1.0 / torch.expm1(uf)
    far = uf.clone()
    for coef, a, c in logexpm1exp_far_terms(k):
        far = far + float(coef) * torch.pow(uf, a) * torch.pow(b, c)
    far = torch.where(u > LOGEXPM1EXP_U_LINEAR, u, far)
    return torch.where(low, series, far)


def _logexpm1exp_f64(x: torch.Tensor, k: int) -> torch.Tensor:
    out = _g0(x) if k == 0 else _gk(x, k)
    return torch.where(torch.isnan(x), x, out)


def _logexpm1exp_impl(x: torch.Tensor, k: int) -> torch.Tensor:
    """G^(k)(x) in plain torch ops: the body of ``deqfam::logexpm1exp``."""
    if not x.is_floating_point():
        raise TypeError(f"logexpm1exp: expected a floating-point tensor, got {x.dtype}")
    k = int(k)
    if not 0 <= k <= LOGEXPM1EXP_K_MAX:
        raise ValueError(f"logexpm1exp: derivative order k must be in 0..{LOGEXPM1EXP_K_MAX}")
    return _logexpm1exp_f64(x.to(torch.float64), k).to(x.dtype)


_logexpm1exp_op = register_order_op("deqfam::logexpm1exp", _logexpm1exp_impl, int, 1)


def logexpm1exp(x: torch.Tensor, k: int = 0) -> torch.Tensor:
    """G^(k)(x), G(x) = log(e^{e^x} - 1) (zero-truncated Poisson), k = 0..6, all real x.

    G' = e^x/(1 - exp(-e^x)) is the mean (-> 1 as x -> -oo), G'' the variance (~ e^x/2 as
    x -> -oo, ~ e^x as x -> +oo). x > log(DBL_MAX) ~ 709.78 gives inf (the true value is
    above the largest double). d/dx = logexpm1exp(x, k + 1).
    """
    return torch.ops.deqfam.logexpm1exp(x, int(k))
