"""Points inside a declared domain, tilts, and real mpmath evaluation of A and its derivatives.

The open domain ``(lo, hi)`` of ``eta`` is given by SymPy bounds (possibly infinite); every
grid here lies strictly inside it.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp


def is_finite(b: sp.Expr) -> bool:
    """True when the domain bound ``b`` is a finite number."""
    return bool(b.is_finite)


def interior_grid(domain: tuple[sp.Expr, sp.Expr], n: int) -> np.ndarray:
    """n points strictly inside the open domain, denser near finite ends.

    (-oo, oo): 20 sinh-spaced points in [-20, 20]; (-oo, b): b - geomspace(1e-3, 25);
    (a, oo): a + geomspace(1e-3, 25); (a, b): Chebyshev points shrunk by 1e-3 (b - a).
    """
    lo, hi = domain
    if not is_finite(lo) and not is_finite(hi):
        return 20.0 * np.sinh(np.linspace(-3.7, 3.7, n)) / math.sinh(3.7)
    if not is_finite(lo):
        return float(hi) - np.geomspace(1e-3, 25.0, n)[::-1]
    if not is_finite(hi):
        return float(lo) + np.geomspace(1e-3, 25.0, n)
    a, b = float(lo), float(hi)
    c = np.cos(np.linspace(math.pi, 0.0, n))
    return a + (b - a) * (0.5 + 0.499 * c)


def default_tilts(domain: tuple[sp.Expr, sp.Expr]) -> tuple[float, ...]:
    """Three tilts spread over the domain.

    (-oo, oo): (-1.5, 0.25, 1.75), off the symmetric point 0 where some valid phi vanish on
    the path (Bernoulli, Ising); (-oo, b): b - (3, 1, 0.3); (a, oo): a + (0.3, 1, 3);
    (a, b): a + (b - a) (0.2, 0.5, 0.8).
    """
    lo, hi = domain
    if not is_finite(lo) and not is_finite(hi):
        return (-1.5, 0.25, 1.75)
    if not is_finite(lo):
        return tuple(float(hi) - d for d in (3.0, 1.0, 0.3))
    if not is_finite(hi):
        return tuple(float(lo) + d for d in (0.3, 1.0, 3.0))
    a, b = float(lo), float(hi)
    return tuple(round(a + (b - a) * f, 12) for f in (0.2, 0.5, 0.8))


def expconv_points(domain: tuple[sp.Expr, sp.Expr], n: int = 8) -> list[float]:
    """n points for the exponential-convexity matrix: evenly spread on (-2.5, 2.5), or
    geometrically within 0.2..5 of a finite end, or on the middle 80 % of a finite interval."""
    lo, hi = domain
    if not is_finite(lo) and not is_finite(hi):
        return list(np.linspace(-2.5, 2.5, n))
    if not is_finite(lo):
        return list(float(hi) - np.geomspace(0.2, 5.0, n)[::-1])
    if not is_finite(hi):
        return list(float(lo) + np.geomspace(0.2, 5.0, n))
    a, b = float(lo), float(hi)
    return list(a + (b - a) * np.linspace(0.1, 0.9, n))


def mp_real_at(f, t: float | mpmath.mpf) -> mpmath.mpf | None:
    """f(t) if real and finite at the current precision, else None."""
    try:
        v = f(mpmath.mpf(t))
    except (ArithmeticError, ValueError, TypeError, NameError):  # NameError: no mpmath version
        return None
    return real_finite(v)


def real_finite(v) -> mpmath.mpf | None:
    """An mpmath value as a real number when it is finite and its imaginary part is rounding
    noise (below ``10^(8 - dps)`` relative to the real part at the current precision), else
    None."""
    if isinstance(v, mpmath.mpc):
        if abs(v.imag) > mpmath.mpf(10) ** (-mpmath.mp.dps + 8) * max(1, abs(v.real)):
            return None
        v = v.real
    v = mpmath.mpf(v)
    return v if mpmath.isfinite(v) else None


def mp_real(f, t: float | mpmath.mpf) -> mpmath.mpf | None:
    """f(t) real and finite, or its limit at a removable singularity of the formula.

    A formula such as log((e^eta - 1)/eta) cannot be evaluated at eta = 0 although A extends
    continuously there; then f(t +- d), d = 10^(-dps/2) (1 + |t|), must be real, finite and
    agree to 10^(-dps/4) relative, and their mean is returned.
    """
    v = mp_real_at(f, t)
    if v is not None:
        return v
    d = mpmath.mpf(10) ** (-(mpmath.mp.dps // 2)) * (1 + abs(mpmath.mpf(t)))
    a, b = mp_real_at(f, mpmath.mpf(t) - d), mp_real_at(f, mpmath.mpf(t) + d)
    if a is None or b is None:
        return None
    if abs(a - b) > mpmath.mpf(10) ** (-(mpmath.mp.dps // 4)) * max(1, abs(a)):
        return None
    return (a + b) / 2
