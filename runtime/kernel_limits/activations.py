"""Activations for the kernel analysis: ``Phi`` (numpy function, derivative, kinks, torch
version), the named ones (ReLU, leaky ReLU, tanh, erf), piecewise-linear and Hermite-polynomial
activations, and ``as_phi`` to turn a name or a callable into a ``Phi``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special
from torch import Tensor

NumpyFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Phi:
    """An activation for the kernel analysis: numpy ``fn``, its derivative ``grad`` (numpy),
    points where it is not smooth (``breakpoints``, in pre-activation units), and a torch
    version for Monte Carlo (``torch_fn``)."""

    name: str
    fn: NumpyFn
    grad: NumpyFn
    breakpoints: tuple[float, ...] = ()
    torch_fn: Callable[[Tensor], Tensor] | None = None
    #: ``(a, b)`` when ``phi(t) = max(a t, b t)``-type piecewise linear, ``a t`` for ``t > 0`` and
    #: ``b t`` for ``t < 0``: Gaussian pair expectations then have closed forms.
    slopes: tuple[float, float] | None = None

    def torch(self, t: Tensor) -> Tensor:
        if self.torch_fn is not None:
            return self.torch_fn(t)
        return torch.from_numpy(np.asarray(self.fn(t.detach().cpu().numpy()))).to(t)


def piecewise_linear(a: float, b: float, name: str | None = None) -> Phi:
    """``phi(t) = a t`` for ``t > 0``, ``b t`` for ``t <= 0`` (ReLU: ``(1, 0)``)."""

    def tfn(t: Tensor) -> Tensor:
        return torch.where(t > 0, a * t, b * t)

    return Phi(
        name or f"piecewise_linear({a:g}, {b:g})",
        lambda t: np.where(t > 0, a * t, b * t),
        lambda t: np.where(t > 0, a, b) * np.ones_like(t),
        (0.0,),
        tfn,
        (float(a), float(b)),
    )


def _leaky(slope: float) -> Phi:
    return piecewise_linear(1.0, slope, f"leaky_relu({slope:g})")


NAMED_PHI: dict[str, Phi] = {
    "relu": piecewise_linear(1.0, 0.0, "relu"),
    "tanh": Phi("tanh", np.tanh, lambda t: 1.0 / np.cosh(t) ** 2, (), torch.tanh),
    "leaky_relu": _leaky(0.1),
    "erf": Phi(
        "erf",
        special.erf,
        lambda t: 2 / math.sqrt(math.pi) * np.exp(-(t**2)),
        (),
        torch.erf,
    ),
}


def _central_difference(fn: NumpyFn, breakpoints: Sequence[float] = ()) -> NumpyFn:
    """``(fn(t + h) - fn(t - h)) / 2h`` with ``h = 1e-6 max(1, |t|)``, shrunk to half the
    distance to the nearest breakpoint so the stencil never straddles a kink."""
    kinks = np.asarray(breakpoints, dtype=float)

    def grad(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        h = 1e-6 * np.maximum(1.0, np.abs(t))
        if kinks.size:
            dist = np.abs(t[..., None] - kinks).min(-1)
            h = np.clip(np.minimum(h, 0.5 * dist), 1e-13 * np.maximum(1.0, np.abs(t)), None)
        return (fn(t + h) - fn(t - h)) / (2 * h)

    return grad


def as_phi(phi: Any, dphi: NumpyFn | None = None, breakpoints: Sequence[float] = (0.0,)) -> Phi:
    """A ``Phi`` from a name in ``NAMED_PHI`` or a numpy callable (``dphi`` defaults to
    central differences kept off the ``breakpoints``, the kinks of ``phi``, which also cut the
    piecewise quadrature; default ``(0,)``)."""
    if isinstance(phi, Phi):
        return phi
    if isinstance(phi, str):
        if phi.startswith("leaky_relu:"):
            return _leaky(float(phi.split(":", 1)[1]))
        if phi not in NAMED_PHI:
            raise ValueError(f"unknown activation {phi!r}; known: {sorted(NAMED_PHI)}")
        return NAMED_PHI[phi]
    if not callable(phi):
        raise TypeError(f"phi must be a name or a callable, got {type(phi).__name__}")
    grad = dphi if dphi is not None else _central_difference(phi, breakpoints)
    name = getattr(phi, "__name__", "phi")
    return Phi(name, phi, grad, tuple(float(b) for b in breakpoints))


def hermite_activation(coefficients: Sequence[float], scale: float) -> Phi:
    """``phi(t) = sum_k c_k He_k(t / scale)`` (probabilists' Hermite ``He_1 = u``,
    ``He_2 = u^2 - 1``, ``He_3 = u^3 - 3u``); centred at input scale ``scale``."""
    coef = np.concatenate([[0.0], np.asarray(coefficients, dtype=float)])
    dcoef = np.polynomial.hermite_e.hermeder(coef)

    def fn(t: np.ndarray) -> np.ndarray:
        return np.polynomial.hermite_e.hermeval(np.asarray(t) / scale, coef)

    def grad(t: np.ndarray) -> np.ndarray:
        return np.polynomial.hermite_e.hermeval(np.asarray(t) / scale, dcoef) / scale

    def tfn(t: Tensor) -> Tensor:
        u = t / scale
        he = [torch.ones_like(u), u]
        for k in range(2, len(coef)):
            he.append(u * he[-1] - (k - 1) * he[-2])
        return sum(c * h for c, h in zip(coef, he, strict=False))

    return Phi(f"hermite{tuple(round(c, 6) for c in coefficients)}", fn, grad, (), tfn)
