"""The plain description a vector admissibility check reads: :class:`VectorSpecView`.

A family with ``k`` natural parameters ``eta = (eta_1, ..., eta_k)`` and one scalar observation
``y`` has density ``p(y|eta) = h(y) exp(<eta, T(y)> - A(eta))`` on a product domain
``D = (lo_1, hi_1) x ... x (lo_k, hi_k)``. The view holds only SymPy expressions and numbers
(parameters already substituted), so the derive side's vector ``Family`` (or a test) builds
one without this package knowing how specs are written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp

from deqfam.vocab import LATTICE_SUPPORTS, Support

from ...primitives import StablePrimitive, to_definition
from ...spec import Y
from ..grids import interior_grid, is_finite

Interval = tuple[sp.Expr, sp.Expr]


@dataclass(frozen=True)
class VectorSpecView:
    """What :func:`check_vector` needs of a vector family.

    Attributes:
        name: identifier (messages only).
        A: the log-partition ``A(eta)``, a SymPy expression in the symbols ``etas``.
        etas: the ``k`` natural-parameter symbols, in order.
        domain: one open interval ``(lo, hi)`` per natural parameter (SymPy numbers, +-oo).
        support: the support of ``y`` (a :class:`deqfam.vocab.Support` name).
        T: the sufficient statistic, one SymPy expression in ``y`` per natural parameter.
        h: the base measure ``h(y)`` (density on a continuous support, mass on a lattice) or
            None when the spec gives none.
        parameters: the parameter values already substituted (reported only).
        y: the observation symbol of ``T`` and ``h``.
        support_max: the largest value of ``y`` (e.g. ``K - 1`` for a categorical) or None.
    """

    name: str
    A: sp.Expr
    etas: tuple[sp.Symbol, ...]
    domain: tuple[Interval, ...]
    support: str
    T: tuple[sp.Expr, ...]
    h: sp.Expr | None = None
    parameters: dict[str, object] = field(default_factory=dict)
    y: sp.Symbol = Y
    support_max: float | None = None

    def __post_init__(self) -> None:
        # plain numbers are accepted for the bounds; keep SymPy objects from here on
        box = tuple((sp.sympify(lo), sp.sympify(hi)) for lo, hi in self.domain)
        object.__setattr__(self, "domain", box)
        object.__setattr__(self, "T", tuple(sp.sympify(t) for t in self.T))
        k = len(self.etas)
        if k < 1 or len(self.domain) != k or len(self.T) != k:
            raise ValueError(
                f"{self.name}: {k} natural parameters need {k} domain intervals and {k} "
                f"statistics (got {len(self.domain)} and {len(self.T)})"
            )
        Support(self.support)  # raises ValueError for an unknown support name
        extra = self.plain_A.free_symbols - set(self.etas)
        if extra:
            raise ValueError(f"{self.name}: A has free symbols {sorted(map(str, extra))}")

    @property
    def k(self) -> int:
        """Number of natural parameters."""
        return len(self.etas)

    @property
    def plain_A(self) -> sp.Expr:
        """A with stable primitives replaced by their SymPy definitions."""
        return to_definition(self.A) if self.A.has(StablePrimitive) else self.A

    @property
    def lattice(self) -> bool:
        """True when ``y`` lives on an integer lattice."""
        return self.support in LATTICE_SUPPORTS

    def support_points(self, limit: int = 64) -> list[int]:
        """Up to ``limit`` lattice points of the support (from the smallest), [] if continuous."""
        if not self.lattice:
            return []
        start = {Support.INTEGERS: -(limit // 2), Support.PLUS_MINUS_ONE: -1}.get(
            Support(self.support), 0
        )
        top = math.inf if self.support_max is None else self.support_max
        member = LATTICE_SUPPORTS[Support(self.support)]
        return [n for n in range(start, start + limit) if n <= top and member(n)]

    def integer_statistic(self) -> bool:
        """True when every ``T_i`` is an integer at the first lattice points of the support
        (so integer directions project the law of ``T`` onto an integer lattice)."""
        pts = self.support_points()
        if not pts:
            return False
        for t in self.T:
            for n in pts:
                v = t.subs(self.y, n)
                if not (v.is_number and v.is_integer):
                    return False
        return True


def axis_points(interval: Interval, n: int) -> np.ndarray:
    """n points strictly inside one open interval (the scalar check's grid)."""
    return interior_grid(interval, n)


def box_points(view: VectorSpecView, n_axis: int, n_max: int, seed: int) -> np.ndarray:
    """Points inside the box: the full product of ``n_axis`` points per axis when it has at
    most ``n_max`` points, else ``n_max`` random picks (seeded) of a per-axis grid."""
    grids = [axis_points(iv, n_axis) for iv in view.domain]
    if n_axis**view.k <= n_max:
        mesh = np.meshgrid(*grids, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)
    rng = np.random.default_rng(seed)
    cols = [g[rng.integers(0, g.size, n_max)] for g in grids]
    return np.stack(cols, axis=-1)


def middle_point(view: VectorSpecView) -> np.ndarray:
    """A point well inside the box: per axis 0.25 on R, 1 from a finite end of a half-line,
    the midpoint of a finite interval."""
    out = []
    for lo, hi in view.domain:
        if not is_finite(lo) and not is_finite(hi):
            out.append(0.25)
        elif not is_finite(lo):
            out.append(float(hi) - 1.0)
        elif not is_finite(hi):
            out.append(float(lo) + 1.0)
        else:
            out.append((float(lo) + float(hi)) / 2)
    return np.array(out)


def rational(x: float, denominator: int = 64) -> sp.Rational:
    """x as a nearby rational with a small denominator (exact SymPy arithmetic downstream)."""
    f = Fraction(float(x)).limit_denominator(denominator)
    return sp.Rational(f.numerator, f.denominator)


def line_interval(view: VectorSpecView, a: tuple, d: tuple) -> Interval:
    """The open interval of t with a + t d inside the box (a inside, so it contains 0)."""
    lo, hi = -sp.oo, sp.oo
    for (blo, bhi), ai, di in zip(view.domain, a, d, strict=True):
        if di == 0:
            continue
        ends = ((blo - ai) / di, (bhi - ai) / di)
        e0, e1 = ends if di > 0 else ends[::-1]
        lo, hi = sp.Max(lo, e0), sp.Min(hi, e1)
    return sp.nsimplify(lo), sp.nsimplify(hi)


def restrict(view: VectorSpecView, a: tuple, d: tuple, t: sp.Symbol) -> sp.Expr:
    """g(t) = A(a + t d): the restriction of A to a line."""
    return view.plain_A.subs(
        {e: ai + t * di for e, ai, di in zip(view.etas, a, d, strict=True)}, simultaneous=True
    )


def image_interval(view: VectorSpecView, m: tuple) -> Interval:
    """The interval {<m, eta> : eta in the box} (interval arithmetic, infinite ends allowed)."""
    lo, hi = sp.S.Zero, sp.S.Zero
    for (blo, bhi), mi in zip(view.domain, m, strict=True):
        if mi == 0:
            continue
        e0, e1 = (mi * blo, mi * bhi) if mi > 0 else (mi * bhi, mi * blo)
        lo, hi = lo + e0, hi + e1
    return lo, hi
