"""High-precision references for derivatives of a family's log-partition function (mpmath
numerical differentiation of the plain SymPy ``A``), independent of the derivation and of the
generated code."""

from __future__ import annotations

import mpmath

from deqfam.derive.family import Family


def high_precision_derivative(fam: Family, eta: float, order: int, dps: int = 50) -> float:
    """A^(order)(eta) by mpmath numerical differentiation of the plain A at ``dps`` digits."""
    f = fam.mpmath_function(fam.A)
    with mpmath.workdps(dps):
        return float(mpmath.diff(f, mpmath.mpf(eta), order))
