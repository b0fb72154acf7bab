"""The prior activation of the kGLM-DEQ (Theorem 3): ``TorchPrior`` holds
``rho = (-log q)' o (A')^{-1}`` and ``rho'`` for a log-concave prior ``q``; ``as_torch_prior``
accepts the forms a caller may pass (``None`` for the Gaussian prior, a ``derive.prior.Prior``, or
an object with ``rho`` and ``rho_grad``)."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

ElementwiseFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TorchPrior:
    """The runtime view of a log-concave prior ``q``: ``rho = (-log q)' o (A')^{-1}`` (Theorem 3).

    Attributes:
        name: label.
        rho: elementwise ``rho(z)`` on the mean range of the family.
        rho_grad: elementwise ``rho'(z)`` (``>= 0``: ``rho`` is monotone non-decreasing).
        sup_rho_grad: ``sup rho'`` over the mean range (Assumption 2); ``inf`` if unbounded,
            ``None`` if unknown.
        family: name of the family ``rho`` was derived for (``rho`` depends on ``A``), or None.
    """

    name: str
    rho: ElementwiseFn
    rho_grad: ElementwiseFn
    sup_rho_grad: float | None = None
    family: str | None = None


def prior_from_source(source: str, name: str = "<prior>") -> TorchPrior:
    """Compile the torch source text of ``derive.prior.Prior.torch_source()`` (it defines
    ``rho``, ``rho_grad``, ``NAME``, ``FAMILY``, ``SUP_RHO_GRAD``) into a ``TorchPrior``."""
    module = types.ModuleType(f"deqfam_prior_{name}")
    exec(compile(source, name, "exec"), module.__dict__)
    return as_torch_prior(module)


def as_torch_prior(obj: Any) -> TorchPrior | None:
    """``None`` (Gaussian prior, ``rho = 0``), a ``TorchPrior``, an object with a
    ``torch_source()`` method (``derive.prior.Prior``: compiled here, no SymPy needed), or any
    object/module with ``rho`` and ``rho_grad`` callables (optional ``NAME``, ``FAMILY``,
    ``SUP_RHO_GRAD``)."""
    if obj is None or isinstance(obj, TorchPrior):
        return obj
    source = getattr(obj, "torch_source", None)
    if callable(source):
        return prior_from_source(source(), name=str(getattr(obj, "name", "<prior>")))
    rho, rho_grad = getattr(obj, "rho", None), getattr(obj, "rho_grad", None)
    if not (callable(rho) and callable(rho_grad)):
        raise TypeError(
            f"cannot use {type(obj).__name__} as a prior: expected None, a TorchPrior, a "
            "derive.prior.Prior, or an object with callables rho and rho_grad"
        )
    sup = getattr(obj, "SUP_RHO_GRAD", getattr(obj, "sup_rho_grad", None))
    return TorchPrior(
        name=str(getattr(obj, "NAME", getattr(obj, "name", "prior"))),
        rho=rho,
        rho_grad=rho_grad,
        sup_rho_grad=None if sup is None else float(sup),
        family=getattr(obj, "FAMILY", getattr(obj, "family", None)),
    )
