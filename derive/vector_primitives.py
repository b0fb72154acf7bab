"""Stable primitives of several variables: the log-sum-exp of a categorical law.

* ``logsumexp0(a_1, ..., a_k) = log(1 + sum_i exp(a_i))`` (a reference category with
  ``a_0 = 0``), printed as ``torch.logsumexp`` over ``(0, a_1, ..., a_k)``;
* ``softmax0(i, a_1, ..., a_k) = exp(a_i) / (1 + sum_j exp(a_j))``, its partial derivative in
  ``a_i``, printed as ``torch.softmax`` over the same stack (no overflow for large ``a``).

The set is closed under differentiation: ``d softmax0(i) / d a_j = softmax0(i) (delta_ij -
softmax0(j))``, so the gradient (the mean of the one-hot statistic) and the Hessian (its
covariance ``diag(p) - p p^T``) print on these two functions only.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import ArgumentIndexError


class logsumexp0(sp.Function):
    """log(1 + sum_i exp(a_i))."""

    is_real = True

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        return softmax0(sp.Integer(argindex), *self.args)

    def definition(self) -> sp.Expr:
        return sp.log(1 + sp.Add(*(sp.exp(a) for a in self.args)))

    def _eval_evalf(self, prec):
        return self.definition()._eval_evalf(prec)


class softmax0(sp.Function):
    """exp(a_i) / (1 + sum_j exp(a_j)); the first argument is the index i (1-based)."""

    is_real = True
    is_positive = True

    def fdiff(self, argindex=2):
        if not 2 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        i, rest = self.args[0], self.args[1:]
        j = sp.Integer(argindex - 1)
        if i == j:
            return self * softmax0_complement(int(i), rest)
        return -self * softmax0(j, *rest)

    def definition(self) -> sp.Expr:
        i, rest = int(self.args[0]), self.args[1:]
        return sp.exp(rest[i - 1]) / (1 + sp.Add(*(sp.exp(a) for a in rest)))

    def _eval_evalf(self, prec):
        return self.definition()._eval_evalf(prec)


def _logsumexp0_of(args) -> sp.Expr:
    """log(1 + sum_j exp(a_j)) for any number of arguments (0: zero; 1: softplus)."""
    from .primitives import softplus

    if not args:
        return sp.S.Zero
    return softplus(args[0]) if len(args) == 1 else logsumexp0(*args)


def softmax0_complement(i: int, rest) -> sp.Expr:
    """1 - softmax0(i, rest) = (1 + sum_{j != i} e^{a_j}) / (1 + sum_j e^{a_j}), written as
    exp(logsumexp0(others) - logsumexp0(all)): the difference 1 - p_i cancels to nothing
    once p_i rounds to 1 (a_i >> 0), the logarithms do not."""
    others = [a for n, a in enumerate(rest, start=1) if n != i]
    return sp.exp(_logsumexp0_of(others) - _logsumexp0_of(rest))


def stabilize_logsumexp(expr: sp.Expr) -> sp.Expr:
    """Replace every ``log(1 + exp(a_1) + ... + exp(a_k))`` with k >= 2 by
    ``logsumexp0(a_1, ..., a_k)`` (k = 1 is the scalar softplus, left to ``derive.stable``)."""

    def match(e: sp.Expr) -> bool:
        if not isinstance(e, sp.log) or not isinstance(e.args[0], sp.Add):
            return False
        terms = e.args[0].args
        exps = [t for t in terms if isinstance(t, sp.exp)]
        return len(exps) >= 2 and len(exps) == len(terms) - 1 and sp.S.One in terms

    def rewrite(e: sp.Expr) -> sp.Expr:
        args = sorted((t.args[0] for t in e.args[0].args if isinstance(t, sp.exp)), key=str)
        return logsumexp0(*args)

    return expr.replace(match, rewrite)


def to_plain(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the vector primitives replaced by their definitions."""
    return expr.replace(lambda e: isinstance(e, logsumexp0 | softmax0), lambda e: e.definition())


__all__ = ["logsumexp0", "softmax0", "stabilize_logsumexp", "to_plain"]
