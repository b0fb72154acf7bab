"""The prior activation of the kGLM-DEQ (Theorem 3): ``TorchPrior`` holds
``rho = (-log q)' o (A')^{-1}`` and ``rho'`` for a log-concave prior ``q``; ``as_torch_prior``
accepts the forms a caller may pass (``None`` for the Gaussian prior, a ``TorchPrior``, a
generated prior module exporting one as ``PRIOR``, or an object with ``rho`` and
``rho_grad``)."""

from __future__ import annotations

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


def as_torch_prior(obj: Any) -> TorchPrior | None:
    """``None`` (Gaussian prior, ``rho = 0``), a ``TorchPrior``, a generated prior module
    (which exports its ``TorchPrior`` as ``PRIOR``; ``deqfam.api.torch_prior``), or any other
    object with callables ``rho`` and ``rho_grad`` (optional ``name``, ``sup_rho_grad``,
    ``family``)."""
    if obj is None or isinstance(obj, TorchPrior):
        return obj
    prior = getattr(obj, "PRIOR", None)
    if isinstance(prior, TorchPrior):
        return prior
    if hasattr(obj, "neg_log_q"):  # a derive.prior.Prior: SymPy, not callable torch code
        raise TypeError(
            "a derived prior (derive.prior.Prior) holds SymPy expressions: generate its torch "
            "module with deqfam.api.torch_prior(prior), or pass it to deqfam.KGLMDEQ"
        )
    rho, rho_grad = getattr(obj, "rho", None), getattr(obj, "rho_grad", None)
    if not (callable(rho) and callable(rho_grad)):
        raise TypeError(
            f"cannot use {type(obj).__name__} as a prior: expected None, a TorchPrior, a "
            "derive.prior.Prior, or an object with callables rho and rho_grad"
        )
    sup = getattr(obj, "sup_rho_grad", None)
    return TorchPrior(
        name=str(getattr(obj, "name", "prior")),
        rho=rho,
        rho_grad=rho_grad,
        sup_rho_grad=None if sup is None else float(sup),
        family=getattr(obj, "family", None),
    )
