"""Vector stage ``base_measure``: the measure behind ``exp(A)`` in ``k`` dimensions.

Two sound routes, each giving numerical evidence with a measured error floor:

* **lattice DFT** (``T`` integer-valued on a lattice support and ``exp(A)`` single-valued, i.e.
  free of logs, roots and non-integer powers after ``exp(log E) = E``, so principal-branch
  evaluation at complex points is the analytic continuation): the tilted law of ``T`` at
  ``theta0`` has masses ``p_n = N^-k sum_r phi(r) e^{-i<n, r>}`` over the ``N^k`` grid of one
  period, ``phi(r) = exp(A(theta0 + i r) - A(theta0))``. The error floor is the change of the
  masses from ``N/2`` to ``N`` points per axis (aliasing), the imaginary residue and
  roundoff; a negative mass is judged by the scalar check's thresholds. Mass off the image
  ``{T(y)}`` of the support is reported: ``A`` is then the log-partition of *some* law, not of
  ``T(y)`` on the declared support.
* **normalisation identity** (the spec gives ``h``): ``sum_y`` or ``int h(y) exp(<eta, T(y)>)
  dy = exp(A(eta))`` at three box points (mpmath quadrature/sums at 30 digits) and ``h >= 0``
  at support points: then ``exp(A)`` is, at those points, the Laplace transform of the
  nonnegative measure ``T_# (h dy)`` on the image of the support.

Left out: a ``k``-dimensional damped Fourier inversion for continuous laws (``T(y)`` of a
scalar ``y`` lives on a curve, a singular measure in ``R^k``, which a damped density in ``R^k``
resolves only as a ridge); the line stage's one-dimensional inversions of ``<d, T>`` are the
necessary evidence there.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from deqfam.vocab import CONTINUOUS_SUPPORTS, Outcome, Strength, Support

from ..grids import default_tilts
from ..report import Evidence
from ..stage import StageResult
from ..stages.measure import decide_negativity
from .context import VectorContext, VectorStage
from .view import VectorSpecView, middle_point

#: grid points per axis of the finest DFT (and its cap on the total)
DFT_N = 16
MAX_DFT_POINTS = 2**18
#: relative error of the normalisation identity accepted as agreement
IDENTITY_RTOL = 1e-9


def single_valued(A: sp.Expr) -> sp.Expr | None:
    """exp(A) when it is built from exp, +, *, integer powers and numbers (so principal
    complex evaluation continues it analytically), else None."""
    E = sp.powsimp(sp.exp(A))
    for node in sp.preorder_traversal(E):
        if isinstance(node, sp.Function) and not isinstance(node, sp.exp):
            return None
        if isinstance(node, sp.Pow) and node.base.free_symbols and not node.exp.is_integer:
            return None
    return E


def box_tilts(view: VectorSpecView) -> list[tuple[float, ...]]:
    """Three points of the box: the scalar check's tilts of each axis, taken together."""
    per_axis = [default_tilts(iv) for iv in view.domain]
    return [tuple(t[j] for t in per_axis) for j in range(3)]


def lattice_masses(fE, theta0: np.ndarray, E0: complex, N: int) -> np.ndarray:
    """The DFT masses p[n mod N] of the law tilted to theta0 (k axes of N points each)."""
    k = theta0.size
    r = 2 * np.pi * np.arange(N) / N
    mesh = np.meshgrid(*([r] * k), indexing="ij")
    z = [theta0[i] + 1j * mesh[i] for i in range(k)]
    with np.errstate(all="ignore"):
        phi = np.broadcast_to(np.asarray(fE(*z), dtype=complex), mesh[0].shape) / E0
    return np.fft.fftn(phi) / N**k


def lattice_evidence(ctx: VectorContext, E: sp.Expr) -> Evidence:
    """Masses of the tilted law on Z^k from a k-dimensional DFT at the middle of the box."""
    view, k = ctx.view, ctx.view.k
    N = DFT_N
    while N**k > MAX_DFT_POINTS and N > 4:
        N //= 2
    theta0 = middle_point(view)
    fE = sp.lambdify(ctx.etas, E, modules="numpy")
    E0 = complex(fE(*theta0))
    fine, coarse = lattice_masses(fE, theta0, E0, N), lattice_masses(fE, theta0, E0, N // 2)
    ns = list(itertools.product(range(-N // 4, N // 4), repeat=k))
    alias = max(
        abs(fine[tuple(n % N for n in v)] - coarse[tuple(n % (N // 2) for n in v)]) for v in ns
    )
    floor = max(alias, float(np.max(np.abs(fine.imag))), 1e-15 * math.log2(N**k))
    masses = {v: float(fine[tuple(n % N for n in v)].real) for v in ns}
    worst = min(masses, key=masses.get)
    outcome, strength = decide_negativity(masses[worst], floor, 1.0)
    image = {tuple(int(t.subs(view.y, y)) for t in view.T) for y in view.support_points()}
    off = sum(m for v, m in masses.items() if v not in image and m > 10 * floor)
    A0 = float(ctx.fA(*theta0))
    h = {
        v: masses[v] * math.exp(A0 - float(np.dot(theta0, v))) for v in sorted(image) if v in masses
    }
    details: dict[str, Any] = {
        "method": f"{k}-dimensional lattice DFT over one period",
        "tilt": [float(x) for x in theta0],
        "N": N,
        "alias_difference_N_vs_N/2": alias,
        "error_floor": floor,
        "most_negative_mass": masses[worst],
        "at_T": list(worst),
        "total_mass": float(sum(masses.values())),
        "mass_off_T_image": off,
        "recovered_h_on_T_image": [[list(v), x] for v, x in h.items()],
    }
    desc = (
        f"tilt {tuple(round(float(x), 4) for x in theta0)}: {k}-d DFT N={N}, most negative "
        f"mass {masses[worst]:.2e} at T={worst}, error floor {floor:.1e}"
    )
    if outcome == Outcome.PASS and off > 1e-8:
        return Evidence(
            "base_measure",
            Outcome.UNDECIDED,
            None,
            desc + f"; mass {off:.2e} off "
            "the image of the support: A is not the log-partition of T(y) on it",
            details,
        )
    return Evidence("base_measure", outcome, strength, desc, details)


def normaliser(view: VectorSpecView, eta: tuple[float, ...]) -> mpmath.mpf:
    """sum_y or int h(y) exp(<eta, T(y)>) dy over the declared support (mpmath, 30 digits)."""
    f = sp.lambdify(
        view.y,
        view.h * sp.exp(sum(e * t for e, t in zip(eta, view.T, strict=True))),
        modules="mpmath",
    )
    if view.lattice:
        if view.support_max is not None:
            pts = view.support_points(limit=int(view.support_max) + 2)
            return mpmath.fsum(f(mpmath.mpf(n)) for n in pts)
        if view.support == Support.INTEGERS:
            return mpmath.nsum(f, [mpmath.ninf, mpmath.inf])
        return mpmath.nsum(f, [min(view.support_points(8)), mpmath.inf])
    lo, hi = CONTINUOUS_SUPPORTS[view.support]
    a = mpmath.ninf if math.isinf(lo) else mpmath.mpf(lo)
    b = mpmath.inf if math.isinf(hi) else mpmath.mpf(hi)
    mid = [mpmath.mpf(1)] if a == 0 and b == mpmath.inf else []
    return mpmath.quad(f, [a, *mid, b])


def identity_evidence(ctx: VectorContext) -> Evidence:
    """The spec's h reproduces exp(A) at three box points, and h >= 0 on the support."""
    view = ctx.view
    details: dict[str, Any] = {"method": "normalisation identity sum/int h e^<eta,T> = e^A"}
    fh = sp.lambdify(view.y, view.h, modules="mpmath")
    if view.lattice:
        ys = [mpmath.mpf(n) for n in view.support_points(64)]
    else:
        lo, hi = CONTINUOUS_SUPPORTS[view.support]
        lo_, hi_ = max(lo, -50.0), min(hi, 50.0)
        ys = [mpmath.mpf(lo_ + (hi_ - lo_) * (j + 0.5) / 200) for j in range(200)]
    with mpmath.workdps(30):
        hmin = min(mpmath.re(fh(y)) for y in ys)
        errs = []
        for eta in box_tilts(view):
            Z = normaliser(view, eta)
            A = ctx.mp_A(*[mpmath.mpf(x) for x in eta])
            errs.append(float(abs(mpmath.log(Z) - A)))
    details.update(
        tilts=[list(t) for t in box_tilts(view)],
        abs_log_errors=errs,
        min_h_at_support_points=float(hmin),
        points=len(ys),
    )
    worst = max(errs)
    if hmin < 0:
        return Evidence(
            "base_measure",
            Outcome.UNDECIDED,
            None,
            f"the spec's h is negative ({float(hmin):.3g}) at a support point: not a base measure",
            details,
        )
    if worst > IDENTITY_RTOL:
        return Evidence(
            "base_measure",
            Outcome.UNDECIDED,
            None,
            f"the spec's h does not "
            f"reproduce exp(A): |log Z - A| = {worst:.2e} (spec inconsistent)",
            details,
        )
    return Evidence(
        "base_measure",
        Outcome.PASS,
        Strength.NUMERICAL,
        f"h >= 0 at {len(ys)} support points and log of sum/int h e^<eta,T(y)> "
        f"equals A to {worst:.1e} at {len(errs)} box points (30-digit mpmath)",
        details,
    )


class VectorMeasureStage(VectorStage):
    """The k-dimensional lattice DFT and/or the normalisation identity (module docstring)."""

    name = stage = "base_measure"

    def run(self, ctx: VectorContext) -> StageResult:
        view = ctx.view
        out = []
        E = single_valued(ctx.A) if view.lattice and view.integer_statistic() else None
        if E is not None:
            out.append(lattice_evidence(ctx, E))
        if view.h is not None:
            out.append(identity_evidence(ctx))
        if not out:
            out.append(
                Evidence(
                    "base_measure",
                    Outcome.SKIPPED,
                    None,
                    "no k-dimensional reconstruction: the spec gives no h, and the lattice DFT "
                    "needs an integer-valued T and a single-valued exp(A); k-dimensional damped "
                    "inversion on continuous supports is not implemented (see line_measure)",
                )
            )
        return StageResult(tuple(out))
