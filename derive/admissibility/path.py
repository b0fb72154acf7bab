"""A(eta) at complex arguments ``theta0 + i r`` on a continuous branch (the path evaluator).

The characteristic function of the tilted law is ``phi(r) = exp(A(theta0 + i r) - A(theta0))``;
evaluating it needs ``A`` continued analytically along the path, not SymPy's principal
branches. :class:`PathEvaluator` walks the expression tree in numpy (a whole path at once)
and, for one point, in mpmath on the same branches.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from scipy import special as sps

from ..budget import checkpoint
from ..primitives import StablePrimitive, to_definition
from ..spec import ETA


class NotAnalytic(Exception):
    """A uses a function with no analytic continuation here (Abs, Max, ...)."""


class BranchTrouble(Exception):
    """A zero of a log argument, or a polylog branch cut, lies on the path."""


class TooCoarse(Exception):
    """A continuous log changed by more than 1 radian between path points: refine."""

    def __str__(self) -> str:
        step = self.args[0] if self.args else float("nan")
        return (
            f"the phase of a log argument moves by {step:.3g} rad between path points even "
            "on the finest grid: a zero of exp(A) on or near the path"
        )


_UNARY_NP = {
    sp.exp: np.exp,
    sp.sin: np.sin,
    sp.cos: np.cos,
    sp.sinh: np.sinh,
    sp.cosh: np.cosh,
    sp.tanh: np.tanh,
    sp.atan: np.arctan,
    sp.gamma: sps.gamma,
    sp.loggamma: sps.loggamma,
}
_UNARY_MP = {
    sp.exp: mpmath.exp,
    sp.sin: mpmath.sin,
    sp.cos: mpmath.cos,
    sp.sinh: mpmath.sinh,
    sp.cosh: mpmath.cosh,
    sp.tanh: mpmath.tanh,
    sp.atan: mpmath.atan,
    sp.gamma: mpmath.gamma,
    sp.loggamma: mpmath.loggamma,
}
_MAX_LOG_STEP = 1.0


def _polylog_np(s: float, w: np.ndarray) -> np.ndarray:
    """Li_s(w) for complex w: the series sum_k w^k / k^s when |w| < 0.97 (truncated where
    |w|^K < 1e-18), otherwise mpmath's principal branch (refusing paths that cross the cut
    [1, oo))."""
    a = np.abs(w)
    m = float(a.max()) if a.size else 0.0
    if m < 0.97:
        kmax = math.ceil(math.log(1e-18) / math.log(max(m, 1e-6))) + 2
        acc = np.zeros_like(w)
        term = np.ones_like(w)
        for k in range(1, kmax + 1):
            checkpoint()
            term = term * w
            acc = acc + term * (k ** (-s))
        return acc
    on_cut = (w.real >= 1.0) & (np.abs(w.imag) < 1e-12 * np.maximum(1.0, a))
    crossing = (w.real[1:] >= 1.0) & (np.sign(w.imag[1:]) != np.sign(w.imag[:-1]))
    if np.any(on_cut[1:]) or np.any(crossing):
        raise BranchTrouble("the path meets the polylog branch cut [1, oo)")
    return np.array([complex(mpmath.polylog(s, complex(v))) for v in w])


class PathEvaluator:
    """Evaluate a SymPy A(eta) at z = theta0 + i r along increasing r >= 0 from r = 0.

    Every ``log`` (and every non-integer power, ``w^p = exp(p log w)``) is continued along the
    path: the principal value plus ``2 pi i k`` with ``k`` chosen so the imaginary part moves
    by less than 1 radian between neighbouring points (else :class:`TooCoarse`). At r = 0 the
    value is the real one. Principal logs would jump by ``2 pi i``; inside ``exp`` an integer
    multiple of that is harmless, but ``t log w`` with non-integer ``t`` or a nested log is not.

    ``branches`` records, per log node, the integer ``k`` along the last numpy path; the mpmath
    point evaluation :meth:`point_mp` reuses them (a high-precision check of one point).
    """

    def __init__(self, expr: sp.Expr) -> None:
        self.expr = to_definition(expr) if expr.has(StablePrimitive) else expr
        self.branches: dict[sp.Expr, np.ndarray] = {}
        self.max_step = 0.0

    # numpy path ------------------------------------------------------------------------
    def path(self, theta0: float, r: np.ndarray) -> np.ndarray:
        z = theta0 + 1j * np.asarray(r, dtype=float)
        self.branches = {}
        self.max_step = 0.0
        memo: dict[sp.Expr, Any] = {}
        with np.errstate(all="ignore"):
            out = self._np(self.expr, z, memo)
        return np.broadcast_to(np.asarray(out, dtype=complex), z.shape).copy()

    def _log_np(self, key: sp.Expr, w: np.ndarray) -> np.ndarray:
        if np.any(w == 0) or not np.all(np.isfinite(w)):
            raise BranchTrouble(f"log argument {key} vanishes or overflows on the path")
        L = np.log(w)
        im = L.imag
        un = np.unwrap(im)
        if un.size > 1:
            step = float(np.max(np.abs(np.diff(un))))
            self.max_step = max(self.max_step, step)
            if step > _MAX_LOG_STEP:
                raise TooCoarse(step)
        k = np.rint((un - im) / (2 * math.pi))
        self.branches[key] = k
        return L + 2j * math.pi * k

    def _np(self, node: sp.Expr, z: np.ndarray, memo: dict) -> Any:
        if node in memo:
            return memo[node]
        if not node.has(ETA):
            val: Any = complex(sp.N(node, 20))
        elif node == ETA:
            val = z
        elif node.is_Add:
            val = sum(self._np(a, z, memo) for a in node.args)
        elif node.is_Mul:
            val = 1.0
            for a in node.args:
                val = val * self._np(a, z, memo)
        elif node.is_Pow:
            b, e = node.args
            if e.is_Integer:
                val = self._np(b, z, memo) ** int(e)
            elif not b.has(ETA):
                c = complex(sp.N(b, 20))
                if not (c.real > 0 and c.imag == 0):
                    raise NotAnalytic(f"power of a non-positive constant {b}")
                val = np.exp(self._np(e, z, memo) * math.log(c.real))
            else:
                val = np.exp(self._np(e, z, memo) * self._log_np(node, self._np(b, z, memo)))
        elif isinstance(node, sp.log):
            val = self._log_np(node, self._np(node.args[0], z, memo))
        elif isinstance(node, sp.polylog):
            s, w = node.args
            if s.has(ETA):
                raise NotAnalytic("polylog order depends on eta")
            val = _polylog_np(float(s), np.asarray(self._np(w, z, memo), dtype=complex))
        elif type(node) in _UNARY_NP:
            val = _UNARY_NP[type(node)](self._np(node.args[0], z, memo))
        else:
            raise NotAnalytic(f"{type(node).__name__} has no analytic continuation here")
        memo[node] = val
        return val

    # mpmath point ----------------------------------------------------------------------
    def point_mp(self, theta0: float, r: float, index: int, dps: int = 50) -> mpmath.mpc:
        """A(theta0 + i r) at ``dps`` digits on the branch of the last numpy path (point
        ``index`` of that path)."""
        with mpmath.workdps(dps):
            z = mpmath.mpc(theta0, r)
            return self._mp(self.expr, z, index, {})

    def _log_mp(self, key: sp.Expr, w: Any, index: int) -> Any:
        k = int(self.branches[key][index]) if key in self.branches else 0
        return mpmath.log(w) + mpmath.mpc(0, 2 * k) * mpmath.pi

    def _mp(self, node: sp.Expr, z: Any, index: int, memo: dict) -> Any:
        if node in memo:
            return memo[node]
        if not node.has(ETA):
            val: Any = sp.lambdify([], node, "mpmath")()
        elif node == ETA:
            val = z
        elif node.is_Add:
            val = mpmath.fsum(self._mp(a, z, index, memo) for a in node.args)
        elif node.is_Mul:
            val = mpmath.mpf(1)
            for a in node.args:
                val = val * self._mp(a, z, index, memo)
        elif node.is_Pow:
            b, e = node.args
            if e.is_Integer:
                val = self._mp(b, z, index, memo) ** int(e)
            elif not b.has(ETA):
                val = mpmath.exp(self._mp(e, z, index, memo) * mpmath.log(self._mp(b, z, 0, {})))
            else:
                lw = self._log_mp(node, self._mp(b, z, index, memo), index)
                val = mpmath.exp(self._mp(e, z, index, memo) * lw)
        elif isinstance(node, sp.log):
            val = self._log_mp(node, self._mp(node.args[0], z, index, memo), index)
        elif isinstance(node, sp.polylog):
            s = sp.lambdify([], node.args[0], "mpmath")()
            val = mpmath.polylog(s, self._mp(node.args[1], z, index, memo))
        elif type(node) in _UNARY_MP:
            val = _UNARY_MP[type(node)](self._mp(node.args[0], z, index, memo))
        else:
            raise NotAnalytic(f"{type(node).__name__} has no analytic continuation here")
        memo[node] = val
        return val


# ----------------------------------------------------------------------------------------
# Exact power series of exp(A) in x = e^eta
# ----------------------------------------------------------------------------------------
