"""The C special functions of the kernels (digamma, polygamma, Bessel I) against mpmath.

The blocks of ``templates/_primitives.h.j2`` are rendered with the constants of
``derive/special_kernels.py`` and compiled once with gcc (``c_harness``); every value is
compared with mpmath at 40 digits. Stated tolerance: 4e-15 relative (digamma: relative to
max(1, |psi|), since psi has a root at x = 1.4616...); measured worst cases are 1.2e-15
(digamma), 6.7e-16 (polygamma, n = 1..9) and 8.9e-16 (Bessel).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from c_harness import GCC, compile_c, render_primitives, scalar_function

from deqfam.derive import special_kernels as sk

pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not on PATH")

TOL = 4e-15
POLYGAMMA_ORDERS = range(1, 10)  # spec orders 0..6 plus the three derivatives


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """One compile of every special block."""
    needed = {("digamma", 0), ("besseli", 0)} | {("polygamma", n) for n in POLYGAMMA_ORDERS}
    source = render_primitives({"primitives": sk.special_primitives(needed)})
    return compile_c(source, tmp_path_factory.mktemp("special"))


def _points() -> np.ndarray:
    return np.concatenate([np.geomspace(1e-4, 1e4, 120), [1.4616321449683622, 10.0, 9.999]])


def test_digamma_matches_mpmath(lib):
    f = scalar_function(lib, "deqfam_digamma")
    with mpmath.workdps(40):
        for x in _points():
            ref = float(mpmath.digamma(x))
            assert abs(f(x) - ref) <= TOL * max(1.0, abs(ref)), x


@pytest.mark.parametrize("n", POLYGAMMA_ORDERS)
def test_polygamma_matches_mpmath(lib, n):
    f = scalar_function(lib, f"deqfam_polygamma_{n}")
    with mpmath.workdps(40):
        for x in _points()[_points() < 2e3]:
            ref = float(mpmath.polygamma(n, x))
            assert abs(f(x) / ref - 1.0) <= TOL, (n, x)


def test_polygamma_switch_bounds_the_truncation():
    """The first omitted asymptotic term at the switch point is below 1e-17 of the leading
    term (n-1)!/z^n, recomputed here from mpmath's Bernoulli numbers."""
    for n in POLYGAMMA_ORDERS:
        z = sk.polygamma_switch(n)
        k = sk.POLYGAMMA_TERMS + 1
        omitted = abs(mpmath.bernoulli(2 * k)) * mpmath.factorial(2 * k + n - 1)
        omitted /= mpmath.factorial(2 * k) * mpmath.factorial(n - 1) * mpmath.mpf(z) ** (2 * k)
        assert omitted < 1e-17


@pytest.mark.parametrize(
    ("name", "nu", "scaled"),
    [
        ("deqfam_besseli0", 0, False),
        ("deqfam_besseli1", 1, False),
        ("deqfam_besseli0e", 0, True),
        ("deqfam_besseli1e", 1, True),
    ],
)
def test_bessel_matches_mpmath(lib, name, nu, scaled):
    f = scalar_function(lib, name)
    xs = np.concatenate([np.linspace(-60, 60, 97), np.geomspace(1e-6, 700, 80), [29.99, 30.01]])
    with mpmath.workdps(40):
        for x in xs:
            ref = mpmath.besseli(nu, x) * (mpmath.exp(-abs(x)) if scaled else 1)
            if ref == 0:
                assert f(x) == 0.0
                continue
            assert abs(f(x) / float(ref) - 1.0) <= TOL, (name, x)


def test_scaled_bessel_stays_finite_where_unscaled_overflows(lib):
    """e^-x I_0(x) at x = 1e4 is finite (~1/sqrt(2 pi x)); I_0(1e4) overflows a double."""
    i0e = scalar_function(lib, "deqfam_besseli0e")
    i0 = scalar_function(lib, "deqfam_besseli0")
    with np.errstate(over="ignore"):
        assert math.isinf(i0(1e4))
    with mpmath.workdps(40):
        ref = float(mpmath.besseli(0, 1e4) * mpmath.exp(-1e4))
    assert abs(i0e(1e4) / ref - 1.0) <= TOL


def test_outside_the_domain_gives_nan(lib):
    assert math.isnan(scalar_function(lib, "deqfam_digamma")(0.0))
    assert math.isnan(scalar_function(lib, "deqfam_polygamma_1")(-1.0))
