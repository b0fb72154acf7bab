"""Vector stage ``structure``: the multivariate Marcinkiewicz rule, along the whole space and
along lines.

For an admissible ``A`` and any point ``a`` and direction ``d``, ``g(t) = A(a + t d) - A(a)``
is the cumulant function of the scalar ``<d, T(y)>`` under the law tilted to ``a``. So:

* ``A`` a polynomial of total degree > 2: along a generic line ``g`` is a polynomial of the
  same degree, and ``exp`` of a polynomial of degree > 2 is never a moment generating function
  (Marcinkiewicz 1938): not admissible (proof);
* ``A`` a polynomial of degree 2: admissible iff its (constant) Hessian is positive definite
  (a Gaussian ``N(b, Hess A)``, proof either way);
* ``A`` not a polynomial but a polynomial along some line (checked symbolically with ``a``
  left free): degree > 2 rejects by Marcinkiewicz; degree <= 1 rejects because ``A`` is
  affine along ``d`` (``d^T Hess A d = 0``: not strictly convex, the family is not minimal).

Candidate directions: the axes, ``e_i +- e_j``, and the directions along which the
non-polynomial terms of ``A`` are constant (the numerical null space of their gradients at
random points, rounded to small rationals; every candidate is then decided symbolically).
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from deqfam.vocab import Outcome, Strength

from ..report import Evidence
from ..stage import StageResult
from .context import VectorContext, VectorStage
from .view import box_points, rational

_T = sp.Symbol("t", real=True)


def polynomial_evidence(ctx: VectorContext) -> Evidence:
    """A polynomial in all of eta: decided by its total degree and, at degree 2, its Hessian."""
    A, etas = ctx.A, ctx.etas
    p = sp.Poly(A, *etas)
    deg = p.total_degree()
    details = {"polynomial_total_degree": deg}
    if deg > 2:
        return Evidence(
            "structure",
            Outcome.FAIL,
            Strength.PROVEN,
            f"A is a polynomial of total degree {deg} > 2 in eta: along a generic line it is a "
            f"polynomial of degree {deg}, and exp(polynomial of degree > 2) is never a moment "
            "generating function (Marcinkiewicz)",
            {**details, "rule": "Marcinkiewicz 1938, applied to <d, T(y)> for a generic d"},
        )
    H = sp.Matrix(ctx.hessian)
    if deg == 2 and H.is_positive_definite:
        return Evidence(
            "structure",
            Outcome.PASS,
            Strength.PROVEN,
            f"A is quadratic with positive definite Hessian {H.tolist()}: a Gaussian law of T",
            {**details, "law": f"N(b, {H.tolist()})", "infinitely_divisible": True},
        )
    return Evidence(
        "structure",
        Outcome.FAIL,
        Strength.PROVEN,
        f"A is a polynomial of degree {deg} whose Hessian {H.tolist()} is not positive "
        "definite: not strictly convex",
        details,
    )


def candidate_directions(ctx: VectorContext) -> list[tuple[sp.Rational, ...]]:
    """Axes, e_i +- e_j, and rational null directions of the non-polynomial part's gradient."""
    k, etas = ctx.view.k, ctx.etas
    dirs: list[tuple] = []
    for i in range(k):
        dirs.append(tuple(sp.Integer(int(j == i)) for j in range(k)))
    for i, j in itertools.combinations(range(k), 2):
        for s in (1, -1):
            dirs.append(tuple(sp.Integer(int(m == i) + s * int(m == j)) for m in range(k)))
    rough = sp.Add(*[t for t in sp.Add.make_args(ctx.A) if not t.is_polynomial(*etas)])
    if rough.has(*etas):
        dirs.extend(null_directions(ctx, rough))
    seen, out = set(), []
    for d in dirs:
        if any(d) and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def null_directions(ctx: VectorContext, expr: sp.Expr) -> list[tuple]:
    """Rational directions d with grad(expr) . d = 0 at k + 3 random box points (numerical
    null space by SVD, rounded; only a candidate list: each one is decided symbolically)."""
    k = ctx.view.k
    g = sp.lambdify(ctx.etas, [sp.diff(expr, e) for e in ctx.etas], modules=["scipy", "numpy"])
    pts = box_points(ctx.view, 7, k + 3, ctx.seed + 1)
    with np.errstate(all="ignore"):
        rows = [np.asarray(g(*p), dtype=float) for p in pts]
    M = np.array([r for r in rows if np.all(np.isfinite(r))])
    if M.size == 0:
        return []
    M = M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-300)
    _, s, vt = np.linalg.svd(M)
    s = np.concatenate([s, np.zeros(k - s.size)])
    out = []
    for sv, v in zip(s, vt, strict=True):
        if sv <= 1e-9:
            v = v / v[np.argmax(np.abs(v))]
            out.append(tuple(rational(x, 12) for x in v))
    return out


def line_degree(ctx: VectorContext, d: tuple) -> int | None:
    """Degree in t of A(a + t d) for a free point a (None when not a polynomial in t)."""
    a = sp.symbols(f"a0:{ctx.view.k}", real=True)
    g = ctx.A.subs({e: ai + _T * di for e, ai, di in zip(ctx.etas, a, d, strict=True)})
    if not g.is_polynomial(_T):
        return None
    return sp.Poly(sp.expand(g), _T).degree()


def line_rule_evidence(ctx: VectorContext) -> Evidence:
    """Marcinkiewicz (degree > 2) or flatness (degree <= 1) along a candidate direction."""
    tried = []
    for d in candidate_directions(ctx):
        deg = line_degree(ctx, d)
        tried.append([str(x) for x in d])
        if deg is None:
            continue
        dtxt = f"({', '.join(map(str, d))})"
        details = {"direction": [str(x) for x in d], "degree_along_line": deg}
        if deg > 2:
            return Evidence(
                "structure",
                Outcome.FAIL,
                Strength.PROVEN,
                f"A(a + t d) is a polynomial of degree {deg} > 2 in t for every a, d = {dtxt}: "
                f"the cumulant function of <d, T(y)> cannot be a polynomial of degree > 2 "
                "(Marcinkiewicz)",
                details,
            )
        if deg <= 1:
            return Evidence(
                "structure",
                Outcome.FAIL,
                Strength.PROVEN,
                f"A is affine along d = {dtxt} (d^T Hess A d = 0): <d, T(y)> is degenerate, "
                "not a minimal family",
                details,
            )
    return Evidence(
        "structure",
        Outcome.SKIPPED,
        None,
        f"A is not a polynomial, nor a polynomial along any of {len(tried)} candidate lines",
        {"directions_tried": tried},
    )


class MarcinkiewiczStage(VectorStage):
    """The multivariate Marcinkiewicz rule (:func:`polynomial_evidence`,
    :func:`line_rule_evidence`)."""

    name = stage = "structure"

    def run(self, ctx: VectorContext) -> StageResult:
        if ctx.A.is_polynomial(*ctx.etas):
            return StageResult.of(polynomial_evidence(ctx))
        return StageResult.of(line_rule_evidence(ctx))
