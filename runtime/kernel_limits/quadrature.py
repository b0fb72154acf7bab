"""Gaussian quadrature for ``E f(xi)``, ``xi ~ N(0, 1)``: piecewise Gauss-Legendre rules cut at
an activation's kinks, the Gauss-Hermite rule, and the Gaussian moments of ``phi(tau xi)`` by
Stein's identities."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .activations import Phi


def gaussian_rule(
    breakpoints_xi: Sequence[float] = (0.0,), nodes: int = 64, half_width: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``xi_k`` and weights ``w_k`` with ``E f(xi) ~ sum_k w_k f(xi_k)``, ``xi ~ N(0,1)``:
    Gauss-Legendre with ``nodes`` points on each piece of ``[-L, L]`` cut at the breakpoints,
    times the normal density (the mass beyond ``L = 12`` is ``< 1e-32``). Exponentially
    accurate for integrands that are analytic on each piece (ReLU's kink at a breakpoint)."""
    cuts = sorted({-half_width, half_width, *(b for b in breakpoints_xi if abs(b) < half_width)})
    x_ref, w_ref = np.polynomial.legendre.leggauss(nodes)
    xs, ws = [], []
    for a, b in itertools.pairwise(cuts):
        x = 0.5 * (b - a) * x_ref + 0.5 * (a + b)
        xs.append(x)
        ws.append(0.5 * (b - a) * w_ref * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    return np.concatenate(xs), np.concatenate(ws)


def hermite_rule(nodes: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite rule for ``E f(xi)``, ``xi ~ N(0, 1)``."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return x, w / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class GaussianMoments:
    """Moments of ``phi(tau xi)``: ``mean``, ``var``, ``e1 = E phi'``, ``e2 = E phi''``,
    ``d3 = E phi'^2``, ``d4 = E[(phi_c^2)'']`` (``phi_c = phi - mean``)."""

    tau: float
    mean: float
    var: float
    e1: float
    e2: float
    d3: float
    d4: float


def gaussian_moments(phi: Phi, tau: float, nodes: int = 64) -> GaussianMoments:
    """``GaussianMoments`` by Stein's identities (``E phi'(tau xi) = E[xi phi(tau xi)]/tau``,
    ``E phi'' = E[(xi^2-1) phi]/tau^2``, ``E (phi_c^2)'' = E[(xi^2-1) phi_c^2]/tau^2``) so kinked
    activations need no second derivative; ``d3`` uses ``phi.grad``."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    xi, w = gaussian_rule([b / tau for b in phi.breakpoints], nodes)
    f = phi.fn(tau * xi)
    mean = float(w @ f)
    fc = f - mean
    he2 = xi * xi - 1
    g = phi.grad(tau * xi)
    return GaussianMoments(
        tau=tau,
        mean=mean,
        var=float(w @ (fc * fc)),
        e1=float(w @ (xi * f)) / tau,
        e2=float(w @ (he2 * f)) / tau**2,
        d3=float(w @ (g * g)),
        d4=float(w @ (he2 * fc * fc)) / tau**2,
    )


# --------------------------------------------------------------------------------------------
# The four scalars
# --------------------------------------------------------------------------------------------


def piecewise_nodes(cuts: np.ndarray, nodes: int, half_width: float = 12.0):
    """Gauss-Legendre nodes/weights (times the normal density) on ``[-L, L]`` cut at ``cuts``
    (last axis; clipped to ``[-L, L]``, any leading shape): returns arrays with a trailing
    axis of ``(ncuts + 1) * nodes`` points."""
    lo = np.full((*cuts.shape[:-1], 1), -half_width)
    edges = np.concatenate([lo, np.sort(np.clip(cuts, -half_width, half_width), -1), -lo], -1)
    a, b = edges[..., :-1, None], edges[..., 1:, None]
    x_ref, w_ref = np.polynomial.legendre.leggauss(nodes)
    x = 0.5 * (b - a) * x_ref + 0.5 * (a + b)
    w = 0.5 * (b - a) * w_ref * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    shape = (*cuts.shape[:-1], -1)
    return x.reshape(shape), w.reshape(shape)
