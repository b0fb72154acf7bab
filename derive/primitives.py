"""Stable primitive functions: a small set closed under differentiation.

Every numerically delicate piece of a log-partition function is rewritten (by
:mod:`deqfam.derive.stable`) onto these SymPy functions. Each has

* ``fdiff`` that stays inside the set (so A, A', A'', A''' all print with primitives),
* ``definition()``: the plain elementary/special-function expression it stands for
  (used for mpmath reference evaluation and for proofs),
* ``numpy_impl``: a float64 evaluation (used by derive-side checks and plots).

The runtime's torch versions live in ``runtime/special.py`` under the same names. Each
primitive's torch call, C call and numpy reference are declared once, in
:mod:`deqfam.derive.primitive_table`, which the printers and the stabiliser read.

=================  ==========================  ===========================
primitive          meaning                     derivative in x
=================  ==========================  ===========================
softplus(x)        log(1 + e^x)                sigmoid(x)
sigmoid(x)         1 / (1 + e^-x)              sigmoid(x) sigmoid(-x)
logcosh(x)         log cosh x                  tanh(x)
polylog_exp(s, x)  Li_s(e^x), x < 0            polylog_exp(s - 1, x)
fermi_dirac(s, x)  -Li_s(-e^x)                 fermi_dirac(s - 1, x)
logexpm1x(k, x)    d^k/dx^k log((e^x - 1)/x)   logexpm1x(k + 1, x)
logexpm1(x)        log(e^x - 1), x > 0         1 + polylog_exp(0, -x)
logexpm1exp(k, x)  d^k/dx^k log(e^(e^x) - 1)   logexpm1exp(k + 1, x)
logli1exp(k, x)    d^k/dx^k log Li_1(e^x)      logli1exp(k + 1, x)
=================  ==========================  ===========================

Why one module of this size: the primitives form one set closed under differentiation,
and each one's ``fdiff`` names the others; their coefficient series live in
``deqfam/expansions.py`` and their printing in ``primitive_table.py``.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import sympy as sp
from scipy import special as sps
from sympy.core.function import ArgumentIndexError

from deqfam.expansions import (
    LOGEXPM1EXP_U_LINEAR,
    LOGEXPM1EXP_U_SERIES,
    LOGLI1EXP_U_SERIES,
    logexpm1exp_far_terms,
    logexpm1exp_series,
    logli1exp_series,
)

_X = sp.Dummy("x", real=True)


class StablePrimitive(sp.Function):
    """Base class: a primitive with a plain ``definition`` and a float64 ``numpy_impl``."""

    is_real = True

    def definition(self) -> sp.Expr:
        """The plain SymPy expression this primitive stands for."""
        raise NotImplementedError

    def _eval_rewrite_as_elementary(self, *args, **kwargs):
        return self.definition()

    def _eval_evalf(self, prec):
        return self.definition()._eval_evalf(prec)


class OrderedPrimitive(StablePrimitive):
    """A primitive f(n, x) of an order n whose x-derivative is the same primitive at the
    next order: d/dx f(n, x) = f(n + order_step, x) (the set stays closed under d/dx).

    Subclasses set ``nargs = 2`` themselves (SymPy reads ``nargs`` from each class's own
    namespace, it is not inherited).
    """

    #: n -> n + order_step under d/dx (-1 for the polylog orders s, +1 for derivative orders k)
    order_step = -1

    def fdiff(self, argindex=2):
        if argindex != 2:
            raise ArgumentIndexError(self, argindex)
        n, x = self.args
        return type(self)(n + self.order_step, x)


class DerivativePrimitive(OrderedPrimitive):
    """f(k, x) = d^k/dx^k F(x) for a log-partition F (``function_of``) of a law on positive
    values: F' (k = 1) is its mean and F'' (k = 2) its variance, both > 0 (nondegenerate)."""

    order_step = 1

    @staticmethod
    def function_of(x: sp.Expr) -> sp.Expr:
        """F(x), the plain expression whose k-th derivative this primitive is."""
        raise NotImplementedError

    def definition(self):
        k, x = self.args
        return sp.diff(self.function_of(_X), _X, int(k)).subs(_X, x)

    def _eval_is_positive(self):
        return True if self.args[0] in (1, 2) else None


class softplus(StablePrimitive):
    """softplus(x) = log(1 + e^x), evaluated as max(x, 0) + log1p(e^{-|x|})."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def definition(self):
        return sp.log(1 + sp.exp(self.args[0]))

    def _eval_is_positive(self):
        return True  # log(1 + e^x) > 0 for real x

    @staticmethod
    def numpy_impl(x):
        return np.logaddexp(0.0, x)


class sigmoid(StablePrimitive):
    """sigmoid(x) = 1/(1 + e^{-x}); d/dx = sigmoid(x) sigmoid(-x) (no cancellation)."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)

    def definition(self):
        return 1 / (1 + sp.exp(-self.args[0]))

    def _eval_is_positive(self):
        return True

    @staticmethod
    def numpy_impl(x):
        return sps.expit(x)


class logcosh(StablePrimitive):
    """logcosh(x) = log cosh x = |x| + log1p(e^{-2|x|}) - log 2."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.tanh(self.args[0])

    def definition(self):
        return sp.log(sp.cosh(self.args[0]))

    def _eval_is_positive(self):
        return self.args[0].is_nonzero  # cosh x > 1 for x != 0

    @staticmethod
    def numpy_impl(x):
        a = np.abs(x)
        return a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)


def _mp_elementwise(fn, *arrays):
    """Evaluate an mpmath scalar function elementwise at 30 digits, returning float64."""
    out = np.empty(np.broadcast(*arrays).shape)
    with mpmath.workdps(30):
        for idx, vals in zip(np.ndindex(out.shape), np.broadcast(*arrays), strict=True):
            try:
                v = fn(*[mpmath.mpf(float(a)) for a in vals])
                out[idx] = float(v.real) if abs(v.imag) <= 1e-25 * max(1, abs(v.real)) else np.nan
            except (ValueError, ZeroDivisionError, OverflowError):
                out[idx] = np.nan
    return out


def _li_nonpositive(n: int, x):
    """Li_{-n}(e^x) for integer n >= 0 by closed forms in g = e^x/(1 - e^x).

    Li_0 = g and Li_{-(m+1)} = g (1 + g) d/dg Li_{-m}: a polynomial in g, finite for
    x -> -inf (g -> 0) with no overflow.
    """
    g = 1.0 / np.expm1(-x)
    poly = np.polynomial.Polynomial([0.0, 1.0])
    step = np.polynomial.Polynomial([0.0, 1.0, 1.0])  # g (1 + g)
    for _ in range(n):
        poly = step * poly.deriv()
    return poly(g)


def _log1mexp(x):
    """log(1 - e^x) for x < 0, switching at -log 2 (Maechler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class polylog_exp(OrderedPrimitive):
    """polylog_exp(s, x) = Li_s(e^x) for real order s and x < 0 (Bose-Einstein integral).

    d/dx Li_s(e^x) = Li_{s-1}(e^x) keeps derivatives in the family. Integer s <= 1 use
    closed forms (Li_1 = -log(1 - e^x)); other orders are evaluated with mpmath here (the
    fast float64/float32 series lives in ``runtime/special.py``).
    """

    nargs = 2

    def definition(self):
        s, x = self.args
        return sp.polylog(s, sp.exp(x))

    def _eval_is_positive(self):
        # sum_k e^{kx}/k^s is a series of positive terms when x < 0
        return True if self.args[1].is_negative else None

    @staticmethod
    def numpy_impl(s, x):
        x = np.asarray(x, dtype=float)
        s = float(s)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            if s == 1:
                return np.where(x < 0, -_log1mexp(x), np.nan)
            if s <= 0 and s == int(s):
                return np.where(x < 0, _li_nonpositive(int(-s), x), np.nan)
        return _mp_elementwise(
            lambda xx: mpmath.polylog(s, mpmath.exp(xx)) if xx < 0 else mpmath.nan, x
        )


class fermi_dirac(OrderedPrimitive):
    """fermi_dirac(s, x) = -Li_s(-e^x), the complete Fermi-Dirac integral F_{s-1}(x).

    d/dx = fermi_dirac(s - 1, x); fermi_dirac(1, x) = softplus(x), fermi_dirac(0, x) = sigmoid.
    """

    nargs = 2

    def definition(self):
        s, x = self.args
        return -sp.polylog(s, -sp.exp(x))

    def _eval_is_positive(self):
        # s > 0: F_{s-1}(x) = int y^{s-1}/(e^{y-x}+1) dy / Gamma(s) > 0; s = 0, -1: sigmoid
        # and sigmoid' are positive. Lower orders change sign.
        s = self.args[0]
        return True if (s.is_positive or s in (0, -1)) else None

    @staticmethod
    def numpy_impl(s, x):
        x = np.asarray(x, dtype=float)
        s = float(s)
        if s == 1:
            return np.logaddexp(0.0, x)
        if s == 0:
            return sps.expit(x)
        return _mp_elementwise(lambda xx: -mpmath.polylog(s, -mpmath.exp(xx)), x)


#: |x| below which logexpm1x uses its Taylor series (the removable singularity at 0).
LOGEXPM1X_SERIES_RADIUS = 0.5
#: Taylor order used near 0: the series converges for |x| < 2 pi, so the truncation error at
#: |x| = 0.5 is about (0.5 / 2 pi)^28 ~ 1e-31, far below float64 resolution.
LOGEXPM1X_SERIES_ORDER = 28


@functools.lru_cache(maxsize=16)
def logexpm1x_series(k: int) -> tuple[float, ...]:
    """Taylor coefficients c_m of d^k/dx^k log((e^x - 1)/x) = sum_m c_m x^m about 0.

    Generated with SymPy's ``series`` (exact rationals), then rounded to float64.
    """
    x = sp.Symbol("x")
    L = sp.log((sp.exp(x) - 1) / x)
    ser = sp.series(L, x, 0, LOGEXPM1X_SERIES_ORDER + k + 1).removeO()
    ser = sp.diff(ser, x, k)
    poly = sp.Poly(sp.expand(ser), x)
    coeffs = [0.0] * (LOGEXPM1X_SERIES_ORDER + 1)
    for (m,), c in poly.terms():
        if m <= LOGEXPM1X_SERIES_ORDER:
            coeffs[m] = float(c)
    return tuple(coeffs)


class logexpm1x(DerivativePrimitive):
    """logexpm1x(k, x) = d^k/dx^k L(x), L(x) = log((e^x - 1)/x): continuous Bernoulli.

    L' (k=1) is the continuous-Bernoulli mean 1/(1 - e^{-x}) - 1/x, L'' its variance.
    Near 0 (removable singularity) a SymPy-generated Taylor series is used. Away from 0,
    with 1/(e^x - 1) = Li_0(e^{-x}) for x > 0 and 1/(1 - e^{-x}) = -Li_0(e^x) for x < 0,

        L^(k)(x) = (-1)^(k-1) Li_{1-k}(e^{-x}) + [k = 1] + (-1)^k (k-1)!/x^k   (x > 0)
        L^(k)(x) = -Li_{1-k}(e^{x}) + (-1)^k (k-1)!/x^k                       (x < 0)

    for k >= 1, and L = |x| [x > 0] + log(1 - e^{-|x|}) - log|x| for k = 0: no overflow.
    """

    nargs = 2

    @staticmethod
    def function_of(x):
        """L(x): the law with density proportional to e^{x y} on [0, 1]."""
        return sp.log((sp.exp(x) - 1) / x)

    def _eval_evalf(self, prec):
        k, x = self.args
        if x.is_number and x.is_zero:
            return sp.Float(logexpm1x_series(int(k))[0], prec)
        return self.definition()._eval_evalf(prec)

    @staticmethod
    def numpy_impl(k, x):
        k = int(k)
        x = np.asarray(x, dtype=float)
        near = np.abs(x) < LOGEXPM1X_SERIES_RADIUS
        series = np.polynomial.polynomial.polyval(np.where(near, x, 0.0), logexpm1x_series(k))
        xf = np.where(near, 1.0, x)  # keep the far branch finite where it is not used
        ax = np.abs(xf)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if k == 0:
                far = np.where(xf > 0, ax, 0.0) + _log1mexp(-ax) - np.log(ax)
            else:
                li = _li_nonpositive(k - 1, -ax) if k >= 1 else None
                pole = (-1.0) ** k * math.factorial(k - 1) / xf**k
                far = np.where(xf > 0, (-1.0) ** (k - 1) * li + (k == 1), -li) + pole
        return np.where(near, series, far)


class logexpm1(StablePrimitive):
    """logexpm1(x) = log(e^x - 1) for x > 0 (the log of expm1).

    Evaluated as x + log1p(-e^{-x}) for x > log 2 (no overflow of e^x, and e^{-x} <= 1/2 so
    log1p is exact to an ulp) and as log(expm1(x)) below (expm1 keeps every digit of a small
    x). d/dx = e^x/(e^x - 1) = 1 + 1/(e^x - 1) = 1 + Li_0(e^{-x}) = 1 + polylog_exp(0, -x),
    so all further derivatives are closed-form polylogs of non-positive integer order.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 + polylog_exp(0, -self.args[0])

    def definition(self):
        return sp.log(sp.exp(self.args[0]) - 1)

    @staticmethod
    def numpy_impl(x):
        x = np.asarray(x, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            big = np.where(x > math.log(2.0), x, 1.0)
            small = np.where(x > math.log(2.0), 1.0, x)
            return np.where(
                x > math.log(2.0), big + np.log1p(-np.exp(-big)), np.log(np.expm1(small))
            )


def _logexpm1exp_numpy(k: int, x):
    """float64 G^(k)(x), G(x) = log(e^{e^x} - 1), by the three branches of the primitive."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        u = np.exp(x)
        if k == 0:
            mid = np.log(np.expm1(np.where(u > 1e-290, u, 1.0)))
            far = u + np.log1p(-np.exp(-u))
            return np.where(u > 1.0, far, np.where(u > 1e-290, mid, x + 0.5 * u))
        us = np.where(u < LOGEXPM1EXP_U_SERIES, u, 0.0)
        series = np.polynomial.polynomial.polyval(us, logexpm1exp_series(k))
        uf = np.where(u < LOGEXPM1EXP_U_SERIES, 1.0, np.minimum(u, LOGEXPM1EXP_U_LINEAR))
        b = 1.0 / np.expm1(uf)
        far = uf + sum(coef * uf**a * b**c for coef, a, c in logexpm1exp_far_terms(k))
        far = np.where(u > LOGEXPM1EXP_U_LINEAR, u, far)
        return np.where(u < LOGEXPM1EXP_U_SERIES, series, far)


class logexpm1exp(DerivativePrimitive):
    """logexpm1exp(k, x) = G^(k)(x), the k-th derivative of G(x) = log(e^{e^x} - 1).

    G is the zero-truncated Poisson log-partition. With u = e^x it is evaluated as
    u + log1p(-e^{-u}) for u > 1, log(expm1(u)) for 1e-290 < u <= 1 and x + u/2 below (u
    would be subnormal). Its derivatives G^(k) = u + D^(k-1) phi(u) (see
    :func:`logexpm1exp_series`) use a Taylor series in u for u < 1 (no cancellation as
    x -> -oo: G' -> 1, G'' ~ u/2), a closed form in u and 1/expm1(u) for 1 <= u <= 60, and u
    itself above (exponentially small corrections; no inf * 0 when u^k overflows).
    """

    nargs = 2

    @staticmethod
    def function_of(x):
        """G(x): the zero-truncated Poisson law on y >= 1."""
        return sp.log(sp.exp(sp.exp(x)) - 1)

    @staticmethod
    def numpy_impl(k, x):
        return _logexpm1exp_numpy(int(k), x)


@functools.lru_cache(maxsize=16)
def logli1exp_far_terms(k: int) -> tuple[tuple[int, int, int], ...]:
    """Terms (coef, a, c) with F^(k) = sum coef g^a r^c, k >= 1, g = Li_0(e^x), r = g/Li_1(e^x).

    F' = Li_0/Li_1 = r. With D = d/dx: D g = g + g^2 and D r = r + g r - r^2, so
    D(g^a r^c) = (a + c) g^a r^c + (a + c) g^(a+1) r^c - c g^a r^(c+1) (integer coefficients).
    """
    if k < 1:
        raise ValueError("the closed form in (g, r) is for k >= 1")
    poly = {(0, 1): 1}
    for _ in range(k - 1):
        nxt: dict[tuple[int, int], int] = {}
        for (a, c), coef in poly.items():
            for key, val in (((a, c), a + c), ((a + 1, c), a + c), ((a, c + 1), -c)):
                nxt[key] = nxt.get(key, 0) + coef * val
        poly = {key: v for key, v in nxt.items() if v != 0}
    return tuple((v, a, c) for (a, c), v in sorted(poly.items()))


def _logli1exp_numpy(k: int, x):
    """float64 F^(k)(x), F(x) = log Li_1(e^x) = log(-log(1 - e^x)), x < 0 (NaN elsewhere)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        u = np.exp(x)
        low = u < LOGLI1EXP_U_SERIES
        series = np.polynomial.polynomial.polyval(np.where(low, u, 0.0), logli1exp_series(k))
        xf = np.where(low, -1.0, x)  # keep the closed form finite where it is not used
        li1 = -_log1mexp(xf)
        if k == 0:
            series, far = series + x, np.log(li1)
        else:
            g = 1.0 / np.expm1(-xf)
            r = g / li1
            far = sum(coef * g**a * r**c for coef, a, c in logli1exp_far_terms(k))
        out = np.where(low, series, far)
        return np.where(x < 0, out, np.nan)


class logli1exp(DerivativePrimitive):
    """logli1exp(k, x) = F^(k)(x), the k-th derivative of F(x) = log Li_1(e^x), x < 0.

    F = log(-log(1 - e^x)) is the logarithmic-series log-partition. Its plain derivatives
    (Li_{-1} Li_1 - Li_0^2)/Li_1^2, ... cancel as e^x -> 0 (nan below x ~ -17.5 in
    float64). With u = e^x: a Taylor series in u for u < 1/4 (F = x + h(u), see
    :func:`logli1exp_series`), and for u >= 1/4 log Li_1 (k = 0) or the polynomial in
    g = Li_0(e^x) = 1/expm1(-x) and r = g/Li_1(e^x) of :func:`logli1exp_far_terms`, whose
    cancellation at u = 1/4 is a factor of about 4^(k-1).
    """

    nargs = 2

    @staticmethod
    def function_of(x):
        """F(x): the logarithmic-series law on y >= 1."""
        return sp.log(-sp.log(1 - sp.exp(x)))

    @staticmethod
    def numpy_impl(k, x):
        return _logli1exp_numpy(int(k), x)


def to_definition(expr: sp.Expr) -> sp.Expr:
    """Replace every primitive in ``expr`` by its plain definition (for mpmath references)."""
    return expr.replace(lambda e: isinstance(e, StablePrimitive), lambda e: e.definition())
