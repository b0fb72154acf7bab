"""log Li_1(e^x), the logarithmic-series log-partition, and its derivatives (logli1exp).

References are independent of the code under test: mpmath at 400-800 digits on the closed
forms F = log(-log1p(-u)), F' = Li_0/Li_1 = r, F'' = r (1 + g - r) (u = e^x, g = u/(1 - u),
r = g/Li_1), whose cancellation as u -> 0 the working precision absorbs, and mpmath.diff
for F'''. The series coefficients (an exact power-series logarithm, shared by both sides in
``deqfam.expansions``) are compared with SymPy's series.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from deqfam.api import import_generated
from deqfam.cli import main
from deqfam.derive.codegen import write_generated
from deqfam.derive.family import load_family
from deqfam.derive.primitives import logli1exp
from deqfam.expansions import LOGLI1EXP_TERMS, logli1exp_series
from deqfam.runtime import special, special_li1

EXAMPLE = "examples/logarithmic.yaml"
#: eta over the whole float64 domain: geometric towards both ends, dense around the series
#: switch u = 1/4 (x = -log 4) and the root of A (x = log(1 - 1/e)).
GRID = np.unique(
    np.concatenate(
        [
            -np.geomspace(745.0, 1e-8, 300),
            np.linspace(-1.5, -1.3, 21),
            [-np.log(4.0), np.nextafter(-np.log(4.0), 0.0), np.log1p(-np.exp(-1.0))],
        ]
    )
)


def _mp_closed(k: int, x: float) -> float:
    """F^(k)(x) for k <= 2 by mpmath closed forms at 800 digits (e^-745 cancels 324 digits)."""
    with mpmath.workdps(800):
        u = mpmath.exp(mpmath.mpf(x))
        li1 = -mpmath.log1p(-u)
        g = u / (1 - u)
        r = g / li1
        return float((mpmath.log(li1), r, r * (1 + g - r))[k])


def _assert_close_to_mpmath(got, k: int, rtol: float = 1e-13) -> None:
    ref = np.array([_mp_closed(k, x) for x in GRID])
    # A crosses 0 at log(1 - 1/e): there a float64 result carries ~1e-16 absolute error
    atol = 1e-16 if k == 0 else 0.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_runtime_op_matches_mpmath_over_the_domain(k):
    got = special.logli1exp(torch.tensor(GRID, dtype=torch.float64), k).numpy()
    _assert_close_to_mpmath(got, k)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_numpy_reference_matches_mpmath_over_the_domain(k):
    _assert_close_to_mpmath(logli1exp.numpy_impl(k, GRID), k)


def test_third_derivative_matches_mpmath_diff():
    xs = np.array([-200.0, -30.0, -2.0, -1.39, -1.38, -0.5, -1e-3])
    f = lambda t: mpmath.log(-mpmath.log1p(-mpmath.exp(t)))  # noqa: E731
    with mpmath.workdps(120):
        ref = np.array([float(mpmath.diff(f, mpmath.mpf(x), 3)) for x in xs])
    got = special.logli1exp(torch.tensor(xs), 3).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(logli1exp.numpy_impl(3, xs), ref, rtol=1e-12)


@functools.lru_cache(maxsize=1)
def _sympy_h_coefficients() -> tuple[sp.Rational, ...]:
    """a_n of h(u) = log(-log(1 - u)/u) by SymPy's series (exact rationals)."""
    u = sp.Symbol("u")
    ser = sp.series(sp.log(-sp.log(1 - u) / u), u, 0, LOGLI1EXP_TERMS).removeO()
    poly = sp.Poly(ser, u)
    return tuple(poly.coeff_monomial(u**n) for n in range(LOGLI1EXP_TERMS))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_series_coefficients_agree_with_sympy_series(k):
    """The shared coefficients (exact power-series logarithm in ``Fraction``) against
    SymPy's series of h: n^k a_n rounded once (int / int rounds correctly), [k = 1] at n = 0."""
    exact = [sp.Integer(n) ** k * a for n, a in enumerate(_sympy_h_coefficients())]
    ref = [int(c.p) / int(c.q) if n else float(k == 1) for n, c in enumerate(exact)]
    assert logli1exp_series(k) == tuple(ref)


def test_domain_edges_dtype_and_limits():
    x = torch.tensor([0.0, 1.0, float("nan"), -float("inf")], dtype=torch.float64)
    a, s = special.logli1exp(x, 0), special.logli1exp(x, 1)
    assert torch.isnan(a[:3]).all() and torch.isnan(s[:3]).all()
    assert a[3] == -float("inf") and s[3] == 1.0  # A ~ x, mean -> 1 as x -> -oo
    x32 = torch.tensor([-50.0, -1.0, -1e-3], dtype=torch.float32)
    got = special.logli1exp(x32, 1)
    assert got.dtype == torch.float32
    ref = torch.tensor([_mp_closed(1, float(v)) for v in x32], dtype=torch.float64)
    torch.testing.assert_close(got.double(), ref, rtol=2e-7, atol=0)
    with pytest.raises(ValueError, match="derivative order"):
        special.logli1exp(x, special_li1.LOGLI1EXP_K_MAX + 1)


def test_op_gradcheck_and_gradgradcheck():
    # points on both branches (u < 1/4 and above) and near both ends of the domain
    x = torch.tensor([-40.0, -2.0, -1.0, -0.3, -1e-2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: special.logli1exp(t, 0), (x,))
    assert torch.autograd.gradcheck(lambda t: special.logli1exp(t, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: special.logli1exp(t, 1), (x,))
    result = torch.library.opcheck(torch.ops.deqfam.logli1exp, (x.detach(), 2))
    assert all(v == "SUCCESS" for v in result.values()), result


def test_export_implementation_equals_operator():
    x = torch.tensor(GRID, dtype=torch.float64)
    impl = special.OP_IMPLEMENTATIONS["deqfam::logli1exp"]
    for k in range(4):
        torch.testing.assert_close(impl(x, k), special.logli1exp(x, k), rtol=0, atol=0)


def test_logarithmic_example_generates_accurate_torch_code(tmp_path):
    fam = load_family(EXAMPLE)
    assert fam.A_stable == logli1exp(0, fam.eta)
    assert fam.dsigma_stable == logli1exp(2, fam.eta)
    module = import_generated(write_generated(fam, tmp_path, ("torch",))["torch"])
    x = torch.tensor(GRID, dtype=torch.float64)
    _assert_close_to_mpmath(module.log_partition(x).numpy(), 0)
    _assert_close_to_mpmath(module.activation(x).numpy(), 1)
    _assert_close_to_mpmath(module.activation_grad(x).numpy(), 2)


@pytest.mark.slow
def test_cli_generate_require_accurate_exits_zero(tmp_path, capsys):
    code = main(["generate", EXAMPLE, "--target", "all", "--require-accurate", "-o", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "logarithmic_kernels.cpp").exists()


@pytest.mark.slow
def test_cpp_kernel_matches_torch_path(tmp_path):
    from deqfam.runtime.extensions import load_cpp_kernel

    paths = write_generated(load_family(EXAMPLE), tmp_path, ("torch", "cpp"))
    module = import_generated(paths["torch"])
    op = load_cpp_kernel(paths["cpp"], module)
    x = torch.tensor(GRID, dtype=torch.float64)
    sig, dsig = op(x)
    torch.testing.assert_close(sig, module.activation(x), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(dsig, module.activation_grad(x), rtol=1e-12, atol=1e-300)
