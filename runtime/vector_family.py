"""The runtime contract of an exponential family with a vector sufficient statistic.

For ``p(y|eta) = h(y) exp(<eta, T(y)> - A(eta))`` with ``k`` natural parameters
``eta = (eta_1, ..., eta_k)`` and one scalar observation ``y`` per data coordinate, a layer needs
the log-partition ``A``, its gradient ``mu(eta) = grad A(eta) = E[T(y)]`` (the activation,
a vector of ``k`` means) and its Hessian ``C(eta) = Hess A(eta) = Cov[T(y)]`` (a ``k x k``
positive definite matrix, what Newton steps, Laplace and the implicit backward use), the
statistic ``T`` and the base measure ``log h``, and the product domain of ``eta``. The
scalar contract :class:`deqfam.runtime.family.TorchFamily` is the case ``k = 1`` with
``mu = sigma`` and ``C = sigma'``.

Tensor shapes: natural parameters carry ``k`` in their last axis. ``log_partition`` maps
``(..., k) -> (...)``, ``mean`` maps ``(..., k) -> (..., k)``, ``covariance`` maps
``(..., k) -> (..., k, k)``, ``sufficient_statistic`` maps observations ``(...) -> (..., k)``
and ``log_base_measure`` maps ``(...) -> (...)``. All are torch expressions that autograd
differentiates (third derivatives, as the implicit backward needs them, come from autograd
through ``covariance``).

A generated module of a vector spec exports its family as ``FAMILY``, a
:class:`VectorTorchFamily`; ``as_vector_family`` accepts that object or such a module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from deqfam.runtime.family import (
    ExactSampler,
    interior_point,
    normalise_family_fields,
    parse_interval,
)
from deqfam.vocab import Support, Verdict

VectorFn = Callable[[Tensor], Tensor]

_FUNCTION_NAMES = ("log_partition", "mean", "covariance", "sufficient_statistic")


@dataclass(frozen=True, eq=False)
class VectorTorchFamily:
    """An exponential family with ``k`` natural parameters as torch callables plus its facts.

    Attributes:
        name: identifier of the family (for messages only; never used to choose behaviour).
        natural_parameters: the names of the ``k`` natural parameters, in order.
        domain: one open interval ``(lo, hi)`` per natural parameter (the domain is their
            product); ends may be infinite.
        log_partition: ``A(eta)``, ``(..., k) -> (...)``.
        mean: ``mu(eta) = grad A(eta) = E[T(y)]``, ``(..., k) -> (..., k)`` (the activation).
        covariance: ``C(eta) = Hess A(eta) = Cov[T(y)]``, ``(..., k) -> (..., k, k)``,
            symmetric positive definite on the domain.
        sufficient_statistic: ``T(y)``, ``(...) -> (..., k)``.
        support: the support of the scalar observation ``y``.
        log_base_measure: ``log h(y)``, ``(...) -> (...)``, or ``None`` when the spec gives none.
        inverse_mean: ``(grad A)^{-1}``, ``(..., k) -> (..., k)``, where a closed form exists
            (used to initialise offsets from column means), else ``None``.
        parameters: the spec's parameter values (read-only mapping).
        spec_sha256: digest of the spec text the family was generated from.
        exact_sampler: the known law this family is, or ``None`` (generic samplers apply).
        admissibility: ``deqfam check``'s verdict when the module was generated, or ``None``.
        admissibility_warning: the warning the family was generated with, else ``None``.
        support_max: the largest value ``y`` may take at the family's parameters (categorical:
            ``K - 1``), or ``None`` when the support type alone bounds it.
    """

    name: str
    natural_parameters: tuple[str, ...]
    domain: tuple[tuple[float, float], ...]
    log_partition: VectorFn
    mean: VectorFn
    covariance: VectorFn
    sufficient_statistic: VectorFn
    support: Support | str = Support.REAL
    log_base_measure: VectorFn | None = None
    inverse_mean: VectorFn | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)
    spec_sha256: str | None = None
    exact_sampler: ExactSampler | None = None
    admissibility: Verdict | str | None = None
    admissibility_warning: str | None = None
    support_max: float | None = None

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.natural_parameters)
        if not names:
            raise ValueError(f"family {self.name!r}: at least one natural parameter is needed")
        object.__setattr__(self, "natural_parameters", names)
        if len(self.domain) != len(names):
            raise ValueError(
                f"family {self.name!r}: {len(names)} natural parameters but "
                f"{len(self.domain)} domain intervals"
            )
        box = tuple(
            parse_interval(self.name, iv, f"domain of {pname}")
            for pname, iv in zip(names, self.domain, strict=True)
        )
        object.__setattr__(self, "domain", box)
        normalise_family_fields(self, _FUNCTION_NAMES, ("log_base_measure", "inverse_mean"))

    @property
    def k(self) -> int:
        """The number of natural parameters per data coordinate."""
        return len(self.natural_parameters)

    @property
    def has_base_measure(self) -> bool:
        """Whether ``log h(y)`` is available (the spec gave ``base_measure``)."""
        return self.log_base_measure is not None

    def in_domain(self, eta: Tensor) -> Tensor:
        """``eta`` of shape ``(..., k)`` lies in the open box: a bool tensor ``(...)``."""
        lo = torch.tensor([b[0] for b in self.domain], dtype=eta.dtype, device=eta.device)
        hi = torch.tensor([b[1] for b in self.domain], dtype=eta.dtype, device=eta.device)
        return ((eta > lo) & (eta < hi)).all(dim=-1)

    def interior_point(self) -> tuple[float, ...]:
        """A point strictly inside the domain, coordinate by coordinate, preferring 0."""
        return tuple(interior_point(box) for box in self.domain)


def as_vector_family(obj: Any) -> VectorTorchFamily:
    """Return ``obj`` as a ``VectorTorchFamily``: itself, or the ``FAMILY`` of a module.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(obj, VectorTorchFamily):
        return obj
    family = getattr(obj, "FAMILY", None)
    if isinstance(family, VectorTorchFamily):
        return family
    raise TypeError(
        f"cannot use {type(obj).__name__} {getattr(obj, '__name__', obj)!r} as a vector "
        "exponential family: expected a VectorTorchFamily or a generated module exporting one "
        "as FAMILY"
    )


__all__ = ["VectorFn", "VectorTorchFamily", "as_vector_family"]
