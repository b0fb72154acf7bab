"""Vector stages on lines: the bound test over directions and restrictions to lines.

For a point ``a`` of the box and a direction ``d``, ``g(t) = A(a + t d)`` is (if ``A`` is
admissible) the cumulant function of the scalar ``<d, T(y)>`` under the law of ``T`` tilted
to ``a``, and ``phi_d(s) = exp(A(a + i s d) - A(a))`` is the characteristic function of
the tilted law of ``T`` along the ray ``s d`` of ``R^k``. So each line is a scalar family and
the scalar stages apply to it as *necessary* tests:

* ``bound``: ``|phi(s d)| <= 1`` on the ray (the scalar bound test at tilt 0, with its 50-digit
  Gram witness): the bound test over directions ``d`` on the sphere of ``R^k``;
* ``line_convexity``: ``g'' = d^T Hess A d > 0`` on the whole segment inside the box;
* ``line_structure``: ``g`` a polynomial of degree > 2 (Marcinkiewicz) on this line;
* ``line_measure``: the law of ``<d, T>`` recovered from ``phi_d`` (lattice DFT when ``T`` is
  integer-valued on a lattice support and ``d`` is an integer vector, else Gaussian-damped
  inversion) has no negative mass.

A failure on any line rejects ``A``; passing on every line does not prove admissibility
(a function can be positive definite along every line but not in ``R^k``), so the verdict
never accepts on lines alone. Each line's complex path ``A(a + i s d)`` is followed on a
continuous branch by the scalar path evaluator.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from deqfam.vocab import Outcome, Support

from ...family import ConvexityProof, Family
from ...spec import ETA, FamilySpec
from ..checker import run_guarded
from ..report import Evidence
from ..stage import StageResult, build_context
from ..stages import ConvexityStage, FourierStage, StructureStage
from .context import VectorContext, VectorStage
from .view import VectorSpecView, line_interval, middle_point, rational, restrict

#: scalar evidence stage -> vector evidence stage
RENAME = {
    "convexity": "line_convexity",
    "structure": "line_structure",
    "bound": "bound",
    "base_measure": "line_measure",
}


def line_family(view: VectorSpecView, a: tuple, d: tuple) -> Family:
    """The scalar family ``g(eta) = A(a + eta d)`` on the segment of the line inside the box.

    Its support is the integers when ``d`` is an integer vector and ``T`` is integer-valued on
    a lattice support (so ``<d, T>`` lives on Z), else the real line (damped inversion, valid
    for any law). No symbolic convexity proof is attempted: the grid decides it.
    """
    g = restrict(view, a, d, ETA)
    lattice = view.lattice and all(x.is_integer for x in d) and view.integer_statistic()
    support = Support.INTEGERS if lattice else Support.REAL
    dom = line_interval(view, a, d)
    T = sp.Add(*[di * ti for di, ti in zip(d, view.T, strict=True)])
    name = f"{view.name}_line"
    spec = FamilySpec(
        name=name,
        description=f"A({a} + eta {d})",
        support=str(support),
        sufficient_statistic=T,
        log_partition=g,
        base_measure=None,
        parameters={},
        parameter_symbols={},
        parameter_ranges={},
        domain=dom,
        source=f"<line of {view.name}>",
        text=f"# restriction of {view.name} to the line {a} + t {d}\n",
    )
    s1 = sp.diff(g, ETA)
    s2 = sp.diff(s1, ETA)
    return Family(
        spec=spec,
        name=name,
        parameters={},
        A=g,
        T=T,
        h=None,
        domain=dom,
        sigma=s1,
        dsigma=s2,
        d2sigma=sp.diff(s2, ETA),
        A_stable=g,
        sigma_stable=s1,
        dsigma_stable=s2,
        d2sigma_stable=sp.diff(s2, ETA),
        inverse_link=None,
        convexity=ConvexityProof(False, "not attempted on a line restriction", s2),
    )


def choose_lines(ctx: VectorContext, n_random: int) -> list[tuple[tuple, tuple]]:
    """(a, d) pairs: every axis through the middle point, then ``n_random`` lines through
    random box points in uniformly random directions (seeded), all rounded to rationals."""
    view, k = ctx.view, ctx.view.k
    mid = tuple(rational(x) for x in middle_point(view))
    lines = [(mid, tuple(sp.Integer(int(j == i)) for j in range(k))) for i in range(k)]
    rng = np.random.default_rng(ctx.seed + 7)
    for _ in range(n_random):
        # a point between the middle and a random box point keeps clear of the edges
        u = rng.uniform(-1.0, 1.0, size=k)
        a = tuple(rational(m + 0.5 * x) for m, x in zip(middle_point(view), u, strict=True))
        if not all(
            bool(lo < ai) and bool(ai < hi) for ai, (lo, hi) in zip(a, view.domain, strict=True)
        ):
            a = mid
        v = rng.normal(size=k)
        v = v / np.linalg.norm(v)
        d = tuple(rational(x, 16) for x in v)
        if any(d):
            lines.append((a, d))
    return lines


def line_evidence(view: VectorSpecView, a: tuple, d: tuple) -> list[Evidence]:
    """The scalar convexity, structure and tilt-0 Fourier stages on one line, renamed."""
    fam = line_family(view, a, d)
    ctx = build_context(fam, (0.0,))
    label = f"line a=({', '.join(map(str, a))}), d=({', '.join(map(str, d))})"
    out = []
    for stage in (ConvexityStage(), StructureStage(), FourierStage(0.0)):
        for e in run_guarded(stage, ctx).evidence:
            details = {**e.details, "point": [str(x) for x in a], "direction": [str(x) for x in d]}
            out.append(
                Evidence(
                    RENAME.get(e.stage, e.stage),
                    e.outcome,
                    e.strength,
                    f"{label}: {e.summary}",
                    details,
                )
            )
    return out


class LinesStage(VectorStage):
    """Scalar necessary tests on the axes and ``n_random`` random lines (:func:`line_evidence`)."""

    name = "lines"
    stage = "bound"

    def __init__(self, n_random: int = 3) -> None:
        self.n_random = n_random

    def run(self, ctx: VectorContext) -> StageResult:
        evidence: list[Evidence] = []
        for a, d in choose_lines(ctx, self.n_random):
            evidence.extend(line_evidence(ctx.view, a, d))
        if not evidence:
            evidence.append(Evidence("bound", Outcome.SKIPPED, None, "no line inside the box"))
        return StageResult(tuple(evidence))
