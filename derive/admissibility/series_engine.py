"""The exact power-series engine: Taylor coefficients of exp(A) in ``x = e^eta`` at ``x = 0``.

For ``A`` a function of ``e^eta`` alone, ``exp(A(log x)) = sum_n c_n x^n`` near 0 is the
Laplace transform of the signed measure ``sum_n c_n delta_n``; by uniqueness of Laplace
transforms one negative ``c_n`` disproves admissibility. Coefficients are exact rationals
(:class:`fractions.Fraction`) while every constant is rational, else mpmath numbers.

The coefficient loops (``SeriesEngine.mul``, ``exp0``, ``log1``, ``reciprocal``,
``polylog``) are the hot spots of the check; a wall-clock deadline belongs in them.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath
import sympy as sp

from ..budget import checkpoint


class Inexact(Exception):
    """An irrational number appeared: redo the series in mpmath."""


class NotSeries(Exception):
    """exp(A(log x)) is not a power series at x = 0 by these rules."""


class SeriesEngine:
    """Truncated Taylor series at x = 0 of an expression in x, with Fraction (exact) or mpf
    coefficients.

    Rules (each analytic at 0, so the formal series is the function's Taylor series):
    sums, products, integer powers (negative ones need f(0) != 0), real powers ``f^p`` with
    ``f(0) > 0`` (``exp(p log f)``), ``exp``, ``log f`` with ``f(0) > 0``, ``cosh``/``sinh``,
    and ``polylog(s, w) = sum_k w^k / k^s`` with ``w(0) = 0``. Exact mode raises
    :class:`Inexact` at the first irrational number (``log 2``, ``k^(-1/2)``, ...).
    """

    def __init__(self, x: sp.Symbol, order: int, exact: bool) -> None:
        self.x, self.K, self.exact = x, order, exact

    # coefficient field
    def num(self, v: sp.Expr) -> Any:
        if self.exact:
            if v.is_Rational:
                return Fraction(int(v.p), int(v.q))
            raise Inexact(str(v))
        val = sp.lambdify([], v, "mpmath")()
        if isinstance(val, mpmath.mpc):
            if abs(val.imag) > mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(1, abs(val)):
                raise NotSeries(f"complex constant {v}")
            val = val.real
        return mpmath.mpf(val)

    def one(self) -> Any:
        return Fraction(1) if self.exact else mpmath.mpf(1)

    def zero(self) -> Any:
        return Fraction(0) if self.exact else mpmath.mpf(0)

    def const(self, c: Any) -> list:
        out = [self.zero()] * self.K
        out[0] = c
        return out

    # arithmetic
    def mul(self, a: list, b: list) -> list:
        K = self.K
        out = [self.zero()] * K
        nz_a = [i for i in range(K) if a[i]]
        nz_b = [j for j in range(K) if b[j]]
        for i in nz_a:
            checkpoint()
            ai = a[i]
            for j in nz_b:
                if i + j >= K:
                    break
                out[i + j] += ai * b[j]
        return out

    def exp0(self, f: list) -> list:
        """exp(f) for f(0) = 0: n b_n = sum_k k f_k b_{n-k}."""
        b = [self.zero()] * self.K
        b[0] = self.one()
        for n in range(1, self.K):
            checkpoint()
            b[n] = sum((k * f[k] * b[n - k] for k in range(1, n + 1) if f[k]), self.zero()) / n
        return b

    def log1(self, f: list) -> list:
        """log(f) for f(0) = 1: n L_n = n f_n - sum_{k<n} k L_k f_{n-k}."""
        L = [self.zero()] * self.K
        for n in range(1, self.K):
            checkpoint()
            acc = n * f[n] - sum((k * L[k] * f[n - k] for k in range(1, n) if L[k]), self.zero())
            L[n] = acc / n
        return L

    def scalar_exp(self, c: Any) -> Any:
        if self.exact:
            if c == 0:
                return Fraction(1)
            raise Inexact(f"exp({c})")
        return mpmath.exp(c)

    def scalar_log(self, c: Any) -> Any:
        if self.exact:
            if c == 1:
                return Fraction(0)
            raise Inexact(f"log({c})")
        return mpmath.log(c)

    def scalar_pow(self, c: Any, p: sp.Expr) -> Any:
        if self.exact:
            v = sp.Rational(c.numerator, c.denominator) ** p
            if v.is_Rational:
                return Fraction(int(v.p), int(v.q))
            raise Inexact(f"{c}**{p}")
        return mpmath.power(c, self.num(p))

    def exp(self, f: list) -> list:
        c = self.scalar_exp(f[0])
        g = self.exp0([self.zero(), *f[1:]])
        return [c * v for v in g]

    def log(self, f: list) -> list:
        if f[0] == 0:
            raise NotSeries("log of a series vanishing at x = 0")
        if f[0] < 0:
            raise NotSeries("log of a negative value near x = 0")
        L = self.log1([v / f[0] for v in f])
        L[0] = self.scalar_log(f[0])
        return L

    def power(self, f: list, p: sp.Expr) -> list:
        if p.is_Integer:
            n = int(p)
            if n < 0:
                if f[0] == 0:
                    raise NotSeries("negative power of a series vanishing at x = 0")
                return self.power(self.reciprocal(f), sp.Integer(-n))
            out = self.const(self.one())
            base = f
            while n:
                if n & 1:
                    out = self.mul(out, base)
                n >>= 1
                if n:
                    base = self.mul(base, base)
            return out
        if f[0] <= 0:
            raise NotSeries("non-integer power of a series not positive at x = 0")
        pc = self.num(p)
        L = self.log1([v / f[0] for v in f])
        g = self.exp0([pc * v for v in L])
        c = self.scalar_pow(f[0], p)
        return [c * v for v in g]

    def reciprocal(self, f: list) -> list:
        g = [self.zero()] * self.K
        g[0] = self.one() / f[0]
        for n in range(1, self.K):
            checkpoint()
            g[n] = -sum((f[k] * g[n - k] for k in range(1, n + 1) if f[k]), self.zero()) / f[0]
        return g

    def polylog(self, s: sp.Expr, w: list) -> list:
        if w[0] != 0:
            raise NotSeries("polylog argument not vanishing at x = 0")
        if self.exact and not s.is_Integer:
            raise Inexact(f"k^(-{s})")
        sval = int(s) if self.exact else self.num(s)

        def inv_pow(k: int) -> Any:
            if not self.exact:
                return mpmath.power(k, -sval)
            return Fraction(1, k**sval) if sval >= 0 else Fraction(k ** (-sval))

        nz = [i for i in range(self.K) if w[i]]
        out = [self.zero()] * self.K
        if len(nz) == 1:  # monomial c x^m: sum_k c^k x^{km} / k^s
            m, c = nz[0], w[nz[0]]
            k = 1
            while k * m < self.K:
                out[k * m] = c**k * inv_pow(k)
                k += 1
            return out
        term = self.const(self.one())
        for k in range(1, self.K):
            checkpoint()
            term = self.mul(term, w)
            if not any(term):
                break
            ik = inv_pow(k)
            out = [o + ik * t for o, t in zip(out, term, strict=True)]
        return out

    # tree walk
    def series(self, e: sp.Expr) -> list:
        x = self.x
        if not e.has(x):
            return self.const(self.num(e))
        if e == x:
            out = self.const(self.zero())
            out[1] = self.one()
            return out
        if e.is_Add:
            parts = [self.series(a) for a in e.args]
            return [sum(col, self.zero()) for col in zip(*parts, strict=True)]
        if e.is_Mul:
            out = self.const(self.one())
            for a in e.args:
                out = self.mul(out, self.series(a))
            return out
        if e.is_Pow:
            b, p = e.args
            if p.has(x):
                return self.exp(self.mul(self.series(p), self.log(self.series(b))))
            return self.power(self.series(b), p)
        if isinstance(e, sp.exp):
            return self.exp(self.series(e.args[0]))
        if isinstance(e, sp.log):
            return self.log(self.series(e.args[0]))
        if isinstance(e, sp.cosh | sp.sinh):
            f = self.series(e.args[0])
            a, b = self.exp(f), self.exp([-v for v in f])
            sign = 1 if isinstance(e, sp.cosh) else -1
            return [(u + sign * v) / 2 for u, v in zip(a, b, strict=True)]
        if isinstance(e, sp.polylog) and not e.args[0].has(x):
            return self.polylog(e.args[0], self.series(e.args[1]))
        raise NotSeries(f"no series rule for {type(e).__name__}")

    def top(self, E: sp.Expr) -> list:
        """Series of E up to a positive constant factor (dropped: it cannot change signs)."""
        consts = [f for f in sp.Mul.make_args(E) if not f.has(self.x)]
        rest = sp.Mul(*[f for f in sp.Mul.make_args(E) if f.has(self.x)])
        c = sp.Mul(*consts)
        if not c.is_positive:  # e.g. exp(log(-log(1 - x))) = -log(1 - x): keep the sign inside
            return self.series(E)
        if isinstance(rest, sp.exp):
            f = self.series(rest.args[0])
            return self.exp0([self.zero(), *f[1:]])
        if rest.is_Pow and not rest.exp.is_Integer and not rest.exp.has(self.x):
            f = self.series(rest.base)
            if f[0] <= 0:
                raise NotSeries("non-integer power of a series not positive at x = 0")
            return self.power([v / f[0] for v in f], rest.exp)
        return self.series(rest)
