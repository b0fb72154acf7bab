"""``deqfam generate`` for vector specs: the accuracy gate, kernels on disk, name clashes.

The gate (``deqfam/vector_accuracy.py``) compares the generated mean and covariance with
mpmath; these tests confirm its findings independently (mpmath.diff of A written by hand).
"""

from __future__ import annotations

import importlib

import mpmath
import pytest
import torch

from deqfam.cli import main
from deqfam.derive.family import load_family
from deqfam.derive.spec import SpecError
from deqfam.vector_accuracy import box_points, measure_vector

BETA_A = lambda a, b: (  # noqa: E731 - the beta spec's A, by hand
    mpmath.loggamma(a + 1) + mpmath.loggamma(b + 1) - mpmath.loggamma(a + b + 2)
)


def _module(name):
    return importlib.import_module(f"deqfam.generated.{name}")


def test_gate_passes_gamma_shape_and_reaches_the_box_ends():
    fam = load_family("gamma_shape")
    report = measure_vector(fam, _module("gamma_shape"))
    assert report.ok and report.points == 25 and report.unreferenced == 0
    pts = box_points(fam)
    assert pts[:, 0].min() == pytest.approx(-1 + 1e-6) and pts[:, 1].max() == pytest.approx(-1e-6)


def test_gate_flags_the_beta_digamma_difference_and_mpmath_agrees():
    """beta's second mean psi(b + 1) - psi(a + b + 2) at a + 1 = 1e-6, b = 99 is a difference
    of digammas 1e-6 apart: the gate reports it, and mpmath confirms the error exceeds 1e-8."""
    report = measure_vector(load_family("beta"), _module("beta"))
    assert not report.ok and any("(-0.999999, 99.0)" in b for b in report.bad)
    eta = torch.tensor([[-0.999999, 99.0]], dtype=torch.float64)
    got = _module("beta").mean(eta)[0, 1].item()
    with mpmath.workdps(50):
        ref = float(mpmath.diff(BETA_A, (mpmath.mpf(-0.999999), mpmath.mpf(99)), (0, 1)))
    assert abs(got / ref - 1) > 1e-8


def test_categorical_covariance_is_accurate_when_saturated():
    """Var T_3 = p_3 (1 - p_3) with p_3 -> 1: 1 - p_3 is computed from log-sum-exps, not by
    subtraction (which gives 0 here); reference: mpmath.diff of log(1 + sum e^eta)."""
    eta = torch.tensor([[-50.0, -3.0, 50.0]], dtype=torch.float64)
    cov = _module("categorical").covariance(eta)[0]
    with mpmath.workdps(60):
        a = lambda *e: mpmath.log(1 + sum(mpmath.exp(x) for x in e))  # noqa: E731
        ref = float(mpmath.diff(a, (-50, -3, 50), (0, 0, 2)))
    assert ref > 0 and abs(cov[2, 2].item() / ref - 1) < 1e-12


def test_categorical_log_partition_is_relatively_accurate_when_tiny():
    """A = log(1 + sum e^eta) at eta = (-50, -50, -50) is 5.8e-22 (torch.logsumexp gives 0);
    ties for the maximum and huge values stay exact; reference: mpmath at 50 digits."""
    pts = [[-50.0, -50.0, -50.0], [0.0, 0.0, 0.0], [800.0, 800.0, -3.0], [5.0, -40.0, 1.0]]
    got = _module("categorical").log_partition(torch.tensor(pts, dtype=torch.float64))
    with mpmath.workdps(50):
        for p, g in zip(pts, got.tolist(), strict=True):
            ref = float(mpmath.log(1 + sum(mpmath.exp(a) for a in p)))
            assert abs(g / ref - 1) < 1e-15, (p, g, ref)
    x = torch.tensor(pts[:2] + pts[3:], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_module("categorical").log_partition, (x,))


def test_clashing_natural_parameter_names_are_refused_at_read_time(tmp_spec):
    path = tmp_spec(
        "name: clash\nsupport: real\nnatural_parameters: [torch, b]\n"
        "sufficient_statistic: [y, y**2]\nlog_partition: -torch**2/(4*b) - log(-2*b)/2\n"
        "domain: {torch: [-oo, oo], b: [-oo, 0]}\n"
    )
    with pytest.raises(SpecError, match="clash with names of the generated code"):
        load_family(path)


@pytest.mark.slow
def test_cli_generates_kernels_and_refuses_inaccurate_under_require_accurate(tmp_path, capsys):
    out = tmp_path / "gs"
    assert main(["generate", "gamma_shape", "--target", "all", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "gamma_shape.py",
        "gamma_shape_kernels.cpp",
        "gamma_shape_kernels.cu",
    ]
    refused = tmp_path / "beta"
    assert main(["generate", "beta", "--require-accurate", "-o", str(refused)]) == 2
    assert "INACCURATE" in capsys.readouterr().err
    assert not refused.exists() or not any(refused.iterdir())
