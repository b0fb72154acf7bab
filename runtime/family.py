"""The one runtime contract of an exponential family: everything a consumer needs.

For a minimal regular exponential family ``p(y|eta) = h(y) exp(eta T(y) - A(eta))`` the
layer needs only the log-partition ``A``, its derivatives ``sigma = A'`` (the activation,
the mean of ``T(y)``), ``sigma' = A''`` (the variance, > 0) and ``sigma'' = A'''``, the
sufficient statistic ``T``, the base measure ``log h`` (for sampling and log-likelihoods)
and the open interval of natural parameters where ``A`` is finite. See Theorem 1 of the
seed paper (``seeds/scoring-deq-expfam-pca.txt``): the inner objective is
``J(z) = lam/2 |z|^2 - z^T W^T T(Y) + 1^T A(Wz + B)`` and its stationarity condition (9)
is the DEQ (10) ``z = (1/lam) W^T (T(Y) - sigma(Wz + B))``.

A generated module exports its family complete as ``FAMILY`` (a :class:`TorchFamily`);
models, samplers, kGLM, pcDEQ and deep stacks take that object, and ``as_torch_family``
accepts exactly a ``TorchFamily`` or a module holding one as ``FAMILY``. Nothing reads a
module's loose attributes, and nothing is chosen by a family's name: the exact sampler is
the law that ``derive/laws.py`` identified from the family's expressions
(:class:`ExactSampler`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from deqfam.vocab import Support, Verdict

ElementwiseFn = Callable[[Tensor], Tensor]


class FrozenParameters(Mapping[str, float]):
    """A read-only ``name -> float`` mapping that pickles (``types.MappingProxyType`` does not,
    and families travel to worker processes in distributed training)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {str(k): float(v) for k, v in dict(data or {}).items()}

    def __getitem__(self, key: str) -> float:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenParameters({self._data!r})"

    def __reduce__(self):
        return (FrozenParameters, (self._data,))


_FUNCTION_NAMES = ("log_partition", "activation", "activation_grad", "sufficient_statistic")


@dataclass(frozen=True)
class ExactSampler:
    """A known law that the family *is*, with the law's own parameter values.

    ``law`` names an entry of ``runtime.sampling.EXACT_SAMPLERS`` (gaussian, bernoulli, ising,
    poisson, binomial, gamma, negative_binomial, continuous_bernoulli, bose_einstein);
    ``parameters`` are that law's parameters (e.g. ``{"n": 16}`` for the binomial), which
    need not share names with the spec's parameters.
    """

    law: str
    parameters: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        frozen = FrozenParameters(self.parameters)
        object.__setattr__(self, "parameters", frozen)

    def __hash__(self) -> int:
        return hash((self.law, tuple(sorted(self.parameters.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExactSampler):
            return NotImplemented
        return self.law == other.law and dict(self.parameters) == dict(other.parameters)


def autograd_derivative(fn: ElementwiseFn) -> ElementwiseFn:
    """``t -> fn'(t)`` for an elementwise ``fn`` by one autograd pass (zeros if ``fn`` is
    constant)."""

    def grad(t: Tensor) -> Tensor:
        with torch.enable_grad():
            tt = t.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(tt).sum(), tt, allow_unused=True)
        return torch.zeros_like(t) if g is None else g

    return grad


@dataclass(frozen=True, eq=False)
class TorchFamily:
    """An exponential family as elementwise torch callables plus its typed facts.

    Attributes:
        name: identifier of the family (for messages only; never used to choose behaviour).
        domain: open interval ``(lo, hi)`` of natural parameters ``eta`` where ``A`` is finite;
            either end may be infinite.
        log_partition: ``A(eta)``.
        activation: ``sigma(eta) = A'(eta)``, the mean of ``T(y)``.
        activation_grad: ``sigma'(eta) = A''(eta)``, the variance of ``T(y)`` (> 0).
        sufficient_statistic: ``T(y)``.
        support: the support of ``y`` (a :class:`deqfam.vocab.Support`; strings are converted).
        sup_activation_grad: ``sup_eta sigma'(eta)`` over the domain; ``inf`` if unbounded,
            ``None`` if unknown. Used by ``solvers.contraction_certificate``.
        support_max: the largest value ``y`` may take at the family's parameters (binomial:
            its ``n``), or ``None`` when the support type alone bounds it.
        activation_grad2: ``sigma''(eta) = A'''(eta)``; when not given, one autograd pass
            through ``activation_grad``.
        log_base_measure: ``log h(y)``, or ``None`` when the spec gives no closed-form ``h``.
        parameters: the spec's parameter values (read-only mapping).
        spec_sha256: digest of the spec text the family was generated from (``None`` for
            hand-built families).
        exact_sampler: the known law this family is, as identified symbolically at generate
            time, or ``None`` (then the generic samplers apply).
        admissibility: ``deqfam check``'s verdict on the spec when the module was generated
            (a :class:`deqfam.vocab.Verdict`; strings are converted), or ``None`` when it was
            generated without the check (or the family was built by hand).
        admissibility_warning: the warning the family was generated with (inconclusive, or
            not admissible and generated on request), ``None`` for an admissible or unchecked
            family. Text for people: decisions read ``admissibility``.
        activation_plain: ``sigma`` written in plain torch operators (the body of the generated
            module's custom op ``torch.ops.deqfam_gen.*``), for tracers and exporters that
            must not record that op; ``None`` when ``activation`` is plain torch already.
        kernel_namespace: the ``torch.library`` namespace under which the family's generated
            C++ kernel registers ``activation_and_grad`` (``deqfam_<name>``), or ``None``
            for a family without generated kernels.
    """

    name: str
    domain: tuple[float, float]
    log_partition: ElementwiseFn
    activation: ElementwiseFn
    activation_grad: ElementwiseFn
    sufficient_statistic: ElementwiseFn
    support: Support | str = Support.REAL
    sup_activation_grad: float | None = None
    support_max: float | None = None
    activation_grad2: ElementwiseFn | None = None
    log_base_measure: ElementwiseFn | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)
    spec_sha256: str | None = None
    exact_sampler: ExactSampler | None = None
    admissibility: Verdict | str | None = None
    admissibility_warning: str | None = None
    activation_plain: ElementwiseFn | None = None
    kernel_namespace: str | None = None

    def __post_init__(self) -> None:
        # Normalise to floats so comparisons with tensors are cheap and uniform.
        object.__setattr__(self, "domain", parse_interval(self.name, self.domain, "domain"))
        normalise_family_fields(
            self, _FUNCTION_NAMES, ("log_base_measure", "activation_plain", "activation_grad2")
        )
        if self.activation_grad2 is None:
            object.__setattr__(self, "activation_grad2", autograd_derivative(self.activation_grad))
        if self.sup_activation_grad is not None:
            object.__setattr__(self, "sup_activation_grad", _parse_bound(self.sup_activation_grad))

    @property
    def plain_activation(self) -> ElementwiseFn:
        """``sigma`` in plain torch operators: ``activation_plain``, else ``activation``."""
        return self.activation_plain if self.activation_plain is not None else self.activation

    @property
    def has_base_measure(self) -> bool:
        """Whether ``log h(y)`` is available (the spec gave ``base_measure``)."""
        return self.log_base_measure is not None

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


def parse_interval(name: str, bounds: Any, what: str) -> tuple[float, float]:
    """The open interval ``bounds = (lo, hi)`` as floats (ends may be ``'oo'``/``'-oo'``);
    ``ValueError`` naming family ``name`` and ``what`` unless it is a pair with lo < hi."""
    try:
        lo, hi = (_parse_bound(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"family {name!r}: {what} must be an interval lo < hi, got {bounds!r}"
        ) from None
    if not lo < hi:
        raise ValueError(f"family {name!r}: {what} must be an interval lo < hi, got {bounds!r}")
    return lo, hi


def normalise_family_fields(family: Any, required: tuple[str, ...], optional: tuple[str, ...]):
    """The post-init checks every family contract (scalar ``TorchFamily``, vector
    ``VectorTorchFamily``) shares, on a frozen dataclass ``family``: the ``required`` fields
    are callables and the ``optional`` ones callables or None (``TypeError``); ``support``
    becomes a :class:`Support`, ``parameters`` a read-only :class:`FrozenParameters` and
    ``admissibility`` a :class:`Verdict` or None (``ValueError`` for an unknown name)."""
    name = family.name
    for fn_name in required:
        if not callable(getattr(family, fn_name)):
            raise TypeError(f"family {name!r}: {fn_name} must be callable")
    for fn_name in optional:
        value = getattr(family, fn_name)
        if value is not None and not callable(value):
            raise TypeError(f"family {name!r}: {fn_name} must be callable or None")
    try:
        support = Support(str(family.support))
    except ValueError:
        raise ValueError(
            f"family {name!r}: unknown support {family.support!r}; choose from "
            f"{', '.join(s.value for s in Support)}"
        ) from None
    object.__setattr__(family, "support", support)
    object.__setattr__(family, "parameters", FrozenParameters(family.parameters))
    if family.admissibility is not None:
        object.__setattr__(family, "admissibility", _parse_verdict(name, family.admissibility))


def _parse_verdict(name: str, value: Any) -> Verdict:
    """A :class:`Verdict` from itself or its string value (as a generated module writes it)."""
    try:
        return Verdict(str(value))
    except ValueError:
        raise ValueError(
            f"family {name!r}: unknown admissibility verdict {value!r}; choose from "
            f"{', '.join(v.value for v in Verdict)}"
        ) from None


def _parse_bound(value: Any) -> float:
    """Accept floats, ints and the strings 'oo'/'-oo'/'inf' (as written in YAML specs)."""
    if isinstance(value, str):
        text = value.strip().lower()
        table = {"oo": math.inf, "+oo": math.inf, "-oo": -math.inf}
        if text in table:
            return table[text]
    return float(value)


def as_torch_family(obj: Any) -> TorchFamily:
    """Return ``obj`` as a ``TorchFamily``: a ``TorchFamily`` unchanged, or the ``FAMILY``
    of a generated module (or any object holding a ``TorchFamily`` as ``FAMILY``).

    Raises:
        TypeError: for anything else (a duck-typed object with loose ``NAME``/``DOMAIN``/...
            attributes is not a family: build a ``TorchFamily`` from it instead).
    """
    if isinstance(obj, TorchFamily):
        return obj
    family = getattr(obj, "FAMILY", None)
    if isinstance(family, TorchFamily):
        return family
    raise TypeError(
        f"cannot use {type(obj).__name__} {getattr(obj, '__name__', obj)!r} as an exponential "
        "family: expected a TorchFamily or a generated module exporting one as FAMILY "
        "(regenerate an old module with `deqfam generate`)"
    )


__all__ = [
    "ElementwiseFn",
    "ExactSampler",
    "TorchFamily",
    "as_torch_family",
    "autograd_derivative",
]
