r"""Torch form of F(x) = log Li_1(e^x) = log(-log(1 - e^x)), x < 0, and its derivatives.

F is the logarithmic-series log-partition. ``torch.ops.deqfam.logli1exp(x, k)`` = F^(k)(x) is
a custom operator (float64 inside, fake kernel, autograd calling order k + 1), like
``logexpm1exp`` in :mod:`deqfam.runtime.special_expm1`; :mod:`deqfam.runtime.special`
re-exports it.

The plain derivatives F' = Li_0/Li_1, F'' = (Li_{-1} Li_1 - Li_0^2)/Li_1^2, ... cancel as
u = e^x -> 0 (F' -> 1, F'' ~ u/2 from terms of size 1/u). Two branches:

* u < 1/4: F = x + h(u), h(u) = log(Li_1(u)/u) = sum_n a_n u^n, so with D = d/dx = u d/du
  F^(k) = [k = 0] x + [k = 1] + sum_n n^k a_n u^n. The a_n come exactly (``Fraction``, in
  :mod:`deqfam.expansions`, shared with the SymPy primitive) from
  log P with P(u) = Li_1(u)/u = sum_n u^n/(n + 1): n a_n = n p_n - sum_{j<n} j a_j p_{n-j}.
  The series has radius 1; 48 terms at u = 1/4 leave n^k 4^-(n-1) < 1e-18 relative (k <= 6).
* u >= 1/4: F = log Li_1 and F^(k) = r_{k-1} with r_m = D^m r, r = Li_0/Li_1. Leibniz on
  r Li_1 = Li_0 (and D Li_s = Li_{s-1}) gives
  r_m = (Li_{-m} - sum_{j=1}^{m} C(m, j) r_{m-j} Li_{1-j}) / Li_1, with
  Li_{-j}(e^x) = sum_{i<=j} i! S(j+1, i+1) g^(i+1), g = 1/expm1(-x), S Stirling numbers of
  the second kind. At u = 1/4 the sum cancels by about 4^(k-1).
"""

import functools
import math

import torch

from deqfam.expansions import LOGLI1EXP_U_SERIES, logli1exp_series

from .order_ops import register_order_op
from .special_expm1 import series_below

__all__ = ["LOGLI1EXP_K_MAX", "logli1exp", "logli1exp_impl"]

#: Largest derivative order (A''' of a family needs k = 3; its backward k = 4, then 5).
LOGLI1EXP_K_MAX = 6


@functools.lru_cache(maxsize=16)
def _li_neg_weights(j: int) -> tuple[int, ...]:
    """w_i = i! S(j+1, i+1), i = 0..j, so Li_{-j}(e^x) = sum_i w_i g^(i+1)."""
    row = [1]  # S(0, 0)
    for n in range(1, j + 2):  # S(n, i) = i S(n-1, i) + S(n-1, i-1)
        row = [0] + [i * (row[i] if i < len(row) else 0) + row[i - 1] for i in range(1, n + 1)]
    return tuple(math.factorial(i) * row[i + 1] for i in range(j + 1))


def _li_neg(g: torch.Tensor, j: int) -> torch.Tensor:
    """Li_{-j}(e^x) from g = e^x/(1 - e^x), j >= 0."""
    out = torch.zeros_like(g)
    for i, w in enumerate(_li_neg_weights(j)):
        out = out + float(w) * torch.pow(g, i + 1)
    return out


def _li1(x: torch.Tensor) -> torch.Tensor:
    """Li_1(e^x) = -log(1 - e^x), x < 0, switching at -log 2 (Maechler 2012)."""
    near = x > -0.6931471805599453
    return -torch.where(near, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _far(x: torch.Tensor, k: int) -> torch.Tensor:
    """F^(k) for u >= 1/4: log Li_1 (k = 0) or r_{k-1} by the Leibniz recursion."""
    li1 = _li1(x)
    if k == 0:
        return torch.log(li1)
    g = 1.0 / torch.expm1(-x)
    lis = [li1] + [_li_neg(g, j) for j in range(k)]  # lis[j] = Li_{1-j}
    rs = [g / li1]
    for m in range(1, k):
        acc = lis[m + 1]
        for j in range(1, m + 1):
            acc = acc - math.comb(m, j) * rs[m - j] * lis[j]
        rs.append(acc / li1)
    return rs[k - 1]


def _logli1exp_f64(x: torch.Tensor, k: int) -> torch.Tensor:
    """F^(k)(x) in float64; NaN for x >= 0 and NaN x."""
    u = torch.exp(x)
    low = u < LOGLI1EXP_U_SERIES
    series = series_below(u, low, logli1exp_series(k))
    if k == 0:
        series = series + x
    xf = torch.where(low | ~(x < 0), torch.full_like(x, -1.0), x)
    out = torch.where(low, series, _far(xf, k))
    return torch.where(x < 0, out, torch.full_like(x, math.nan))


def logli1exp_impl(x: torch.Tensor, k: int) -> torch.Tensor:
    """The operator as plain torch code (for exporters): F^(k)(x) in float64, cast back."""
    return _logli1exp_f64(x.to(torch.float64), int(k)).to(x.dtype)


def _logli1exp_checked(x: torch.Tensor, k: int) -> torch.Tensor:
    """The body of ``deqfam::logli1exp``: argument checks, then :func:`logli1exp_impl`."""
    if not x.is_floating_point():
        raise TypeError(f"logli1exp: expected a floating-point tensor, got {x.dtype}")
    if not 0 <= int(k) <= LOGLI1EXP_K_MAX:
        raise ValueError(f"logli1exp: derivative order k must be in 0..{LOGLI1EXP_K_MAX}")
    return logli1exp_impl(x, k)


_logli1exp_op = register_order_op("deqfam::logli1exp", _logli1exp_checked, int, 1)


def logli1exp(x: torch.Tensor, k: int = 0) -> torch.Tensor:
    """F^(k)(x), F(x) = log Li_1(e^x) = log(-log(1 - e^x)) (logarithmic series), k = 0..6.

    Domain x < 0 (NaN elsewhere). F' = Li_0/Li_1 is the mean (-> 1 as x -> -oo), F'' the
    variance (~ e^x/2 as x -> -oo). d/dx = logli1exp(x, k + 1).
    """
    return torch.ops.deqfam.logli1exp(x, int(k))
