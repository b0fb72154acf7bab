"""Explicit networks matched to the implicit kernel: the equivalent-CK coefficients of an
explicit network (the layer map of the package docstring) and ``match_explicit``, which solves
the four equations for a two-layer leaky-ReLU or Hermite-polynomial network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from .activations import Phi, as_phi, hermite_activation, piecewise_linear
from .equivalents import ImplicitKernels
from .quadrature import gaussian_moments
from .scalars import ImplicitScalars


def explicit_coefficients(
    layers: Sequence[Any], tau0_sq: float, nodes: int = 64
) -> tuple[tuple[float, float, float, float], list[float]]:
    """Equivalent-CK coefficients ``(c1, c2, c3, c0)`` of ``(X X^T, psi psi^T, Q, I)`` for the
    explicit network ``y_l = m^{-1/2} (phi_l - E phi_l)(W_l y_{l-1})`` (module docstring's layer
    map, with moments by quadrature), and the input scale of every layer."""
    c1, c2, c3, e = 1.0, 0.0, 0.0, 1.0
    s2 = tau0_sq
    scales = []
    for layer in layers:
        mo = gaussian_moments(as_phi(layer), math.sqrt(s2), nodes)
        scales.append(s2)
        d1, d2 = mo.e1**2, mo.e2**2
        c1, c2, c3, e = d1 * c1, d1 * c2 + d2 / 4 * e * e, d1 * c3 + d2 / 2 * c1 * c1, mo.d4 / 2 * e
        s2 = mo.var
    return (c1, c2, c3, s2 - tau0_sq * c1), scales


@dataclass
class ExplicitMatch:
    """A two-layer explicit network matched to target equivalent-CK coefficients.

    ``family`` is ``"leaky_relu"`` (layers ``max``-type piecewise linear with slopes
    ``parameters["layer1"] = (a1, b1)``, ``parameters["layer2"] = (a2, b2)``) or ``"hermite"``
    (``layer1 = a1 He1 + a2 He2`` and ``layer2 = b1 He1 + b2 He2 + b3 He3``, both at scale
    ``tau0``). ``achieved`` are the network's coefficients recomputed by quadrature
    (``explicit_coefficients``); ``residual`` their largest deviation from ``target``
    relative to the largest target coefficient; ``exact`` whether the equations were solved.
    """

    family: str
    target: tuple[float, float, float, float]
    layers: tuple[Phi, Phi]
    parameters: dict[str, tuple[float, ...]]
    achieved: tuple[float, float, float, float]
    residual: float
    exact: bool


def _target_coefficients(
    target: ImplicitKernels | ImplicitScalars | Sequence[float], tau0_sq: float | None, kernel: str
) -> tuple[tuple[float, float, float, float], float]:
    if isinstance(target, ImplicitKernels):
        target = target.scalars
    if isinstance(target, ImplicitScalars):
        tau0_sq = target.tau0_sq
        if kernel not in ("ck", "pre_activation"):
            raise ValueError(f"kernel must be 'ck' or 'pre_activation', got {kernel!r}")
        target = target.ck_coefficients() if kernel == "ck" else target.four
    if tau0_sq is None:
        raise ValueError("tau0_sq is required when target is a coefficient tuple")
    c1, c2, c3, c0 = (float(c) for c in target)
    if c1 <= 0:
        raise ValueError(f"c1 must be > 0 (got {c1}): the linear part cannot be matched")
    return (c1, c2, c3, c0), float(tau0_sq)


def _solve_leaky(c: tuple[float, float, float, float], t2: float) -> tuple[np.ndarray, bool]:
    """Slopes ``(a1, b1, a2, b2)`` of two centred piecewise-linear layers.

    With ``u = (a + b)/2``, ``v = (a - b)/2``, ``kappa = 1 - 2/pi`` a layer at input scale ``s``
    has ``d1 = u^2``, ``d2 = 2 v^2/(pi s^2)``, ``Var = s^2 (u^2 + kappa v^2)`` and
    ``d4/2 = Var/s^2``. Writing ``U_l = u_l^2``, ``V_l = v_l^2``, ``e = U1 + kappa V1``:

        c1 = U1 U2,   2 pi tau0^2 c2 = U2 V1 + V2 e,   pi tau0^2 c3 = U2 V1 + V2 U1^2 / e,
        (c0 + tau0^2 c1) / tau0^2 = e (U2 + kappa V2);

    ``U2`` and ``V2`` are eliminated by the first and last, the other two are solved for
    ``(U1, V1) >= 0`` by bounded least squares from several starts.
    """
    c1, c2, c3, c0 = c
    kappa = 1 - 2 / math.pi
    level = (c0 + t2 * c1) / t2
    scale = np.array([2 * math.pi * t2 * c2, math.pi * t2 * c3])
    weight = 1 / max(float(np.abs(scale).max()), 1e-12 * (abs(c1) + abs(c0)))

    def unpack(v: np.ndarray) -> tuple[float, float, float, float, float]:
        U1, V1 = float(v[0]), float(v[1])
        e = U1 + kappa * V1
        U2 = c1 / U1
        V2 = (level / e - U2) / kappa
        return U1, V1, U2, V2, e

    def eqs(v: np.ndarray) -> np.ndarray:
        U1, V1, U2, V2, e = unpack(v)
        return weight * (np.array([U2 * V1 + V2 * e, U2 * V1 + V2 * U1 * U1 / e]) - scale)

    best = None
    for U1_0 in (1.0, 0.3, 3.0):
        for V1_0 in (0.0, 0.1, 1.0):
            sol = optimize.least_squares(
                eqs, [U1_0, V1_0], bounds=([1e-9, 0.0], [np.inf, np.inf]), xtol=1e-15, ftol=1e-15
            )
            if unpack(sol.x)[3] < -1e-12:
                continue
            if best is None or sol.cost < best.cost:
                best = sol
    if best is None:
        return np.array([math.sqrt(c1), math.sqrt(c1), 1.0, 1.0]), False
    U1, V1, U2, V2, _ = unpack(best.x)
    u1, v1, u2, v2 = (math.sqrt(max(0.0, x)) for x in (U1, V1, U2, V2))
    exact = bool(np.abs(eqs(best.x)).max() < 1e-9)
    return np.array([u1 + v1, u1 - v1, u2 + v2, u2 - v2]), exact


def _solve_hermite(c: tuple[float, float, float, float], t2: float) -> tuple[np.ndarray, bool]:
    """Coefficients ``(a1, a2, b1, b2, b3)`` (``ExplicitMatch``). With ``A = a1^2/tau0^2``
    (``a1^2 + 2 a2^2 = tau0^2``: layer 1 keeps the scale, so ``d1 = A``,
    ``d2 = 2(1-A)/tau0^2``, ``d4/2 = 2 - A``), ``D1 = b1^2/tau0^2``, ``D2 = 4 b2^2/tau0^4``:

        c1 = D1 A,   c3 = D1 (1-A)/tau0^2 + D2 A^2 / 2,
        c2 = D1 (1-A)/(2 tau0^2) + D2 (2-A)^2 / 4,
        c0 + tau0^2 c1 = tau0^2 D1 + tau0^4 D2 / 2 + 6 b3^2;

    eliminating ``D1``, ``D2`` leaves one equation in ``A`` in ``(0, 1]``: sign scan + Brent.
    """
    c1, c2, c3, c0 = c
    level = c0 + t2 * c1

    def parts(A: float) -> tuple[float, float]:
        D1 = c1 / A
        return D1, 2 * (c3 - D1 * (1 - A) / t2) / A**2

    def residual(A: float) -> float:
        D1, D2 = parts(A)
        return D1 * (1 - A) / (2 * t2) + D2 * (2 - A) ** 2 / 4 - c2

    def b3_sq(A: float) -> float:
        D1, D2 = parts(A)
        return (level - t2 * D1 - t2 * t2 * D2 / 2) / 6

    roots = []
    if abs(residual(1.0)) <= 1e-12 * max(abs(c2), abs(c3), 1e-300) or (c2 == 0 and c3 == 0):
        roots.append(1.0)
    grid = np.linspace(1.0, 1e-3, 2000)
    vals = np.array([residual(A) for A in grid])
    for k in np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0)[0]:
        roots.append(optimize.brentq(residual, grid[k + 1], grid[k], xtol=1e-15, rtol=1e-15))
    roots = [A for A in roots if parts(A)[1] >= -1e-14 and b3_sq(A) >= -1e-14 * abs(level)]
    A = max(roots) if roots else 1.0  # the most linear first layer
    D1, D2 = parts(A)
    return (
        np.array(
            [
                math.sqrt(A * t2),
                math.sqrt(max(0.0, (1 - A) * t2 / 2)),
                math.sqrt(D1 * t2),
                math.sqrt(max(0.0, D2) * t2 * t2 / 4),
                math.sqrt(max(0.0, b3_sq(A))),
            ]
        ),
        bool(roots),
    )


MATCH_FAMILIES = ("leaky_relu", "hermite")


def match_explicit(
    target: ImplicitKernels | ImplicitScalars | Sequence[float],
    tau0_sq: float | None = None,
    kernel: str = "ck",
    family: str = "auto",
) -> ExplicitMatch:
    """A two-layer explicit network ``y = m^{-1/2} phi_2(W_2 m^{-1/2} phi_1(W_1 x))`` (centred
    activations, ``N(0, 1)`` weights) whose equivalent kernel has the ``target`` coefficients
    ``(c1, c2, c3, c0)`` of ``(X X^T, psi psi^T, Q, I)``: by default the DEQ's ``G_bar``
    (``kernel="pre_activation"``: ``K_bar``), i.e. the four equations in the four scalars.

    ``family``: ``"leaky_relu"`` (Ling et al.'s choice; ``_solve_leaky``), ``"hermite"``
    (cubic Hermite polynomials; ``_solve_hermite``), or ``"auto"`` (leaky ReLU when it solves
    the equations exactly, else Hermite: e.g. for odd ``phi`` such as tanh, ``c2 = c3 = 0`` but
    ``c0 > 0``, which no piecewise-linear pair can produce).
    """
    c, t2 = _target_coefficients(target, tau0_sq, kernel)
    if family not in (*MATCH_FAMILIES, "auto"):
        raise ValueError(f"family must be one of {(*MATCH_FAMILIES, 'auto')}, got {family!r}")
    tau0 = math.sqrt(t2)
    exact = False
    if family in ("leaky_relu", "auto"):
        slopes, exact = _solve_leaky(c, t2)
        if exact or family == "leaky_relu":
            a1, b1, a2, b2 = (float(v) for v in slopes)
            layers = (piecewise_linear(a1, b1), piecewise_linear(a2, b2))
            params: dict[str, tuple[float, ...]] = {"layer1": (a1, b1), "layer2": (a2, b2)}
            family = "leaky_relu"
    if family in ("hermite", "auto"):
        coef, exact = _solve_hermite(c, t2)
        a1, a2, b1, b2, b3 = (float(v) for v in coef)
        layers = (hermite_activation((a1, a2), tau0), hermite_activation((b1, b2, b3), tau0))
        params = {"layer1": (a1, a2), "layer2": (b1, b2, b3)}
        family = "hermite"
    achieved, _ = explicit_coefficients(layers, t2)
    ref = np.array(c)
    dev = np.abs(np.array(achieved) - ref) / max(float(np.abs(ref).max()), 1e-300)
    return ExplicitMatch(family, c, layers, params, achieved, float(dev.max()), exact)
