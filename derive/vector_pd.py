"""Positive definiteness of a vector family's Hessian ``C(eta) = Hess A(eta)`` on its box.

``A`` is strictly convex on the box iff ``C`` is positive definite there, which makes the
statistic's covariance non-degenerate (a minimal family) and the layer's Newton steps
well defined. Two kinds of evidence:

* **proof** (Sylvester's criterion): every leading principal minor of ``C`` is positive.
  Each ``eta_i`` is replaced by an expression of a positive symbol sweeping its interval
  (``lo + t``, ``hi - t``, or a logistic map of a real symbol on a finite interval), each
  minor is simplified, and SymPy's assumptions must decide it positive;
* **numerical evidence** where the proof does not go through: the smallest eigenvalue of
  ``C`` (relative to its largest) on a seeded grid of points inside the box; the worst
  point is reported.

:func:`hessian_positive_definite` is the function the k-dimensional admissibility stages
([veccheck], ``derive/admissibility/vector*.py``) call.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .spec_derivation import optional_step
from .vector_derivation import VectorFamily

#: grid points per coordinate of the numerical evidence (fewer for larger k, see _grid)
GRID_PER_AXIS = 9
#: most grid points in all
MAX_GRID_POINTS = 600
#: smallest accepted relative eigenvalue lambda_min / lambda_max on the grid
RELATIVE_TOLERANCE = 1e-12
#: seconds for the symbolic proof before falling back to the grid
SYMBOLIC_TIME_LIMIT = 3.0


@dataclass(frozen=True)
class HessianPD:
    """Outcome of :func:`hessian_positive_definite`.

    Attributes:
        proven: the symbolic proof went through (Sylvester's criterion).
        positive: every grid point had a positive definite ``C`` (True when proven).
        method: how it was decided, in words.
        minors: the simplified leading minors (proof attempt), as text.
        grid_points: number of points of the numerical evidence (0 when proven).
        worst_point: the point of the smallest relative eigenvalue, or None.
        worst_relative_eigenvalue: ``lambda_min / lambda_max`` there, or None.
    """

    proven: bool
    positive: bool
    method: str
    minors: tuple[str, ...] = ()
    grid_points: int = 0
    worst_point: tuple[float, ...] | None = None
    worst_relative_eigenvalue: float | None = None
    details: dict = field(default_factory=dict)


def _sweep(lo: sp.Expr, hi: sp.Expr, i: int) -> tuple[sp.Expr, sp.Symbol]:
    """eta_i -> an expression of a fresh symbol covering exactly (lo, hi)."""
    if lo == -sp.oo and hi == sp.oo:
        s = sp.Symbol(f"u{i}", real=True)
        return s, s
    if lo == -sp.oo or hi == sp.oo:
        t = sp.Symbol(f"t{i}", positive=True)
        return (hi - t, t) if lo == -sp.oo else (lo + t, t)
    u = sp.Symbol(f"u{i}", real=True)
    return lo + (hi - lo) / (1 + sp.exp(-u)), u


def leading_minors_positive(fam: VectorFamily) -> tuple[bool, tuple[str, ...]]:
    """Sylvester's criterion on the plain Hessian with the box swept by free symbols."""
    subs = {
        e: _sweep(lo, hi, i)[0]
        for i, (e, (lo, hi)) in enumerate(zip(fam.etas, fam.domain, strict=True))
    }
    H = sp.Matrix(fam.hessian).subs(subs)
    texts = []
    for m in range(1, fam.k + 1):
        minor = sp.factor(sp.simplify(H[:m, :m].det()))
        texts.append(sp.sstr(minor))
        if minor.is_positive is not True:
            return False, tuple(texts)
    return True, tuple(texts)


def _axis(lo: float, hi: float, n: int) -> np.ndarray:
    """n points inside (lo, hi): evenly spaced on a finite interval, out to 8 units from a
    finite end, and over [-6, 6] on the whole line."""
    if math.isfinite(lo) and math.isfinite(hi):
        a, b = lo, hi
    elif math.isfinite(lo):
        a, b = lo, lo + 8.0
    elif math.isfinite(hi):
        a, b = hi - 8.0, hi
    else:
        a, b = -6.0, 6.0
    return np.linspace(a, b, n + 2)[1:-1]


def _grid(fam: VectorFamily, rng: np.random.Generator) -> list[tuple[float, ...]]:
    per_axis = max(2, min(GRID_PER_AXIS, int(MAX_GRID_POINTS ** (1.0 / fam.k))))
    axes = [_axis(lo, hi, per_axis) for lo, hi in fam.domain_floats]
    points = list(itertools.product(*axes))
    if len(points) > MAX_GRID_POINTS:
        keep = rng.choice(len(points), MAX_GRID_POINTS, replace=False)
        points = [points[i] for i in sorted(keep)]
    return points


def numerical_evidence(fam: VectorFamily, seed: int = 0) -> HessianPD:
    """Smallest relative eigenvalue of the stable Hessian on a seeded grid of the box."""
    points = _grid(fam, np.random.default_rng(seed))
    fns = [[fam.numpy_function(e) for e in row] for row in fam.hessian_stable]
    worst, worst_at = math.inf, None
    for p in points:
        with np.errstate(all="ignore"):
            C = np.array([[float(f(*p)) for f in row] for row in fns])
        if not np.all(np.isfinite(C)):
            rel = -math.inf
        else:
            ev = np.linalg.eigvalsh((C + C.T) / 2)
            rel = float(ev[0] / ev[-1]) if ev[-1] > 0 else -math.inf
        if rel < worst:
            worst, worst_at = rel, p
    ok = worst > RELATIVE_TOLERANCE
    return HessianPD(
        proven=False,
        positive=ok,
        method=f"numerical: lambda_min/lambda_max of Hess A on {len(points)} grid points",
        grid_points=len(points),
        worst_point=tuple(float(x) for x in worst_at) if worst_at is not None else None,
        worst_relative_eigenvalue=worst,
    )


def hessian_positive_definite(fam: VectorFamily, seed: int = 0) -> HessianPD:
    """Proof of ``Hess A > 0`` on the box by Sylvester's criterion where SymPy decides every
    leading minor positive (within the optional-step budget), else numerical evidence."""
    result, why = optional_step(lambda: leading_minors_positive(fam), SYMBOLIC_TIME_LIMIT)
    minors: tuple[str, ...] = ()
    if result is not None:
        proven, minors = result
        if proven:
            return HessianPD(
                True, True, "proof: leading principal minors positive (Sylvester)", minors
            )
    evidence = numerical_evidence(fam, seed)
    note = f" (symbolic proof: {why or 'a leading minor not decided positive'})"
    return HessianPD(
        False,
        evidence.positive,
        evidence.method + note,
        minors,
        evidence.grid_points,
        evidence.worst_point,
        evidence.worst_relative_eigenvalue,
    )


__all__ = [
    "HessianPD",
    "hessian_positive_definite",
    "leading_minors_positive",
    "numerical_evidence",
]
