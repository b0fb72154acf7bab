"""Vector stage ``convexity``: ``Hess A`` positive definite on the box.

Symbolic first (Sylvester's criterion: every leading principal minor, simplified, is positive
once each ``eta_i`` is written through a positive symbol sweeping its interval), within
:data:`SYMBOLIC_S` seconds (:class:`deqfam.derive.budget.deadline`); then numerical evidence:
the smallest eigenvalue of ``Hess A`` at box points (float64), every point where it is not
clearly positive re-evaluated at 30 and 60 digits (mpmath). A confirmed non-positive eigenvalue
is a certain rejection: ``Hess A`` is the covariance of ``T`` under a tilted law, and a
minimal family's covariance is positive definite.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from deqfam.vocab import Outcome, Strength

from ...budget import DeadlineExceeded, checkpoint, deadline
from ..report import Evidence
from ..stage import StageResult
from .context import VectorContext, VectorStage
from .view import Interval, box_points

#: wall-clock budget (seconds) of the symbolic Sylvester proof
SYMBOLIC_S = 2.0
#: eigenvalues below this multiple of the largest one are re-checked in mpmath
RECHECK_RATIO = 1e-9


def sweep(symbol: sp.Symbol, interval: Interval, index: int) -> sp.Expr:
    """eta_i as an expression of a fresh symbol that sweeps the open interval exactly:
    real on R, hi - t or lo + t (t > 0) on a half-line, a logistic map on a finite one."""
    lo, hi = interval
    if lo == -sp.oo and hi == sp.oo:
        return sp.Symbol(f"s{index}", real=True)
    t = sp.Symbol(f"t{index}", positive=True)
    if lo == -sp.oo:
        return hi - t
    if hi == sp.oo:
        return lo + t
    u = sp.Symbol(f"u{index}", real=True)
    return lo + (hi - lo) * sp.exp(u) / (1 + sp.exp(u))


def leading_minors(H: sp.Matrix) -> list[sp.Expr]:
    """The k leading principal minors det H[:m, :m], m = 1..k."""
    return [H[:m, :m].det(method="berkowitz") for m in range(1, H.rows + 1)]


def sylvester_proof(ctx: VectorContext) -> tuple[bool, str]:
    """(proven, how): every leading minor positive on the box by SymPy's assumptions."""
    subs = {
        e: sweep(e, iv, i) for i, (e, iv) in enumerate(zip(ctx.etas, ctx.view.domain, strict=True))
    }
    for m, minor in enumerate(leading_minors(ctx.hessian), start=1):
        checkpoint()
        cand = sp.factor(sp.simplify(minor.subs(subs)))
        if cand.is_positive is not True:
            return False, f"SymPy could not prove leading minor {m} positive"
    return True, f"Sylvester: all {ctx.view.k} leading minors of Hess A positive (SymPy)"


def mp_min_eigenvalue(ctx: VectorContext, point, dps: int) -> mpmath.mpf | None:
    """Smallest eigenvalue of Hess A at ``point`` at ``dps`` digits (None if not evaluable)."""
    with mpmath.workdps(dps):
        try:
            H = mpmath.matrix(ctx.mp_hess(*[mpmath.mpf(float(x)) for x in point]))
            H = (H + H.T) / 2
            ev = mpmath.eigsy(H, eigvals_only=True)
        except (ArithmeticError, ValueError, TypeError):
            return None
        return min(ev)


def grid_min_eigenvalues(ctx: VectorContext, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(smallest, largest) eigenvalue of Hess A at each point in float64 (NaN: not evaluable)."""
    lo, hi = np.full(len(pts), np.nan), np.full(len(pts), np.nan)
    for n, p in enumerate(pts):
        H = ctx.hessian_at(p)
        if np.all(np.isfinite(H)):
            ev = np.linalg.eigvalsh((H + H.T) / 2)
            lo[n], hi[n] = ev[0], ev[-1]
    return lo, hi


def numerical_evidence(ctx: VectorContext, proven: bool, how: str) -> Evidence:
    """Eigenvalues at box points; doubtful points re-checked at 30 and 60 digits."""
    pts = box_points(ctx.view, 11 if proven else 21, 200 if proven else 800, ctx.seed)
    lo, hi = grid_min_eigenvalues(ctx, pts)
    rel = lo / np.where(hi > 0, hi, 1.0)
    doubt = np.flatnonzero(~np.isfinite(lo) | (rel <= RECHECK_RATIO))
    unknown = 0
    for n in doubt[:50]:
        checkpoint()
        v30 = mp_min_eigenvalue(ctx, pts[n], 30)
        if v30 is None:
            unknown += 1
            continue
        if v30 <= 0:
            v60 = mp_min_eigenvalue(ctx, pts[n], 60)
            if v60 is not None and v60 <= 0:
                at = ", ".join(f"{float(x):.6g}" for x in pts[n])
                return Evidence(
                    "convexity",
                    Outcome.FAIL,
                    Strength.PROVEN,
                    f"Hess A at eta = ({at}) has eigenvalue {mpmath.nstr(v60, 8)} <= 0 (30 and "
                    "60 digits): a covariance matrix of a minimal family is positive definite",
                    {"witness": [float(x) for x in pts[n]], "min_eigenvalue": float(v60)},
                )
        lo[n] = float(v30)
    unknown += max(0, doubt.size - 50)
    finite = np.isfinite(lo)
    worst_val = float(np.min(lo[finite])) if np.any(finite) else None
    worst_at = pts[int(np.nanargmin(np.where(finite, lo, np.nan)))] if np.any(finite) else None
    details: dict[str, Any] = {
        "symbolic": "proven" if proven else "unproven",
        "symbolic_method": how,
        "points": len(pts),
        "min_eigenvalue": worst_val,
        "min_relative_eigenvalue": float(np.nanmin(rel)) if np.any(np.isfinite(rel)) else None,
        "at": None if worst_at is None else [float(x) for x in worst_at],
        "not_evaluable": unknown,
    }
    if proven:
        return Evidence(
            "convexity",
            Outcome.PASS,
            Strength.PROVEN,
            f"Hess A positive definite on the box, proven ({how}); grid min eigenvalue "
            f"{worst_val if worst_val is not None else math.nan:.3g}",
            details,
        )
    if unknown == 0 and np.all(lo > 0):
        return Evidence(
            "convexity",
            Outcome.PASS,
            Strength.NUMERICAL,
            f"Hess A positive definite at all {len(pts)} box points (float64, doubtful ones at "
            f"30 digits), smallest eigenvalue {float(np.min(lo)):.3g}; {how}",
            details,
        )
    return Evidence(
        "convexity",
        Outcome.UNDECIDED,
        None,
        f"Hess A not evaluable at {unknown} of {len(pts)} box points; {how}",
        details,
    )


class VectorConvexityStage(VectorStage):
    """Positive definiteness of Hess A: Sylvester proof within :data:`SYMBOLIC_S` seconds,
    then eigenvalues on the box (:func:`numerical_evidence`)."""

    name = stage = "convexity"

    def __init__(self, symbolic_s: float = SYMBOLIC_S) -> None:
        self.symbolic_s = symbolic_s

    def run(self, ctx: VectorContext) -> StageResult:
        return StageResult.of(hessian_convexity(ctx, self.symbolic_s))


def hessian_convexity(ctx: VectorContext, symbolic_s: float = SYMBOLIC_S) -> Evidence:
    """The convexity finding: the Sylvester proof (:func:`sylvester_proof`) within
    ``symbolic_s`` seconds, then the eigenvalues on the box (:func:`numerical_evidence`).
    The one implementation of "Hess A positive definite on the box" (``deqfam derive`` of a
    vector spec reads it through :func:`deqfam.derive.vector_check.hessian_positive_definite`)."""
    try:
        with deadline(symbolic_s):
            proven, how = sylvester_proof(ctx)
    except DeadlineExceeded:
        proven, how = False, f"Sylvester proof not found within {symbolic_s:g} s"
    except (TypeError, ValueError, RecursionError, NotImplementedError) as exc:
        proven, how = False, f"Sylvester proof failed ({type(exc).__name__})"
    return numerical_evidence(ctx, proven, how)
