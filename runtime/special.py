r"""Torch special functions used by generated exponential-family layers.

Every function maps a floating tensor ``x`` (float32 or float64; any shape, any device) to a
tensor of the same dtype and shape, and is differentiable with autograd.

Plain TorchScript-compatible functions (only torch ops, so ``torch.jit.script`` and
``torch.compile(fullgraph=True)`` trace them directly):

=====================  =========================================  ======================
function               meaning                                    derivative in x
=====================  =========================================  ======================
``softplus(x)``        log(1 + e^x)                               sigmoid(x)
``sigmoid(x)``         1 / (1 + e^{-x})                           sigmoid(x) sigmoid(-x)
``logcosh(x)``         log cosh x                                 tanh(x)
=====================  =========================================  ======================

Custom operators (``torch.library.custom_op`` in namespace ``deqfam``; callable as
``torch.ops.deqfam.NAME`` from eager code, TorchScript and ``torch.compile``). Each has a fake
(meta) kernel and an autograd formula whose backward calls the operator again, so they are
differentiable any number of times (within the supported orders):

================================  ===================================  =========================
operator                          meaning                              derivative in x
================================  ===================================  =========================
``polylog_exp(x, s)``             Li_s(e^x), real s, x < 0             polylog_exp(x, s - 1)
``fermi_dirac(x, s)``             -Li_s(-e^x) = F_{s-1}(x), x <= 0      fermi_dirac(x, s - 1)
``logexpm1x(x, k)``               d^k/dx^k log((e^x - 1)/x)            logexpm1x(x, k + 1)
``logexpm1exp(x, k)``             d^k/dx^k log(e^(e^x) - 1)            logexpm1exp(x, k + 1)
``logli1exp(x, k)``               d^k/dx^k log Li_1(e^x), x < 0        logli1exp(x, k + 1)
================================  ===================================  =========================

The operators evaluate in float64 internally whatever the input dtype and round the result
once to the input dtype, so float32 accuracy is limited only by that final rounding.
Elementwise domain problems never raise: an element that is NaN or outside the documented
domain gives NaN (never a wrong finite number) and leaves the other elements untouched.

Constants (zeta/eta values, Gamma factors, Bernoulli numbers, series weights) are computed
once per order with mpmath at 40+ significant digits, cached with ``functools.lru_cache``,
and rounded to float64 literals; :func:`polylog_near0_coefficients`,
:func:`fermi_dirac_near0_coefficients` and :func:`logexpm1x_taylor_coefficients` expose them
for code generators.

Switch points and term counts (term counts are chosen per order by bounding the truncated
tail below 1e-17 relative; the figures quoted are for 0.5 <= s <= 4.5):

* ``polylog_exp``: series sum_{k>=1} e^{kx}/k^s for x <= -1.5, expansion about 0 for
  -1.5 < x < 0. The series tail after N terms is about e^{-1.5 N} relative to the first
  term e^x (a lower bound of Li_s(e^x)), so 18-26 terms; the expansion about 0 has radius
  2 pi, its terms shrink like (1.5/(2 pi))^k, so 24-27 terms. x0 = -1.5 balances the two
  counts (x0 = -1 needs ~40 series terms, x0 = -2 ~35 expansion terms); the expansion's
  cancellation (terms up to ~20x the result for s = 1.5 near x0) costs at most ~5e-15.
* ``fermi_dirac``: alternating series for x <= -1, expansion about 0 for -1 < x <= 0. The
  expansion of -Li_s(-e^x) has radius pi (singularities at x = +-i pi), so its terms shrink
  like (1/pi)^k: 27-34 terms; the series needs 26-39 terms at x = -1.
* ``logexpm1x``: Taylor series for |x| < a_k and closed forms for |x| >= a_k with
  a_k = 2.5, 2.5, 3, 3.5, 4, 4, 4 for k = 0..6. The closed form of L^{(k)} (k >= 2) subtracts
  (k-1)!/|x|^k from a polynomial in 1/expm1(|x|) to produce a result of size
  ~(k-1)!/(2 pi)^k, a cancellation of about (2 pi/|x|)^k, so a_k grows with k (measured
  error at the switch below 3e-15 for k <= 4). The Taylor series (radius 2 pi) needs 20, 22, 31,
  44, 63, 68, 72 Bernoulli terms for k = 0..6.

Why one module of this size: each special function sits next to the series constants,
switch points and error figures that justify it, and the custom ops of all of them are
registered and given plain-torch twins for export (``OP_IMPLEMENTATIONS``) in one place;
the two long nested primitives live in ``special_expm1.py`` / ``special_li1.py``,
``L(x) = log((e^x-1)/x)`` in ``special_logexpm1x.py`` and the shared helpers in
``special_series.py``.
"""

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import NamedTuple

import mpmath
import torch

from . import special_series
from .order_ops import register_order_op

__all__ = [
    "FERMI_DIRAC_X0",
    "LOGEXPM1X_K_MAX",
    "LOGEXPM1X_THRESHOLDS",
    "OP_IMPLEMENTATIONS",
    "POLYLOG_X0",
    "PRIMITIVE_CALLS",
    "PolylogNear0",
    "fermi_dirac",
    "fermi_dirac_near0_coefficients",
    "logcosh",
    "logexpm1",
    "logexpm1exp",
    "logexpm1x",
    "logexpm1x_taylor_coefficients",
    "logli1exp",
    "polylog_exp",
    "polylog_near0_coefficients",
    "sigmoid",
    "softplus",
    "where_piecewise",
]

# ---------------------------------------------------------------------------------------
# Plain TorchScript-compatible functions
# ---------------------------------------------------------------------------------------


def softplus(x: torch.Tensor) -> torch.Tensor:
    """softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), accurate to ~1 ulp.

    Uses ``torch.logaddexp(x, 0)`` (no threshold cut-off, unlike
    ``torch.nn.functional.softplus``); finite for all finite x, derivative sigmoid(x)
    (0.5 exactly at x = 0).
    """
    return torch.logaddexp(x, torch.zeros_like(x))


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """sigmoid(x) = 1 / (1 + e^{-x}); derivative sigmoid(x) sigmoid(-x).

    Evaluated as 1/(1 + e) for x >= 0 and e/(1 + e) for x < 0 with e = e^{-|x|} <= 1 (no
    overflow, ~1 ulp). Unlike ``torch.sigmoid``, whose backward forms sigma (1 - sigma) and
    loses all relative accuracy for large x (1 - sigma cancels), autograd through this form
    yields e/(1 + e)^2 = sigmoid(x) sigmoid(-x) to a few ulp everywhere. e is built from
    ``torch.where(x >= 0, -x, x)`` rather than ``-abs(x)`` so the gradient at x = 0 is right.
    """
    pos = x >= 0
    e = torch.exp(torch.where(pos, -x, x))
    return torch.where(pos, 1.0 / (1.0 + e), e / (1.0 + e))


def logcosh(x: torch.Tensor) -> torch.Tensor:
    """logcosh(x) = log cosh x; derivative tanh(x).

    For |x| >= 1: log cosh x = |x| + log1p(e^{-2|x|}) - log 2 (no overflow; every term is
    O(1) relative to the result >= 0.43). For |x| < 1 that form cancels (log cosh x ~ x^2/2),
    so there log cosh x = log1p(cosh x - 1) = log1p(2 sinh^2(x/2)), which is accurate to a
    few ulp. The small branch is fed 0 outside |x| < 1 so its gradient stays finite.
    """
    ax = torch.abs(x)
    small = ax < 1.0
    xs = torch.where(small, x, torch.zeros_like(x))
    sh = torch.sinh(0.5 * xs)
    near = torch.log1p(2.0 * sh * sh)
    far = ax + torch.log1p(torch.exp(-2.0 * ax)) - 0.6931471805599453
    return torch.where(small, near, far)


from .special_logexpm1x import (  # noqa: E402 - L(x) and its derivatives
    _logexpm1x_f64,
    logexpm1x_taylor_coefficients,
)
from .special_series import (  # noqa: E402 - shared constants and helpers
    _DPS,
    _MAX_TERMS,
    _TAIL_TOL,
    FERMI_DIRAC_X0,
    LOGEXPM1X_K_MAX,
    LOGEXPM1X_THRESHOLDS,
    POLYLOG_X0,
    _assemble,
    _check_float,
    _choose_terms,
    _horner,
    _is_integer,
)

# ---------------------------------------------------------------------------------------
# Li_s(e^x): constants
# ---------------------------------------------------------------------------------------


class PolylogNear0(NamedTuple):
    r"""Expansion of Li_s(e^x) about x = 0 (valid for |x| < 2 pi, x < 0).

    Li_s(e^x) = sum_k coeffs[k] x^k + x^m S(x) with the singular part

    * ``kind == "log"`` (integer s = n >= 1, m = n - 1): S = -a log(-x), a = 1/m!;
      coeffs[k] = zeta(n - k)/k! for k != m and coeffs[m] = H_m/m! (harmonic number).
    * ``kind == "pow"`` (non-integer s with |s - round(s)| >= 1/4 or s < 1/2, and integer
      s <= 0): m = 0, S = a (-x)^delta with a = Gamma(1 - s), delta = s - 1;
      coeffs[k] = zeta(s - k)/k!.
    * ``kind == "expm1"`` (non-integer s >= 3/4 within 1/4 of an integer n, m = n - 1):
      S = a expm1(delta log(-x)) with delta = s - n, a = (-1)^m Gamma(1 - s);
      coeffs[k] = zeta(s - k)/k! for k != m and coeffs[m] = a + zeta(s - m)/m!.
      This is the "pow" form with the two poles (Gamma(1 - s) and zeta(1 + delta), both
      ~ 1/delta) cancelled analytically, so it stays accurate as s approaches an integer.
    """

    coeffs: tuple[float, ...]
    m: int
    kind: str
    a: float
    delta: float


def _polylog_near0_mp(s: float, n_terms: int):
    """mpmath values of the expansion about 0 (see PolylogNear0), as mpf."""
    s_mp = mpmath.mpf(s)
    if _is_integer(s):
        n = int(s)
        coeffs = [
            mpmath.zeta(s_mp - k) / mpmath.factorial(k) if n - k != 1 else None
            for k in range(n_terms)
        ]
        if n >= 1:
            m = n - 1
            if m < n_terms:
                coeffs[m] = mpmath.harmonic(m) / mpmath.factorial(m)
            return coeffs, m, "log", 1 / mpmath.factorial(m), mpmath.mpf(0)
        return coeffs, 0, "pow", mpmath.gamma(1 - s_mp), s_mp - 1
    n = math.floor(s + 0.5)
    delta = s_mp - n
    coeffs = [mpmath.zeta(s_mp - k) / mpmath.factorial(k) for k in range(n_terms)]
    if n >= 1 and abs(delta) < 0.25:
        m = n - 1
        a = (-1) ** m * mpmath.gamma(1 - s_mp)
        c_m = a + mpmath.zeta(s_mp - m) / mpmath.factorial(m)
        if m < n_terms:
            coeffs[m] = c_m
        return coeffs, m, "expm1", a, delta
    return coeffs, 0, "pow", mpmath.gamma(1 - s_mp), s_mp - 1


def _extra_dps(s: float) -> int:
    """Guard digits for orders close to an integer (poles cancel like 1/|s - round(s)|)."""
    d = abs(s - round(s))
    return 10 + (int(-math.log10(d)) if 0 < d < 1 else 0)


@functools.lru_cache(maxsize=512)
def polylog_near0_coefficients(s: float, n_terms: int | None = None) -> PolylogNear0:
    """Float64 literals of the expansion of Li_s(e^x) about x = 0 (see :class:`PolylogNear0`).

    Non-integer s: Li_s(e^x) = Gamma(1-s)(-x)^{s-1} + sum_{k>=0} zeta(s-k) x^k/k!.
    Integer s = n >= 1: Li_n(e^x) = x^{n-1}/(n-1)! [H_{n-1} - log(-x)]
    + sum_{k>=0, k != n-1} zeta(n-k) x^k/k!. Both converge for |x| < 2 pi.
    Computed with mpmath at 40+ digits. ``n_terms=None`` gives the count used by
    :func:`polylog_exp` (tail below 1e-17 relative on -1.5 < x < 0).
    """
    s = float(s)
    if not math.isfinite(s):
        raise ValueError("order s must be finite")
    if n_terms is None:
        n_terms = _polylog_near0_nterms(s)
    with mpmath.workdps(_DPS + _extra_dps(s)):
        coeffs, m, kind, a, delta = _polylog_near0_mp(s, n_terms)
        return PolylogNear0(tuple(float(c) for c in coeffs), m, kind, float(a), float(delta))


@functools.lru_cache(maxsize=512)
def _polylog_near0_nterms(s: float) -> int:
    r = -POLYLOG_X0
    trial = 60
    while True:
        with mpmath.workdps(20 + _extra_dps(s)):
            coeffs = _polylog_near0_mp(s, trial)[0]
            # Li_s(z) >= z on 0 < z < 1 (positive series), so e^{x0} bounds the value below.
            mags = [abs(float(c)) * r**k for k, c in enumerate(coeffs)]
        try:
            return _choose_terms(mags, _TAIL_TOL * math.exp(POLYLOG_X0))
        except RuntimeError:
            if trial >= _MAX_TERMS:
                raise
            trial *= 2


def _series_nterms(s: float, x0: float, scale: float) -> int:
    """Smallest N with sum_{k>N} e^{(k-1) x0} k^{-s} < tol * scale (tail relative to e^x)."""
    logs = []
    k = 1
    while True:
        logs.append((k - 1) * x0 - s * math.log(k))
        # stop once past the maximum of the terms and far below the tolerance
        if k > 2 and logs[-1] < logs[-2] and logs[-1] < math.log(_TAIL_TOL) - 20:
            break
        k += 1
        if k > _MAX_TERMS:
            raise RuntimeError(f"series for order {s} needs more than {_MAX_TERMS} terms")
    tail = 0.0
    n = len(logs)
    for idx in range(len(logs) - 1, -1, -1):
        if tail + math.exp(logs[idx]) >= _TAIL_TOL * scale:
            n = idx + 1
            break
        tail += math.exp(logs[idx])
    return n


@functools.lru_cache(maxsize=512)
def _polylog_series_coeffs(s: float) -> tuple[float, ...]:
    """k^{-s} for k = 1..N (series sum_k e^{kx} k^{-s} on x <= POLYLOG_X0)."""
    n = _series_nterms(s, POLYLOG_X0, 1.0)
    with mpmath.workdps(_DPS):
        return tuple(float(mpmath.power(k, -mpmath.mpf(s))) for k in range(1, n + 1))


@functools.lru_cache(maxsize=512)
def _zeta(s: float) -> float:
    with mpmath.workdps(_DPS):
        return float(mpmath.zeta(mpmath.mpf(s)))


@functools.lru_cache(maxsize=64)
def _eulerian_poly(n: int) -> tuple[float, ...]:
    """Coefficients (in g) of P_n with Li_{-n}(e^x) = P_n(g), g = e^x/(1 - e^x).

    P_0(g) = g and P_{j+1}(g) = g (1 + g) P_j'(g) (since dg/dx = g(1 + g)); all coefficients
    are positive integers (Eulerian numbers), exact in Python ints.
    """
    p = [0, 1]
    for _ in range(n):
        dp = [i * p[i] for i in range(1, len(p))]  # P'
        q = [0] * (len(dp) + 2)
        for i, c in enumerate(dp):  # (g + g^2) * P'
            q[i + 1] += c
            q[i + 2] += c
        p = q
    return tuple(float(c) for c in p)


# ---------------------------------------------------------------------------------------
# Li_s(e^x): evaluation (float64 tensors)
# ---------------------------------------------------------------------------------------


def _series_pos(x: torch.Tensor, coeffs: Sequence[float]) -> torch.Tensor:
    """sum_{k=1}^N coeffs[k-1] e^{kx} = z * (c_1 + z (c_2 + ...)), z = e^x."""
    z = torch.exp(x)
    return z * _horner(z, coeffs)


def _polylog_near0_eval(x: torch.Tensor, e: PolylogNear0) -> torch.Tensor:
    lx = torch.log(-x)
    if e.kind == "log":
        sing = (-e.a) * lx
    elif e.kind == "expm1":
        sing = e.a * torch.expm1(e.delta * lx)
    else:
        sing = e.a * torch.pow(-x, e.delta)
    if e.m > 0:
        sing = sing * torch.pow(x, e.m)
    return _horner(x, e.coeffs) + sing


def _li1(x: torch.Tensor) -> torch.Tensor:
    """Li_1(e^x) = -log(1 - e^x): log(-expm1(x)) for x > -ln 2, log1p(-e^x) below."""
    near = x > -0.6931471805599453
    return -torch.where(near, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _li_nonpos_int(x: torch.Tensor, n: int) -> torch.Tensor:
    """Li_{-n}(e^x), integer n >= 0, for all real x != 0.

    Li_0(e^x) = g = 1/expm1(-x). For n >= 1, Li_{-n}(e^x) = P_n(g) evaluated at -|x| (g in
    (0, inf), positive coefficients, no cancellation), using the inversion formula
    Li_{-n}(1/z) = (-1)^{n+1} Li_{-n}(z) for x > 0.
    """
    if n == 0:
        return 1.0 / torch.expm1(-x)
    g = 1.0 / torch.expm1(torch.abs(x))
    val = _horner(g, _eulerian_poly(n))
    if n % 2 == 0:  # (-1)^{n+1} = -1 for x > 0
        val = torch.where(x > 0, -val, val)
    return val


def _polylog_exp_f64(x: torch.Tensor, s: float) -> torch.Tensor:
    if _is_integer(s) and s <= 1:
        if s == 1:
            fn = _li1
        else:
            n = int(-s)

            def fn(t: torch.Tensor) -> torch.Tensor:
                return _li_nonpos_int(t, n)

        lo = (x < 0) if s == 1 else (x != 0)  # x = 0 is a pole; s = 1, x > 0 is complex
        return _assemble(x, [(lo, fn)])
    ser = _polylog_series_coeffs(s)
    near = polylog_near0_coefficients(s)
    pieces = [
        (x <= POLYLOG_X0, lambda t: _series_pos(t, ser)),
        ((x > POLYLOG_X0) & (x < 0), lambda t: _polylog_near0_eval(t, near)),
    ]
    if s > 1:
        zs = _zeta(s)
        pieces.append((x == 0, lambda t: torch.full_like(t, zs)))
    return _assemble(x, pieces)


# ---------------------------------------------------------------------------------------
# -Li_s(-e^x): constants and evaluation
# ---------------------------------------------------------------------------------------


def _fd_near0_mp(s: float, n_terms: int) -> list:
    s_mp = mpmath.mpf(s)
    return [mpmath.altzeta(s_mp - k) / mpmath.factorial(k) for k in range(n_terms)]


@functools.lru_cache(maxsize=512)
def fermi_dirac_near0_coefficients(s: float, n_terms: int | None = None) -> tuple[float, ...]:
    """Float64 literals eta(s - k)/k!, k = 0..n_terms-1, of -Li_s(-e^x) = sum_k eta(s-k) x^k/k!.

    eta(z) = (1 - 2^{1-z}) zeta(z) is the Dirichlet eta function (entire; eta(1) = log 2),
    computed with ``mpmath.altzeta`` at 40 digits. The series converges for |x| < pi.
    ``n_terms=None`` gives the count used by :func:`fermi_dirac` (-1 < x <= 0).
    """
    s = float(s)
    if not math.isfinite(s):
        raise ValueError("order s must be finite")
    if n_terms is None:
        n_terms = _fd_near0_nterms(s)
    with mpmath.workdps(_DPS):
        return tuple(float(c) for c in _fd_near0_mp(s, n_terms))


@functools.lru_cache(maxsize=512)
def _fd_near0_nterms(s: float) -> int:
    r = -FERMI_DIRAC_X0
    trial = 80
    while True:
        with mpmath.workdps(20):
            mags = [abs(float(c)) * r**k for k, c in enumerate(_fd_near0_mp(s, trial))]
        # for s >= 0, -Li_s(-z) >= z (1 - z/2^s) >= e^{x0}/2 on the region
        try:
            return _choose_terms(mags, _TAIL_TOL * 0.5 * math.exp(FERMI_DIRAC_X0))
        except RuntimeError:
            if trial >= _MAX_TERMS:
                raise
            trial *= 2


@functools.lru_cache(maxsize=512)
def _fd_series_coeffs(s: float) -> tuple[float, ...]:
    """(-1)^{k+1} k^{-s}, k = 1..N (series -Li_s(-e^x) = sum_k (-1)^{k+1} e^{kx}/k^s)."""
    n = _series_nterms(s, FERMI_DIRAC_X0, 0.5)
    with mpmath.workdps(_DPS):
        return tuple(
            float((-1) ** (k + 1) * mpmath.power(k, -mpmath.mpf(s))) for k in range(1, n + 1)
        )


@functools.lru_cache(maxsize=64)
def _fd_tanh_poly(n: int) -> tuple[float, ...]:
    """Coefficients (in t = tanh(x/2)) of R_n with F(x, -n) = (1 - t^2) R_n(t), n >= 1.

    With sigma = (1 + t)/2 and dt/dx = (1 - t^2)/2: R_1 = 1/4 (F(x, -1) = sigma (1 - sigma))
    and R_{n+1}(t) = -t R_n(t) + (1 - t^2)/2 R_n'(t). Exact rationals, then float64.
    """
    r = [Fraction(1, 4)]
    for _ in range(n - 1):
        d = [i * r[i] for i in range(1, len(r))]
        q = [Fraction(0)] * (len(r) + 1)
        for i, c in enumerate(r):
            q[i + 1] -= c
        for i, c in enumerate(d):
            q[i] += c / 2
            q[i + 2] -= c / 2
        r = q
    return tuple(float(c) for c in r)


@functools.lru_cache(maxsize=64)
def _fd_inversion_poly(n: int) -> tuple[float, ...]:
    """Coefficients (in x) of Q_n with -Li_n(-e^x) = Q_n(x) + (-1)^{n+1} (-Li_n(-e^{-x})).

    From Li_n(-e^x) + (-1)^n Li_n(-e^{-x}) = -(2 pi i)^n/n! B_n(1/2 + x/(2 pi i)):
    Q_n(x) = sum_j binom(n, 2j)/n! |B_{2j}(1/2)| (2 pi)^{2j} x^{n-2j}; every term is
    non-negative for x >= 0 (B_{2j}(1/2) = (2^{1-2j} - 1) B_{2j} has sign (-1)^j).
    """
    with mpmath.workdps(_DPS):
        c = [0.0] * (n + 1)
        for j in range(n // 2 + 1):
            v = (
                mpmath.binomial(n, 2 * j)
                / mpmath.factorial(n)
                * abs(mpmath.bernpoly(2 * j, mpmath.mpf(1) / 2))
                * (2 * mpmath.pi) ** (2 * j)
            )
            c[n - 2 * j] = float(v)
    return tuple(c)


def _fd_nonpos_int(x: torch.Tensor, n: int) -> torch.Tensor:
    """F(x, -n) = -Li_{-n}(-e^x), n >= 1, all real x: (1 - t^2) R_n(t), t = tanh(x/2).

    1 - t^2 = 4 sigmoid(x) sigmoid(-x) is formed without cancellation for large |x|.
    """
    w = 4.0 * torch.sigmoid(x) * torch.sigmoid(-x)
    return w * _horner(torch.tanh(0.5 * x), _fd_tanh_poly(n))


def _fd_nonpositive_x(x: torch.Tensor, s: float) -> torch.Tensor:
    """-Li_s(-e^x) for x <= 0 (series / expansion about 0); NaN elsewhere."""
    ser = _fd_series_coeffs(s)
    near = fermi_dirac_near0_coefficients(s)
    return _assemble(
        x,
        [
            (x <= FERMI_DIRAC_X0, lambda t: _series_pos(t, ser)),
            ((x > FERMI_DIRAC_X0) & (x <= 0), lambda t: _horner(t, near)),
        ],
    )


def _fermi_dirac_f64(x: torch.Tensor, s: float) -> torch.Tensor:
    if _is_integer(s) and s <= 1:
        if s == 1:
            return torch.logaddexp(x, torch.zeros_like(x))
        if s == 0:
            return torch.sigmoid(x)
        return _fd_nonpos_int(x, int(-s))
    if not _is_integer(s):
        return _fd_nonpositive_x(x, s)
    n = int(s)
    q = _fd_inversion_poly(n)
    sign = 1.0 if n % 2 == 1 else -1.0

    def pos(t: torch.Tensor) -> torch.Tensor:
        return _horner(t, q) + sign * _fd_nonpositive_x(-t, s)

    return _assemble(x, [(x <= 0, lambda t: _fd_nonpositive_x(t, s)), (x > 0, pos)])


# ---------------------------------------------------------------------------------------
# Custom operators
# ---------------------------------------------------------------------------------------


def _via_f64(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Evaluate fn in float64 and round once to x's dtype (always a fresh tensor)."""
    out = fn(x.to(torch.float64))
    return out.to(x.dtype)


def _real_order_body(
    name: str, f64: Callable[[torch.Tensor, float], torch.Tensor]
) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The plain-torch body of ``deqfam::<name>(x, s)``: checks (floating x, finite s), then
    ``f64(x, s)`` in float64 rounded once to x's dtype."""

    def body(x: torch.Tensor, s: float) -> torch.Tensor:
        _check_float(x, name)
        s = float(s)
        if not math.isfinite(s):
            raise ValueError(f"{name}: order s must be finite")
        return _via_f64(x, lambda t: f64(t, s))

    body.__name__ = body.__qualname__ = f"_{name}_impl"
    return body


#: Li_s(e^x) and -Li_s(-e^x) in plain torch ops: the bodies of the two operators
_polylog_exp_impl = _real_order_body("polylog_exp", _polylog_exp_f64)
_fermi_dirac_impl = _real_order_body("fermi_dirac", _fermi_dirac_f64)
_polylog_exp_op = register_order_op("deqfam::polylog_exp", _polylog_exp_impl, float, -1.0)
_fermi_dirac_op = register_order_op("deqfam::fermi_dirac", _fermi_dirac_impl, float, -1.0)


def _logexpm1x_impl(x: torch.Tensor, k: int) -> torch.Tensor:
    """L^{(k)}(x) in plain torch ops: the body of ``deqfam::logexpm1x``."""
    _check_float(x, "logexpm1x")
    k = int(k)
    if not 0 <= k <= LOGEXPM1X_K_MAX:
        raise ValueError(f"logexpm1x: derivative order k must be in 0..{LOGEXPM1X_K_MAX}")
    return _via_f64(x, lambda t: _logexpm1x_f64(t, k))


_logexpm1x_op = register_order_op("deqfam::logexpm1x", _logexpm1x_impl, int, 1)


# ---------------------------------------------------------------------------------------
# Hooks for exporters (runtime/export_trace.py): the operators as plain torch code
# ---------------------------------------------------------------------------------------

#: qualified operator name -> its plain-torch implementation (same arguments, same values).
#: A tracer that calls these instead of the operators records only core aten ops, so an
#: exported artifact loads without deqfam (the ops exist only while this module is imported).
OP_IMPLEMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "deqfam::polylog_exp": _polylog_exp_impl,
    "deqfam::fermi_dirac": _fermi_dirac_impl,
    "deqfam::logexpm1x": _logexpm1x_impl,
}


@contextlib.contextmanager
def where_piecewise() -> Iterator[None]:
    """Within the block, piecewise functions merge their branches with ``torch.where`` on
    every device instead of indexing each branch's elements on CPU.

    Indexing gives data-dependent shapes, which tracers (``torch.export``, ``torch.jit.trace``)
    cannot record; ``torch.where`` computes the same elementwise formulas, so the values are
    unchanged. Not thread-safe: it swaps a module-level setting for the block's duration.
    """
    saved = special_series._INDEXED_DEVICES  # read by special_series._assemble
    special_series._INDEXED_DEVICES = ()
    try:
        yield
    finally:
        special_series._INDEXED_DEVICES = saved


# ---------------------------------------------------------------------------------------
# Public wrappers
# ---------------------------------------------------------------------------------------


def polylog_exp(x: torch.Tensor, s: float) -> torch.Tensor:
    """Li_s(e^x) = sum_{k>=1} e^{kx}/k^s (Bose-Einstein integral), real order s.

    Domain: x < 0 (x -> -inf gives 0). x = 0 gives zeta(s) for s > 1 and NaN for s <= 1
    (pole). x > 0 gives NaN (Li_s is complex there), except integer s <= 0 where the
    rational closed form Li_{-n}(z) is real for all z != 1. d/dx = polylog_exp(x, s - 1).

    Integer s <= 1 use closed forms: Li_1(e^x) = -log(1 - e^x), Li_0(e^x) = 1/expm1(-x) and
    Li_{-n}(e^x) = P_n(g) (Eulerian polynomial recursion, g = e^x/(1 - e^x)). Other orders:
    series for x <= -1.5, expansion about 0 above (see :class:`PolylogNear0`).
    """
    return torch.ops.deqfam.polylog_exp(x, float(s))


def fermi_dirac(x: torch.Tensor, s: float) -> torch.Tensor:
    """-Li_s(-e^x) = sum_{k>=1} (-1)^{k+1} e^{kx}/k^s: the complete Fermi-Dirac integral
    F_{s-1}(x) = 1/Gamma(s) int_0^inf t^{s-1}/(e^{t-x} + 1) dt.

    Domain: x <= 0 for every real s (alternating series for x <= -1, expansion
    sum_k eta(s-k) x^k/k! about 0 for -1 < x <= 0). Integer s: all real x, by closed forms
    for s <= 1 (s = 1 softplus, s = 0 sigmoid, s = -n a polynomial recursion in
    t = tanh(x/2) = 2 sigmoid(x) - 1 times 4 sigmoid(x) sigmoid(-x)) and, for s = n >= 2 and
    x > 0, the inversion formula F = Q_n(x) + (-1)^{n+1} F(-x). Non-integer s with x > 0 gives
    NaN (outside the supported domain). d/dx = fermi_dirac(x, s - 1).
    """
    return torch.ops.deqfam.fermi_dirac(x, float(s))


def logexpm1x(x: torch.Tensor, k: int = 0) -> torch.Tensor:
    """L^{(k)}(x), the k-th derivative of L(x) = log((e^x - 1)/x) (L(0) = 0), k = 0..6.

    L is the continuous-Bernoulli log-partition: L' = 1/(1 - e^{-x}) - 1/x is its mean and
    L'' = 1/x^2 - e^x/(e^x - 1)^2 its variance. Taylor series about 0 (removable singularity)
    for |x| < LOGEXPM1X_THRESHOLDS[k], closed forms in e^{-|x|} otherwise (finite for all
    finite x). d/dx = logexpm1x(x, k + 1); k <= 4 is the public range (first and second
    derivatives of k = 4 use k = 5, 6), k > 6 raises ValueError.
    """
    return torch.ops.deqfam.logexpm1x(x, int(k))


# log(e^x - 1), the nested log(e^{e^x} - 1) (zero-truncated Poisson) and log Li_1(e^x)
# (logarithmic series) live in their own modules; importing them here registers
# torch.ops.deqfam.logexpm1exp and torch.ops.deqfam.logli1exp with the other operators.
from .special_bessel import besselie  # noqa: E402, F401 - the stable form of besseli
from .special_expm1 import _logexpm1exp_f64, logexpm1, logexpm1exp  # noqa: E402
from .special_li1 import logli1exp, logli1exp_impl  # noqa: E402
from .special_logsumexp import logsumexp0  # noqa: E402, F401 - categorical A
from .special_polygamma import digamma, polygamma  # noqa: E402, F401 - generated modules call these

OP_IMPLEMENTATIONS["deqfam::logexpm1exp"] = lambda x, k: _via_f64(
    x, lambda t: _logexpm1exp_f64(t, int(k))
)
OP_IMPLEMENTATIONS["deqfam::logli1exp"] = logli1exp_impl

#: Every stable primitive the runtime provides, as the call a generated module makes. The
#: derive side's primitive table (derive/primitive_table.py) must list exactly these
#: (tests/test_primitive_table.py checks both directions and that each call resolves).
PRIMITIVE_CALLS: tuple[str, ...] = (
    "special.softplus",
    "special.sigmoid",
    "special.logcosh",
    "special.logexpm1",
    "torch.ops.deqfam.polylog_exp",
    "torch.ops.deqfam.fermi_dirac",
    "torch.ops.deqfam.logexpm1x",
    "torch.ops.deqfam.logexpm1exp",
    "torch.ops.deqfam.logli1exp",
    "special.besselie",
)
