"""Stages ``bound`` and ``base_measure`` at one tilt (the Fourier stage).

``phi(r) = exp(A(theta0 + i r) - A(theta0))`` on a lattice period (if the support is a lattice
and ``phi`` is 2 pi-periodic) or on ``[0, R]`` for damped inversion; then ``|phi| <= 1``
(:func:`bound_evidence`) and the recovered masses (:mod:`.measure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from deqfam.vocab import LATTICE_SUPPORTS, Outcome, Strength

from ..grids import mp_real
from ..inversion import PhiPath, continuous_phi, lattice_phi
from ..path import BranchTrouble, NotAnalytic, TooCoarse
from ..report import Evidence
from ..stage import Context, Stage, StageResult
from .measure import continuous_evidence, lattice_evidence


def bound_and_measure(ctx: Context, theta0: float) -> StageResult:
    """Stages 4 and 5 at one tilt: phi on a lattice period (if the support is a lattice and
    phi is 2 pi-periodic) or on [0, R] for damped inversion; then the bound and the masses."""
    fam = ctx.family
    support = fam.support
    lattice = None
    method = "continuous"
    try:
        if support in LATTICE_SUPPORTS:
            lattice = lattice_phi(ctx.evaluator, theta0)
            if lattice is not None:
                method = "lattice"
        if lattice is None:
            with mpmath.workdps(30):
                mean = mp_real(ctx.fdA_rest, theta0)
                var = mp_real(ctx.fd2A, theta0)
            if mean is None or var is None:
                raise BranchTrouble("A', A'' not evaluable at the tilt")
            if var <= 0:
                raise BranchTrouble(f"A''(theta0) = {mpmath.nstr(var, 5)} <= 0 (see convexity)")
            data = continuous_phi(ctx.evaluator, theta0, float(mean), math.sqrt(float(var)))
        else:
            data = lattice
    except (NotAnalytic, BranchTrouble, TooCoarse) as exc:
        msg = f"theta0={theta0:g}: phi not evaluated ({exc})"
        return StageResult.of(
            Evidence("bound", Outcome.UNDECIDED, None, msg, {"tilt": theta0}),
            Evidence("base_measure", Outcome.UNDECIDED, None, msg, {"tilt": theta0}),
        )
    bound = bound_evidence(ctx, theta0, data)
    if data.overflow:
        return StageResult.of(
            bound,
            Evidence(
                "base_measure",
                Outcome.SKIPPED,
                None,
                f"theta0={theta0:g}: |phi| overflows (see bound)",
                {"tilt": theta0},
            ),
        )
    if method == "lattice":
        measure, curve = lattice_evidence(ctx, theta0, data)
    else:
        note = (
            ""
            if support not in LATTICE_SUPPORTS
            else "phi is not 2 pi-periodic (not an integer lattice law); "
        )
        measure, curve = continuous_evidence(ctx, theta0, data, note)
    return StageResult((bound, measure), (curve,))


def bound_evidence(ctx: Context, theta0: float, data: PhiPath) -> Evidence:
    """|phi(r)| <= 1, i.e. Re A(theta0 + i r) <= A(theta0). A violation at r* is certain once
    confirmed at 50 digits: the Gram matrix [[1, phi(r*)], [conj phi(r*), 1]] of the points
    {0, r*} has determinant 1 - |phi(r*)|^2 < 0, so phi is not positive definite."""
    r, Az, A0 = data.r, data.Az, data.A0
    re = Az.real - A0
    i = int(np.argmax(re))
    worst = float(re[i])
    details: dict[str, Any] = {
        "tilt": theta0,
        "r_max": float(r[-1]),
        "points": int(r.size),
        "max_re_dA": worst,
        "argmax_r": float(r[i]),
    }
    if worst <= 1e-9:
        return Evidence(
            "bound",
            Outcome.PASS,
            Strength.NUMERICAL,
            f"theta0={theta0:g}: max_r Re A(theta0+ir) - A(theta0) = {worst:.2e} <= 0 on "
            f"{r.size} points of [0, {r[-1]:.3g}]",
            details,
        )
    ev = ctx.evaluator
    ev.branches = data.branches
    try:
        with mpmath.workdps(50):
            Amp = ev.point_mp(theta0, float(r[i]), i, dps=50)
            A0mp = ev.point_mp(theta0, 0.0, 0, dps=50)
            d = mpmath.re(Amp) - mpmath.re(A0mp)
            phi = mpmath.exp(Amp - A0mp)
            agree = abs(complex(Amp) - complex(Az[i])) <= 1e-8 * (1 + abs(complex(Az[i])))
    except (NotAnalytic, ValueError, ZeroDivisionError) as exc:
        details["mp_error"] = str(exc)
        agree, d, phi = False, mpmath.mpf(0), mpmath.mpc(0)
    if agree and d > mpmath.mpf(10) ** -30:
        absphi = abs(phi)
        details["witness"] = {
            "points": [0.0, float(r[i])],
            "gram": [["1", mpmath.nstr(phi, 20)], [mpmath.nstr(mpmath.conj(phi), 20), "1"]],
            "abs_phi": mpmath.nstr(absphi, 20),
            "determinant": mpmath.nstr(1 - absphi**2, 20),
            "min_eigenvalue": mpmath.nstr(1 - absphi, 20),
        }
        return Evidence(
            "bound",
            Outcome.FAIL,
            Strength.PROVEN,
            f"theta0={theta0:g}: |phi({r[i]:.6g})| = {mpmath.nstr(absphi, 12)} > 1 (50 digits): "
            f"2x2 Gram matrix has determinant {mpmath.nstr(1 - absphi**2, 6)} < 0",
            details,
        )
    if worst > 1e-6:
        return Evidence(
            "bound",
            Outcome.FAIL,
            Strength.NUMERICAL,
            f"theta0={theta0:g}: Re A(theta0+ir) - A(theta0) reaches {worst:.3g} > 0 "
            "(not confirmed at 50 digits)",
            details,
        )
    return Evidence(
        "bound",
        Outcome.UNDECIDED,
        None,
        f"theta0={theta0:g}: |phi| - 1 = {worst:.2e}, too close to call",
        details,
    )


@dataclass(frozen=True)
class FourierStage(Stage):
    """``bound`` and ``base_measure`` evidence at ``tilt`` (:func:`bound_and_measure`)."""

    tilt: float
    stage = "base_measure"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"fourier@{self.tilt:g}"

    def run(self, ctx: Context) -> StageResult:
        return bound_and_measure(ctx, self.tilt)
