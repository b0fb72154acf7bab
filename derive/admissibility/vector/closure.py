"""Vector stage ``closure``: registry and closure rules in ``k`` dimensions.

If ``A(eta) = Q(eta) + sum_j B_j(<m_j, eta>)`` where ``Q`` is a polynomial of degree <= 2 with
positive semi-definite Hessian, each ``B_j`` is an admissible scalar log-partition function on
the image interval of ``<m_j, eta>`` over the box, and the ``m_j`` together with the range of
``Hess Q`` span ``R^k``, then ``A`` is admissible:

    exp(A(eta)) = E exp(<eta, G + sum_j S_j m_j>),  G Gaussian (maybe degenerate), S_j ~ mu_j
    independent,

so ``exp(A)`` is the Laplace transform of a nonnegative measure (a convolution of a Gaussian
and the push-forwards of the ``mu_j`` along the lines ``R m_j``: the closure of Laplace
transforms under sums in separate parameters and affine maps), and the spanning condition
makes ``Hess A`` positive definite (minimality). A separable ``A = A_1(eta_1) + ... +
A_k(eta_k)`` is the case ``m_j = e_j``: then each ``A_j`` is also *necessary* (it is ``A``
along an axis), so a rejected part rejects ``A``.

Each scalar part is decided by the scalar registry (a proof) or, failing that, by the full
scalar check (:func:`deqfam.derive.admissibility.check`), whose strength it inherits.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from deqfam.vocab import Outcome, Strength, Support, Verdict

from ...family import derive_family
from ...spec import ETA, FamilySpec, Y
from ..checker import check
from ..registry import recognise
from ..report import Evidence
from ..stage import StageResult
from .context import VectorContext, VectorStage
from .marcinkiewicz import null_directions
from .view import image_interval


@dataclass(frozen=True)
class Part:
    """One scalar part ``B(<m, eta>)``: the direction ``m`` and ``B`` as an expression in ETA."""

    m: tuple[sp.Rational, ...]
    B: sp.Expr


def linear_form(ctx: VectorContext, term: sp.Expr) -> tuple | None:
    """m with ``term`` a function of ``<m, eta>`` alone (first nonzero entry 1), or None.

    A single eta_i gives e_i; otherwise the candidate m is read off the gradient at a random
    point (numerical) and then proven: ``v . grad(term) = 0`` symbolically for a basis ``v``
    of the orthogonal complement of m.
    """
    etas = ctx.etas
    used = [i for i, e in enumerate(etas) if term.has(e)]
    k = len(etas)
    if len(used) == 1:
        return tuple(sp.Integer(int(j == used[0])) for j in range(k))
    nulls = null_directions(ctx, term)
    if len(nulls) != k - 1:
        return None
    M = sp.Matrix([list(v) for v in nulls])
    ms = M.nullspace()
    if len(ms) != 1:
        return None
    m = ms[0]
    m = m / next(x for x in m if x != 0)
    grad = [sp.diff(term, e) for e in etas]
    for v in nulls:
        if sp.simplify(sum(vi * g for vi, g in zip(v, grad, strict=True))) != 0:
            return None
    return tuple(sp.nsimplify(x) for x in m)


def decompose(ctx: VectorContext) -> tuple[sp.Expr, list[Part]] | None:
    """(Q, parts): the polynomial part of degree <= 2 and the scalar parts grouped by their
    direction; None when a term is a polynomial of higher degree or not of one linear form."""
    etas = ctx.etas
    quad, groups = [], {}
    for term in sp.Add.make_args(ctx.A):
        if term.is_polynomial(*etas):
            if term.has(*etas) and sp.Poly(term, *etas).total_degree() > 2:
                return None
            quad.append(term)
            continue
        m = linear_form(ctx, term)
        if m is None:
            return None
        groups[m] = groups.get(m, sp.S.Zero) + term
    parts = []
    for m, expr in groups.items():
        norm2 = sum(x * x for x in m)
        at = {e: ETA * mi / norm2 for e, mi in zip(etas, m, strict=True)}
        parts.append(Part(m, sp.simplify(expr.subs(at, simultaneous=True))))
    return sp.Add(*quad), parts


def scalar_part_verdict(ctx: VectorContext, part: Part) -> tuple[Verdict, Strength | None, str]:
    """The scalar registry's proof, else the scalar check's verdict on the image interval."""
    dom = image_interval(ctx.view, part.m)
    rec = recognise(part.B, dom)
    if rec is not None:
        return Verdict.ADMISSIBLE, Strength.PROVEN, f"registry: {rec.law}"
    axis = [i for i, x in enumerate(part.m) if x != 0]
    single = len(axis) == 1
    support = ctx.view.support if single else str(Support.REAL)
    T = ctx.view.T[axis[0]].subs(ctx.view.y, Y) if single else Y
    spec = FamilySpec(
        name=f"{ctx.view.name}_part",
        description=f"scalar part along {part.m}",
        support=support,
        sufficient_statistic=T,
        log_partition=part.B,
        base_measure=None,
        parameters={},
        parameter_symbols={},
        parameter_ranges={},
        domain=dom,
        source=f"<part of {ctx.view.name}>",
        text=f"# part of {ctx.view.name} along {part.m}\n",
    )
    rep = check(derive_family(spec), hankel=False)
    return Verdict(rep.verdict), rep.strength, f"scalar check: {rep.reason}"


def closure_evidence(ctx: VectorContext) -> Evidence:
    """Admissible by closure when every part is admissible and the directions span R^k."""
    found = decompose(ctx)
    if found is None or not found[1]:
        return Evidence(
            "closure",
            Outcome.SKIPPED,
            None,
            "A is not a sum of scalar parts in linear forms of eta (no closure rule applies)",
        )
    Q, parts = found
    HQ = sp.hessian(Q, ctx.etas) if Q.has(*ctx.etas) else sp.zeros(ctx.view.k)
    if HQ.is_positive_semidefinite is not True:
        return Evidence(
            "closure", Outcome.SKIPPED, None, f"quadratic part {Q} is not positive semi-definite"
        )
    span = sp.Matrix.vstack(HQ, *[sp.Matrix([list(p.m)]) for p in parts]).rank()
    separable = (
        HQ.is_diagonal()
        and len({p.m for p in parts}) == len(parts)
        and all(sum(1 for x in p.m if x != 0) == 1 for p in parts)
    )
    details = {"quadratic_part": str(Q), "span_rank": span, "separable": separable, "parts": []}
    strengths = []
    for p in parts:
        verdict, strength, why = scalar_part_verdict(ctx, p)
        details["parts"].append(
            {
                "direction": [str(x) for x in p.m],
                "B": str(p.B),
                "verdict": str(verdict),
                "strength": strength,
                "how": why,
            }
        )
        if verdict != Verdict.ADMISSIBLE:
            if separable and verdict == Verdict.NOT_ADMISSIBLE:
                return Evidence(
                    "closure",
                    Outcome.FAIL,
                    strength,
                    f"separable A: part {p.B} along {p.m} is not admissible ({why})",
                    details,
                )
            return Evidence(
                "closure",
                Outcome.SKIPPED,
                None,
                f"part {p.B} along {p.m} is {verdict}: no closure verdict",
                details,
            )
        strengths.append(strength)
    if span < ctx.view.k:
        return Evidence(
            "closure",
            Outcome.SKIPPED,
            None,
            f"the parts span only {span} of "
            f"{ctx.view.k} dimensions (not strictly convex: see convexity)",
            details,
        )
    strength = (
        Strength.PROVEN if all(s == Strength.PROVEN for s in strengths) else (Strength.NUMERICAL)
    )
    kind = "separable sum" if separable else "sum of scalar families in linear forms"
    return Evidence(
        "closure",
        Outcome.PASS,
        strength,
        f"{kind} of {len(parts)} admissible scalar part(s)"
        f"{' and a Gaussian part' if Q.has(*ctx.etas) else ''} spanning R^{ctx.view.k}:"
        " exp(A) is the Laplace transform of their convolution",
        details,
    )


class ClosureStage(VectorStage):
    """Registry and closure in k dimensions (:func:`closure_evidence`)."""

    name = stage = "closure"

    def run(self, ctx: VectorContext) -> StageResult:
        return StageResult.of(closure_evidence(ctx))
