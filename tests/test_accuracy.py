"""Zero-truncated Poisson stable forms and the generate-time accuracy measurement (issue 17.4).

References are independent of the code under test: mpmath at high precision on the closed
forms A = log(e^u - 1), A' = u/(1 - e^-u), A'' by mpmath.diff, with u = e^eta.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

from deqfam.accuracy import RTOL, _mp_value, measure, measurement_grid
from deqfam.api import import_generated
from deqfam.cli import main
from deqfam.derive.codegen import write_generated
from deqfam.derive.family import load_family
from deqfam.derive.primitives import logexpm1, logexpm1exp, to_definition
from deqfam.runtime import special

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

SPELLINGS = {
    "ztp_plain": "log(exp(exp(eta)) - 1)",
    "ztp_expm1": "log(expm1(exp(eta)))",
    "ztp_by_hand": "exp(eta) + log(1 - exp(-exp(eta)))",
}
ETAS = [-40.0, -20.0, 0.0, 7.0, 30.0]
UNSTABLE = "log(exp(eta) + exp(2*eta))"  # no stable rule applies: inf/nan in the tails


def _spec(tmp_path, name: str, log_partition: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndescription: test family\nsupport: positive_integers\n"
        f"sufficient_statistic: y\nlog_partition: {log_partition}\nparameters: {{}}\n"
        "domain: [-oo, oo]\n",
        encoding="utf-8",
    )
    return str(path)


def _mp_ztp(k: int, eta: float) -> float:
    """G^(k)(eta), G = log(e^(e^eta) - 1), by mpmath at 400 digits (closed form for k <= 1)."""
    with mpmath.workdps(400):
        x = mpmath.mpf(eta)
        u = mpmath.exp(x)
        if k == 0:
            return float(mpmath.log(mpmath.expm1(u)))
        if k == 1:
            return float(u / (1 - mpmath.exp(-u)))
        return float(mpmath.diff(lambda t: mpmath.log(mpmath.expm1(mpmath.exp(t))), x, k))


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_zero_truncated_poisson_generated_code_matches_mpmath(name, tmp_path):
    fam = load_family(_spec(tmp_path, name, SPELLINGS[name]))
    assert fam.A_stable == logexpm1exp(0, fam.eta)
    module = import_generated(write_generated(fam, tmp_path / "gen", ("torch",))["torch"])
    x = torch.tensor(ETAS, dtype=torch.float64)
    fns = (module.log_partition, module.activation, module.activation_grad)
    for k, fn in enumerate(fns):
        got = fn(x).numpy()
        ref = np.array([_mp_ztp(k, e) for e in ETAS])
        assert np.all(np.isfinite(got)), (k, got)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("k", range(5))
def test_logexpm1exp_numpy_and_torch_match_mpmath(k):
    xs = np.array([-745.5, -700, -300, -40, -5, -0.5, -0.01, 0, 0.01, 1.5, 4.09, 4.2, 7, 40, 700])
    ref = np.array([_mp_ztp(k, v) for v in xs]) if k <= 3 else None
    ours = logexpm1exp.numpy_impl(k, xs)
    torch_vals = special.logexpm1exp(torch.tensor(xs), k).numpy()
    if ref is not None:
        np.testing.assert_allclose(ours, ref, rtol=2e-15, atol=0)
        np.testing.assert_allclose(torch_vals, ref, rtol=2e-15, atol=0)
    # the far-tail limits: G -> eta and G' -> 1, G'' ~ e^eta/2 as eta -> -oo; G^(k) = e^eta at +oo
    assert special.logexpm1exp(torch.tensor([710.0]), k).item() == float("inf")
    np.testing.assert_allclose(torch_vals, ours, rtol=1e-15, atol=0)


def test_logexpm1exp_autograd_is_next_order():
    x = torch.tensor([-30.0, -1.0, 0.3, 2.0, 50.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: special.logexpm1exp(t, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: special.logexpm1exp(t, 1), (x,))


def test_logexpm1_matches_mpmath_and_its_derivative_stays_in_the_set():
    xs = np.array([1e-300, 1e-10, 0.1, 0.69, 0.7, 1.0, 5.0, 50.0, 700.0, 800.0])
    with mpmath.workdps(50):
        ref = np.array([float(mpmath.log(mpmath.expm1(mpmath.mpf(v)))) for v in xs])
    np.testing.assert_allclose(logexpm1.numpy_impl(xs), ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(special.logexpm1(torch.tensor(xs)).numpy(), ref, rtol=1e-14)
    # fdiff (1 + Li_0(e^-x)) agrees with the derivative of the plain definition
    import sympy as sp

    x = sp.Symbol("x", positive=True)
    d_prim = to_definition(logexpm1(x).diff(x))
    d_plain = sp.diff(sp.log(sp.exp(x) - 1), x)
    for v in (0.01, 0.7, 3.0, 20.0):
        assert float(sp.N((d_prim - d_plain).subs(x, sp.Rational(str(v))), 40)) == pytest.approx(
            0, abs=1e-25
        )


def test_reference_survives_total_cancellation():
    """The plain A'' of the ZTP cancels to an exact 0 at 40 and 80 digits at eta = 300."""
    fam = load_family(_spec_text_family())
    fn = fam.mpmath_function(fam.dsigma)
    with mpmath.workdps(40):
        assert fn(mpmath.mpf(300)) == 0  # the trap
    # A'' = e^eta (1 + O(e^eta e^-e^eta)) there: the correction is far below 1e-100
    assert _mp_value(fn, 300.0) == pytest.approx(float(mpmath.exp(300)), rel=1e-15)


def _spec_text_family():
    from deqfam.derive.spec import parse_spec

    text = (
        "name: ztp\ndescription: d\nsupport: positive_integers\nsufficient_statistic: y\n"
        "log_partition: log(exp(exp(eta)) - 1)\nparameters: {}\ndomain: [-oo, oo]\n"
    )
    return parse_spec(text, source="test")


def test_grid_reaches_far_tails_and_finite_ends():
    g = measurement_grid(-np.inf, np.inf)
    assert g[0] == -700 and g[-1] == 700 and len(g) < 80
    g = measurement_grid(-np.inf, 0.0)
    assert g[-1] == pytest.approx(-1e-8) and g[0] < -700 and np.all(g < 0)


def test_ztp_measures_accurate(tmp_path):
    fam = load_family(_spec(tmp_path, "ztp_m", SPELLINGS["ztp_plain"]))
    module = import_generated(write_generated(fam, tmp_path, ("torch",))["torch"])
    report = measure(fam, module)
    assert report.ok and report.unreferenced == 0, report.format_text()
    assert max(report.worst.values()) < 1e-14


def test_unstable_spec_is_reported_with_its_range(tmp_path, capsys):
    spec = _spec(tmp_path, "unstable_lse", UNSTABLE)
    out = tmp_path / "refused"
    assert main(["generate", spec, "-o", str(out), "--require-accurate"]) == 2
    err = capsys.readouterr().err
    assert "refused: generated code is INACCURATE" in err
    # A = log(e^eta + e^2eta) overflows once e^(2 eta) does (eta > 354.9): the range says so
    assert "INACCURATE A: eta in [421.228, 700]" in err
    assert "true value is 842.455" in err  # A(421.228) = 2 eta + log1p(e^-eta)
    assert "RuntimeWarning" not in err
    assert not out.exists()
    # without the flag: written, with a loud warning
    assert main(["generate", spec, "-o", str(tmp_path / "warned")]) == 0
    captured = capsys.readouterr()
    assert "WARNING: generated code is INACCURATE" in captured.err
    assert (tmp_path / "warned" / "unstable_lse.py").is_file()
    assert RTOL == 1e-8


def test_generate_accurate_spec_prints_summary(tmp_path, capsys):
    spec = _spec(tmp_path, "ztp_cli", SPELLINGS["ztp_expm1"])
    assert main(["generate", spec, "-o", str(tmp_path), "--require-accurate"]) == 0
    out = capsys.readouterr()
    assert "accuracy 57 points on eta in [-700, 700]" in out.out
    assert "RuntimeWarning" not in out.err and "INACCURATE" not in out.err
