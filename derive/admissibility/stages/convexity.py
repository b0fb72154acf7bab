"""Stage ``convexity``: ``A'' > 0`` by SymPy proof (``Family.convexity``) and an mpmath grid.

One grid point with ``A'' <= 0``, confirmed at 60 digits, is a certain rejection: for an
admissible ``A``, ``A''`` is the variance of a non-degenerate tilted law.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath

from deqfam.vocab import Outcome, Strength

from ..grids import interior_grid, mp_real
from ..report import Evidence
from ..stage import Context, Stage, StageResult
from ..thresholds import MP_DPS


def convexity_evidence(ctx: Context) -> Evidence:
    fam = ctx.family
    if fam.dsigma == 0:
        return Evidence(
            "convexity", Outcome.FAIL, Strength.PROVEN, "A'' = 0 identically: not strictly convex"
        )
    # a light cross-check when SymPy proved A'' > 0, a dense certificate otherwise
    grid = interior_grid(ctx.domain, 41 if fam.convexity.proven else 201)
    vals = []
    with mpmath.workdps(20):
        for t in grid:
            vals.append(mp_real(ctx.fd2A, float(t)))
    known = [(float(t), v) for t, v in zip(grid, vals, strict=True) if v is not None]
    details: dict[str, Any] = {
        "symbolic": fam.convexity.status,
        "symbolic_method": fam.convexity.method,
        "grid_points": len(grid),
        "evaluated": len(known),
    }
    if known:
        tmin, vmin = min(known, key=lambda p: p[1])
        details.update(min_A2=float(vmin), argmin=tmin)
        if vmin <= 0:
            with mpmath.workdps(MP_DPS):
                v2 = mp_real(ctx.fd2A, tmin)
            if v2 is not None and v2 <= 0:
                details["A2_at_witness_60_digits"] = mpmath.nstr(v2, 30)
                return Evidence(
                    "convexity",
                    Outcome.FAIL,
                    Strength.PROVEN,
                    f"A''({tmin:.6g}) = {mpmath.nstr(v2, 8)} <= 0 (20 and 60 digits): a "
                    "variance cannot vanish or be negative",
                    details,
                )
    if fam.convexity.proven:
        return Evidence(
            "convexity",
            Outcome.PASS,
            Strength.PROVEN,
            f"A'' > 0 proven symbolically ({fam.convexity.method}); grid min "
            f"{float(details.get('min_A2', math.nan)):.3g}",
            details,
        )
    if len(known) == len(grid):
        return Evidence(
            "convexity",
            Outcome.PASS,
            Strength.NUMERICAL,
            f"A'' > 0 at all {len(grid)} grid points (20-digit mpmath), min "
            f"{float(details['min_A2']):.3g}; no symbolic proof",
            details,
        )
    return Evidence(
        "convexity", Outcome.UNDECIDED, None, "A'' could not be evaluated on the grid", details
    )


class ConvexityStage(Stage):
    """Strict convexity of ``A`` (:func:`convexity_evidence`); symbolic, so it also runs
    when the declared domain failed."""

    name = stage = "convexity"
    after_bad_domain = True

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(convexity_evidence(ctx))
