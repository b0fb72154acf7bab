"""deqfam/expansions.py: the series coefficients and closed-form terms both sides share.

References are independent of the module: derivatives of the plain closed forms
G(x) = log(e^{e^x} - 1) and F(x) = log(-log(1 - e^x)) by ``mpmath.diff`` at 50 digits,
evaluated where each form is used (series below its radius switch, closed form above).
"""

from __future__ import annotations

import mpmath
import pytest

from deqfam.expansions import (
    LOGEXPM1EXP_U_LINEAR,
    LOGEXPM1EXP_U_SERIES,
    LOGLI1EXP_U_SERIES,
    logexpm1exp_far_terms,
    logexpm1exp_series,
    logli1exp_series,
)


def _mp_derivative(f, u: float, k: int) -> mpmath.mpf:
    """d^k f/dx^k at x = log u by mpmath.diff at 50 digits (x itself to 50 digits)."""
    with mpmath.workdps(50):
        return mpmath.diff(f, mpmath.log(mpmath.mpf(u)), k)


def _g(t):
    """G(t) = log(e^{e^t} - 1) (zero-truncated Poisson log-partition)."""
    return mpmath.log(mpmath.expm1(mpmath.exp(t)))


def _f(t):
    """F(t) = log(-log(1 - e^t)) (logarithmic-series log-partition)."""
    return mpmath.log(-mpmath.log1p(-mpmath.exp(t)))


def _poly(coeffs, u) -> mpmath.mpf:
    """sum_n coeffs[n] u^n in mpmath (so only the float64 coefficients round)."""
    with mpmath.workdps(50):
        return mpmath.fsum(mpmath.mpf(c) * mpmath.mpf(u) ** n for n, c in enumerate(coeffs))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("u", [0.05, 0.5, 0.99])
def test_logexpm1exp_series_is_the_taylor_series_in_u(k, u):
    """G^(k)(log u) = sum_n c_n u^n below the switch u < 1."""
    assert u < LOGEXPM1EXP_U_SERIES
    ref = _mp_derivative(_g, u, k)
    got = _poly(logexpm1exp_series(k), u)
    assert abs(got - ref) <= 1e-14 * abs(ref)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("u", [1.0, 3.0, 20.0])
def test_logexpm1exp_far_terms_give_the_closed_form(k, u):
    """G^(k)(log u) = u + sum coef u^a b^c with b = 1/expm1(u), for 1 <= u <= 60."""
    assert LOGEXPM1EXP_U_SERIES <= u <= LOGEXPM1EXP_U_LINEAR
    with mpmath.workdps(50):
        uu = mpmath.mpf(u)
        b = 1 / mpmath.expm1(uu)
        got = uu + mpmath.fsum(c * uu**a * b**p for c, a, p in logexpm1exp_far_terms(k))
    ref = _mp_derivative(_g, u, k)
    assert abs(got - ref) <= 1e-30 * abs(ref)  # exact integer coefficients


def test_logexpm1exp_series_refuses_k0():
    with pytest.raises(ValueError, match="k >= 1"):
        logexpm1exp_series(0)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("u", [1e-3, 0.1, 0.24])
def test_logli1exp_series_is_the_taylor_series_in_u(k, u):
    """F^(k)(log u) - [k = 0] log u = sum_n c_n u^n below the switch u < 1/4."""
    assert u < LOGLI1EXP_U_SERIES
    with mpmath.workdps(50):
        ref = _mp_derivative(_f, u, k) - (mpmath.log(mpmath.mpf(u)) if k == 0 else 0)
    got = _poly(logli1exp_series(k), u)
    assert abs(got - ref) <= 1e-14 * abs(ref)
