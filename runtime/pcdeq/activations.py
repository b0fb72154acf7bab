"""Positive activations for pcDEQ layers: ``PositiveActivation`` (``sigma``, ``sigma'``,
``sigma''``, domain), the named ones, which of them are admissible (monotone and concave on
``[0, oo)``), activations of exponential families (``sigma = A'``), and ``as_activation``."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from deqfam.generated.pcdeq_activations import ACTIVATIONS

from ..family import TorchFamily, as_torch_family, autograd_derivative

ElementwiseFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class PositiveActivation:
    """An elementwise activation with its first two derivatives.

    Attributes:
        name: identifier (a key of ``NAMED_ACTIVATIONS``, a family name, or a user name).
        fn, grad, grad2: ``sigma``, ``sigma'`` and ``sigma''`` (``grad2`` may be ``None``; the
            certificate then uses second divided differences of ``sigma`` only).
        source: ``"builtin"``, ``"family"`` or ``"custom"``.
        family: the exponential family (spec) name when ``source == "family"``; used by
            ``deqfam.certificates.certify`` to attach the symbolic concavity proof.
        domain: open interval where ``sigma`` is defined (the family's natural domain).
    """

    name: str
    fn: ElementwiseFn
    grad: ElementwiseFn
    grad2: ElementwiseFn | None = None
    source: str = "custom"
    family: str | None = None
    domain: tuple[float, float] = (-math.inf, math.inf)


def _named_activations() -> dict[str, PositiveActivation]:
    """The named activations, printed from ``derive.concavity.NAMED_ACTIVATIONS`` into the
    generated module ``generated/pcdeq_activations.py`` (``sigma, sigma', sigma''``; the
    derivative at a kink is 0). ReLU6 = min(t, 6) on [0, oo) is piecewise linear: its
    ``sigma'' = -delta(t - 6) <= 0`` is invisible to ``grad2`` (0 a.e.) but seen by the divided
    differences of the certificate. ReLU and the identity are linear on the orthant: concave,
    but unbounded (existence needs rho(W) < 1). softplus and exp are convex, NOT admissible:
    here so the certificate can be seen to reject them."""
    return {
        name: PositiveActivation(name, fn, grad, grad2, "builtin")
        for name, (fn, grad, grad2) in ACTIVATIONS.items()
    }


NAMED_ACTIVATIONS: dict[str, PositiveActivation] = _named_activations()

#: The named activations that are admissible (monotone, concave on [0, oo)), and whether they
#: need a strictly positive input (``sigma(0) = 0``).
ADMISSIBLE_ACTIVATIONS: dict[str, bool] = {
    "tanh": True,
    "softsign": True,
    "sigmoid": False,
    "relu6": True,
    "relu": True,
    "identity": True,
}


def activation_from_family(family: Any) -> PositiveActivation:
    """The activation ``sigma = A'`` of an exponential family (a ``TorchFamily`` or a generated
    module's ``FAMILY``), with ``sigma' = A''`` and ``sigma'' = A'''`` from the contract."""
    fam = as_torch_family(family)
    return PositiveActivation(
        fam.name,
        fam.activation,
        fam.activation_grad,
        fam.activation_grad2,
        "family",
        fam.name,
        fam.domain,
    )


def as_activation(activation: Any) -> PositiveActivation:
    """Accept a ``PositiveActivation``, a name in ``NAMED_ACTIVATIONS``, a built-in family name
    (its generated module ``deqfam.generated.<name>``), a family object (anything with
    ``activation`` and ``activation_grad``), or an elementwise callable (derivatives by
    autograd)."""
    if isinstance(activation, PositiveActivation):
        return activation
    if isinstance(activation, str):
        if activation in NAMED_ACTIVATIONS:
            return NAMED_ACTIVATIONS[activation]
        try:
            module = importlib.import_module(f"deqfam.generated.{activation}")
        except ModuleNotFoundError:
            raise ValueError(
                f"unknown activation {activation!r}: not one of {sorted(NAMED_ACTIVATIONS)} "
                "nor a built-in exponential family"
            ) from None
        return activation_from_family(module)
    if isinstance(activation, TorchFamily) or isinstance(
        getattr(activation, "FAMILY", None), TorchFamily
    ):
        return activation_from_family(activation)
    if callable(activation):
        grad = autograd_derivative(activation)
        name = getattr(activation, "__name__", "custom")
        return PositiveActivation(name, activation, grad, autograd_derivative(grad), "custom")
    raise TypeError(f"cannot use {type(activation).__name__} as an activation")
