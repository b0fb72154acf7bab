"""Vector stage ``domain``: ``A`` real and finite at points of the declared box.

A point of the box where ``A`` is complex or infinite at 30 digits (mpmath, with removable
singularities left to the float64 pass) is a certain rejection: the box is declared, and a
log-partition function is finite on its whole domain.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

from deqfam.vocab import Outcome, Strength

from ..grids import real_finite
from ..report import Evidence
from ..stage import StageResult
from .context import VectorContext, VectorStage
from .view import box_points


def mp_real_value(f, point) -> mpmath.mpf | None:
    """f(point) when real and finite at the current precision, else None."""
    try:
        v = f(*[mpmath.mpf(float(x)) for x in point])
    except (ArithmeticError, ValueError, TypeError):
        return None
    return real_finite(v)


def domain_evidence(ctx: VectorContext) -> Evidence:
    """A at up to 400 box points in float64; points that fail are re-evaluated at 30 digits."""
    pts = box_points(ctx.view, 9, 400, ctx.seed)
    suspicious = []
    with np.errstate(all="ignore"):
        for p in pts:
            try:
                v = complex(ctx.fA(*p))
            except (ArithmeticError, ValueError, TypeError):
                v = complex(math.nan)
            if not (math.isfinite(v.real) and abs(v.imag) <= 1e-12 * max(1.0, abs(v.real))):
                suspicious.append(p)
    bad = []
    with mpmath.workdps(30):
        bad = [p for p in suspicious if mp_real_value(ctx.mp_A, p) is None]
    box = [[str(lo), str(hi)] for lo, hi in ctx.view.domain]
    details = {"declared": box, "points": len(pts)}
    if bad:
        details["bad_points"] = [list(map(float, p)) for p in bad[:10]]
        where = ", ".join(f"{float(x):.6g}" for x in bad[0])
        return Evidence(
            "domain",
            Outcome.FAIL,
            Strength.PROVEN,
            f"A is not real and finite at eta = ({where}) inside the declared box (30-digit "
            "mpmath)",
            details,
        )
    return Evidence(
        "domain",
        Outcome.PASS,
        Strength.NUMERICAL,
        f"declared box {' x '.join(f'({lo}, {hi})' for lo, hi in box)}; A real and finite at "
        f"{len(pts)} points",
        details,
    )


class VectorDomainStage(VectorStage):
    """``A`` real and finite on the box (:func:`domain_evidence`)."""

    name = stage = "domain"

    def run(self, ctx: VectorContext) -> StageResult:
        return StageResult.of(domain_evidence(ctx))
