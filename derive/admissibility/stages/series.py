"""Stage ``series``: exact power-series masses of ``exp(A)`` in ``x = e^eta``.

A negative coefficient is a negative mass (Laplace transforms are unique): a proof of
rejection. A polynomial with nonnegative coefficients is a finite nonnegative measure: a
proof of admissibility. Otherwise nonnegative leading coefficients are numerical evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

from deqfam.vocab import Outcome, Strength

from ...bounds import series_too_long
from ...spec import ETA
from ..grids import is_finite
from ..report import Evidence
from ..series_engine import Inexact, NotSeries, SeriesEngine
from ..stage import Context, Stage, StageResult
from ..thresholds import MP_DPS, SERIES_ORDER


def series_evidence(ctx: Context, order: int) -> Evidence:
    x = sp.Symbol("x", positive=True)
    E = sp.exp(ctx.A_rest.subs(ETA, sp.log(x)))
    if E.has(ETA):
        return Evidence("series", Outcome.SKIPPED, None, "A is not a function of e^eta alone")
    polynomial = E.is_polynomial(x)
    if is_finite(ctx.domain[0]) and not polynomial:
        return Evidence(
            "series",
            Outcome.SKIPPED,
            None,
            "domain does not reach -oo, so a series at x = e^eta = 0 need not describe A",
        )
    K = order
    if polynomial and (why := series_too_long(E, x)):
        return Evidence("series", Outcome.SKIPPED, None, why)
    if polynomial:
        K = max(order, int(sp.Poly(E, x).degree()) + 1)
    mode = "exact rationals"
    try:
        coeffs = SeriesEngine(x, K, exact=True).top(E)
    except Inexact:
        mode = f"mpmath, {MP_DPS} digits"
        try:
            with mpmath.workdps(MP_DPS):
                coeffs = SeriesEngine(x, K, exact=False).top(E)
        except (NotSeries, ZeroDivisionError) as exc:
            return Evidence("series", Outcome.SKIPPED, None, f"no power series in x = e^eta: {exc}")
    except (NotSeries, ZeroDivisionError) as exc:
        return Evidence("series", Outcome.SKIPPED, None, f"no power series in x = e^eta: {exc}")
    scale = max(abs(c) for c in coeffs) or 1
    tol = 0 if mode == "exact rationals" else mpmath.mpf(10) ** (-(MP_DPS - 15)) * scale
    neg = [(k, c) for k, c in enumerate(coeffs) if c < 0 and abs(c) > tol]
    shift = ctx.shift
    details: dict[str, Any] = {
        "variable": "x = exp(eta)",
        "order": K,
        "mode": mode,
        "polynomial": bool(polynomial),
        "support_shift": str(shift),
        "coefficients": [
            str(c) if mode == "exact rationals" else mpmath.nstr(c, 20) for c in coeffs[:16]
        ],
        "coefficients_float": [float(c) for c in coeffs[:16]],
        "min_coefficient": float(min(coeffs)),
    }
    if neg:
        k, c = neg[0]
        details.update(
            first_negative_index=k,
            first_negative=str(c) if mode.startswith("exact") else mpmath.nstr(c, 30),
            first_negative_float=float(c),
            negative_indices=[i for i, _ in neg[:10]],
        )
        return Evidence(
            "series",
            Outcome.FAIL,
            Strength.PROVEN,
            f"coefficient of x^{k} in exp(A) is {details['first_negative']} < 0 ({mode}): "
            f"mass {float(c):.6g} at y = {k}{'' if shift == 0 else f' + {shift}'}, and "
            "Laplace transforms are unique",
            details,
        )
    if polynomial and sum(1 for c in coeffs if c != 0) < 2:
        return Evidence(
            "series",
            Outcome.FAIL,
            Strength.PROVEN,
            "exp(A) is a single exponential: the measure is one atom (degenerate), A is "
            "affine and not strictly convex",
            details,
        )
    if polynomial:
        return Evidence(
            "series",
            Outcome.PASS,
            Strength.PROVEN,
            f"exp(A) is a polynomial in e^eta with nonnegative coefficients ({mode}): the "
            "Laplace transform of a finite nonnegative measure",
            details,
        )
    return Evidence(
        "series",
        Outcome.PASS,
        Strength.NUMERICAL,
        f"first {K} coefficients of exp(A) in x = e^eta are >= 0 ({mode})",
        details,
    )


@dataclass(frozen=True)
class SeriesStage(Stage):
    """The first ``order`` coefficients of exp(A) in x = e^eta (:func:`series_evidence`)."""

    order: int = SERIES_ORDER
    name = stage = "series"

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(series_evidence(ctx, self.order))
