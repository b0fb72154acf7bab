"""The named pcDEQ activations and their first two derivatives, as printable SymPy forms.

One source: ``derive.concavity.NAMED_ACTIVATIONS`` holds each activation ``sigma(eta)``
symbolically (that is what the concavity proofs read). Here its derivatives are taken by
``sympy.diff`` and every form is rewritten for evaluation in floating point:

    sigma_0 = N(sigma),   sigma_{k+1} = N(d sigma_k / d eta),     k = 0, 1,

with the normalisation ``N`` of :func:`printable_form`. Differentiating the *normalised* form
(not the raw one) keeps derivatives on the stable primitives, e.g. for the logistic
``sigmoid' = sigmoid(eta) sigmoid(-eta)`` instead of ``e^-eta / (1 + e^-eta)^2`` (``nan`` for
``eta < -710``).

Kinks (ReLU, ReLU6): the derivative at a kink is 0, i.e. ``Heaviside(0) = 0`` (the convention
of the pcDEQ layer's activations; SymPy's default is 1/2). Distributional terms
(``DiracDelta``) take their almost-everywhere value 0 in print (``derive.codegen``).
"""

from __future__ import annotations

import sympy as sp

from .concavity import ETA, NAMED_ACTIVATIONS
from .stable import stabilize

#: Value of the derivative of a piecewise-linear activation at its kinks.
KINK_DERIVATIVE = sp.Integer(0)


def printable_form(expr: sp.Expr) -> sp.Expr:
    """``N(expr)``: an expression equal to ``expr`` for real ``eta`` that prints stably.

    ``eta sign(eta) = |eta|`` (real ``eta``), then one rational normal form (``together``,
    ``cancel``: removes the cancellation of ``1/(1+|eta|) - |eta|/(1+|eta|)^2``), then the
    rewriting onto stable primitives (``derive.stable``), and ``Heaviside(u) -> Heaviside(u, 0)``
    (:data:`KINK_DERIVATIVE`). Constants are returned unchanged.
    """
    if not expr.free_symbols:
        return sp.sympify(expr)
    expr = expr.subs(ETA * sp.sign(ETA), sp.Abs(ETA))
    expr = stabilize(sp.factor_terms(sp.cancel(sp.together(expr))))
    return expr.replace(sp.Heaviside, lambda u, *_: sp.Heaviside(u, KINK_DERIVATIVE))


def activation_forms(name: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """``(sigma, sigma', sigma'')`` of the named activation in :data:`ETA`, each printable
    (module docstring)."""
    sigma = printable_form(NAMED_ACTIVATIONS[name])
    dsigma = printable_form(sp.diff(sigma, ETA))
    d2sigma = printable_form(sp.diff(dsigma, ETA))
    return sigma, dsigma, d2sigma


def reference_forms(name: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """``(sigma, sigma', sigma'')`` by plain differentiation of ``NAMED_ACTIVATIONS[name]``,
    with no rewriting (an independent reference for tests, valid away from kinks)."""
    sigma = NAMED_ACTIVATIONS[name]
    dsigma = sp.diff(sigma, ETA)
    return sigma, dsigma, sp.diff(dsigma, ETA)


__all__ = ["KINK_DERIVATIVE", "activation_forms", "printable_form", "reference_forms"]
