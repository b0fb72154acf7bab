"""The stable form of the modified Bessel function I_n: ``besselie(n, x) = e^-|x| I_n(x)``.

``I_0(x)`` overflows a double beyond |x| ~ 713, so a log-partition such as the von Mises
``A = log(2 pi I_0(eta))`` is rewritten (:mod:`deqfam.derive.stable`, through the rules of
this primitive's row in :mod:`deqfam.derive.primitive_table`) as
``|eta| + log(2 pi besselie(0, eta))``: every ``besseli(n, u)`` becomes
``exp(|u|) besselie(n, u)`` and a logarithm pulls the ``exp`` factor out, while in ratios
such as ``A' = I_1/I_0`` the two ``exp(|u|)`` cancel. Derivatives stay in the set:

    d/dx besselie(n, x) = (besselie(n - 1, x) + besselie(n + 1, x)) / 2 - sign(x) besselie(n, x)

from ``I_n' = (I_{n-1} + I_{n+1})/2`` and ``I_{-n} = I_n`` (integer n).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from scipy import special as sps
from sympy.core.function import ArgumentIndexError

from .primitives import StablePrimitive


class besselie(StablePrimitive):
    """besselie(n, x) = e^-|x| I_n(x) for an integer order n (I_{-n} = I_n)."""

    nargs = 2

    @classmethod
    def eval(cls, n, x):
        if n.is_Integer and n < 0:
            return cls(-n, x)
        return None

    def fdiff(self, argindex=2):
        if argindex != 2:
            raise ArgumentIndexError(self, argindex)
        n, x = self.args
        return (besselie(n - 1, x) + besselie(n + 1, x)) / 2 - sp.sign(x) * self

    def definition(self):
        n, x = self.args
        return sp.exp(-sp.Abs(x)) * sp.besseli(n, x)

    @staticmethod
    def numpy_impl(n, x):
        return sps.ive(float(n), np.asarray(x, dtype=float))


def scaled_besseli(e: sp.Expr) -> sp.Expr | None:
    """besseli(n, u) -> exp(|u|) besselie(n, u) for an integer order n."""
    n, u = e.args
    return sp.exp(sp.Abs(u)) * besselie(n, u) if n.is_Integer else None


def log_of_scaled(e: sp.Expr) -> sp.Expr | None:
    """log(c exp(a) besselie(n, u)) -> a + log(c besselie(n, u)): the exp factors that
    :func:`scaled_besseli` introduced leave the logarithm (they would overflow inside it)."""
    arg = e.args[0]
    if not (isinstance(arg, sp.Mul) and arg.has(besselie)):
        return None
    exps = [f for f in arg.args if isinstance(f, sp.exp)]
    if not exps:
        return None
    rest = sp.Mul(*[f for f in arg.args if not isinstance(f, sp.exp)])
    return sp.Add(*[f.args[0] for f in exps]) + sp.log(rest)


def _even_sign_powers(e: sp.Expr) -> sp.Expr:
    """sign(u)^(2m) -> 1 and sign(u)^(2m+1) -> sign(u) (|u| > 0 almost everywhere)."""
    return e.replace(
        lambda w: isinstance(w, sp.Pow) and isinstance(w.base, sp.sign) and w.exp.is_Integer,
        lambda w: sp.S.One if int(w.exp) % 2 == 0 else w.base,
    )


def cancel_signs(e: sp.Expr) -> sp.Expr | None:
    """A sum or product of scaled Bessel functions with sign(u) / DiracDelta(u) factors (the
    derivatives of |u|), expanded so that they cancel: d/du (|u| + log besselie(0, u)) is
    sign(u) + (besselie(1, u) - sign(u) besselie(0, u)) / besselie(0, u), which expands to
    besselie(1, u) / besselie(0, u) (sign(u)^2 = 1, and the delta terms cancel in pairs)."""
    if not (e.has(besselie) and (e.has(sp.sign) or e.has(sp.DiracDelta))):
        return None
    new = _even_sign_powers(sp.expand(e))
    return None if new == e else new


__all__ = ["besselie", "cancel_signs", "log_of_scaled", "scaled_besseli"]
