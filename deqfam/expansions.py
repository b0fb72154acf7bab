"""Series coefficients and closed-form terms of the nested stable primitives, for both sides.

The SymPy primitives (:mod:`deqfam.derive.primitives`: numpy references, C kernel constants)
and their torch operators (:mod:`deqfam.runtime.special_expm1`, ``special_li1``) evaluate the
same branches with the same numbers; they are computed here once. This module imports neither
torch nor SymPy (``tests/test_architecture.py`` checks), so both sides may import it: the
coefficients are exact (``fractions.Fraction``, integers, or mpmath at 40 digits) and rounded
once to float64.

* ``G(x) = log(e^{e^x} - 1)`` (zero-truncated Poisson). With u = e^x, G' = u + phi(u),
  phi(u) = u/(e^u - 1) = sum_n B_n u^n/n! (B_1 = -1/2), and d/dx = u d/du =: D, so
  G^(k) = u + sum_n B_n n^(k-1) u^n/n! (k >= 1) below ``LOGEXPM1EXP_U_SERIES``, and
  G^(k) = u + sum coef u^a b^c, b = 1/expm1(u), up to ``LOGEXPM1EXP_U_LINEAR``.
* ``F(x) = log Li_1(e^x)`` (logarithmic series). F = x + h(u), h(u) = log(Li_1(u)/u)
  = sum_n a_n u^n, so F^(k) = [k = 0] x + [k = 1] + sum_n n^k a_n u^n below
  ``LOGLI1EXP_U_SERIES``.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import mpmath

__all__ = [
    "LOGEXPM1EXP_TERMS",
    "LOGEXPM1EXP_U_LINEAR",
    "LOGEXPM1EXP_U_SERIES",
    "LOGLI1EXP_TERMS",
    "LOGLI1EXP_U_SERIES",
    "logexpm1exp_far_terms",
    "logexpm1exp_series",
    "logli1exp_h_coefficients",
    "logli1exp_series",
]

#: logexpm1exp: the Taylor series in u = e^x is used for u < LOGEXPM1EXP_U_SERIES.
LOGEXPM1EXP_U_SERIES = 1.0
#: Terms of that series: |B_n| n^(k-1)/n! ~ 2 n^(k-1)/(2 pi)^n, below 1e-19 at n = 36 for
#: k <= 5 and u <= 1.
LOGEXPM1EXP_TERMS = 36
#: Above this u, G^(k)(x) = u to float64 precision: the neglected terms are below
#: u^k e^{-u}, i.e. < 1e-17 relative at u = 60 for k <= 5 (and u^a would overflow to inf
#: while b underflows to 0 past u ~ 1e77).
LOGEXPM1EXP_U_LINEAR = 60.0

#: logli1exp: the series in u = e^x is used for u < LOGLI1EXP_U_SERIES, closed forms above.
LOGLI1EXP_U_SERIES = 0.25
#: Terms of that series. It has radius 1 (branch point at u = 1) and |a_n| < 1, so the
#: relative truncation error of F^(k) at u = 1/4 is below n^k 4^-(n-1): < 1e-18 at n = 48
#: for k <= 6.
LOGLI1EXP_TERMS = 48


@functools.lru_cache(maxsize=16)
def logexpm1exp_series(k: int) -> tuple[float, ...]:
    """Coefficients c_n (of u^n, u = e^x) of G^(k)(x), G(x) = log(e^u - 1), k >= 1:
    c_n = B_n n^(k-1)/n! + [n = 1], with c_0 = [k = 1] (mpmath at 40 digits, rounded once)."""
    if k < 1:
        raise ValueError("the series form is for k >= 1")
    with mpmath.workdps(40):
        out = []
        for n in range(LOGEXPM1EXP_TERMS):
            c = mpmath.bernoulli(n) * mpmath.mpf(n) ** (k - 1) / mpmath.factorial(n)
            if n == 0:
                c = mpmath.mpf(1) if k == 1 else mpmath.mpf(0)
            out.append(float(c + (1 if n == 1 else 0)))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def logexpm1exp_far_terms(k: int) -> tuple[tuple[int, int, int], ...]:
    """Terms (coef, a, c) with D^(k-1) phi = sum coef u^a b^c, b = 1/(e^u - 1), D = u d/du.

    phi = u b and db/du = -b (1 + b), so D(u^a b^c) = a u^a b^c - c u^(a+1) (b^c + b^(c+1)):
    integer coefficients, exact.
    """
    poly = {(1, 1): 1}
    for _ in range(k - 1):
        nxt: dict[tuple[int, int], int] = {}
        for (a, c), coef in poly.items():
            for key, val in (((a, c), a), ((a + 1, c), -c), ((a + 1, c + 1), -c)):
                nxt[key] = nxt.get(key, 0) + coef * val
        poly = {key: v for key, v in nxt.items() if v != 0}
    return tuple((v, a, c) for (a, c), v in sorted(poly.items()))


@functools.lru_cache(maxsize=1)
def logli1exp_h_coefficients() -> tuple[Fraction, ...]:
    """a_n (exact) of h(u) = log(Li_1(u)/u) = log(sum_n u^n/(n+1)) = sum_n a_n u^n, |u| < 1.

    With P(u) = sum_n p_n u^n, p_n = 1/(n+1), the identity (log P)' P = P' gives
    n a_n = n p_n - sum_{0<j<n} j a_j p_{n-j} (a_0 = log p_0 = 0).
    """
    p = [Fraction(1, n + 1) for n in range(LOGLI1EXP_TERMS)]
    a = [Fraction(0)] * LOGLI1EXP_TERMS
    for n in range(1, LOGLI1EXP_TERMS):
        a[n] = p[n] - sum((j * a[j] * p[n - j] for j in range(1, n)), Fraction(0)) / n
    return tuple(a)


@functools.lru_cache(maxsize=16)
def logli1exp_series(k: int) -> tuple[float, ...]:
    """Coefficients c_n (of u^n, u = e^x) of F^(k)(x) - [k = 0] x, F(x) = log Li_1(e^x):
    c_n = n^k a_n (exact, rounded once), c_0 = [k = 1]."""
    coeffs = [float(n**k * a) for n, a in enumerate(logli1exp_h_coefficients())]
    coeffs[0] = 1.0 if k == 1 else 0.0
    return tuple(coeffs)
