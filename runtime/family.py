"""The runtime view of an exponential family: the callables a DEQ layer needs.

For a minimal regular exponential family ``p(y|eta) = h(y) exp(eta T(y) - A(eta))`` the
layer needs only the log-partition ``A``, its derivatives ``sigma = A'`` (the activation,
the mean of ``T(y)``) and ``sigma' = A''`` (the variance, > 0), the sufficient statistic
``T`` and the open interval of natural parameters where ``A`` is finite. See Theorem 1 of
the seed paper (``seeds/scoring-deq-expfam-pca.txt``): the inner objective is
``J(z) = lam/2 |z|^2 - z^T W^T T(Y) + 1^T A(Wz + B)`` and its stationarity condition (9)
is the DEQ (10) ``z = (1/lam) W^T (T(Y) - sigma(Wz + B))``.

Code-generated family modules expose the same things as module-level names; ``as_torch_family``
turns either form into a ``TorchFamily``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

ElementwiseFn = Callable[[Tensor], Tensor]

_FUNCTION_NAMES = ("log_partition", "activation", "activation_grad", "sufficient_statistic")
_CONSTANT_NAMES = ("NAME", "DOMAIN", "SUPPORT")


@dataclass(frozen=True)
class TorchFamily:
    """An exponential family as elementwise torch callables.

    Attributes:
        name: identifier of the family.
        domain: open interval ``(lo, hi)`` of natural parameters ``eta`` where ``A`` is finite;
            either end may be infinite.
        log_partition: ``A(eta)``.
        activation: ``sigma(eta) = A'(eta)``, the mean of ``T(y)``.
        activation_grad: ``sigma'(eta) = A''(eta)``, the variance of ``T(y)`` (> 0).
        sufficient_statistic: ``T(y)``.
        support: name of the support of ``y`` ("real", "binary", "nonnegative_integers", ...).
        sup_activation_grad: ``sup_eta sigma'(eta)`` over the domain; ``inf`` if unbounded,
            ``None`` if unknown. Used by ``solvers.contraction_certificate``.
        support_max: the largest value ``y`` may take at the family's parameters (binomial:
            its ``n``), or ``None`` when the support type alone bounds it.
    """

    name: str
    domain: tuple[float, float]
    log_partition: ElementwiseFn
    activation: ElementwiseFn
    activation_grad: ElementwiseFn
    sufficient_statistic: ElementwiseFn
    support: str = "real"
    sup_activation_grad: float | None = None
    support_max: float | None = None

    def __post_init__(self) -> None:
        lo, hi = (float(self.domain[0]), float(self.domain[1]))
        if not lo < hi:
            raise ValueError(
                f"family {self.name!r}: domain must be an interval lo < hi, got {self.domain!r}"
            )
        # Normalise to floats so comparisons with tensors are cheap and uniform.
        object.__setattr__(self, "domain", (lo, hi))
        for fn_name in _FUNCTION_NAMES:
            if not callable(getattr(self, fn_name)):
                raise TypeError(f"family {self.name!r}: {fn_name} must be callable")

    def in_domain(self, eta: Tensor) -> Tensor:
        """Elementwise ``lo < eta < hi`` (False for NaN)."""
        return in_domain(self.domain, eta)

    def interior_point(self) -> float:
        """A point strictly inside the domain, preferring 0 (a safe stand-in for masked values)."""
        return interior_point(self.domain)


def in_domain(domain: tuple[float, float], eta: Tensor) -> Tensor:
    """Elementwise ``lo < eta < hi`` for the open interval ``domain`` (False for NaN)."""
    lo, hi = domain
    return (eta > lo) & (eta < hi)


def interior_point(domain: tuple[float, float]) -> float:
    """A point strictly inside the open interval ``domain``, preferring 0."""
    lo, hi = domain
    if lo < 0.0 < hi:
        return 0.0
    if math.isinf(lo):
        return hi - 1.0
    if math.isinf(hi):
        return lo + 1.0
    return 0.5 * (lo + hi)


def _parse_bound(value: Any) -> float:
    """Accept floats, ints and the strings 'oo'/'-oo'/'inf' (as written in YAML specs)."""
    if isinstance(value, str):
        text = value.strip().lower()
        table = {"oo": math.inf, "+oo": math.inf, "-oo": -math.inf}
        if text in table:
            return table[text]
    return float(value)


def as_torch_family(obj: Any) -> TorchFamily:
    """Return ``obj`` as a ``TorchFamily``.

    Accepts a ``TorchFamily`` (returned unchanged) or any object (typically a generated module)
    exposing ``NAME``, ``DOMAIN``, ``SUPPORT``, optionally ``SUP_ACTIVATION_GRAD``, and the
    functions ``log_partition``, ``activation``, ``activation_grad``, ``sufficient_statistic``.

    Raises:
        TypeError: naming every missing or non-callable attribute.
    """
    if isinstance(obj, TorchFamily):
        return obj
    missing = [n for n in _CONSTANT_NAMES if not hasattr(obj, n)]
    missing += [n for n in _FUNCTION_NAMES if not callable(getattr(obj, n, None))]
    if missing:
        raise TypeError(
            f"cannot use {type(obj).__name__} {getattr(obj, '__name__', obj)!r} as an exponential "
            f"family: missing or non-callable {', '.join(missing)} (expected a TorchFamily or a "
            f"module defining NAME, DOMAIN, SUPPORT and {', '.join(_FUNCTION_NAMES)})"
        )
    domain = obj.DOMAIN
    if len(domain) != 2:
        raise TypeError(f"DOMAIN must be a pair (lo, hi), got {domain!r}")
    sup = getattr(obj, "SUP_ACTIVATION_GRAD", None)
    support_max = getattr(obj, "SUPPORT_MAX", None)
    return TorchFamily(
        name=str(obj.NAME),
        domain=(_parse_bound(domain[0]), _parse_bound(domain[1])),
        log_partition=obj.log_partition,
        activation=obj.activation,
        activation_grad=obj.activation_grad,
        sufficient_statistic=obj.sufficient_statistic,
        support=str(obj.SUPPORT),
        sup_activation_grad=None if sup is None else _parse_bound(sup),
        support_max=None if support_max is None else float(support_max),
    )


__all__ = ["ElementwiseFn", "TorchFamily", "as_torch_family"]
