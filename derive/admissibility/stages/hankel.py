"""Stage ``hankel``: the moment (Hankel) matrix of the standardised tilted law is PSD.

A real-only cross-check at one tilt (its high-order numerical derivatives are the slowest
mpmath work of the check).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath

from deqfam.vocab import Outcome, Strength

from ..grids import mp_real
from ..report import Evidence
from ..stage import Context, Stage, StageResult


def hankel_evidence(ctx: Context, theta0: float, order: int = 8) -> Evidence:
    """Moment (Hankel) matrix of the standardised tilted law, from Taylor coefficients.

    m_k = k! [h^k] exp(A(theta0 + h/sd) - A(theta0) - mu h/sd); H_ij = m_{i+j} must be PSD.
    An LDL^T pivot ~ 0 means the law has finitely many atoms (then larger H are singular).
    """
    with mpmath.workdps(25):
        t0 = mpmath.mpf(theta0)
        A0 = mp_real(ctx.fA_rest, t0)
        mu = mp_real(ctx.fdA_rest, t0)
        var = mp_real(ctx.fd2A, t0)
        if A0 is None or mu is None or var is None or var <= 0:
            return Evidence("hankel", Outcome.SKIPPED, None, "A, A', A'' not evaluable at the tilt")
        sd = mpmath.sqrt(var)

        def mgf(h):
            return mpmath.exp(ctx.fA_rest(t0 + h / sd) - A0 - mu * h / sd)

        try:
            c = mpmath.taylor(mgf, 0, order)
        except (ValueError, ZeroDivisionError, TypeError):
            return Evidence("hankel", Outcome.SKIPPED, None, "Taylor coefficients not computable")
        m = [mpmath.re(c[k]) * mpmath.factorial(k) for k in range(order + 1)]
        n = order // 2 + 1
        H = [[m[i + j] for j in range(n)] for i in range(n)]
        pivots = []
        atoms = None
        L = [[mpmath.mpf(0)] * n for _ in range(n)]
        for i in range(n):
            d = H[i][i] - mpmath.fsum(L[i][k] ** 2 * pivots[k] for k in range(i))
            if abs(d) < mpmath.mpf(10) ** -12 * max(1, abs(H[i][i])):
                atoms = i
                break
            pivots.append(d)
            if d < 0:
                break
            for j in range(i + 1, n):
                L[j][i] = (
                    H[j][i] - mpmath.fsum(L[j][k] * L[i][k] * pivots[k] for k in range(i))
                ) / d
    details = {
        "tilt": theta0,
        "moments_standardised": [mpmath.nstr(v, 10) for v in m],
        "pivots": [mpmath.nstr(p, 8) for p in pivots],
        "finitely_many_atoms": atoms,
    }
    if pivots and pivots[-1] < 0:
        return Evidence(
            "hankel",
            Outcome.FAIL,
            Strength.NUMERICAL,
            f"theta0={theta0:g}: Hankel moment matrix has a negative pivot "
            f"{mpmath.nstr(pivots[-1], 5)}",
            details,
        )
    msg = f"theta0={theta0:g}: {n}x{n} Hankel moment matrix PSD"
    if atoms is not None:
        msg += f" (zero pivot: {atoms} atoms, a finite law — not a failure)"
    return Evidence("hankel", Outcome.PASS, Strength.NUMERICAL, msg, details)


@dataclass(frozen=True)
class HankelStage(Stage):
    """Moment matrix at ``tilt`` from Taylor coefficients of order ``order``
    (:func:`hankel_evidence`)."""

    tilt: float
    order: int = 8
    stage = "hankel"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"hankel@{self.tilt:g}"

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(hankel_evidence(ctx, self.tilt, self.order))
