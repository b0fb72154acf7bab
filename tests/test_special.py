"""Tests of deqfam.runtime.special against mpmath references at 50 significant digits."""

import functools
import math
import time

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deqfam.runtime import special as sp

DPS = 50
ORDERS = (-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5)


def _sample_x() -> tuple[float, ...]:
    """~60 fixed x in [-50, -1e-8], all exactly representable in float32 (so the float32 and
    float64 tests share one mpmath reference per point): log-spaced |x| plus the float32
    neighbours of both branch switch points, -1e-8 and -50."""
    xs = set((-np.logspace(-8, math.log10(50.0), 50)).tolist())
    for x0 in (sp.POLYLOG_X0, sp.FERMI_DIRAC_X0):
        f = np.float32(x0)
        xs.update(
            [
                x0,
                np.nextafter(f, np.float32(0)),
                np.nextafter(f, np.float32(-2)),
                x0 + 1e-3,
                x0 - 1e-3,
            ]
        )
    xs.update([-1e-8, -50.0])
    return tuple(sorted(float(np.float32(v)) for v in xs))


X_SAMPLE = _sample_x()


def _hug(x0: float) -> tuple[float, ...]:
    """float64-only points hugging a switch point."""
    return (math.nextafter(x0, 0.0), math.nextafter(x0, -math.inf), x0 + 1e-12, x0 - 1e-12)


@functools.cache
def _mp_polylog(s: float, x: float) -> float:
    with mpmath.workdps(DPS):
        return float(mpmath.polylog(s, mpmath.exp(x)))


@functools.cache
def _mp_fermi(s: float, x: float, direct: bool = False) -> float:
    """-Li_s(-e^x). Non-integer s: duplication formula Li_s(z) - 2^{1-s} Li_s(z^2) (exact,
    ~15x faster in mpmath than polylog at negative arguments; checked against the direct
    evaluation in test_fermi_reference_identity)."""
    with mpmath.workdps(DPS):
        z = mpmath.exp(x)
        if direct or float(s).is_integer():
            v = -mpmath.polylog(s, -z)
            assert abs(mpmath.im(v)) <= mpmath.mpf(10) ** (-DPS + 5) * abs(v)
            return float(mpmath.re(v))
        return float(mpmath.polylog(s, z) - mpmath.power(2, 1 - s) * mpmath.polylog(s, z * z))


def _mp_logexpm1x_fn(t):
    return mpmath.log(mpmath.expm1(t) / t) if t != 0 else mpmath.mpf(0)


@functools.cache
def _mp_logexpm1x(k: int, x: float) -> float:
    with mpmath.workdps(DPS):
        return float(mpmath.diff(_mp_logexpm1x_fn, mpmath.mpf(x), k))


def _max_rel(y: torch.Tensor, ref: list[float]) -> float:
    r = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(y.double().numpy() - r) / np.abs(r)))


# ---------------------------------------------------------------------------------------
# polylog_exp
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", ORDERS)
def test_polylog_exp_float64(s):
    xs = X_SAMPLE + _hug(sp.POLYLOG_X0)
    y = sp.polylog_exp(torch.tensor(xs, dtype=torch.float64), s)
    assert y.dtype == torch.float64 and y.shape == (len(xs),)
    assert _max_rel(y, [_mp_polylog(s, v) for v in xs]) <= 1e-11


@pytest.mark.parametrize("s", ORDERS)
def test_polylog_exp_float32(s):
    x = torch.tensor(X_SAMPLE, dtype=torch.float32)
    y = sp.polylog_exp(x, s)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert x.double().tolist() == list(X_SAMPLE)  # exact inputs: evaluation error only
    assert _max_rel(y, [_mp_polylog(s, v) for v in X_SAMPLE]) <= 1e-5


@pytest.mark.parametrize("s", [-3.0, -2.0, -1.0, 0.0])
def test_polylog_exp_nonpositive_integer_positive_x(s):
    xs = [1e-8, 1e-3, 0.3, 1.0, 5.0, 30.0, 300.0]
    y = sp.polylog_exp(torch.tensor(xs, dtype=torch.float64), s)
    assert _max_rel(y, [_mp_polylog(s, v) for v in xs]) <= 1e-12


@pytest.mark.parametrize("s", [2.0 + 1e-9, 3.0 - 1e-7, 1.0 - 1e-9, 1.0 + 1e-6, 0.75, 5.25])
def test_polylog_exp_near_integer_orders(s):
    """The 'expm1' form cancels the Gamma(1-s) and zeta(1+delta) poles analytically."""
    xs = [-1.4, -0.7, -0.1, -1e-3, -1e-6, -2.0]
    y = sp.polylog_exp(torch.tensor(xs, dtype=torch.float64), s)
    assert _max_rel(y, [_mp_polylog(s, v) for v in xs]) <= 1e-11


@pytest.mark.parametrize("s", [0.5, 2.5])
def test_polylog_exp_vs_integral(s):
    """Independent reference: Li_s(e^x) = 1/Gamma(s) int_0^inf t^{s-1}/(e^{t-x} - 1) dt."""
    xs = [-1.2, -0.2, -3.0]
    with mpmath.workdps(30):
        ref = [
            float(
                mpmath.quad(lambda t, x=x: t ** (s - 1) / mpmath.expm1(t - x), [0, 1, mpmath.inf])
                / mpmath.gamma(s)
            )
            for x in xs
        ]
    y = sp.polylog_exp(torch.tensor(xs, dtype=torch.float64), s)
    assert _max_rel(y, ref) <= 1e-12


def test_polylog_exp_large_negative_order():
    for s in (-3.5, -6.5):
        xs = [-40.0, -3.0, -1.5, -0.5, -1e-4]
        y = sp.polylog_exp(torch.tensor(xs, dtype=torch.float64), s)
        assert _max_rel(y, [_mp_polylog(s, v) for v in xs]) <= 1e-11


# ---------------------------------------------------------------------------------------
# fermi_dirac
# ---------------------------------------------------------------------------------------


def test_fermi_reference_identity():
    for s, x in ((0.5, -0.3), (1.5, -2.0), (4.5, -1e-4)):
        assert _mp_fermi(s, x) == pytest.approx(_mp_fermi(s, x, direct=True), rel=1e-15)


@pytest.mark.parametrize("s", ORDERS)
def test_fermi_dirac_float64(s):
    xs = X_SAMPLE + _hug(sp.FERMI_DIRAC_X0)
    y = sp.fermi_dirac(torch.tensor(xs, dtype=torch.float64), s)
    assert y.dtype == torch.float64
    assert _max_rel(y, [_mp_fermi(s, v) for v in xs]) <= 1e-11


@pytest.mark.parametrize("s", ORDERS)
def test_fermi_dirac_float32(s):
    x = torch.tensor(X_SAMPLE, dtype=torch.float32)
    y = sp.fermi_dirac(x, s)
    assert y.dtype == torch.float32
    assert _max_rel(y, [_mp_fermi(s, v) for v in X_SAMPLE]) <= 1e-5


@pytest.mark.parametrize("s", [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0])
def test_fermi_dirac_integer_positive_x(s):
    xs = [1e-8, 1e-3, 0.5, 1.0, 2.5, 10.0, 45.0, 300.0]
    y = sp.fermi_dirac(torch.tensor(xs, dtype=torch.float64), s)
    assert _max_rel(y, [_mp_fermi(s, v) for v in xs]) <= 1e-12


def test_fermi_dirac_negative_orders():
    """s = -3 (roots at |x| = 2 atanh(1/sqrt 3)) and non-integer s < 0: scale-aware check."""
    xs = [-30.0, -4.0, -1.0, -0.5, -1e-3, 0.0]
    for s in (-3.0, -0.5, -1.5, -2.5):
        y = sp.fermi_dirac(torch.tensor(xs, dtype=torch.float64), s).numpy()
        ref = np.array([_mp_fermi(s, v) for v in xs])
        # error relative to the value, or to e^x (the size of the series' first term)
        scale = np.maximum(np.abs(ref), np.minimum(np.exp(xs), 1.0))
        assert np.all(np.abs(y - ref) <= 1e-12 * scale)


# ---------------------------------------------------------------------------------------
# logexpm1x
# ---------------------------------------------------------------------------------------

_HALF = np.logspace(-8, math.log10(700.0), 30)
_SWITCH = [a * sign for a in sorted(set(sp.LOGEXPM1X_THRESHOLDS)) for sign in (1, -1)]
#: float32-representable x in +-[1e-8, 700] plus the switch points and their float32 neighbours
X_LOGEXPM1X = tuple(
    sorted(
        {
            float(np.float32(v))
            for v in [
                *(-_HALF),
                *_HALF,
                *_SWITCH,
                *(np.nextafter(np.float32(a), np.float32(0)) for a in _SWITCH),
            ]
        }
    )
)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_logexpm1x_vs_mpmath(k):
    x = torch.tensor(X_LOGEXPM1X, dtype=torch.float64)
    y = sp.logexpm1x(x, k)
    assert torch.isfinite(y).all()
    assert _max_rel(y, [_mp_logexpm1x(k, v) for v in X_LOGEXPM1X]) <= 1e-13
    y32 = sp.logexpm1x(x.float(), k)
    assert y32.dtype == torch.float32
    assert _max_rel(y32, [_mp_logexpm1x(k, v) for v in X_LOGEXPM1X]) <= 1e-5


def test_logexpm1x_k4_with_root():
    """L'''' changes sign at |x| = r ~ 2.74: relative error is only meaningful away from r."""
    with mpmath.workdps(30):
        r = float(mpmath.findroot(lambda t: mpmath.diff(_mp_logexpm1x_fn, t, 4), 2.7))
    xs = np.array((*X_LOGEXPM1X, r, -r, r + 0.01))
    y = sp.logexpm1x(torch.tensor(xs), 4).numpy()
    ref = np.array([_mp_logexpm1x(4, v) for v in xs])
    err = np.abs(y - ref)
    far = np.abs(np.abs(xs) - r) > 0.05
    assert np.all(err[far] <= 1e-13 * np.abs(ref[far]))
    assert np.all(err[~far] <= 1e-17)  # |L''''| ~ 1/120 scale, absolute error near the root


def test_logexpm1x_at_and_near_zero():
    x = torch.tensor([0.0, -0.0, 1e-8, -1e-8, 3e-9, -1e-12, 1e-300], dtype=torch.float64)
    exact0 = {0: 0.0, 1: 0.5, 2: 1.0 / 12.0, 3: 0.0, 4: -1.0 / 120.0}
    for k, v in exact0.items():
        assert sp.logexpm1x(x[:2], k).tolist() == pytest.approx([v, v], abs=1e-17)
    mean = sp.logexpm1x(x, 1)
    assert torch.allclose(mean, 0.5 + x / 12.0, rtol=0, atol=1e-12)
    # L(x) = x/2 + x^2/24 + O(x^4) near 0
    assert torch.allclose(sp.logexpm1x(x, 0), x / 2 + x * x / 24, rtol=1e-15, atol=0)


def test_logexpm1x_extremes_and_symmetry():
    big = torch.tensor([-1e5, -700.0, 700.0, 1e5, -math.inf, math.inf], dtype=torch.float64)
    vals = [sp.logexpm1x(big, k) for k in range(5)]
    assert torch.isfinite(vals[0][:4]).all()
    assert vals[0][4] == -math.inf and vals[0][5] == math.inf
    assert vals[1].tolist()[4:] == [0.0, 1.0]
    for k in range(1, 5):
        assert torch.isfinite(vals[k]).all()
    # L(x) - L(-x) = x; L'(x) + L'(-x) = 1; L^{(k)}(-x) = (-1)^k L^{(k)}(x) for k >= 2
    x = torch.linspace(-40, 40, 161, dtype=torch.float64)
    assert torch.allclose(sp.logexpm1x(x, 0) - sp.logexpm1x(-x, 0), x, rtol=0, atol=1e-13)
    assert torch.allclose(
        sp.logexpm1x(x, 1) + sp.logexpm1x(-x, 1), torch.ones_like(x), rtol=0, atol=1e-15
    )
    for k in (2, 3, 4, 5, 6):
        assert torch.allclose(
            sp.logexpm1x(-x, k), (-1) ** k * sp.logexpm1x(x, k), rtol=1e-15, atol=0
        )


def test_logexpm1x_internal_orders_5_6():
    xs = [-30.0, -4.5, -1.0, 0.2, 3.99, 4.0, 9.0]
    for k in (5, 6):
        y = sp.logexpm1x(torch.tensor(xs, dtype=torch.float64), k)
        assert _max_rel(y, [_mp_logexpm1x(k, v) for v in xs]) <= 1e-12
    with pytest.raises(ValueError):
        sp.logexpm1x(torch.zeros(2, dtype=torch.float64), sp.LOGEXPM1X_K_MAX + 1)
    with pytest.raises(ValueError):
        sp.logexpm1x(torch.zeros(2, dtype=torch.float64), -1)


# ---------------------------------------------------------------------------------------
# softplus / sigmoid / logcosh
# ---------------------------------------------------------------------------------------

X_ELEM = (
    -700.0,
    -80.0,
    -36.0,
    -20.0,
    -3.0,
    -1.0,
    -0.999,
    -1e-3,
    -1e-9,
    0.0,
    1e-9,
    1e-5,
    0.5,
    0.999,
    1.0,
    1.5,
    19.9,
    20.1,
    36.0,
    80.0,
    700.0,
)


@pytest.mark.parametrize(
    ("fn", "ref"),
    [
        (sp.softplus, lambda t: mpmath.log1p(mpmath.exp(t))),
        (sp.sigmoid, lambda t: 1 / (1 + mpmath.exp(-t))),
        (sp.logcosh, lambda t: mpmath.log(mpmath.cosh(t))),
    ],
)
def test_elementary_vs_mpmath(fn, ref):
    x = torch.tensor(X_ELEM, dtype=torch.float64)
    y = fn(x).numpy()
    with mpmath.workdps(DPS):
        r = np.array([float(ref(mpmath.mpf(v))) for v in X_ELEM])
    assert np.all(np.isfinite(y))
    nz = r != 0
    assert np.max(np.abs(y[nz] - r[nz]) / np.abs(r[nz])) <= 6e-16
    assert np.all(y[~nz] == 0)
    x32 = torch.tensor([-80.0, -20.0, -1e-3, 0.0, 0.3, 20.0, 80.0])
    y32 = fn(x32)
    assert y32.dtype == torch.float32 and torch.isfinite(y32).all()
    with mpmath.workdps(DPS):
        r32 = np.array([float(ref(mpmath.mpf(v))) for v in x32.double().tolist()])
    nz = r32 != 0
    assert np.max(np.abs(y32.double().numpy()[nz] - r32[nz]) / np.abs(r32[nz])) <= 2e-7


def test_elementary_gradients():
    x = torch.tensor(
        [-30.0, -2.0, -0.999, -0.3, 0.0, 0.4, 1.0, 3.0, 30.0],
        dtype=torch.float64,
        requires_grad=True,
    )
    for fn, deriv in (
        (sp.softplus, torch.sigmoid),
        (sp.sigmoid, lambda t: torch.sigmoid(t) * torch.sigmoid(-t)),  # no cancel
        (sp.logcosh, torch.tanh),
    ):
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        assert torch.allclose(g, deriv(x.detach()), rtol=1e-14, atol=0)
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
    big = torch.tensor([-700.0, 700.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(sp.logcosh(big).sum(), big)
    assert g.tolist() == [-1.0, 1.0]


# ---------------------------------------------------------------------------------------
# autograd, opcheck, TorchScript, torch.compile
# ---------------------------------------------------------------------------------------


def _xg(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("s", [2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -1.0])
def test_polylog_exp_gradcheck(s):
    x = _xg([-6.0, -1.6, -1.4, -0.7, -0.05])
    f = functools.partial(sp.polylog_exp, s=s)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize(
    ("s", "xs"),
    [
        (1.5, [-3.0, -1.1, -0.9, -0.2, -1e-3]),
        (2.0, [-3.0, -0.5, 0.3, 2.0]),
        (0.0, [-3.0, 0.0, 2.0]),
        (-2.0, [-3.0, 0.1, 2.0]),
    ],
)
def test_fermi_dirac_gradcheck(s, xs):
    x = _xg(xs)
    f = functools.partial(sp.fermi_dirac, s=s)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_logexpm1x_gradcheck(k):
    x = _xg([-8.0, -3.0, -2.4, -1e-3, 0.0, 0.7, 2.6, 3.6, 4.1, 12.0])
    f = functools.partial(sp.logexpm1x, k=k)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_backward_uses_analytic_derivative():
    x = _xg([-2.0, -0.5])
    (g,) = torch.autograd.grad(sp.polylog_exp(x, 2.5).sum(), x)
    assert torch.equal(g, sp.polylog_exp(x.detach(), 1.5))
    (g,) = torch.autograd.grad(sp.fermi_dirac(x, 0.5).sum(), x)
    assert torch.equal(g, sp.fermi_dirac(x.detach(), -0.5))
    (g,) = torch.autograd.grad(sp.logexpm1x(x, 2).sum(), x)
    assert torch.equal(g, sp.logexpm1x(x.detach(), 3))


@pytest.mark.parametrize(
    ("op", "arg", "xs"),
    [
        (torch.ops.deqfam.polylog_exp.default, 2.5, [-3.0, -1.0, -0.2]),
        (torch.ops.deqfam.polylog_exp.default, -1.0, [-3.0, -1.0, 0.5]),
        (torch.ops.deqfam.fermi_dirac.default, 1.5, [-3.0, -0.5, 0.0]),
        (torch.ops.deqfam.fermi_dirac.default, 3.0, [-3.0, 0.5, 2.0]),
        (torch.ops.deqfam.logexpm1x.default, 1, [-5.0, 0.1, 3.0]),
    ],
)
def test_opcheck(op, arg, xs):
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(op, (x, arg))
    torch.library.opcheck(op, (x.detach().reshape(3, 1), arg))


@torch.jit.script
def _scripted(x: torch.Tensor) -> torch.Tensor:
    return (
        torch.ops.deqfam.polylog_exp(x, 2.5)
        + torch.ops.deqfam.fermi_dirac(x, 0.5)
        + torch.ops.deqfam.logexpm1x(x, 1)
    )


def test_torchscript():
    x = torch.tensor([-2.0, -0.4], dtype=torch.float64, requires_grad=True)
    y = _scripted(x)
    expected = sp.polylog_exp(x, 2.5) + sp.fermi_dirac(x, 0.5) + sp.logexpm1x(x, 1)
    assert torch.equal(y, expected)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(
        g, sp.polylog_exp(x, 1.5) + sp.fermi_dirac(x, -0.5) + sp.logexpm1x(x, 2), rtol=1e-15, atol=0
    )
    for fn in (sp.softplus, sp.sigmoid, sp.logcosh):
        scripted = torch.jit.script(fn)
        z = torch.linspace(-5, 5, 11, dtype=torch.float64)
        assert torch.equal(scripted(z), fn(z))


def _all_funcs(x: torch.Tensor) -> torch.Tensor:
    return (
        sp.softplus(x)
        + sp.sigmoid(x)
        + sp.logcosh(x)
        + sp.polylog_exp(x, 2.5)
        + sp.fermi_dirac(x, 1.5)
        + sp.logexpm1x(x, 2)
    )


def _check_compiled(backend: str) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(_all_funcs, fullgraph=True, backend=backend)
    x = torch.tensor([-3.0, -1.2, -0.3], dtype=torch.float64, requires_grad=True)
    y = compiled(x)
    expected = _all_funcs(x)
    assert torch.allclose(y, expected, rtol=1e-14, atol=0)
    (g,) = torch.autograd.grad(y.sum(), x)
    (ge,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(g, ge, rtol=1e-14, atol=0)


def test_torch_compile_fullgraph_aot_eager():
    """Dynamo fullgraph (no graph break) + AOT autograd tracing through the fake kernels."""
    _check_compiled("aot_eager")


@pytest.mark.slow
def test_torch_compile_fullgraph_inductor():
    t0 = time.perf_counter()
    _check_compiled("inductor")
    assert time.perf_counter() - t0 < 600


# ---------------------------------------------------------------------------------------
# NaN / out-of-domain behaviour, dtypes
# ---------------------------------------------------------------------------------------


def test_polylog_exp_domain():
    x = torch.tensor([-1.0, math.nan, 0.0, 0.5, -math.inf, -800.0], dtype=torch.float64)
    for s in (2.5, 1.5, 0.5, -0.5, 3.0):
        y = sp.polylog_exp(x, s)
        assert y[0] == pytest.approx(_mp_polylog(s, -1.0), rel=1e-14)
        assert math.isnan(y[1]) and math.isnan(y[3])
        assert y[4] == 0.0 and y[5] == 0.0
        if s > 1:
            with mpmath.workdps(30):
                assert y[2] == pytest.approx(float(mpmath.zeta(s)), rel=1e-15)
        else:
            assert math.isnan(y[2])
    for s in (1.0, 0.0, -2.0):  # closed forms: pole at 0
        y = sp.polylog_exp(x, s)
        assert math.isnan(y[1]) and math.isnan(y[2])
        assert math.isnan(y[3]) == (s == 1.0)


def test_fermi_dirac_domain():
    x = torch.tensor([-1.0, math.nan, 0.0, 0.5, math.inf, -math.inf], dtype=torch.float64)
    y = sp.fermi_dirac(x, 2.5)
    assert math.isnan(y[1]) and math.isnan(y[3]) and math.isnan(y[4])
    assert y[2] == pytest.approx(float(mpmath.altzeta(2.5)), rel=1e-15)
    assert y[5] == 0.0 and y[0] == pytest.approx(_mp_fermi(2.5, -1.0), rel=1e-14)
    for s in (3.0, 1.0, 0.0, -1.0):
        y = sp.fermi_dirac(x, s)
        assert math.isnan(y[1]) and not math.isnan(y[3]) and y[5] == 0.0
    assert sp.fermi_dirac(x, 2.0)[4] == math.inf and sp.fermi_dirac(x, 0.0)[4] == 1.0


def test_nan_is_elementwise_and_no_exception():
    x = torch.tensor([[math.nan, -0.5], [-2.0, math.nan]], dtype=torch.float64)
    for y in (
        sp.polylog_exp(x, 2.5),
        sp.fermi_dirac(x, 0.5),
        sp.logexpm1x(x, 2),
        sp.softplus(x),
        sp.logcosh(x),
        sp.polylog_exp(x, -1.0),
        sp.fermi_dirac(x, -3.0),
    ):
        assert torch.isnan(y).tolist() == [[True, False], [False, True]]


def test_dtypes_shapes_and_errors():
    x = torch.linspace(-4, -0.01, 12).reshape(3, 4)
    for y in (sp.polylog_exp(x, 1.5), sp.fermi_dirac(x, 1.5), sp.logexpm1x(x, 0)):
        assert y.shape == (3, 4) and y.dtype == torch.float32
    assert sp.polylog_exp(torch.empty(0, 3), 2.5).shape == (0, 3)
    assert sp.polylog_exp(torch.tensor(-1.0, dtype=torch.float64), 2.5).dim() == 0
    with pytest.raises(TypeError):
        sp.polylog_exp(torch.tensor([-1, -2]), 2.5)
    with pytest.raises(ValueError):
        sp.polylog_exp(torch.tensor([-1.0]), math.inf)
    x64 = torch.tensor([-1.0, -0.5], dtype=torch.float64)
    y = sp.polylog_exp(x64, 2.5)
    assert y.data_ptr() != x64.data_ptr() and x64.tolist() == [-1.0, -0.5]


def test_where_path_matches_indexing_path(monkeypatch):
    """The torch.where assembly used off-CPU gives the same values as CPU boolean indexing."""
    x = torch.tensor(
        [*X_SAMPLE, 0.0, 0.7, 3.0, 700.0, math.nan, -math.inf, math.inf], dtype=torch.float64
    )
    fns = (
        lambda t: sp.polylog_exp(t, 2.5),
        lambda t: sp.polylog_exp(t, 3.0),
        lambda t: sp.polylog_exp(t, 1.0),
        lambda t: sp.polylog_exp(t, -2.0),
        lambda t: sp.fermi_dirac(t, 0.5),
        lambda t: sp.fermi_dirac(t, 2.0),
        lambda t: sp.logexpm1x(t, 0),
        lambda t: sp.logexpm1x(t, 3),
    )
    expected = [fn(x) for fn in fns]
    monkeypatch.setattr(sp.special_series, "_INDEXED_DEVICES", ())
    for fn, e in zip(fns, expected, strict=True):
        assert torch.equal(torch.isnan(fn(x)), torch.isnan(e))
        assert torch.allclose(fn(x), e, rtol=0, atol=0, equal_nan=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.tensor(X_SAMPLE, dtype=torch.float64)
    for fn in (
        lambda t: sp.polylog_exp(t, 2.5),
        lambda t: sp.fermi_dirac(t, 0.5),
        lambda t: sp.logexpm1x(t, 2),
        lambda t: sp.polylog_exp(t, -2.0),
    ):
        assert torch.allclose(fn(x.cuda()).cpu(), fn(x), rtol=1e-13, atol=0, equal_nan=True)


# ---------------------------------------------------------------------------------------
# coefficient API (literals for code generators)
# ---------------------------------------------------------------------------------------


def test_polylog_near0_coefficients():
    with mpmath.workdps(DPS):
        e = sp.polylog_near0_coefficients(2.5, 6)
        assert e.kind == "pow" and e.m == 0 and e.delta == 1.5
        assert e.a == pytest.approx(float(mpmath.gamma(-1.5)), rel=1e-15)
        for k, c in enumerate(e.coeffs):
            assert c == pytest.approx(float(mpmath.zeta(2.5 - k) / mpmath.factorial(k)), rel=1e-15)
        e = sp.polylog_near0_coefficients(3.0, 5)
        assert e.kind == "log" and e.m == 2 and e.a == 0.5
        assert e.coeffs[2] == pytest.approx(0.75, rel=1e-15)  # H_2/2!
        assert e.coeffs[0] == pytest.approx(float(mpmath.zeta(3)), rel=1e-15)
        assert e.coeffs[3] == pytest.approx(float(mpmath.zeta(0) / 6), rel=1e-15)
        e = sp.polylog_near0_coefficients(2.0 + 1e-9, 4)
        assert e.kind == "expm1" and e.m == 1
        # the combined constant tends to H_1/1! = 1 as s -> 2
        assert e.coeffs[1] == pytest.approx(1.0, abs=1e-7)
    # reconstruct Li_s(e^x) from the literals alone
    for s in (2.5, 3.0, 2.0 + 1e-9, -0.5):
        e = sp.polylog_near0_coefficients(s, 40)
        x = -0.8
        lx = math.log(-x)
        sing = {
            "log": -e.a * lx,
            "expm1": e.a * math.expm1(e.delta * lx),
            "pow": e.a * (-x) ** e.delta,
        }[e.kind]
        val = sum(c * x**k for k, c in enumerate(e.coeffs)) + x**e.m * sing
        assert val == pytest.approx(_mp_polylog(s, x), rel=1e-13)
    assert sp.polylog_near0_coefficients(2.5) == sp.polylog_near0_coefficients(
        2.5, len(sp.polylog_near0_coefficients(2.5).coeffs)
    )


def test_fermi_and_logexpm1x_coefficients():
    c = sp.fermi_dirac_near0_coefficients(2.0, 4)
    with mpmath.workdps(DPS):
        assert c[0] == pytest.approx(float(mpmath.pi**2 / 12), rel=1e-15)
        assert c[1] == pytest.approx(math.log(2.0), rel=1e-15)  # eta(1) = log 2
        assert c[2] == pytest.approx(float(mpmath.altzeta(0) / 2), rel=1e-15)
    t = sp.logexpm1x_taylor_coefficients(0, 3)
    assert t[:7] == pytest.approx([0.0, 0.5, 1 / 24, 0.0, -1 / 2880, 0.0, 1 / 181440], rel=1e-15)
    t2 = sp.logexpm1x_taylor_coefficients(2, 2)
    assert t2 == pytest.approx((1 / 12, 0.0, -1 / 240), rel=1e-15)


# ---------------------------------------------------------------------------------------
# property test: duplication formula Li_s(z) + Li_s(-z) = 2^{1-s} Li_s(z^2)
# ---------------------------------------------------------------------------------------


@settings(max_examples=60, derandomize=True, deadline=None)
@given(x=st.floats(-40.0, -1e-6), s=st.sampled_from([0.5, 1.5, 2.0, 2.5, 3.0, 4.5]))
def test_duplication_identity(x, s):
    """-Li_s(-z) = Li_s(z) - 2^{1-s} Li_s(z^2), checked to 1e-13 of the terms' magnitude."""
    t = torch.tensor([x], dtype=torch.float64)
    li = sp.polylog_exp(t, s)
    li2 = 2.0 ** (1.0 - s) * sp.polylog_exp(2.0 * t, s)
    fd = sp.fermi_dirac(t, s)
    assert torch.abs(fd - (li - li2)) <= 1e-13 * (torch.abs(li) + torch.abs(li2))
