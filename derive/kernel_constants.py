"""Generation-time constants of the C/CUDA primitive helpers (``templates/_primitives.h.j2``).

For each (primitive, order) a kernel calls, one :class:`CPrimitive` carries the literals its
device function needs: Taylor coefficients, singular-term constants, closed-form polynomials
and series weights, computed here with mpmath/SymPy and emitted as round-trip literals. Which
builder a primitive uses is declared in :mod:`deqfam.derive.primitive_table`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import mpmath
import sympy as sp

from .primitives import (
    logexpm1exp_far_terms,
    logexpm1exp_series,
    logexpm1x_series,
    logli1exp_far_terms,
    logli1exp_series,
)


def order_tag(s: sp.Expr) -> str:
    """C identifier fragment for a real order s: 3/2 -> 's1p5', -1/2 -> 'sm0p5'."""
    text = repr(float(s)).replace("-", "m").replace(".", "p")
    return "s" + re.sub(r"[^0-9a-zA-Z]", "_", text)


@dataclass(frozen=True)
class CPrimitive:
    """One device function the kernel needs, with its generation-time constants."""

    kind: str  # the template block (PrimitiveSpec.c_block) that prints it
    order: float
    tag: str
    integer: bool
    near0: tuple[str, ...]  # Taylor coefficients about 0 (literals)
    singular: tuple[str, ...]  # extra constants of the singular/log term
    poly: tuple[str, ...]  # closed-form polynomial coefficients (integer orders)
    series: tuple[str, ...] = ()  # k^{-s}, k = 1..KERNEL_SERIES_TERMS (far-branch weights)


#: Terms of the series sum_k (+-1)^k e^{kx} / k^s used for x < -1: the terms shrink by
#: e^x <= e^-1, so 40 terms reach e^-40 ~ 4e-18 relative.
KERNEL_SERIES_TERMS = 40
#: Terms of the expansions about 0 emitted into kernels: they converge for |x| < 2 pi
#: (pi for Fermi-Dirac) and are used for |x| <= 1, so the truncation error is below
#: (1/pi)^40 ~ 1e-20 relative.
KERNEL_NEAR0_TERMS = 40


def polylog_constants(kind: str, s: sp.Expr) -> CPrimitive:
    """mpmath constants for Li_s(e^x) (or -Li_s(-e^x)) about x = 0, at 40 digits.

    Li_s(e^x) = Gamma(1-s)(-x)^(s-1) + sum_k zeta(s-k) x^k/k!  (s not an integer);
    Li_n(e^x) = x^(n-1)/(n-1)! (H_{n-1} - log(-x)) + sum_{k != n-1} zeta(n-k) x^k/k!;
    -Li_s(-e^x) = sum_k eta(s-k) x^k/k!, eta the Dirichlet eta function (entire).
    """
    sf = float(s)
    integer = sf == int(sf)
    near0: list[str] = []
    singular: tuple[str, ...] = ()
    poly: tuple[str, ...] = ()
    with mpmath.workdps(40):
        if kind == "polylog_exp" and integer and sf <= 0:
            poly = tuple(repr(float(c)) for c in li_nonpositive_poly(int(-sf)))
        elif kind == "fermi_dirac" and integer and sf <= 1:
            poly = ()
        else:
            for k in range(KERNEL_NEAR0_TERMS):
                if kind == "fermi_dirac":
                    c = mpmath.altzeta(sf - k) / mpmath.factorial(k)
                elif integer and k == int(sf) - 1:
                    c = mpmath.mpf(0)
                else:
                    c = mpmath.zeta(sf - k) / mpmath.factorial(k)
                near0.append(repr(float(c)))
            if kind == "polylog_exp" and integer:
                n = int(sf)
                singular = (
                    repr(float(mpmath.harmonic(n - 1))),
                    repr(float(1 / mpmath.factorial(n - 1))),
                )
            elif kind == "polylog_exp":
                singular = (repr(float(mpmath.gamma(1 - sf))),)
    series: tuple[str, ...] = ()
    if near0:
        with mpmath.workdps(40):
            series = tuple(
                repr(float(mpmath.mpf(k) ** -sf)) for k in range(1, KERNEL_SERIES_TERMS + 1)
            )
    return CPrimitive(kind, sf, order_tag(s), integer, tuple(near0), singular, poly, series)


def li_nonpositive_poly(n: int) -> list[sp.Rational]:
    """Coefficients (ascending) of P_n with Li_{-n}(e^x) = P_n(g), g = e^x/(1-e^x).

    P_0(g) = g and P_{m+1}(g) = g (1 + g) P_m'(g)  (since dg/dx = g(1+g)).
    """
    g = sp.Symbol("g")
    p = g
    for _ in range(n):
        p = sp.expand(g * (1 + g) * sp.diff(p, g))
    return sp.Poly(p, g).all_coeffs()[::-1]


def logexpm1x_constants(k: int) -> CPrimitive:
    """Constants of d^k/dx^k log((e^x-1)/x): Taylor coefficients about 0 (SymPy series) and,
    for the far branch of ``logexpm1x`` (see derive/primitives.py), the polynomial of
    Li_{1-k}, the pole coefficient (-1)^k (k-1)!, the sign (-1)^(k-1) and offset [k = 1]."""
    coeffs = tuple(repr(c) for c in logexpm1x_series(k))
    if k == 0:
        return CPrimitive("logexpm1x", 0.0, order_tag(sp.Integer(0)), True, coeffs, (), ())
    poly = tuple(repr(float(c)) for c in li_nonpositive_poly(k - 1))
    far = (
        repr(float((-1) ** k * math.factorial(k - 1))),
        repr(float((-1) ** (k - 1))),
        "1.0" if k == 1 else "0.0",
    )
    return CPrimitive("logexpm1x", float(k), order_tag(sp.Integer(k)), True, coeffs, far, poly)


def logexpm1exp_constants(k: int) -> CPrimitive:
    """Constants of G^(k), G(x) = log(e^(e^x) - 1) (derive/primitives.py): the Taylor
    coefficients in u = e^x and, in ``singular[0]``, the closed form D^(k-1) phi as one C
    expression in u and b = 1/expm1(u) (integer coefficients, exact)."""
    if k == 0:
        return CPrimitive("logexpm1exp", 0.0, order_tag(sp.Integer(0)), True, (), (), ())
    coeffs = tuple(repr(c) for c in logexpm1exp_series(k))
    far = " + ".join(
        f"({float(coef)!r}) * pow(u, {a}) * pow(b, {c})" for coef, a, c in logexpm1exp_far_terms(k)
    )
    return CPrimitive("logexpm1exp", float(k), order_tag(sp.Integer(k)), True, coeffs, (far,), ())


def logli1exp_constants(k: int) -> CPrimitive:
    """Constants of F^(k), F(x) = log Li_1(e^x) (derive/primitives.py): the Taylor
    coefficients in u = e^x and, for k >= 1 in ``singular[0]``, the closed form as one C
    expression in g = 1/expm1(-x) and r = g/Li_1(e^x) (integer coefficients, exact)."""
    coeffs = tuple(repr(c) for c in logli1exp_series(k))
    far = ()
    if k >= 1:
        far = (
            " + ".join(
                f"({float(coef)!r}) * pow(g, {a}) * pow(r, {c})"
                for coef, a, c in logli1exp_far_terms(k)
            ),
        )
    return CPrimitive("logli1exp", float(k), order_tag(sp.Integer(k)), True, coeffs, far, ())


#: where the C Bessel power series hands over to the asymptotic expansion (as the torch
#: runtime's runtime/special_bessel.py BESSEL_SWITCH)
BESSEL_SWITCH = 30.0


def besselie_constants(n: int) -> CPrimitive:
    """e^-|x| I_n(x): singular = (switch, 1/sqrt(2 pi), 1/n!) for the power series
    (x/2)^n/n! sum_k ... below the switch and the asymptotic expansion above."""
    return CPrimitive(
        kind="besselie",
        order=float(n),
        tag=order_tag(n),
        integer=True,
        near0=(),
        singular=(
            repr(BESSEL_SWITCH),
            repr(1.0 / math.sqrt(2.0 * math.pi)),
            repr(1.0 / math.factorial(n)),
        ),
        poly=(),
    )
