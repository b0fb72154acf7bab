"""``L(x) = log((e^x - 1)/x)`` and its derivatives ``L^{(k)}`` (Bose-Einstein with integer
order): Taylor series in x from Bernoulli numbers for |x| < a_k, closed forms in
``1/expm1(|x|)`` beyond (the switch points and term counts are justified in
``runtime/special.py``'s module docstring). Registered as ``torch.ops.deqfam.logexpm1x`` by
``special.py``."""

from __future__ import annotations

import functools
import math

import mpmath
import torch

from .special_series import (
    _DPS,
    _MAX_TERMS,
    _TAIL_TOL,
    LOGEXPM1X_THRESHOLDS,
    _assemble,
    _choose_terms,
    _horner,
)

# ---------------------------------------------------------------------------------------
# L(x) = log((e^x - 1)/x) and its derivatives
# ---------------------------------------------------------------------------------------


def _logexpm1x_taylor_mp(k: int, n_bern: int) -> list:
    """mpmath coefficients (of x^j) of L^{(k)} from L = x/2 + sum_n B_2n x^2n/(2n (2n)!)."""
    deg = 2 * n_bern - k
    c = [mpmath.mpf(0)] * max(deg + 1, 2)
    if k == 0:
        c[1] += mpmath.mpf(1) / 2
    elif k == 1:
        c[0] += mpmath.mpf(1) / 2
    for n in range(1, n_bern + 1):
        if 2 * n >= k:
            c[2 * n - k] += mpmath.bernoulli(2 * n) / (2 * n) / mpmath.factorial(2 * n - k)
    return c


@functools.lru_cache(maxsize=64)
def _logexpm1x_nbern(k: int) -> int:
    a = LOGEXPM1X_THRESHOLDS[k]
    with mpmath.workdps(30):
        # the truncation error is largest at |x| = a; guard against a root of L^{(k)} near a
        ref = max(
            abs(_mp_logexpm1x_closed(mpmath.mpf(a), k)),
            1e-3 * abs(_mp_logexpm1x_closed(mpmath.mpf(a) / 2, k)),
        )
        trial = 60
        while True:
            c = _logexpm1x_taylor_mp(k, trial)
            mags = [
                abs(float(c[2 * n - k])) * a ** (2 * n - k) if 2 * n >= k else 0.0
                for n in range(1, trial + 1)
            ]
            try:
                return _choose_terms(mags, _TAIL_TOL * 0.1 * float(ref), window=4)
            except RuntimeError:
                if trial >= _MAX_TERMS:
                    raise
                trial *= 2


def _mp_logexpm1x_closed(x, k: int):
    """mpmath closed form of L^{(k)}(x), x != 0 (used only to size the Taylor series)."""
    if k == 0:
        return mpmath.log(mpmath.expm1(x) / x)
    return mpmath.diff(lambda t: mpmath.log(mpmath.expm1(t) / t), x, k)


@functools.lru_cache(maxsize=64)
def logexpm1x_taylor_coefficients(k: int, n_terms: int | None = None) -> tuple[float, ...]:
    """Float64 coefficients c_j (of x^j) of the Taylor series of L^{(k)} about 0.

    L(x) = log((e^x - 1)/x) = x/2 + sum_{n>=1} B_{2n} x^{2n} / (2n (2n)!) (radius 2 pi), so
    L^{(k)}(x) = [k=0] x/2 + [k=1] 1/2 + sum_{2n>=k} B_{2n}/(2n (2n-k)!) x^{2n-k}.
    ``n_terms`` counts Bernoulli terms n = 1..n_terms (``None``: the count used by
    :func:`logexpm1x`, tail below 1e-17 relative for |x| < LOGEXPM1X_THRESHOLDS[k]).
    """
    k = int(k)
    if k < 0:
        raise ValueError("k must be >= 0")
    if n_terms is None:
        n_terms = _logexpm1x_nbern(k)
    with mpmath.workdps(_DPS):
        return tuple(float(c) for c in _logexpm1x_taylor_mp(k, n_terms))


@functools.lru_cache(maxsize=64)
def _bose_poly(j: int) -> tuple[float, ...]:
    """Coefficients (in u) of p_j with d^j/dx^j u = p_j(u), u = 1/(e^x - 1).

    du/dx = -u (1 + u), so p_0 = u and p_{j+1} = -u (1 + u) p_j'(u); for u > 0 all terms of
    p_j have the sign (-1)^j (no cancellation).
    """
    p = [0, 1]
    for _ in range(j):
        dp = [i * p[i] for i in range(1, len(p))]
        q = [0] * (len(dp) + 2)
        for i, c in enumerate(dp):
            q[i + 1] -= c
            q[i + 2] -= c
        p = q
    return tuple(float(c) for c in p)


def _logexpm1x_taylor_eval(x: torch.Tensor, k: int) -> torch.Tensor:
    c = logexpm1x_taylor_coefficients(k)
    even = c[0::2]
    odd = c[1::2]
    x2 = x * x
    out = _horner(x2, even) if any(v != 0.0 for v in even) else torch.zeros_like(x)
    if any(v != 0.0 for v in odd):
        out = out + x * _horner(x2, odd)
    return out


def _logexpm1x_far_eval(x: torch.Tensor, k: int) -> torch.Tensor:
    """L^{(k)}(x) for |x| >= a_k from closed forms in y = |x| and u = 1/expm1(y) <= 1/(e^2-1).

    L(x) = max(x, 0) + log(-expm1(-y)) - log(y)   (L(x) = x + L(-x));
    L'(x) = 1 + u - 1/y for x > 0 and 1/y - u for x < 0 (L'(x) = 1 - L'(-x));
    L^{(k)}(y) = p_{k-1}(u) - (-1)^{k-1} (k-1)!/y^k and L^{(k)}(x) = (-1)^k L^{(k)}(-x), k >= 2.
    """
    y = torch.abs(x)
    if k == 0:
        val = torch.clamp_min(x, 0.0) + torch.log(-torch.expm1(-y)) - torch.log(y)
        return torch.where(x == math.inf, x, val)
    u = 1.0 / torch.expm1(y)
    inv_y = 1.0 / y
    if k == 1:
        return torch.where(x > 0, (1.0 + u) - inv_y, inv_y - u)
    val = _horner(u, _bose_poly(k - 1)) - ((-1) ** (k - 1) * math.factorial(k - 1)) * torch.pow(
        inv_y, k
    )
    if k % 2 == 1:
        val = torch.where(x < 0, -val, val)
    return val


def _logexpm1x_f64(x: torch.Tensor, k: int) -> torch.Tensor:
    a = LOGEXPM1X_THRESHOLDS[k]
    ax = torch.abs(x)
    return _assemble(
        x,
        [
            (ax < a, lambda t: _logexpm1x_taylor_eval(t, k)),
            (ax >= a, lambda t: _logexpm1x_far_eval(t, k)),
        ],
    )
