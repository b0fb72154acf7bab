"""Stage ``base_measure`` evidence: no negative mass in the recovered tilted law.

A negative mass beyond REJECT_FACTOR x its measured error floor rejects numerically; none
beyond ACCEPT_FACTOR x a floor at most MAX_FLOOR (relative) passes numerically; anything in
between is undecided.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp
from scipy import integrate

from deqfam.vocab import CONTINUOUS_SUPPORTS, LATTICE_SUPPORTS, Outcome, Strength

from ...family import Family
from ...spec import Y
from ..grids import mp_real
from ..inversion import ContinuousPhi, LatticePhi
from ..report import Evidence, TiltCurve
from ..stage import Context
from ..thresholds import ACCEPT_FACTOR, MAX_FLOOR, REJECT_FACTOR, RESOLUTION


def decide_negativity(most_negative: float, floor: float, scale: float) -> tuple[str, str | None]:
    """pass: the most negative value is within ACCEPT_FACTOR x the error floor (noise);
    fail: it exceeds REJECT_FACTOR x the floor (and RESOLUTION x the scale); else undecided."""
    if most_negative >= -ACCEPT_FACTOR * floor:
        if floor > MAX_FLOOR * scale:
            return Outcome.UNDECIDED, None  # no negativity seen, but the resolution is too coarse
        return Outcome.PASS, Strength.NUMERICAL
    if -most_negative >= REJECT_FACTOR * floor and -most_negative > RESOLUTION * scale:
        return Outcome.FAIL, Strength.NUMERICAL
    return Outcome.UNDECIDED, None


def spec_h(fam: Family):
    """The spec's base measure h(y) as an mpmath callable when T(y) = y, else None."""
    if fam.h is None or fam.T != Y:
        return None
    return sp.lambdify(Y, fam.h, modules=["mpmath"])


def lattice_evidence(ctx: Context, theta0: float, data: LatticePhi) -> tuple[Evidence, TiltCurve]:
    """``base_measure`` from DFT masses: the most negative mass against the error floor
    (alias difference, imaginary residue, roundoff), and the recovered ``h`` compared with
    the spec's own base measure where it has one (a check the verdict never uses)."""
    fam = ctx.family
    p, N = data.p, data.N
    n = np.arange(-N // 2, N // 2)
    pn = p[n % N]
    floor = max(
        data.alias if math.isfinite(data.alias) else 1.0,
        float(np.max(np.abs(pn.imag))),
        1e-16 * max(1.0, math.log2(N)),
    )
    masses = pn.real
    j = int(np.argmin(masses))
    most_neg = float(masses[j])
    outcome, strength = decide_negativity(most_neg, floor, 1.0)
    shift = float(ctx.shift)
    A0_full = float(mp_real(ctx.fA, theta0))
    keep = masses > max(1e-10, 10 * floor)
    ys = n[keep] + shift
    h = masses[keep] * np.exp(A0_full - theta0 * ys)
    in_support = LATTICE_SUPPORTS[fam.support]
    outside = float(
        sum(
            m
            for k, m in zip(n, masses, strict=True)
            if m > 10 * floor and not (shift == 0 and in_support(int(k)))
        )
    )
    details: dict[str, Any] = {
        "tilt": theta0,
        "method": "lattice DFT over one period",
        "N": N,
        "alias_difference_N_vs_N/2": data.alias,
        "periodicity_error": data.periodicity_error,
        "error_floor": floor,
        "most_negative_mass": most_neg,
        "at_y": float(n[j] + shift),
        "total_mass": float(masses.sum()),
        "recovered_h": [[float(a), float(b)] for a, b in zip(ys[:25], h[:25], strict=False)],
        "mass_outside_declared_support": outside,
    }
    hspec = spec_h(fam)
    if hspec is not None and shift == 0:
        errs = []
        for yv, hv, mv in zip(ys, h, masses[keep], strict=True):
            if mv < 1e-8:
                continue
            try:
                ref = float(hspec(int(yv))) if in_support(int(yv)) else 0.0
            except (ValueError, ZeroDivisionError, TypeError):
                continue
            errs.append(abs(hv - ref) / max(abs(ref), 1e-300))
        if errs:
            details["spec_base_measure_max_rel_error"] = max(errs)
    curve = TiltCurve(theta0, "lattice", data.r[:N], data.phi[:N], n + shift, masses, floor)
    desc = (
        f"theta0={theta0:g}: DFT N={N}, most negative mass {most_neg:.2e} at y="
        f"{n[j] + shift:g}, error floor {floor:.1e}"
    )
    desc += _negativity_suffix(outcome, most_neg, floor, "negative mass")
    return Evidence("base_measure", outcome, strength, desc, details), curve


def continuous_evidence(
    ctx: Context, theta0: float, data: ContinuousPhi, note: str
) -> tuple[Evidence, TiltCurve]:
    """``base_measure`` from the damped density: the most negative density against the error
    floor (wrap-around, imaginary residue, roundoff), and the spec's ``h`` smoothed the same
    way where it has one."""
    fam = ctx.family
    f, y = data.f, data.y
    dens = f.real
    peak = float(np.max(dens))
    floor = max(data.alias, float(np.max(np.abs(f.imag))), data.roundoff)
    j = int(np.argmin(dens))
    most_neg = float(dens[j])
    outcome, strength = decide_negativity(most_neg, floor, peak)
    shift = float(ctx.shift)
    A0_full = float(mp_real(ctx.fA, theta0))
    yy = y + shift
    with np.errstate(over="ignore"):
        hs = dens * np.exp(A0_full - theta0 * yy)
    live = np.flatnonzero(dens > 1e-8 * peak)
    sel = np.unique(np.linspace(live[0], live[-1], 41).astype(int)) if live.size else live
    details: dict[str, Any] = {
        "tilt": theta0,
        "method": "Gaussian-damped Fourier inversion",
        "damping_s": data.s,
        "r_max": data.R,
        "dr": data.dr,
        "window_L": data.L,
        "alias_difference_L_vs_2L": data.alias,
        "error_floor": floor,
        "peak_density": peak,
        "most_negative_density": most_neg,
        "at_y": float(yy[j]),
        "total_mass": float(np.sum(dens) * data.dy),
        "recovered_h_smoothed": [[float(yy[k]), float(hs[k])] for k in sel],
    }
    hspec = spec_h(fam)
    if hspec is not None and fam.support in CONTINUOUS_SUPPORTS:
        details["spec_base_measure_max_abs_error"] = compare_smoothed(
            fam, hspec, theta0, A0_full, data.s, yy, dens, peak
        )
    curve = TiltCurve(theta0, "continuous", data.r, data.phi, yy, dens, floor)
    desc = (
        f"theta0={theta0:g}: {note}damped inversion (s={data.s:.3g}), most negative "
        f"density {most_neg:.2e} (peak {peak:.3g}), error floor {floor:.1e}"
    )
    desc += _negativity_suffix(outcome, most_neg, floor, "negativity")
    return Evidence("base_measure", outcome, strength, desc, details), curve


def _negativity_suffix(outcome: Outcome, most_neg: float, floor: float, what: str) -> str:
    """The verdict's end of a ``base_measure`` description: the resolution a pass stands at
    (``ACCEPT_FACTOR`` x the error floor), or how many floors deep a failing negativity is."""
    if outcome == Outcome.PASS:
        return f"; no negative mass at resolution {ACCEPT_FACTOR * floor:.0e}"
    if outcome == Outcome.FAIL:
        return f"; {what} {-most_neg / floor:.1e} x the floor"
    return ""


def compare_smoothed(fam, hspec, theta0, A0_full, s, yy, dens, peak) -> float | None:
    """max |f_s(y) - int h(u) e^{theta0 u - A(theta0)} N(y - u; 0, s^2) du| at 5 points near
    the peak, by scipy quad on the declared support (an independent check of the spec's h)."""
    lo, hi = CONTINUOUS_SUPPORTS[fam.support]
    order = np.argsort(-dens)
    errs = []
    for k in order[:200:40]:
        yv, dv = float(yy[k]), float(dens[k])
        a, b = max(lo, yv - 12 * s), min(hi, yv + 12 * s)
        if a >= b:
            errs.append(abs(dv))
            continue

        def integrand(u, yv=yv):
            return (
                float(hspec(u))
                * math.exp(theta0 * u - A0_full)
                * math.exp(-0.5 * ((yv - u) / s) ** 2)
                / (s * math.sqrt(2 * math.pi))
            )

        try:
            val, _ = integrate.quad(integrand, a, b, limit=200, epsabs=1e-14, epsrel=1e-12)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return None
        errs.append(abs(val - dv))
    return max(errs) / peak if errs else None
