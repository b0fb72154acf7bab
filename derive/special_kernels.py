"""C device functions of the special functions (digamma, polygamma, Bessel I) for kernels.

The kernel printer (``derive/codegen.py``) prints a special call through the C name of its
row in ``primitive_table.SPECIAL_CALLS`` and records it here; :func:`special_primitives`
turns the records into the blocks of ``templates/_primitives.h.j2`` with their constants
computed by mpmath at generation time (round-trip literals):

* ``digamma`` (x > 0): psi(x) = psi(x + 1) - 1/x until x >= 10, then
  psi(z) ~ log z - 1/(2z) - sum_{k=1}^{8} B_2k / (2k z^2k); the first omitted term,
  B_18/(18 z^18), is below 4e-18 at z = 10.
* ``polygamma`` of order n >= 1 (x > 0): psi^(n)(x) = psi^(n)(x + 1) + (-1)^(n+1) n!/x^(n+1)
  until x >= z_n, then psi^(n)(z) ~ (-1)^(n+1) z^-n [(n-1)! + n!/(2z)
  + sum_{k=1}^{10} B_2k (2k+n-1)!/(2k)! z^-2k]; z_n (>= 10) is the smallest integer at which
  the first omitted term (k = 11) is below 1e-17 of the leading one (:func:`polygamma_switch`).
* ``besseli`` (I_0, I_1 and the scaled e^-|x| I_0, e^-|x| I_1, any real x; the stable form
  of larger arguments is the primitive ``besselie``, ``derive/bessel_stable.py``): the power series
  sum_k (x/2)^(2k+nu) / (k! (k+nu)!) (positive terms, no cancellation) for |x| <= 30, the
  asymptotic expansion e^|x| / sqrt(2 pi |x|) sum_k (-1)^k a_k(nu) / |x|^k above (its
  smallest term at |x| = 30 is ~e^-60, far below double rounding).
"""

from __future__ import annotations

import math

import mpmath
import sympy as sp

from .kernel_constants import BESSEL_SWITCH, CPrimitive
from .primitive_table import special_call

#: Bernoulli terms of the digamma asymptotic series (B_2 .. B_16)
DIGAMMA_TERMS = 8
#: digamma's recurrence shifts x up to this value before the asymptotic series
DIGAMMA_SWITCH = 10
#: Bernoulli terms of the polygamma asymptotic series (B_2 .. B_20)
POLYGAMMA_TERMS = 10


def _lit(value) -> str:
    return repr(float(value))


def digamma_coefficients() -> tuple[str, ...]:
    """c_k = B_2k / (2k), k = 1..DIGAMMA_TERMS, as literals (Horner in w = 1/z^2)."""
    with mpmath.workdps(40):
        return tuple(_lit(mpmath.bernoulli(2 * k) / (2 * k)) for k in range(1, DIGAMMA_TERMS + 1))


def polygamma_coefficients(n: int) -> tuple[str, ...]:
    """c_k = B_2k (2k+n-1)! / (2k)!, k = 1..POLYGAMMA_TERMS, as literals."""
    with mpmath.workdps(40):
        return tuple(
            _lit(
                mpmath.bernoulli(2 * k) * mpmath.factorial(2 * k + n - 1) / mpmath.factorial(2 * k)
            )
            for k in range(1, POLYGAMMA_TERMS + 1)
        )


def polygamma_switch(n: int) -> int:
    """The smallest integer z >= 10 where the first omitted asymptotic term of psi^(n),
    |B_2K (2K+n-1)!/(2K)!| z^-2K with K = POLYGAMMA_TERMS + 1, is below 1e-17 (n-1)!."""
    kk = POLYGAMMA_TERMS + 1
    with mpmath.workdps(40):
        ratio = abs(mpmath.bernoulli(2 * kk)) * mpmath.factorial(2 * kk + n - 1)
        ratio /= mpmath.factorial(2 * kk) * mpmath.factorial(n - 1)
        z = max(DIGAMMA_SWITCH, int(mpmath.ceil((ratio / mpmath.mpf("1e-17")) ** (1.0 / (2 * kk)))))
    return z


def polygamma_constants(n: int) -> CPrimitive:
    """The block of psi^(n), n >= 1: singular = (switch, (n-1)!, n!, (-1)^(n+1))."""
    return CPrimitive(
        kind="polygamma",
        order=float(n),
        tag=str(n),
        integer=True,
        near0=polygamma_coefficients(n),
        singular=(
            _lit(polygamma_switch(n)),
            _lit(math.factorial(n - 1)),
            _lit(math.factorial(n)),
            "1.0" if n % 2 == 1 else "-1.0",
        ),
        poly=(),
    )


def digamma_constants() -> CPrimitive:
    """The block of psi: near0 = B_2k / (2k); singular = (switch,)."""
    return CPrimitive(
        kind="digamma",
        order=0.0,
        tag="0",
        integer=True,
        near0=digamma_coefficients(),
        singular=(_lit(DIGAMMA_SWITCH),),
        poly=(),
    )


def bessel_constants() -> CPrimitive:
    """The block of I_0, I_1 and their scaled forms: singular = (switch, 1/sqrt(2 pi))."""
    return CPrimitive(
        kind="besseli",
        order=0.0,
        tag="0",
        integer=True,
        near0=(),
        singular=(_lit(BESSEL_SWITCH), _lit(1 / math.sqrt(2 * math.pi))),
        poly=(),
    )


def special_primitives(needed: set[tuple[str, int]]) -> list[CPrimitive]:
    """The blocks for the recorded (kind, order) pairs, in a fixed order (deterministic)."""
    blocks = []
    for kind, order in sorted(needed):
        if kind == "digamma":
            blocks.append(digamma_constants())
        elif kind == "polygamma":
            blocks.append(polygamma_constants(order))
        else:
            blocks.append(bessel_constants())
    return blocks


def print_special(printer, expr: sp.Expr, needed: set[tuple[str, int]]) -> str:
    """C text of ``polygamma(n, x)`` / ``besseli(n, x)`` through its row of
    ``primitive_table.SPECIAL_CALLS`` (``c_call``, suffixed ``_<n>`` for a row of any order);
    records the template block (``c_kind``, order) it needs in ``needed``."""
    row = special_call(expr)
    if row is None or not row.c_kind:
        raise ValueError(f"no C function for {expr} (orders: see SPECIAL_CALLS)")
    n, x = expr.args
    if row.order is None:
        needed.add((row.c_kind, int(n)))
        return f"{row.c_call}_{int(n)}({printer._print(x)})"
    needed.add((row.c_kind, 0))
    return f"{row.c_call}({printer._print(x)})"


__all__ = [
    "BESSEL_SWITCH",
    "DIGAMMA_SWITCH",
    "print_special",
    "special_primitives",
]
