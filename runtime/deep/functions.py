"""The elementwise functions of one layer of a deep stack (produced by ``derive/deep.py``,
printed into a generated module that exports them as ``LAYER``, wired by ``deqfam.api_deep``).

Why this is a contract of its own, beside the family contract ``runtime.family.TorchFamily``:
a deep-stack layer is *not* always an exponential family in ``eta``, and when it is, the stack
needs functions of the layer's log density ``ell(x, eta) = lin(x, eta) + log h(x) - A(eta)``
that the family contract does not carry:

* the masked (dropout) layers have ``lin = D(eta) eta T(x)`` with ``D = 1[eta > 0]``: a
  normalised density (a rectified-mean Gaussian with the ReLU family) that is no exponential
  family in ``eta``, so no ``TorchFamily`` describes it (``A = max(0, eta)^2/2`` is refused by
  ``deqfam check``);
* a layer above the data observes a *latent* ``x = z_{l-1}``, so the block-tridiagonal Newton
  step needs derivatives in ``x`` (``ell_x``, ``ell_xx``, ``ell_xe = T'(x)``), i.e. ``T'``,
  ``T''``, ``(log h)'`` and ``(log h)''``, which a family contract (``T``, ``log h`` as
  functions of ``y`` only) does not hold; autograd through ``T`` and ``log h`` would replace
  SymPy's exact, simplified derivatives by a slower, less accurate route;
* ``scale_eta``/``scale_x`` (the size of the terms cancelling in the scores) are a solver
  tolerance device with no meaning for a family.

How they relate: for an unmasked layer of a family with contract ``F``,
``core(x, eta) = T(x) eta - A(eta)``, ``score_eta = F.sufficient_statistic(x) - F.activation(eta)``,
``d2_eta = -F.activation_grad(eta)``, ``activation = F.activation``, ``statistic =
F.sufficient_statistic``, ``log_base = F.log_base_measure`` and ``domain = F.domain``: the same
SymPy expressions of ``derive.family.Family`` printed by the same printer
(``derive.codegen.torch_code``), so the two agree (``tests/test_deep.py`` checks layer roles
against the generated family modules). Both are generated contracts; neither is read from loose
module attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ..family import in_domain, interior_point

Fn2 = Callable[[Tensor, Tensor], Tensor]
Fn1 = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class LayerFunctions:
    """Elementwise torch callables of one layer's log density ``ell(x, eta)``.

    ``x`` is the layer's observation (the data for the first layer, the latent ``z_{l-1}``
    above it) and ``eta`` its natural parameter; two-argument callables take ``(x, eta)`` of the
    same (or broadcastable) shape.

    Attributes:
        name: family name (``" (masked)"`` appended with the dropout mask).
        domain: open interval of ``eta`` where ``A`` is finite.
        core: ``lin(x, eta) - A(eta)`` (the log density without ``log h(x)``).
        score_eta: ``d ell/d eta`` (``T(x) - sigma(eta)``, masked: ``T(x) D - sigma(eta)``).
        d2_eta: ``d^2 ell/d eta^2`` (``-sigma'(eta)``).
        d2_xeta: ``d^2 ell/dx d eta`` (``T'(x)``).
        scale_eta: ``|d lin/d eta| + |sigma(eta)|``, the size of the terms cancelling in ``ell_e``.
        activation: ``eta -> sigma(eta) = A'(eta)``, the mean of ``T(x)``.
        statistic: ``x -> T(x)``.
        log_base, score_x, d2_x, scale_x: ``log h(x)``, ``d ell/dx``, ``d^2 ell/dx^2`` and
            ``|d lin/dx| + |(log h)'(x)|``; required for layers that observe a latent.
        masked: whether the dropout mask ``D = 1[eta > 0]`` is in the linear term.
    """

    name: str
    domain: tuple[float, float]
    core: Fn2
    score_eta: Fn2
    d2_eta: Fn2
    d2_xeta: Fn2
    scale_eta: Fn2
    activation: Fn1
    statistic: Fn1
    log_base: Fn1 | None = None
    score_x: Fn2 | None = None
    d2_x: Fn2 | None = None
    scale_x: Fn2 | None = None
    masked: bool = False

    @property
    def observes_latent(self) -> bool:
        return None not in (self.log_base, self.score_x, self.d2_x, self.scale_x)

    @property
    def whole_line(self) -> bool:
        return self.domain == (-math.inf, math.inf)

    def in_domain(self, eta: Tensor) -> Tensor:
        return in_domain(self.domain, eta)

    def interior_point(self) -> float:
        """A point strictly inside the domain, preferring 0."""
        return interior_point(self.domain)
