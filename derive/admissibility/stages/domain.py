"""Stage ``domain``: ``A`` real and finite on a grid inside the declared domain.

The domain is declared, never detected; a grid point where ``A`` is complex or infinite
(30-digit mpmath, with removable singularities taken as limits) is a certain rejection.
"""

from __future__ import annotations

import mpmath

from deqfam.vocab import Outcome, Strength

from ..grids import interior_grid, mp_real
from ..report import Evidence
from ..stage import Context, Stage, StageResult


def domain_evidence(ctx: Context) -> Evidence:
    grid = interior_grid(ctx.domain, 41)
    bad = []
    with mpmath.workdps(30):
        for t in grid:
            if mp_real(ctx.fA, float(t)) is None:
                bad.append(float(t))
    lo, hi = (str(b) for b in ctx.domain)
    details = {"declared": [lo, hi], "grid_points": len(grid), "grid_range": [grid[0], grid[-1]]}
    if bad:
        details["bad_points"] = bad[:10]
        return Evidence(
            "domain",
            Outcome.FAIL,
            Strength.PROVEN,
            f"A is not real and finite at eta = {bad[0]:.6g} inside the declared domain "
            f"({lo}, {hi}) (30-digit mpmath)",
            details,
        )
    return Evidence(
        "domain",
        Outcome.PASS,
        Strength.NUMERICAL,
        f"declared domain ({lo}, {hi}); A real and finite at {len(grid)} grid points",
        details,
    )


class DomainStage(Stage):
    """``A`` real and finite at 41 interior points (:func:`domain_evidence`)."""

    name = stage = "domain"

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(domain_evidence(ctx))
