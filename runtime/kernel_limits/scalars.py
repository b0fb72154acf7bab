"""The scalar system of the implicit CK (package docstring): ``tau^2`` by Brent, the centring
shift, ``d1..d4`` and ``alpha1..alpha4``, with the well-posedness test
``sigma_a^2 E[phi'(tau xi)^2] < 1``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from .activations import NumpyFn, Phi, as_phi
from .quadrature import gaussian_moments


class WellPosednessError(ValueError):
    """The random DEQ is not well posed: ``sigma_a^2 E[phi'(tau xi)^2] >= 1`` (or a related
    denominator of the scalar system vanishes)."""


@dataclass(frozen=True)
class ImplicitScalars:
    """The scalar system of the implicit CK (module docstring).

    ``shift`` is the centring constant ``E[phi(tau xi)]`` (the DEQ uses ``phi - shift``);
    ``well_posedness = sigma_a^2 d3`` must be ``< 1``.
    """

    sigma_a: float
    sigma_b: float
    tau0_sq: float
    tau_sq: float
    shift: float
    d1: float
    d2: float
    d3: float
    d4: float
    alpha1: float
    alpha2: float
    alpha3: float
    alpha4: float
    well_posedness: float

    @property
    def identity_coefficient(self) -> float:
        """``tau^2 - tau0^2 alpha1``."""
        return self.tau_sq - self.tau0_sq * self.alpha1

    @property
    def four(self) -> tuple[float, float, float, float]:
        """``(alpha1, alpha2, alpha3, tau^2 - tau0^2 alpha1)``: all ``K_bar`` depends on."""
        return (self.alpha1, self.alpha2, self.alpha3, self.identity_coefficient)

    def ck_coefficients(self) -> tuple[float, float, float, float]:
        """Coefficients of ``(X X^T, psi psi^T, Q, I)`` in ``G_bar = (K_bar - sb^2 XX^T)/sa^2``."""
        sa2, sb2 = self.sigma_a**2, self.sigma_b**2
        return (
            (self.alpha1 - sb2) / sa2,
            self.alpha2 / sa2,
            self.alpha3 / sa2,
            self.identity_coefficient / sa2,
        )

    def ntk_coefficients(self) -> tuple[float, float, float, float]:
        """Coefficients of ``(X X^T, psi psi^T, Q, I)`` in ``Theta_bar``."""
        sa2 = self.sigma_a**2
        den = 1 - sa2 * self.d1
        b1 = self.alpha1 / den
        b3 = self.alpha3 / den + sa2 * self.d2 * self.alpha1**2 / den**2
        b0 = self.tau_sq / (1 - sa2 * self.d3) - self.tau0_sq * b1
        return (b1, self.alpha2 / den, b3, b0)


def check_sigmas(sigma_a: float, sigma_b: float) -> None:
    """Require ``sigma_a > 0``, ``sigma_b >= 0`` and ``sigma_a^2 + sigma_b^2 = 1`` (to 1e-9)."""
    if sigma_a <= 0 or sigma_b < 0:
        raise ValueError(f"need sigma_a > 0 and sigma_b >= 0, got {sigma_a}, {sigma_b}")
    if abs(sigma_a**2 + sigma_b**2 - 1) > 1e-9:
        raise ValueError(
            f"the analysis assumes sigma_a^2 + sigma_b^2 = 1, got {sigma_a**2 + sigma_b**2:.6g}"
        )


def solve_tau(phi: Phi, sigma_a: float, sigma_b: float, tau0_sq: float, nodes: int = 64) -> float:
    """Root ``tau^2 > 0`` of ``tau^2 = sigma_a^2 Var[phi(tau xi)] + sigma_b^2 tau0^2`` (bracketed
    by ``sigma_b^2 tau0^2`` from below, where the right side exceeds ``tau^2``; Brent)."""

    def g(t2: float) -> float:
        return (
            sigma_a**2 * gaussian_moments(phi, math.sqrt(t2), nodes).var
            + sigma_b**2 * (tau0_sq)
            - t2
        )

    lo = max(sigma_b**2 * tau0_sq, 1e-12)
    if g(lo) < 0:  # only when Var ~ 0 and sigma_b = 0
        raise WellPosednessError("no positive solution tau^2 of the scalar fixed point")
    hi = 2 * lo + 1.0
    for _ in range(200):
        if g(hi) < 0:
            break
        lo, hi = hi, 2 * hi
    else:
        raise WellPosednessError(
            f"tau^2 = sigma_a^2 Var[phi(tau xi)] + sigma_b^2 tau0^2 has no root below {hi:.3g}: "
            f"sigma_a = {sigma_a} is too large for this activation"
        )
    return float(optimize.brentq(g, lo, hi, xtol=1e-15 * hi, rtol=4 * np.finfo(float).eps))


def implicit_scalars(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    tau0_sq: float,
    dphi: NumpyFn | None = None,
    breakpoints: Sequence[float] = (0.0,),
    nodes: int = 64,
) -> ImplicitScalars:
    """Solve the scalar system (module docstring) for the activation ``phi``.

    Raises ``WellPosednessError`` when ``sigma_a^2 E[phi'(tau xi)^2] >= 1`` (the DEQ's
    infinite-width Jacobian is not a contraction) or ``sigma_a^2 d4 / 2 >= 1``.
    """
    check_sigmas(sigma_a, sigma_b)
    f = as_phi(phi, dphi, breakpoints)
    tau_sq = solve_tau(f, sigma_a, sigma_b, tau0_sq, nodes)
    mo = gaussian_moments(f, math.sqrt(tau_sq), nodes)
    sa2, sb2 = sigma_a**2, sigma_b**2
    d1, d2 = mo.e1**2, mo.e2**2
    wp = sa2 * mo.d3
    if wp >= 1:
        raise WellPosednessError(
            f"DEQ not well posed: sigma_a^2 E[phi'(tau xi)^2] = {wp:.4g} >= 1 "
            f"(sigma_a = {sigma_a:g}, tau^2 = {tau_sq:.4g}); decrease sigma_a"
        )
    if sa2 * mo.d4 / 2 >= 1:
        raise WellPosednessError(f"sigma_a^2 d4 / 2 = {sa2 * mo.d4 / 2:.4g} >= 1")
    alpha1 = sb2 / (1 - sa2 * d1)
    alpha4 = sb2 / (1 - sa2 * mo.d4 / 2)
    return ImplicitScalars(
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        tau0_sq=float(tau0_sq),
        tau_sq=tau_sq,
        shift=mo.mean,
        d1=d1,
        d2=d2,
        d3=mo.d3,
        d4=mo.d4,
        alpha1=alpha1,
        alpha2=sa2 / 4 * d2 * alpha4**2 / (1 - sa2 * d1),
        alpha3=sa2 / 2 * d2 * alpha1**2 / (1 - sa2 * d1),
        alpha4=alpha4,
        well_posedness=wp,
    )
