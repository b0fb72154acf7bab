"""Stage ``exp_convexity``: Bernstein-Widder exponential convexity at 60 digits.

``C_ij = exp(A((t_i + t_j)/2) - (A(t_i) + A(t_j))/2)`` is the Gram matrix of the functions
``e^{t_i y / 2}`` in ``L^2(mu)`` normalised, so it is PSD when ``A`` is admissible; a real-only
cross-check (numerical evidence).
"""

from __future__ import annotations

import mpmath

from deqfam.vocab import Outcome, Strength

from ..grids import expconv_points, mp_real
from ..report import Evidence
from ..stage import Context, Stage, StageResult
from ..thresholds import MP_DPS


def exp_convexity_evidence(ctx: Context) -> Evidence:
    pts = expconv_points(ctx.domain)
    with mpmath.workdps(MP_DPS):
        a = [mp_real(ctx.fA, t) for t in pts]
        mids = {}
        for i in range(len(pts)):
            for j in range(i, len(pts)):
                mids[i, j] = mp_real(ctx.fA, (mpmath.mpf(pts[i]) + mpmath.mpf(pts[j])) / 2)
        if any(v is None for v in a) or any(v is None for v in mids.values()):
            return Evidence("exp_convexity", Outcome.SKIPPED, None, "A not evaluable at the points")
        n = len(pts)
        C = mpmath.matrix(n, n)
        for (i, j), m in mids.items():
            C[i, j] = C[j, i] = mpmath.exp(m - (a[i] + a[j]) / 2)
        ev = mpmath.eigsy(C, eigvals_only=True)
        lam = sorted(ev[i] for i in range(n))
    tol = mpmath.mpf(10) ** (-(MP_DPS - 15)) * lam[-1]
    details = {
        "points": pts,
        "digits": MP_DPS,
        "eigenvalues": [mpmath.nstr(v, 6) for v in lam],
        "min_eigenvalue": float(lam[0]),
        "tolerance": float(tol),
    }
    if lam[0] < -tol:
        return Evidence(
            "exp_convexity",
            Outcome.FAIL,
            Strength.NUMERICAL,
            f"exp(A((t_i + t_j)/2) - (A(t_i) + A(t_j))/2) has eigenvalue "
            f"{mpmath.nstr(lam[0], 6)} < 0: A is not exponentially convex (Bernstein-Widder)",
            details,
        )
    return Evidence(
        "exp_convexity",
        Outcome.PASS,
        Strength.NUMERICAL,
        f"{n}x{n} exponential-convexity matrix PSD at {MP_DPS} digits "
        f"(min eigenvalue {mpmath.nstr(lam[0], 3)})",
        details,
    )


class ExpConvexityStage(Stage):
    """The 8x8 exponential-convexity matrix (:func:`exp_convexity_evidence`)."""

    name = stage = "exp_convexity"

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(exp_convexity_evidence(ctx))
