"""Admissibility of a log-partition function: Lemma 1 of the seed paper, checked with evidence.

A smooth, strictly convex ``A`` on an open interval ``D`` is the log-partition function of a
minimal regular exponential family iff ``exp(A)`` is a two-sided Laplace transform of a
nonnegative, non-degenerate measure ``mu``:

    exp(A(eta)) = int exp(eta * y) mu(dy),   eta in D.                                (L)

Equivalently (Lemma 1, Appendix A.2, and Bochner's theorem), at any tilt ``theta0`` in ``D``

    phi(r) = exp(A(theta0 + i r) - A(theta0))

is a positive-definite function: the characteristic function of the tilted law
``mu_theta0(dy) = exp(theta0 * y - A(theta0)) mu(dy)``. The paper writes ``exp(A(i r))``,
which needs ``0`` inside ``D``; Bose-Einstein with ``j = 0`` (``D = (-oo, 0)``) must be tested
at ``theta0 < 0``, so every numerical stage here works at tilts inside ``D``.

:func:`check` runs these stages and returns a :class:`Report` with a verdict, its strength
and the evidence behind it:

1. ``domain``       the declared domain (never auto-detected): ``A`` real and finite on a grid.
2. ``convexity``    ``A'' > 0``: SymPy proof (``Family.convexity``) and an mpmath grid; one
                    point with ``A'' <= 0`` is a certain rejection (for an admissible A, A'' is
                    the variance of a non-degenerate tilted law, so positive everywhere).
3. ``structure``    certain verdicts from the form of ``A``: polynomials (Marcinkiewicz) and a
                    registry of known Laplace transforms with closure rules.
4. ``bound``        ``|phi(r)| <= 1``; a violation is a certain rejection with a 2x2 Gram
                    witness.
5. ``base_measure`` reconstruction of ``mu_theta0`` from ``phi`` (lattice DFT or Gaussian-damped
                    Fourier inversion) at 2-3 tilts; ``series``: exact power-series masses of
                    ``exp(A)`` in ``x = e^eta``.
6. ``exp_convexity``/``hankel``  real-only cross-checks (Bernstein-Widder at 60 digits;
                    moment matrices at the middle tilt).

Verdicts: ``admissible`` (``proven`` from the registry or a finite exact series, else
``numerical``: no negative mass beyond 100 x the error floor at every tilt, floors <= 1e-10),
``not_admissible`` (``proven`` by a structural rule, an exact negative coefficient, a bound
violation, a non-convex point or a bad domain; ``numerical`` when a negative mass exceeds
1e6 x its error floor, or a real-only cross-check fails), or ``inconclusive``. Error floors
are measured, not assumed: the change of the DFT masses when N doubles (aliasing), of the
damped density when the window doubles (wrap-around), the imaginary residue, and roundoff.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from scipy import integrate
from scipy import special as sps

from .family import Family, load_family
from .primitives import StablePrimitive, to_definition
from .spec import ETA, Y

__all__ = [
    "EXIT_CODES",
    "LATTICE_SUPPORTS",
    "Evidence",
    "Report",
    "TiltCurve",
    "check",
    "default_tilts",
    "plot_report",
    "recognise",
]

ADMISSIBLE, NOT_ADMISSIBLE, INCONCLUSIVE = "admissible", "not_admissible", "inconclusive"
PROVEN, NUMERICAL = "proven", "numerical"
PASS, FAIL, UNDECIDED, SKIPPED = "pass", "fail", "inconclusive", "skipped"
EXIT_CODES = {ADMISSIBLE: 0, NOT_ADMISSIBLE: 1, INCONCLUSIVE: 3}

#: Supports on the integer lattice: their tilted laws have 2 pi-periodic characteristic functions.
LATTICE_SUPPORTS = {
    "binary": lambda n: n in (0, 1),
    "plus_minus_one": lambda n: n in (-1, 1),
    "integers": lambda n: True,
    "nonnegative_integers": lambda n: n >= 0,
    "positive_integers": lambda n: n >= 1,
}
#: Continuous supports as intervals (for the independent check of the spec's base measure).
CONTINUOUS_SUPPORTS = {
    "real": (-math.inf, math.inf),
    "positive_real": (0.0, math.inf),
    "unit_interval": (0.0, 1.0),
}

#: A numerical negative mass must exceed this multiple of its error floor to reject.
REJECT_FACTOR = 1e6
#: ... and stay below this multiple of the floor to count as "no negative mass".
ACCEPT_FACTOR = 100.0
#: Smallest negativity (relative to the peak mass/density) that may reject numerically.
RESOLUTION = 1e-12
#: Largest error floor (relative to the peak) at which "no negative mass" still counts.
MAX_FLOOR = 1e-10
#: Digits for the real-only mpmath stages.
MP_DPS = 60
#: Order of the power series of exp(A) in x = e^eta.
SERIES_ORDER = 40
#: Gaussian damping width, in units of the tilted standard deviation sqrt(A''(theta0)).
DAMPING = 0.1
#: Half-width of the window in y for continuous inversion, in tilted standard deviations.
WINDOW_SD = 32.0
#: Largest lattice DFT size.
MAX_DFT = 2**15


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------


@dataclass
class Evidence:
    """One finding: ``stage`` (which test), ``outcome`` (pass/fail/inconclusive/skipped),
    ``strength`` (``proven``/``numerical``/None), a one-line ``summary`` and ``details``."""

    stage: str
    outcome: str
    strength: str | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "outcome": self.outcome,
            "strength": self.strength,
            "summary": self.summary,
            "details": _jsonable(self.details),
        }


@dataclass
class TiltCurve:
    """Curves for one tilt (for :func:`plot_report`): phi(r) and the recovered tilted law.

    ``method`` is ``"lattice"`` (``values`` are masses at the integers ``y``) or
    ``"continuous"`` (``values`` is the density of ``mu_theta0 * N(0, s^2)`` on ``y``).
    """

    tilt: float
    method: str
    r: np.ndarray
    phi: np.ndarray
    y: np.ndarray
    values: np.ndarray
    floor: float


@dataclass
class Report:
    """Admissibility verdict for one family, its strength and the evidence behind it."""

    name: str
    log_partition: str
    domain: tuple[str, str]
    support: str
    verdict: str
    strength: str | None
    reason: str
    convexity: dict[str, Any]
    evidence: list[Evidence]
    tilts: tuple[float, ...]
    elapsed_s: float
    curves: list[TiltCurve] = field(default_factory=list, repr=False)

    @property
    def exit_code(self) -> int:
        """CLI exit code: 0 admissible, 1 not admissible, 3 inconclusive."""
        return EXIT_CODES[self.verdict]

    def stage(self, name: str) -> list[Evidence]:
        """The evidence items of one stage."""
        return [e for e in self.evidence if e.stage == name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: name, verdict, strength, convexity, evidence, ..."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "strength": self.strength,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "log_partition": self.log_partition,
            "domain": list(self.domain),
            "support": self.support,
            "tilts": list(self.tilts),
            "convexity": _jsonable(self.convexity),
            "evidence": [e.to_dict() for e in self.evidence],
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def format_text(self) -> str:
        """Human-readable multi-line report."""
        strength = f" ({self.strength})" if self.strength else ""
        lines = [
            f"{self.name}: {self.verdict}{strength}",
            f"  A(eta) = {self.log_partition} on ({self.domain[0]}, {self.domain[1]}), "
            f"support {self.support}",
            f"  reason: {self.reason}",
            f"  convexity: {self.convexity.get('status')} — {self.convexity.get('method')}",
            f"  tilts theta0: {', '.join(f'{t:g}' for t in self.tilts)}",
            "  evidence:",
        ]
        for e in self.evidence:
            tag = e.outcome + ("*" if e.strength == PROVEN else "")
            lines.append(f"    [{tag:<13}] {e.stage:<13} {e.summary}")
        lines.append("  (* = proof; other outcomes are numerical evidence)")
        lines.append(f"  checked in {self.elapsed_s:.2f} s")
        return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    """Convert numpy/mpmath/sympy/Fraction values to JSON types (non-finite floats as text)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating | mpmath.mpf):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, complex | np.complexfloating | mpmath.mpc):
        return [_jsonable(float(obj.real)), _jsonable(float(obj.imag))]
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Fraction | sp.Basic):
        return str(obj)
    return str(obj)


# ----------------------------------------------------------------------------------------
# Grids and tilts
# ----------------------------------------------------------------------------------------


def _finite(b: sp.Expr) -> bool:
    return bool(b.is_finite)


def _interior_grid(domain: tuple[sp.Expr, sp.Expr], n: int) -> np.ndarray:
    """n points strictly inside the open domain, denser near finite ends.

    (-oo, oo): 20 sinh-spaced points in [-20, 20]; (-oo, b): b - geomspace(1e-3, 25);
    (a, oo): a + geomspace(1e-3, 25); (a, b): Chebyshev points shrunk by 1e-3 (b - a).
    """
    lo, hi = domain
    if not _finite(lo) and not _finite(hi):
        return 20.0 * np.sinh(np.linspace(-3.7, 3.7, n)) / math.sinh(3.7)
    if not _finite(lo):
        return float(hi) - np.geomspace(1e-3, 25.0, n)[::-1]
    if not _finite(hi):
        return float(lo) + np.geomspace(1e-3, 25.0, n)
    a, b = float(lo), float(hi)
    c = np.cos(np.linspace(math.pi, 0.0, n))
    return a + (b - a) * (0.5 + 0.499 * c)


def default_tilts(domain: tuple[sp.Expr, sp.Expr]) -> tuple[float, ...]:
    """Three tilts spread over the domain.

    (-oo, oo): (-1.5, 0.25, 1.75), off the symmetric point 0 where some valid phi vanish on
    the path (Bernoulli, Ising); (-oo, b): b - (3, 1, 0.3); (a, oo): a + (0.3, 1, 3);
    (a, b): a + (b - a) (0.2, 0.5, 0.8).
    """
    lo, hi = domain
    if not _finite(lo) and not _finite(hi):
        return (-1.5, 0.25, 1.75)
    if not _finite(lo):
        return tuple(float(hi) - d for d in (3.0, 1.0, 0.3))
    if not _finite(hi):
        return tuple(float(lo) + d for d in (0.3, 1.0, 3.0))
    a, b = float(lo), float(hi)
    return tuple(round(a + (b - a) * f, 12) for f in (0.2, 0.5, 0.8))


def _expconv_points(domain: tuple[sp.Expr, sp.Expr], n: int = 8) -> list[float]:
    lo, hi = domain
    if not _finite(lo) and not _finite(hi):
        return list(np.linspace(-2.5, 2.5, n))
    if not _finite(lo):
        return list(float(hi) - np.geomspace(0.2, 5.0, n)[::-1])
    if not _finite(hi):
        return list(float(lo) + np.geomspace(0.2, 5.0, n))
    a, b = float(lo), float(hi)
    return list(a + (b - a) * np.linspace(0.1, 0.9, n))


# ----------------------------------------------------------------------------------------
# A at complex arguments on a continuous branch
# ----------------------------------------------------------------------------------------


class _NotAnalytic(Exception):
    """A uses a function with no analytic continuation here (Abs, Max, ...)."""


class _BranchTrouble(Exception):
    """A zero of a log argument, or a polylog branch cut, lies on the path."""


class _TooCoarse(Exception):
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
            term = term * w
            acc = acc + term * (k ** (-s))
        return acc
    on_cut = (w.real >= 1.0) & (np.abs(w.imag) < 1e-12 * np.maximum(1.0, a))
    crossing = (w.real[1:] >= 1.0) & (np.sign(w.imag[1:]) != np.sign(w.imag[:-1]))
    if np.any(on_cut[1:]) or np.any(crossing):
        raise _BranchTrouble("the path meets the polylog branch cut [1, oo)")
    return np.array([complex(mpmath.polylog(s, complex(v))) for v in w])


class _PathEvaluator:
    """Evaluate a SymPy A(eta) at z = theta0 + i r along increasing r >= 0 from r = 0.

    Every ``log`` (and every non-integer power, ``w^p = exp(p log w)``) is continued along the
    path: the principal value plus ``2 pi i k`` with ``k`` chosen so the imaginary part moves
    by less than 1 radian between neighbouring points (else :class:`_TooCoarse`). At r = 0 the
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
            raise _BranchTrouble(f"log argument {key} vanishes or overflows on the path")
        L = np.log(w)
        im = L.imag
        un = np.unwrap(im)
        if un.size > 1:
            step = float(np.max(np.abs(np.diff(un))))
            self.max_step = max(self.max_step, step)
            if step > _MAX_LOG_STEP:
                raise _TooCoarse(step)
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
                    raise _NotAnalytic(f"power of a non-positive constant {b}")
                val = np.exp(self._np(e, z, memo) * math.log(c.real))
            else:
                val = np.exp(self._np(e, z, memo) * self._log_np(node, self._np(b, z, memo)))
        elif isinstance(node, sp.log):
            val = self._log_np(node, self._np(node.args[0], z, memo))
        elif isinstance(node, sp.polylog):
            s, w = node.args
            if s.has(ETA):
                raise _NotAnalytic("polylog order depends on eta")
            val = _polylog_np(float(s), np.asarray(self._np(w, z, memo), dtype=complex))
        elif type(node) in _UNARY_NP:
            val = _UNARY_NP[type(node)](self._np(node.args[0], z, memo))
        else:
            raise _NotAnalytic(f"{type(node).__name__} has no analytic continuation here")
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
            raise _NotAnalytic(f"{type(node).__name__} has no analytic continuation here")
        memo[node] = val
        return val


# ----------------------------------------------------------------------------------------
# Exact power series of exp(A) in x = e^eta
# ----------------------------------------------------------------------------------------


class _Inexact(Exception):
    """An irrational number appeared: redo the series in mpmath."""


class _NotSeries(Exception):
    """exp(A(log x)) is not a power series at x = 0 by these rules."""


class _SeriesEngine:
    """Truncated Taylor series at x = 0 of an expression in x, with Fraction (exact) or mpf
    coefficients.

    Rules (each analytic at 0, so the formal series is the function's Taylor series):
    sums, products, integer powers (negative ones need f(0) != 0), real powers ``f^p`` with
    ``f(0) > 0`` (``exp(p log f)``), ``exp``, ``log f`` with ``f(0) > 0``, ``cosh``/``sinh``,
    and ``polylog(s, w) = sum_k w^k / k^s`` with ``w(0) = 0``. Exact mode raises
    :class:`_Inexact` at the first irrational number (``log 2``, ``k^(-1/2)``, ...).
    """

    def __init__(self, x: sp.Symbol, order: int, exact: bool) -> None:
        self.x, self.K, self.exact = x, order, exact

    # coefficient field
    def num(self, v: sp.Expr) -> Any:
        if self.exact:
            if v.is_Rational:
                return Fraction(int(v.p), int(v.q))
            raise _Inexact(str(v))
        val = sp.lambdify([], v, "mpmath")()
        if isinstance(val, mpmath.mpc):
            if abs(val.imag) > mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(1, abs(val)):
                raise _NotSeries(f"complex constant {v}")
            val = val.real
        return mpmath.mpf(val)

    def one(self) -> Any:
        return Fraction(1) if self.exact else mpmath.mpf(1)

    def zero(self) -> Any:
        return Fraction(0) if self.exact else mpmath.mpf(0)

    def const(self, c: Any) -> list:
        out = [self.zero()] * self.K
        out[0] = c
        return out

    # arithmetic
    def mul(self, a: list, b: list) -> list:
        K = self.K
        out = [self.zero()] * K
        nz_a = [i for i in range(K) if a[i]]
        nz_b = [j for j in range(K) if b[j]]
        for i in nz_a:
            ai = a[i]
            for j in nz_b:
                if i + j >= K:
                    break
                out[i + j] += ai * b[j]
        return out

    def exp0(self, f: list) -> list:
        """exp(f) for f(0) = 0: n b_n = sum_k k f_k b_{n-k}."""
        b = [self.zero()] * self.K
        b[0] = self.one()
        for n in range(1, self.K):
            b[n] = sum((k * f[k] * b[n - k] for k in range(1, n + 1) if f[k]), self.zero()) / n
        return b

    def log1(self, f: list) -> list:
        """log(f) for f(0) = 1: n L_n = n f_n - sum_{k<n} k L_k f_{n-k}."""
        L = [self.zero()] * self.K
        for n in range(1, self.K):
            acc = n * f[n] - sum((k * L[k] * f[n - k] for k in range(1, n) if L[k]), self.zero())
            L[n] = acc / n
        return L

    def scalar_exp(self, c: Any) -> Any:
        if self.exact:
            if c == 0:
                return Fraction(1)
            raise _Inexact(f"exp({c})")
        return mpmath.exp(c)

    def scalar_log(self, c: Any) -> Any:
        if self.exact:
            if c == 1:
                return Fraction(0)
            raise _Inexact(f"log({c})")
        return mpmath.log(c)

    def scalar_pow(self, c: Any, p: sp.Expr) -> Any:
        if self.exact:
            v = sp.Rational(c.numerator, c.denominator) ** p
            if v.is_Rational:
                return Fraction(int(v.p), int(v.q))
            raise _Inexact(f"{c}**{p}")
        return mpmath.power(c, self.num(p))

    def exp(self, f: list) -> list:
        c = self.scalar_exp(f[0])
        g = self.exp0([self.zero(), *f[1:]])
        return [c * v for v in g]

    def log(self, f: list) -> list:
        if f[0] == 0:
            raise _NotSeries("log of a series vanishing at x = 0")
        if f[0] < 0:
            raise _NotSeries("log of a negative value near x = 0")
        L = self.log1([v / f[0] for v in f])
        L[0] = self.scalar_log(f[0])
        return L

    def power(self, f: list, p: sp.Expr) -> list:
        if p.is_Integer:
            n = int(p)
            if n < 0:
                if f[0] == 0:
                    raise _NotSeries("negative power of a series vanishing at x = 0")
                return self.power(self.reciprocal(f), sp.Integer(-n))
            out = self.const(self.one())
            base = f
            while n:
                if n & 1:
                    out = self.mul(out, base)
                n >>= 1
                if n:
                    base = self.mul(base, base)
            return out
        if f[0] <= 0:
            raise _NotSeries("non-integer power of a series not positive at x = 0")
        pc = self.num(p)
        L = self.log1([v / f[0] for v in f])
        g = self.exp0([pc * v for v in L])
        c = self.scalar_pow(f[0], p)
        return [c * v for v in g]

    def reciprocal(self, f: list) -> list:
        g = [self.zero()] * self.K
        g[0] = self.one() / f[0]
        for n in range(1, self.K):
            g[n] = -sum((f[k] * g[n - k] for k in range(1, n + 1) if f[k]), self.zero()) / f[0]
        return g

    def polylog(self, s: sp.Expr, w: list) -> list:
        if w[0] != 0:
            raise _NotSeries("polylog argument not vanishing at x = 0")
        if self.exact and not s.is_Integer:
            raise _Inexact(f"k^(-{s})")
        sval = int(s) if self.exact else self.num(s)

        def inv_pow(k: int) -> Any:
            if not self.exact:
                return mpmath.power(k, -sval)
            return Fraction(1, k**sval) if sval >= 0 else Fraction(k ** (-sval))

        nz = [i for i in range(self.K) if w[i]]
        out = [self.zero()] * self.K
        if len(nz) == 1:  # monomial c x^m: sum_k c^k x^{km} / k^s
            m, c = nz[0], w[nz[0]]
            k = 1
            while k * m < self.K:
                out[k * m] = c**k * inv_pow(k)
                k += 1
            return out
        term = self.const(self.one())
        for k in range(1, self.K):
            term = self.mul(term, w)
            if not any(term):
                break
            ik = inv_pow(k)
            out = [o + ik * t for o, t in zip(out, term, strict=True)]
        return out

    # tree walk
    def series(self, e: sp.Expr) -> list:
        x = self.x
        if not e.has(x):
            return self.const(self.num(e))
        if e == x:
            out = self.const(self.zero())
            out[1] = self.one()
            return out
        if e.is_Add:
            parts = [self.series(a) for a in e.args]
            return [sum(col, self.zero()) for col in zip(*parts, strict=True)]
        if e.is_Mul:
            out = self.const(self.one())
            for a in e.args:
                out = self.mul(out, self.series(a))
            return out
        if e.is_Pow:
            b, p = e.args
            if p.has(x):
                return self.exp(self.mul(self.series(p), self.log(self.series(b))))
            return self.power(self.series(b), p)
        if isinstance(e, sp.exp):
            return self.exp(self.series(e.args[0]))
        if isinstance(e, sp.log):
            return self.log(self.series(e.args[0]))
        if isinstance(e, sp.cosh | sp.sinh):
            f = self.series(e.args[0])
            a, b = self.exp(f), self.exp([-v for v in f])
            sign = 1 if isinstance(e, sp.cosh) else -1
            return [(u + sign * v) / 2 for u, v in zip(a, b, strict=True)]
        if isinstance(e, sp.polylog) and not e.args[0].has(x):
            return self.polylog(e.args[0], self.series(e.args[1]))
        raise _NotSeries(f"no series rule for {type(e).__name__}")

    def top(self, E: sp.Expr) -> list:
        """Series of E up to a positive constant factor (dropped: it cannot change signs)."""
        consts = [f for f in sp.Mul.make_args(E) if not f.has(self.x)]
        rest = sp.Mul(*[f for f in sp.Mul.make_args(E) if f.has(self.x)])
        c = sp.Mul(*consts)
        if not c.is_positive:  # e.g. exp(log(-log(1 - x))) = -log(1 - x): keep the sign inside
            return self.series(E)
        if isinstance(rest, sp.exp):
            f = self.series(rest.args[0])
            return self.exp0([self.zero(), *f[1:]])
        if rest.is_Pow and not rest.exp.is_Integer and not rest.exp.has(self.x):
            f = self.series(rest.base)
            if f[0] <= 0:
                raise _NotSeries("non-integer power of a series not positive at x = 0")
            return self.power([v / f[0] for v in f], rest.exp)
        return self.series(rest)


# ----------------------------------------------------------------------------------------
# Registry of known Laplace transforms and closure rules
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recognised:
    """A proof that exp(A) is a Laplace transform: the law and whether it is infinitely
    divisible (then exp(t A) is a Laplace transform for every t > 0)."""

    law: str
    infinitely_divisible: bool
    steps: tuple[str, ...]


#: Atoms: exp(A(u)) = int exp(u y) nu(dy) for a known nonnegative measure nu (u in `natural`).
_ATOMS = {
    "poisson": ("exp(u)", "Poisson: exp(e^u) = sum_y e^{u y}/y!", True),
    "bernoulli": ("log(1 + e^u)", "Bernoulli: 1 + e^u = delta_0 + delta_1", False),
    "rademacher": ("log cosh u", "Rademacher: cosh u = (delta_-1 + delta_1)/2", False),
    "uniform": ("log((e^u - 1)/u)", "uniform[0,1]: (e^u - 1)/u = int_0^1 e^{u y} dy", False),
    "exponential": ("-log(-u)", "exponential: -1/u = int_0^oo e^{u y} dy (u < 0)", True),
    "geometric": ("-log(1 - e^u)", "geometric: 1/(1 - e^u) = sum_y e^{u y} (u < 0)", True),
    "compound_poisson": (
        "Li_s(e^u)",
        "compound Poisson: exp(Li_s(e^u)) = exp(sum_k k^-s e^{k u}), Levy masses k^-s > 0 (u < 0)",
        True,
    ),
    "gaussian": ("a u^2", "Gaussian: e^{a u^2} = E e^{u Y}, Y ~ N(0, 2a)", True),
}


def _affine(u: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(a, c) with u = a eta + c, a != 0 real, or None."""
    if not u.has(ETA) or not u.is_polynomial(ETA):
        return None
    poly = sp.Poly(u, ETA)
    if poly.degree() != 1:
        return None
    a, c = poly.all_coeffs()
    if not (a.is_number and c.is_number and a.is_real and c.is_real and a != 0):
        return None
    return a, c


def _image(domain: tuple[sp.Expr, sp.Expr], a: sp.Expr, c: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    lo, hi = domain
    ends = (a * lo + c, a * hi + c) if a > 0 else (a * hi + c, a * lo + c)
    return tuple(sp.sympify(e) for e in ends)  # type: ignore[return-value]


def _exp_affine(e: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(a, c) with e = C exp(a eta + c'), C > 0, folded into c = c' + log C."""
    factors = sp.Mul.make_args(e)
    consts = sp.Mul(*[f for f in factors if f.is_number])
    rest = [f for f in factors if not f.is_number]
    if len(rest) != 1 or not isinstance(rest[0], sp.exp) or not consts.is_positive:
        return None
    aff = _affine(rest[0].args[0])
    if aff is None:
        return None
    return aff[0], aff[1] + sp.log(consts)


def _atom(expr: sp.Expr, domain) -> tuple[str, str] | None:
    """Recognise expr as one atom of :data:`_ATOMS` in an affine u = a eta + c whose natural
    domain contains the image of the declared domain. Returns (atom key, description)."""
    neg = False
    factors = sp.Mul.make_args(expr)
    if sp.S.NegativeOne in factors:
        neg = True
        expr = sp.Mul(*[f for f in factors if f != sp.S.NegativeOne])
    key: str | None = None
    aff: tuple[sp.Expr, sp.Expr] | None = None
    natural = (-sp.oo, sp.oo)
    if isinstance(expr, sp.exp) and not neg:
        aff, key = _affine(expr.args[0]), "poisson"
    elif isinstance(expr, sp.log):
        arg = expr.args[0]
        if isinstance(arg, sp.cosh) and not neg:
            aff, key = _affine(arg.args[0]), "rademacher"
        elif arg.is_Add and not arg.has(sp.log):
            consts = sp.Add(*[t for t in arg.args if t.is_number])
            rest = sp.Add(*[t for t in arg.args if not t.is_number])
            if consts.is_positive and rest != 0:
                ea = _exp_affine(rest / consts)
                eb = _exp_affine(-rest / consts)
                if ea is not None and not neg:
                    aff, key = ea, "bernoulli"
                elif eb is not None and neg:
                    aff, key, natural = eb, "geometric", (-sp.oo, sp.S.Zero)
            if key is None and neg:  # -log(v), v = a eta + c > 0: exponential law in u = -v
                v = _affine(arg)
                if v is not None:
                    aff, key, natural = (-v[0], -v[1]), "exponential", (-sp.oo, sp.S.Zero)
            if key is None and not neg:  # log((e^u - 1)/u)
                num, den = sp.fraction(sp.together(arg))
                for sgn in (1, -1):
                    u = _affine(sgn * den)
                    if u is not None:
                        uu = u[0] * ETA + u[1]
                        if sp.simplify(sgn * num - (sp.exp(uu) - 1)) == 0:
                            aff, key = u, "uniform"
                            break
        elif neg:
            v = _affine(arg)
            if v is not None:
                aff, key, natural = (-v[0], -v[1]), "exponential", (-sp.oo, sp.S.Zero)
        if key is None and not neg and arg.is_Mul:  # log((e^u - 1)/u) as a product
            num, den = sp.fraction(sp.together(arg))
            for sgn in (1, -1):
                u = _affine(sgn * den)
                if u is not None and sp.simplify(sgn * num - (sp.exp(u[0] * ETA + u[1]) - 1)) == 0:
                    aff, key = u, "uniform"
                    break
    elif isinstance(expr, sp.polylog) and not neg:
        s, w = expr.args
        if s.is_number and s.is_real:
            aff, key, natural = _exp_affine(w), "compound_poisson", (-sp.oo, sp.S.Zero)
    if key is None or aff is None:
        return None
    ulo, uhi = _image(domain, *aff)
    if not (bool(ulo >= natural[0]) and bool(uhi <= natural[1])):
        return None
    a, c = aff
    name = _ATOMS[key][0]
    if key == "compound_poisson":
        name = f"Li_{{{expr.args[0]}}}(e^u)"
    return key, f"{name} at u = {sp.nsimplify(a * ETA + c)}"


def recognise(A: sp.Expr, domain: tuple[sp.Expr, sp.Expr]) -> Recognised | None:
    """Prove exp(A) a Laplace transform of a nonnegative measure on ``domain`` from its form.

    Registry atoms (u = a eta + c affine, a != 0, natural domain containing the image of
    ``domain``): ``a eta^2`` (a > 0), ``exp(u)``, ``log(1 + e^u)``, ``log cosh u``,
    ``log((e^u - 1)/u)``, ``-log(-u)``, ``-log(1 - e^u)``, ``polylog(s, e^u)`` (any real s; the
    Levy masses k^-s are positive). Closure rules:

    * affine change: exp(A(a eta + c) + b eta + d) = e^d int e^{eta (a y + b)} e^{c y} mu(dy);
    * sums A1 + A2: exp(A1 + A2) is the Laplace transform of the convolution mu1 * mu2;
    * n A for a positive integer n: the n-fold convolution;
    * t A for real t > 0 when mu is infinitely divisible (Gaussian, Poisson, compound
      Poisson, gamma, negative binomial, Bose-Einstein ...): mu^{*t} exists.

    Returns None when the form is not recognised (which proves nothing either way).
    """
    A = to_definition(A) if A.has(StablePrimitive) else A
    return _recognise_sum(A, domain)


def _recognise_sum(A: sp.Expr, domain) -> Recognised | None:
    terms = sp.Add.make_args(A)
    poly = sp.Add(*[t for t in terms if t.is_polynomial(ETA)])
    others = [t for t in terms if not t.is_polynomial(ETA)]
    laws: list[Recognised] = []
    if poly.has(ETA):
        p = sp.Poly(poly, ETA)
        if p.degree() > 2 or not all(c.is_number and c.is_real for c in p.all_coeffs()):
            return None
        if p.degree() == 2:
            a = p.all_coeffs()[0]
            if not a.is_positive:
                return None
            laws.append(Recognised(f"N(0, {2 * a})", True, (_ATOMS["gaussian"][1],)))
    for t in others:
        r = _recognise_term(t, domain)
        if r is None:
            return None
        laws.append(r)
    if not laws:
        return None
    if len(laws) == 1:
        law = laws[0]
    else:
        law = Recognised(
            " * ".join(f"[{x.law}]" for x in laws),
            all(x.infinitely_divisible for x in laws),
            (*[s for x in laws for s in x.steps], "sum of log-Laplace transforms = convolution"),
        )
    if poly.has(ETA) and sp.Poly(poly, ETA).degree() <= 2 and sp.Poly(poly, ETA).degree() >= 1:
        law = Recognised(law.law, law.infinitely_divisible, (*law.steps, "affine terms: shift"))
    return law


def _recognise_term(t: sp.Expr, domain) -> Recognised | None:
    factors = sp.Mul.make_args(t)
    coef = sp.Mul(*[f for f in factors if f.is_number])
    body = sp.Mul(*[f for f in factors if not f.is_number])
    if not (coef.is_real and coef != 0):
        return None
    sign = 1 if coef.is_positive else -1
    mag = sp.Abs(coef)
    if body.is_Add:
        inner = _recognise_sum(body, domain) if sign > 0 else None
    else:
        atom = _atom(sign * body, domain)
        inner = Recognised(atom[1], _ATOMS[atom[0]][2], (_ATOMS[atom[0]][1],)) if atom else None
    if inner is None:
        return None
    if mag == 1:
        return inner
    if mag.is_Integer:
        return Recognised(
            f"{mag}-fold convolution of [{inner.law}]",
            inner.infinitely_divisible,
            (*inner.steps, f"{mag} A: {mag}-fold convolution"),
        )
    if inner.infinitely_divisible:
        return Recognised(
            f"[{inner.law}]^(*{mag})",
            True,
            (*inner.steps, f"{mag} A with {mag} > 0: power of an infinitely divisible law"),
        )
    return None


# ----------------------------------------------------------------------------------------
# Context and stages
# ----------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    family: Family
    A: sp.Expr
    A_rest: sp.Expr  # A minus its linear term b eta (a shift of the measure by b)
    shift: sp.Expr
    domain: tuple[sp.Expr, sp.Expr]
    tilts: tuple[float, ...]
    fA: Any
    fA_rest: Any
    fdA_rest: Any
    fd2A: Any
    evaluator: _PathEvaluator
    curves: list[TiltCurve] = field(default_factory=list)


def _split_linear(A: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """A = A_rest + b eta, b the coefficient of the terms exactly linear in eta."""
    b = sp.S.Zero
    rest = []
    for t in sp.Add.make_args(A):
        if t.is_polynomial(ETA) and t.has(ETA) and sp.Poly(t, ETA).degree() == 1:
            coeff = sp.Poly(t, ETA).all_coeffs()[0]
            if coeff.is_number:
                b += coeff
                continue
        rest.append(t)
    return sp.Add(*rest), b


def _mp_real_at(f, t: float | mpmath.mpf) -> mpmath.mpf | None:
    """f(t) if real and finite at the current precision, else None."""
    try:
        v = f(mpmath.mpf(t))
    except (ArithmeticError, ValueError, TypeError, NameError):  # NameError: no mpmath version
        return None
    if isinstance(v, mpmath.mpc):
        if abs(v.imag) > mpmath.mpf(10) ** (-mpmath.mp.dps + 8) * max(1, abs(v.real)):
            return None
        v = v.real
    v = mpmath.mpf(v)
    return v if mpmath.isfinite(v) else None


def _mp_real(f, t: float | mpmath.mpf) -> mpmath.mpf | None:
    """f(t) real and finite, or its limit at a removable singularity of the formula.

    A formula such as log((e^eta - 1)/eta) cannot be evaluated at eta = 0 although A extends
    continuously there; then f(t +- d), d = 10^(-dps/2) (1 + |t|), must be real, finite and
    agree to 10^(-dps/4) relative, and their mean is returned.
    """
    v = _mp_real_at(f, t)
    if v is not None:
        return v
    d = mpmath.mpf(10) ** (-(mpmath.mp.dps // 2)) * (1 + abs(mpmath.mpf(t)))
    a, b = _mp_real_at(f, mpmath.mpf(t) - d), _mp_real_at(f, mpmath.mpf(t) + d)
    if a is None or b is None:
        return None
    if abs(a - b) > mpmath.mpf(10) ** (-(mpmath.mp.dps // 4)) * max(1, abs(a)):
        return None
    return (a + b) / 2


def _stage_domain(ctx: _Ctx) -> Evidence:
    grid = _interior_grid(ctx.domain, 41)
    bad = []
    with mpmath.workdps(30):
        for t in grid:
            if _mp_real(ctx.fA, float(t)) is None:
                bad.append(float(t))
    lo, hi = (str(b) for b in ctx.domain)
    details = {"declared": [lo, hi], "grid_points": len(grid), "grid_range": [grid[0], grid[-1]]}
    if bad:
        details["bad_points"] = bad[:10]
        return Evidence(
            "domain",
            FAIL,
            PROVEN,
            f"A is not real and finite at eta = {bad[0]:.6g} inside the declared domain "
            f"({lo}, {hi}) (30-digit mpmath)",
            details,
        )
    return Evidence(
        "domain",
        PASS,
        NUMERICAL,
        f"declared domain ({lo}, {hi}); A real and finite at {len(grid)} grid points",
        details,
    )


def _stage_convexity(ctx: _Ctx) -> Evidence:
    fam = ctx.family
    if fam.dsigma == 0:
        return Evidence("convexity", FAIL, PROVEN, "A'' = 0 identically: not strictly convex")
    # a light cross-check when SymPy proved A'' > 0, a dense certificate otherwise
    grid = _interior_grid(ctx.domain, 41 if fam.convexity.proven else 201)
    vals = []
    with mpmath.workdps(20):
        for t in grid:
            vals.append(_mp_real(ctx.fd2A, float(t)))
    known = [(float(t), v) for t, v in zip(grid, vals, strict=True) if v is not None]
    details: dict[str, Any] = {
        "symbolic": fam.convexity.status,
        "symbolic_method": fam.convexity.method,
        "grid_points": len(grid),
        "evaluated": len(known),
    }
    if known:
        tmin, vmin = min(known, key=lambda p: p[1])
        details.update(min_A2=float(vmin), argmin=tmin)
        if vmin <= 0:
            with mpmath.workdps(MP_DPS):
                v2 = _mp_real(ctx.fd2A, tmin)
            if v2 is not None and v2 <= 0:
                details["A2_at_witness_60_digits"] = mpmath.nstr(v2, 30)
                return Evidence(
                    "convexity",
                    FAIL,
                    PROVEN,
                    f"A''({tmin:.6g}) = {mpmath.nstr(v2, 8)} <= 0 (20 and 60 digits): a "
                    "variance cannot vanish or be negative",
                    details,
                )
    if fam.convexity.proven:
        return Evidence(
            "convexity",
            PASS,
            PROVEN,
            f"A'' > 0 proven symbolically ({fam.convexity.method}); grid min "
            f"{float(details.get('min_A2', math.nan)):.3g}",
            details,
        )
    if len(known) == len(grid):
        return Evidence(
            "convexity",
            PASS,
            NUMERICAL,
            f"A'' > 0 at all {len(grid)} grid points (20-digit mpmath), min "
            f"{float(details['min_A2']):.3g}; no symbolic proof",
            details,
        )
    return Evidence("convexity", UNDECIDED, None, "A'' could not be evaluated on the grid", details)


def _stage_structure(ctx: _Ctx) -> Evidence:
    A = ctx.A
    if A.is_polynomial(ETA):
        p = sp.Poly(A, ETA)
        deg = p.degree()
        details = {"polynomial_degree": deg}
        if deg >= 3:
            return Evidence(
                "structure",
                FAIL,
                PROVEN,
                f"A is a polynomial of degree {deg} >= 3: exp(polynomial of degree > 2) is "
                "never a characteristic function (Marcinkiewicz)",
                {
                    **details,
                    "rule": "Marcinkiewicz 1938; exp(A) entire, so an MGF finite on an "
                    "interval extends to R (Widder: its singularity would lie on the real "
                    "axis), and phi(r) = exp(A(theta0 + i r) - A(theta0)) is exp of a "
                    f"degree-{deg} polynomial",
                },
            )
        lead = p.all_coeffs()[0]
        if deg == 2 and lead.is_positive:
            return Evidence(
                "structure",
                PASS,
                PROVEN,
                f"A is quadratic with leading coefficient {lead} > 0: Gaussian N(0, {2 * lead})",
                {**details, "law": f"N(0, {2 * lead})", "infinitely_divisible": True},
            )
        return Evidence(
            "structure",
            FAIL,
            PROVEN,
            f"A is a polynomial of degree {deg} with A'' = {sp.diff(A, ETA, 2)} <= 0",
            details,
        )
    rec = recognise(A, ctx.domain)
    if rec is None:
        return Evidence(
            "structure",
            SKIPPED,
            None,
            "form of A not in the registry (no certain verdict from structure)",
        )
    return Evidence(
        "structure",
        PASS,
        PROVEN,
        f"registry: exp(A) is the Laplace transform of {rec.law}",
        {"law": rec.law, "infinitely_divisible": rec.infinitely_divisible, "steps": rec.steps},
    )


def _stage_series(ctx: _Ctx, order: int) -> Evidence:
    x = sp.Symbol("x", positive=True)
    E = sp.exp(ctx.A_rest.subs(ETA, sp.log(x)))
    if E.has(ETA):
        return Evidence("series", SKIPPED, None, "A is not a function of e^eta alone")
    polynomial = E.is_polynomial(x)
    if _finite(ctx.domain[0]) and not polynomial:
        return Evidence(
            "series",
            SKIPPED,
            None,
            "domain does not reach -oo, so a series at x = e^eta = 0 need not describe A",
        )
    K = order
    if polynomial:
        K = max(order, int(sp.Poly(E, x).degree()) + 1)
    mode = "exact rationals"
    try:
        coeffs = _SeriesEngine(x, K, exact=True).top(E)
    except _Inexact:
        mode = f"mpmath, {MP_DPS} digits"
        try:
            with mpmath.workdps(MP_DPS):
                coeffs = _SeriesEngine(x, K, exact=False).top(E)
        except (_NotSeries, ZeroDivisionError) as exc:
            return Evidence("series", SKIPPED, None, f"no power series in x = e^eta: {exc}")
    except (_NotSeries, ZeroDivisionError) as exc:
        return Evidence("series", SKIPPED, None, f"no power series in x = e^eta: {exc}")
    scale = max(abs(c) for c in coeffs) or 1
    tol = 0 if mode == "exact rationals" else mpmath.mpf(10) ** (-(MP_DPS - 15)) * scale
    neg = [(k, c) for k, c in enumerate(coeffs) if c < 0 and abs(c) > tol]
    shift = ctx.shift
    details: dict[str, Any] = {
        "variable": "x = exp(eta)",
        "order": K,
        "mode": mode,
        "polynomial": bool(polynomial),
        "support_shift": str(shift),
        "coefficients": [
            str(c) if mode == "exact rationals" else mpmath.nstr(c, 20) for c in coeffs[:16]
        ],
        "coefficients_float": [float(c) for c in coeffs[:16]],
        "min_coefficient": float(min(coeffs)),
    }
    if neg:
        k, c = neg[0]
        details.update(
            first_negative_index=k,
            first_negative=str(c) if mode.startswith("exact") else mpmath.nstr(c, 30),
            first_negative_float=float(c),
            negative_indices=[i for i, _ in neg[:10]],
        )
        return Evidence(
            "series",
            FAIL,
            PROVEN,
            f"coefficient of x^{k} in exp(A) is {details['first_negative']} < 0 ({mode}): "
            f"mass {float(c):.6g} at y = {k}{'' if shift == 0 else f' + {shift}'}, and "
            "Laplace transforms are unique",
            details,
        )
    if polynomial and sum(1 for c in coeffs if c != 0) < 2:
        return Evidence(
            "series",
            FAIL,
            PROVEN,
            "exp(A) is a single exponential: the measure is one atom (degenerate), A is "
            "affine and not strictly convex",
            details,
        )
    if polynomial:
        return Evidence(
            "series",
            PASS,
            PROVEN,
            f"exp(A) is a polynomial in e^eta with nonnegative coefficients ({mode}): the "
            "Laplace transform of a finite nonnegative measure",
            details,
        )
    return Evidence(
        "series",
        PASS,
        NUMERICAL,
        f"first {K} coefficients of exp(A) in x = e^eta are >= 0 ({mode})",
        details,
    )


def _stage_exp_convexity(ctx: _Ctx) -> Evidence:
    pts = _expconv_points(ctx.domain)
    with mpmath.workdps(MP_DPS):
        a = [_mp_real(ctx.fA, t) for t in pts]
        mids = {}
        for i in range(len(pts)):
            for j in range(i, len(pts)):
                mids[i, j] = _mp_real(ctx.fA, (mpmath.mpf(pts[i]) + mpmath.mpf(pts[j])) / 2)
        if any(v is None for v in a) or any(v is None for v in mids.values()):
            return Evidence("exp_convexity", SKIPPED, None, "A not evaluable at the points")
        n = len(pts)
        C = mpmath.matrix(n, n)
        for (i, j), m in mids.items():
            C[i, j] = C[j, i] = mpmath.exp(m - (a[i] + a[j]) / 2)
        ev = mpmath.eigsy(C, eigvals_only=True)
        lam = sorted(ev[i] for i in range(n))
    tol = mpmath.mpf(10) ** (-(MP_DPS - 15)) * lam[-1]
    details = {
        "points": pts,
        "digits": MP_DPS,
        "eigenvalues": [mpmath.nstr(v, 6) for v in lam],
        "min_eigenvalue": float(lam[0]),
        "tolerance": float(tol),
    }
    if lam[0] < -tol:
        return Evidence(
            "exp_convexity",
            FAIL,
            NUMERICAL,
            f"exp(A((t_i + t_j)/2) - (A(t_i) + A(t_j))/2) has eigenvalue "
            f"{mpmath.nstr(lam[0], 6)} < 0: A is not exponentially convex (Bernstein-Widder)",
            details,
        )
    return Evidence(
        "exp_convexity",
        PASS,
        NUMERICAL,
        f"{n}x{n} exponential-convexity matrix PSD at {MP_DPS} digits "
        f"(min eigenvalue {mpmath.nstr(lam[0], 3)})",
        details,
    )


def _stage_hankel(ctx: _Ctx, theta0: float, order: int = 8) -> Evidence:
    """Moment (Hankel) matrix of the standardised tilted law, from Taylor coefficients.

    m_k = k! [h^k] exp(A(theta0 + h/sd) - A(theta0) - mu h/sd); H_ij = m_{i+j} must be PSD.
    An LDL^T pivot ~ 0 means the law has finitely many atoms (then larger H are singular).
    """
    with mpmath.workdps(25):
        t0 = mpmath.mpf(theta0)
        A0 = _mp_real(ctx.fA_rest, t0)
        mu = _mp_real(ctx.fdA_rest, t0)
        var = _mp_real(ctx.fd2A, t0)
        if A0 is None or mu is None or var is None or var <= 0:
            return Evidence("hankel", SKIPPED, None, "A, A', A'' not evaluable at the tilt")
        sd = mpmath.sqrt(var)

        def mgf(h):
            return mpmath.exp(ctx.fA_rest(t0 + h / sd) - A0 - mu * h / sd)

        try:
            c = mpmath.taylor(mgf, 0, order)
        except (ValueError, ZeroDivisionError, TypeError):
            return Evidence("hankel", SKIPPED, None, "Taylor coefficients not computable")
        m = [mpmath.re(c[k]) * mpmath.factorial(k) for k in range(order + 1)]
        n = order // 2 + 1
        H = [[m[i + j] for j in range(n)] for i in range(n)]
        pivots = []
        atoms = None
        L = [[mpmath.mpf(0)] * n for _ in range(n)]
        for i in range(n):
            d = H[i][i] - mpmath.fsum(L[i][k] ** 2 * pivots[k] for k in range(i))
            if abs(d) < mpmath.mpf(10) ** -12 * max(1, abs(H[i][i])):
                atoms = i
                break
            pivots.append(d)
            if d < 0:
                break
            for j in range(i + 1, n):
                L[j][i] = (
                    H[j][i] - mpmath.fsum(L[j][k] * L[i][k] * pivots[k] for k in range(i))
                ) / d
    details = {
        "tilt": theta0,
        "moments_standardised": [mpmath.nstr(v, 10) for v in m],
        "pivots": [mpmath.nstr(p, 8) for p in pivots],
        "finitely_many_atoms": atoms,
    }
    if pivots and pivots[-1] < 0:
        return Evidence(
            "hankel",
            FAIL,
            NUMERICAL,
            f"theta0={theta0:g}: Hankel moment matrix has a negative pivot "
            f"{mpmath.nstr(pivots[-1], 5)}",
            details,
        )
    msg = f"theta0={theta0:g}: {n}x{n} Hankel moment matrix PSD"
    if atoms is not None:
        msg += f" (zero pivot: {atoms} atoms, a finite law — not a failure)"
    return Evidence("hankel", PASS, NUMERICAL, msg, details)


# ---- per-tilt Fourier stages ---------------------------------------------------------------


def _lattice_phi(ctx: _Ctx, theta0: float) -> dict[str, Any] | None:
    """DFT masses of the tilted law on the integers, doubling N until the alias difference
    between N and 2N points is below 1e-15 (or N = MAX_DFT). None if phi is not 2 pi-periodic.

    p_n = (1/N) sum_k phi(2 pi k/N) e^{-2 pi i n k/N} = sum_m P(Y = n + m N) (aliasing).
    """
    ev = ctx.evaluator
    prev = None
    N = 64
    res: dict[str, Any] | None = None
    coarse: _TooCoarse | None = None
    while N <= MAX_DFT:
        extra = N // 8
        r = 2 * math.pi * np.arange(N + extra + 1) / N
        try:
            Az = ev.path(theta0, r)
        except _TooCoarse as exc:
            coarse = exc
            N *= 2
            continue
        A0 = Az[0].real
        with np.errstate(over="ignore", invalid="ignore"):
            phi = np.exp(Az - A0)
        if not np.all(np.isfinite(phi)):
            return {
                "r": r,
                "Az": Az,
                "A0": A0,
                "phi": phi,
                "overflow": True,
                "branches": dict(ev.branches),
            }
        per_err = float(np.max(np.abs(phi[N : N + extra + 1] - phi[: extra + 1])))
        if per_err > 1e-8:
            return None
        p = np.fft.fft(phi[:N]) / N
        alias = math.inf
        if prev is not None:
            Np = prev.size
            idx = np.arange(-Np // 2, Np // 2)
            alias = float(np.max(np.abs(p[idx % N] - prev[idx % Np])))
            alias = max(alias, float(np.max(np.abs(p[np.arange(Np // 2, N - Np // 2)]))))
        res = {
            "r": r,
            "Az": Az,
            "A0": A0,
            "phi": phi,
            "p": p,
            "N": N,
            "alias": alias,
            "periodicity_error": per_err,
            "max_log_step": ev.max_step,
            "branches": dict(ev.branches),
        }
        if alias < 1e-15:
            break
        prev = p
        N *= 2
    if res is None and coarse is not None:
        raise coarse
    return res


def _continuous_phi(ctx: _Ctx, theta0: float, mean: float, sd: float) -> dict[str, Any]:
    """Density of mu_theta0 * N(0, s^2), s = DAMPING sd, by trapezoidal Fourier inversion of
    phi(r) e^{-s^2 r^2/2} on |r| <= R (damping < 1e-18 beyond), window +-WINDOW_SD sd;
    repeated with the window doubled to bound the wrap-around (aliasing) error.

    f_s(y) = (1/2 pi) int phi(r) e^{-s^2 r^2/2} e^{-i r y} dr >= 0 whenever phi is a
    characteristic function, so the damping cannot create negative mass.
    """
    ev = ctx.evaluator
    s = DAMPING * sd
    R = math.sqrt(2 * math.log(1e18)) / s
    L = 2 * WINDOW_SD * sd + 20 * s
    dr = 2 * math.pi / L
    M = math.ceil(R / dr)
    while True:  # refine dr until every continued log moves by < 1 rad per step
        try:
            ev.path(theta0, dr * np.arange(M + 1))
            break
        except _TooCoarse:
            dr, M = dr / 2, 2 * M
            if M > 2**22:
                raise
    nfft = 1 << math.ceil(math.log2(2 * M + 1))
    prev = None
    level = 1
    while True:  # double the window (same dy, twice the y range) until wrap-around is negligible
        dr_l, M_l, n_l = dr / level, M * level, nfft * level
        r = dr_l * np.arange(M_l + 1)
        Az = ev.path(theta0, r)
        A0 = Az[0].real
        with np.errstate(over="ignore", invalid="ignore"):
            phi = np.exp(Az - A0)
            damped = phi * np.exp(-0.5 * (s * r) ** 2)
        if not np.all(np.isfinite(damped)):
            cur = {"r": r, "Az": Az, "A0": A0, "phi": phi, "overflow": True}
            cur["branches"] = dict(ev.branches)
            return cur
        g = np.zeros(n_l, dtype=complex)
        g[: M_l + 1] = damped * np.exp(-1j * r * mean)
        g[n_l - M_l :] = np.conj(g[M_l:0:-1])
        f = np.fft.fftshift(np.fft.fft(g)) * dr_l / (2 * math.pi)
        dy = 2 * math.pi / (n_l * dr_l)
        y = mean + dy * np.arange(-n_l // 2, n_l // 2)
        cur = {
            "r": r,
            "Az": Az,
            "A0": A0,
            "phi": phi,
            "f": f,
            "y": y,
            "dy": dy,
            "s": s,
            "R": R,
            "dr": dr_l,
            "L": 2 * math.pi / dr_l,
            "roundoff": float(np.sum(np.abs(damped)) * dr_l / (2 * math.pi) * 1e-15),
            "branches": dict(ev.branches),
        }
        if prev is not None:
            # the previous y grid is the middle half of this one: the difference is the
            # wrap-around (aliasing) error of the previous window
            half = prev["f"].size
            mid = f[half // 2 : half // 2 + half]
            cur["alias"] = float(np.max(np.abs(prev["f"].real - mid.real)))
            peak = float(np.max(f.real))
            if cur["alias"] < 1e-14 * max(peak, 1e-300) or level >= 32:
                return cur
        prev = cur
        level *= 2


def _bound_and_measure(ctx: _Ctx, theta0: float) -> list[Evidence]:
    """Stages 4 and 5 at one tilt: phi on a lattice period (if the support is a lattice and
    phi is 2 pi-periodic) or on [0, R] for damped inversion; then the bound and the masses."""
    fam = ctx.family
    support = fam.support
    out: list[Evidence] = []
    lattice = None
    method = "continuous"
    try:
        if support in LATTICE_SUPPORTS:
            lattice = _lattice_phi(ctx, theta0)
            if lattice is not None:
                method = "lattice"
        if lattice is None:
            with mpmath.workdps(30):
                mean = _mp_real(ctx.fdA_rest, theta0)
                var = _mp_real(ctx.fd2A, theta0)
            if mean is None or var is None:
                raise _BranchTrouble("A', A'' not evaluable at the tilt")
            if var <= 0:
                raise _BranchTrouble(f"A''(theta0) = {mpmath.nstr(var, 5)} <= 0 (see convexity)")
            data = _continuous_phi(ctx, theta0, float(mean), math.sqrt(float(var)))
        else:
            data = lattice
    except (_NotAnalytic, _BranchTrouble, _TooCoarse) as exc:
        msg = f"theta0={theta0:g}: phi not evaluated ({exc})"
        return [
            Evidence("bound", UNDECIDED, None, msg, {"tilt": theta0}),
            Evidence("base_measure", UNDECIDED, None, msg, {"tilt": theta0}),
        ]
    out.append(_bound_evidence(ctx, theta0, data))
    if data.get("overflow"):
        out.append(
            Evidence(
                "base_measure",
                SKIPPED,
                None,
                f"theta0={theta0:g}: |phi| overflows (see bound)",
                {"tilt": theta0},
            )
        )
        return out
    if method == "lattice":
        out.append(_lattice_evidence(ctx, theta0, data))
    else:
        note = (
            ""
            if support not in LATTICE_SUPPORTS
            else "phi is not 2 pi-periodic (not an integer lattice law); "
        )
        out.append(_continuous_evidence(ctx, theta0, data, note))
    return out


def _bound_evidence(ctx: _Ctx, theta0: float, data: dict[str, Any]) -> Evidence:
    """|phi(r)| <= 1, i.e. Re A(theta0 + i r) <= A(theta0). A violation at r* is certain once
    confirmed at 50 digits: the Gram matrix [[1, phi(r*)], [conj phi(r*), 1]] of the points
    {0, r*} has determinant 1 - |phi(r*)|^2 < 0, so phi is not positive definite."""
    r, Az, A0 = data["r"], data["Az"], data["A0"]
    re = Az.real - A0
    i = int(np.argmax(re))
    worst = float(re[i])
    details: dict[str, Any] = {
        "tilt": theta0,
        "r_max": float(r[-1]),
        "points": int(r.size),
        "max_re_dA": worst,
        "argmax_r": float(r[i]),
    }
    if worst <= 1e-9:
        return Evidence(
            "bound",
            PASS,
            NUMERICAL,
            f"theta0={theta0:g}: max_r Re A(theta0+ir) - A(theta0) = {worst:.2e} <= 0 on "
            f"{r.size} points of [0, {r[-1]:.3g}]",
            details,
        )
    ev = ctx.evaluator
    ev.branches = data["branches"]
    try:
        with mpmath.workdps(50):
            Amp = ev.point_mp(theta0, float(r[i]), i, dps=50)
            A0mp = ev.point_mp(theta0, 0.0, 0, dps=50)
            d = mpmath.re(Amp) - mpmath.re(A0mp)
            phi = mpmath.exp(Amp - A0mp)
            agree = abs(complex(Amp) - complex(Az[i])) <= 1e-8 * (1 + abs(complex(Az[i])))
    except (_NotAnalytic, ValueError, ZeroDivisionError) as exc:
        details["mp_error"] = str(exc)
        agree, d, phi = False, mpmath.mpf(0), mpmath.mpc(0)
    if agree and d > mpmath.mpf(10) ** -30:
        absphi = abs(phi)
        details["witness"] = {
            "points": [0.0, float(r[i])],
            "gram": [["1", mpmath.nstr(phi, 20)], [mpmath.nstr(mpmath.conj(phi), 20), "1"]],
            "abs_phi": mpmath.nstr(absphi, 20),
            "determinant": mpmath.nstr(1 - absphi**2, 20),
            "min_eigenvalue": mpmath.nstr(1 - absphi, 20),
        }
        return Evidence(
            "bound",
            FAIL,
            PROVEN,
            f"theta0={theta0:g}: |phi({r[i]:.6g})| = {mpmath.nstr(absphi, 12)} > 1 (50 digits): "
            f"2x2 Gram matrix has determinant {mpmath.nstr(1 - absphi**2, 6)} < 0",
            details,
        )
    if worst > 1e-6:
        return Evidence(
            "bound",
            FAIL,
            NUMERICAL,
            f"theta0={theta0:g}: Re A(theta0+ir) - A(theta0) reaches {worst:.3g} > 0 "
            "(not confirmed at 50 digits)",
            details,
        )
    return Evidence(
        "bound",
        UNDECIDED,
        None,
        f"theta0={theta0:g}: |phi| - 1 = {worst:.2e}, too close to call",
        details,
    )


def _decide_negativity(most_negative: float, floor: float, scale: float) -> tuple[str, str | None]:
    """pass: the most negative value is within ACCEPT_FACTOR x the error floor (noise);
    fail: it exceeds REJECT_FACTOR x the floor (and RESOLUTION x the scale); else undecided."""
    if most_negative >= -ACCEPT_FACTOR * floor:
        if floor > MAX_FLOOR * scale:
            return UNDECIDED, None  # no negativity seen, but the resolution is too coarse
        return PASS, NUMERICAL
    if -most_negative >= REJECT_FACTOR * floor and -most_negative > RESOLUTION * scale:
        return FAIL, NUMERICAL
    return UNDECIDED, None


def _spec_h(fam: Family):
    if fam.h is None or fam.T != Y:
        return None
    return sp.lambdify(Y, fam.h, modules=["mpmath"])


def _lattice_evidence(ctx: _Ctx, theta0: float, data: dict[str, Any]) -> Evidence:
    fam = ctx.family
    p, N = data["p"], data["N"]
    n = np.arange(-N // 2, N // 2)
    pn = p[n % N]
    floor = max(
        data["alias"] if math.isfinite(data["alias"]) else 1.0,
        float(np.max(np.abs(pn.imag))),
        1e-16 * max(1.0, math.log2(N)),
    )
    masses = pn.real
    j = int(np.argmin(masses))
    most_neg = float(masses[j])
    outcome, strength = _decide_negativity(most_neg, floor, 1.0)
    shift = float(ctx.shift)
    A0_full = float(_mp_real(ctx.fA, theta0))
    keep = masses > max(1e-10, 10 * floor)
    ys = n[keep] + shift
    h = masses[keep] * np.exp(A0_full - theta0 * ys)
    in_support = LATTICE_SUPPORTS[fam.support]
    outside = float(
        sum(
            m
            for k, m in zip(n, masses, strict=True)
            if m > 10 * floor and not (shift == 0 and in_support(int(k)))
        )
    )
    details: dict[str, Any] = {
        "tilt": theta0,
        "method": "lattice DFT over one period",
        "N": N,
        "alias_difference_N_vs_N/2": data["alias"],
        "periodicity_error": data["periodicity_error"],
        "error_floor": floor,
        "most_negative_mass": most_neg,
        "at_y": float(n[j] + shift),
        "total_mass": float(masses.sum()),
        "recovered_h": [[float(a), float(b)] for a, b in zip(ys[:25], h[:25], strict=False)],
        "mass_outside_declared_support": outside,
    }
    hspec = _spec_h(fam)
    if hspec is not None and shift == 0:
        errs = []
        for yv, hv, mv in zip(ys, h, masses[keep], strict=True):
            if mv < 1e-8:
                continue
            try:
                ref = float(hspec(int(yv))) if in_support(int(yv)) else 0.0
            except (ValueError, ZeroDivisionError, TypeError):
                continue
            errs.append(abs(hv - ref) / max(abs(ref), 1e-300))
        if errs:
            details["spec_base_measure_max_rel_error"] = max(errs)
    ctx.curves.append(
        TiltCurve(theta0, "lattice", data["r"][:N], data["phi"][:N], n + shift, masses, floor)
    )
    desc = (
        f"theta0={theta0:g}: DFT N={N}, most negative mass {most_neg:.2e} at y="
        f"{n[j] + shift:g}, error floor {floor:.1e}"
    )
    if outcome == PASS:
        desc += f"; no negative mass at resolution {ACCEPT_FACTOR * floor:.0e}"
    elif outcome == FAIL:
        desc += f"; negative mass {-most_neg / floor:.1e} x the floor"
    return Evidence("base_measure", outcome, strength, desc, details)


def _continuous_evidence(ctx: _Ctx, theta0: float, data: dict[str, Any], note: str) -> Evidence:
    fam = ctx.family
    f, y = data["f"], data["y"]
    dens = f.real
    peak = float(np.max(dens))
    floor = max(data["alias"], float(np.max(np.abs(f.imag))), data["roundoff"])
    j = int(np.argmin(dens))
    most_neg = float(dens[j])
    outcome, strength = _decide_negativity(most_neg, floor, peak)
    shift = float(ctx.shift)
    A0_full = float(_mp_real(ctx.fA, theta0))
    yy = y + shift
    with np.errstate(over="ignore"):
        hs = dens * np.exp(A0_full - theta0 * yy)
    live = np.flatnonzero(dens > 1e-8 * peak)
    sel = np.unique(np.linspace(live[0], live[-1], 41).astype(int)) if live.size else live
    details: dict[str, Any] = {
        "tilt": theta0,
        "method": "Gaussian-damped Fourier inversion",
        "damping_s": data["s"],
        "r_max": data["R"],
        "dr": data["dr"],
        "window_L": data["L"],
        "alias_difference_L_vs_2L": data["alias"],
        "error_floor": floor,
        "peak_density": peak,
        "most_negative_density": most_neg,
        "at_y": float(yy[j]),
        "total_mass": float(np.sum(dens) * data["dy"]),
        "recovered_h_smoothed": [[float(yy[k]), float(hs[k])] for k in sel],
    }
    hspec = _spec_h(fam)
    if hspec is not None and fam.support in CONTINUOUS_SUPPORTS:
        details["spec_base_measure_max_abs_error"] = _compare_smoothed(
            fam, hspec, theta0, A0_full, data["s"], yy, dens, peak
        )
    ctx.curves.append(TiltCurve(theta0, "continuous", data["r"], data["phi"], yy, dens, floor))
    desc = (
        f"theta0={theta0:g}: {note}damped inversion (s={data['s']:.3g}), most negative "
        f"density {most_neg:.2e} (peak {peak:.3g}), error floor {floor:.1e}"
    )
    if outcome == PASS:
        desc += f"; no negative mass at resolution {ACCEPT_FACTOR * floor:.0e}"
    elif outcome == FAIL:
        desc += f"; negativity {-most_neg / floor:.1e} x the floor"
    return Evidence("base_measure", outcome, strength, desc, details)


def _compare_smoothed(fam, hspec, theta0, A0_full, s, yy, dens, peak) -> float | None:
    """max |f_s(y) - int h(u) e^{theta0 u - A(theta0)} N(y - u; 0, s^2) du| at 5 points near
    the peak, by scipy quad on the declared support (an independent check of the spec's h)."""
    lo, hi = CONTINUOUS_SUPPORTS[fam.support]
    order = np.argsort(-dens)
    errs = []
    for k in order[:200:40]:
        yv, dv = float(yy[k]), float(dens[k])
        a, b = max(lo, yv - 12 * s), min(hi, yv + 12 * s)
        if a >= b:
            errs.append(abs(dv))
            continue

        def integrand(u, yv=yv):
            return (
                float(hspec(u))
                * math.exp(theta0 * u - A0_full)
                * math.exp(-0.5 * ((yv - u) / s) ** 2)
                / (s * math.sqrt(2 * math.pi))
            )

        try:
            val, _ = integrate.quad(integrand, a, b, limit=200, epsabs=1e-14, epsrel=1e-12)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            return None
        errs.append(abs(val - dv))
    return max(errs) / peak if errs else None


# ----------------------------------------------------------------------------------------
# Verdict
# ----------------------------------------------------------------------------------------


def _verdict(evidence: list[Evidence]) -> tuple[str, str | None, str]:
    proven_fail = [e for e in evidence if e.outcome == FAIL and e.strength == PROVEN]
    proven_pass = [
        e
        for e in evidence
        if e.outcome == PASS and e.strength == PROVEN and e.stage in ("structure", "series")
    ]
    num_fail = [e for e in evidence if e.outcome == FAIL and e.strength == NUMERICAL]
    if proven_fail and proven_pass:
        return (
            INCONCLUSIVE,
            None,
            "contradiction between a proof of admissibility ("
            f"{proven_pass[0].summary}) and a proven rejection ({proven_fail[0].summary})",
        )
    if proven_fail:
        e = proven_fail[0]
        return NOT_ADMISSIBLE, PROVEN, f"{e.stage}: {e.summary}"
    if proven_pass:
        e = proven_pass[0]
        reason = f"{e.stage}: {e.summary}"
        if num_fail:
            reason += f" (numerical stage {num_fail[0].stage} disagreed: see evidence)"
        return ADMISSIBLE, PROVEN, reason
    if num_fail:
        e = num_fail[0]
        return NOT_ADMISSIBLE, NUMERICAL, f"{e.stage}: {e.summary}"
    conv = [e for e in evidence if e.stage == "convexity"]
    bound = [e for e in evidence if e.stage == "bound"]
    base = [e for e in evidence if e.stage == "base_measure"]
    ok = (
        conv
        and conv[0].outcome == PASS
        and bound
        and all(e.outcome == PASS for e in bound)
        and base
        and all(e.outcome == PASS for e in base)
    )
    if ok:
        floors = [e.details.get("error_floor", 0.0) for e in base]
        res = ACCEPT_FACTOR * max(floors)
        tilts = ", ".join(f"{e.details['tilt']:g}" for e in base)
        return (
            ADMISSIBLE,
            NUMERICAL,
            f"no negative mass found at resolution ~{res:.0e} at tilts {tilts}; "
            f"|phi| <= 1; convexity {conv[0].strength}",
        )
    undecided = [e for e in evidence if e.outcome in (UNDECIDED,)]
    why = undecided[0].summary if undecided else "not enough evidence either way"
    return INCONCLUSIVE, None, why


# ----------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------


def check(
    family: Family | str | Path,
    *,
    tilts: tuple[float, ...] | list[float] | None = None,
    progress: bool = False,
    structural: bool = True,
    series_order: int = SERIES_ORDER,
    hankel: bool = True,
) -> Report:
    """Check that ``family.A`` is an admissible log-partition function (Lemma 1).

    ``family`` is a :class:`Family` (or anything :func:`load_family` accepts). ``tilts`` are
    the theta0 for the Fourier stages (default :func:`default_tilts`; each must lie strictly
    inside the declared domain). ``structural=False`` skips the structural/registry stage
    (to see what the numerical stages alone conclude); ``series_order`` is the number of
    coefficients of exp(A) in x = e^eta; ``hankel=False`` skips the moment-matrix cross-check
    (its high-order numerical derivatives are the slowest mpmath work). ``progress`` shows a
    tqdm bar over the stages. Returns a :class:`Report`.
    """
    start = time.perf_counter()
    fam = family if isinstance(family, Family) else load_family(family)
    lo, hi = fam.domain
    if tilts is None:
        tilts = default_tilts(fam.domain)
    tilts = tuple(float(t) for t in tilts)
    for t in tilts:
        if not (bool(lo < t) and bool(t < hi)):
            raise ValueError(f"tilt {t} is not inside the open domain ({lo}, {hi})")
    A = fam.A
    A_rest, b = _split_linear(A)
    ctx = _Ctx(
        family=fam,
        A=A,
        A_rest=A_rest,
        shift=b,
        domain=fam.domain,
        tilts=tilts,
        fA=fam.mpmath_function(A),
        fA_rest=fam.mpmath_function(A_rest),
        fdA_rest=fam.mpmath_function(sp.diff(A_rest, ETA)),
        fd2A=fam.mpmath_function(fam.dsigma),
        evaluator=_PathEvaluator(A_rest),
    )
    steps: list[tuple[str, Any]] = [
        ("domain", lambda: [_stage_domain(ctx)]),
        ("convexity", lambda: [_stage_convexity(ctx)]),
    ]
    if structural:
        steps.append(("structure", lambda: [_stage_structure(ctx)]))
    steps.append(("series", lambda: [_stage_series(ctx, series_order)]))
    for t in tilts:
        steps.append((f"fourier@{t:g}", lambda t=t: _bound_and_measure(ctx, t)))
    steps.append(("exp_convexity", lambda: [_stage_exp_convexity(ctx)]))
    if hankel:  # one tilt: high-order numerical derivatives are the slowest mpmath work
        mid = tilts[len(tilts) // 2]
        steps.append((f"hankel@{mid:g}", lambda: [_stage_hankel(ctx, mid)]))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(steps), desc=f"check {fam.name}", unit="stage", leave=False)
    evidence: list[Evidence] = []
    domain_ok = True
    for label, run in steps:
        if bar is not None:
            bar.set_postfix_str(label)
        if domain_ok or label in ("convexity", "structure"):
            evidence.extend(_guarded(label, run))
        if label == "domain" and evidence[-1].outcome == FAIL:
            domain_ok = False
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    verdict, strength, reason = _verdict(evidence)
    conv = next(e for e in evidence if e.stage == "convexity")
    convexity = {
        "status": {PASS: conv.strength, FAIL: "violated"}.get(conv.outcome, "unknown"),
        "method": conv.summary,
        **conv.details,
    }
    return Report(
        name=fam.name,
        log_partition=str(A),
        domain=(str(lo), str(hi)),
        support=fam.support,
        verdict=verdict,
        strength=strength,
        reason=reason,
        convexity=convexity,
        evidence=evidence,
        tilts=tilts,
        elapsed_s=time.perf_counter() - start,
        curves=ctx.curves,
    )


def _guarded(label: str, run) -> list[Evidence]:
    """Run one stage; a numerical breakdown (overflow, a function mpmath/numpy cannot evaluate
    on this input) becomes an ``inconclusive`` item naming the error, never a verdict."""
    try:
        return run()
    except (
        ArithmeticError,
        ValueError,
        TypeError,
        NameError,
        _NotAnalytic,
        _BranchTrouble,
        _TooCoarse,
    ) as exc:
        stage = label.split("@")[0]
        return [
            Evidence(
                "base_measure" if stage == "fourier" else stage,
                UNDECIDED,
                None,
                f"{label}: evaluation failed ({type(exc).__name__}: {exc})",
            )
        ]


def plot_report(report: Report, path: str | Path) -> Path:
    """Write the check plot (see :mod:`derive.check_plot`): per tilt, phi(r) and the
    recovered tilted law of T(y); without one, what was computed and why no law."""
    from .check_plot import save_report_plot

    return save_report_plot(report, path)
