"""Vector families' generated custom ops and C++/CUDA kernels.

* the torch module's ``mean`` / ``covariance`` are ``torch.library`` custom ops: their
  backward (C(eta) g for the mean, autograd of the plain covariance) is checked with
  gradcheck / gradgradcheck (finite differences) and ``torch.library.opcheck``; the functions
  are TorchScript-scriptable and ``torch.export``-able;
* the generated C++ kernels (``generated/<name>_kernels.cpp``, all five compiled as ONE
  shared library with g++) equal the torch module in float64 to 1e-12 and mpmath's
  derivatives of A (written here by hand, independent of SymPy) to 1e-12;
* the committed kernel files are what the generator makes now (golden), and the CUDA files
  compile with ``nvcc -c`` (slow; skipped without nvcc).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import mpmath
import pytest
import torch

from deqfam.derive.family import load_family
from deqfam.derive.vector_kernels import render_vector_kernels
from deqfam.runtime.vector_kernels import load_vector_kernels

ROOT = Path(__file__).resolve().parents[1]
VECTOR = ["beta", "categorical", "gamma_shape", "inverse_gaussian", "normal_unknown_variance"]
#: interior points of each family's box
POINTS = {
    "normal_unknown_variance": [(0.3, -0.7), (-2.0, -0.05), (4.0, -3.0)],
    "gamma_shape": [(0.5, -1.0), (-0.6, -0.2), (3.0, -4.0)],
    "beta": [(0.5, 1.5), (2.0, 0.2), (-0.7, -0.3)],
    "inverse_gaussian": [(-0.5, -1.0), (-2.0, -0.1), (-0.05, -3.0)],
    "categorical": [(0.3, -1.0, 2.0), (-4.0, 0.0, 1.0), (8.0, 7.5, -3.0)],
}
#: each spec's A written by hand in mpmath
MP_A = {
    "normal_unknown_variance": lambda a, b: -(a**2) / (4 * b) - mpmath.log(-2 * b) / 2,
    "gamma_shape": lambda a, b: mpmath.loggamma(a + 1) - (a + 1) * mpmath.log(-b),
    "beta": lambda a, b: (
        mpmath.loggamma(a + 1) + mpmath.loggamma(b + 1) - mpmath.loggamma(a + b + 2)
    ),
    "inverse_gaussian": lambda a, b: -2 * mpmath.sqrt(a * b) - mpmath.log(-2 * b) / 2,
    "categorical": lambda *e: mpmath.log(1 + sum(mpmath.exp(x) for x in e)),
}


def _module(name):
    return importlib.import_module(f"deqfam.generated.{name}")


def _eta(name) -> torch.Tensor:
    return torch.tensor(POINTS[name], dtype=torch.float64)


def _mp_mean_cov(name, point):
    """grad A and Hess A at ``point`` by mpmath.diff of the hand-written A (50 digits)."""
    k = len(point)
    unit = [tuple(int(i == j) for j in range(k)) for i in range(k)]
    with mpmath.workdps(50):
        x = tuple(mpmath.mpf(v) for v in point)
        f = MP_A[name]
        mean = [float(mpmath.diff(f, x, unit[i])) for i in range(k)]
        cov = [
            [
                float(
                    mpmath.diff(f, x, tuple(a + b for a, b in zip(unit[i], unit[j], strict=True)))
                )
                for j in range(k)
            ]
            for i in range(k)
        ]
    return torch.tensor(mean, dtype=torch.float64), torch.tensor(cov, dtype=torch.float64)


@pytest.fixture(scope="module")
def kernels():
    """name -> mean_cov from one g++ build of the five committed kernels."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH")
    pairs = [(ROOT / "generated" / f"{n}_kernels.cpp", _module(n)) for n in VECTOR]
    return dict(zip(VECTOR, load_vector_kernels(pairs), strict=True))


@pytest.mark.parametrize("name", VECTOR)
def test_cpp_kernel_equals_torch_module(kernels, name):
    mod = _module(name)
    eta = _eta(name)
    mean, cov = kernels[name](eta)
    torch.testing.assert_close(mean, mod.mean(eta), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(cov, mod.covariance(eta), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", VECTOR)
def test_cpp_kernel_matches_mpmath(kernels, name):
    mean, cov = kernels[name](_eta(name))
    for i, point in enumerate(POINTS[name]):
        ref_mean, ref_cov = _mp_mean_cov(name, point)
        torch.testing.assert_close(mean[i], ref_mean, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(cov[i], ref_cov, rtol=1e-12, atol=1e-14)


def test_cpp_kernel_keeps_batch_shape_and_dtype(kernels):
    eta = _eta("categorical").reshape(3, 1, 3).expand(3, 2, 3).to(torch.float32)
    mean, cov = kernels["categorical"](eta)
    assert mean.shape == (3, 2, 3) and cov.shape == (3, 2, 3, 3) and mean.dtype == torch.float32
    # the softmax shift keeps huge parameters finite (1 + e^800 overflows without it)
    mean, _ = kernels["categorical"](torch.tensor([[800.0, 0.0, -800.0]], dtype=torch.float64))
    torch.testing.assert_close(mean, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("name", VECTOR)
def test_mean_and_covariance_ops_have_correct_backward(name):
    mod = _module(name)
    eta = _eta(name).requires_grad_(True)
    assert torch.autograd.gradcheck(mod.mean, (eta,))
    assert torch.autograd.gradcheck(mod.covariance, (eta,))
    assert torch.autograd.gradgradcheck(mod.mean, (eta,))


def test_ops_map_under_vmap():
    """torch.vmap over a leading or a middle dimension equals the batched call."""
    mod = _module("gamma_shape")
    eta = torch.stack([_eta("gamma_shape"), _eta("gamma_shape") * 0.5], 1)  # (3, 2, k)
    torch.testing.assert_close(torch.vmap(mod.mean)(eta), mod.mean(eta), rtol=0, atol=0)
    torch.testing.assert_close(
        torch.vmap(mod.covariance, in_dims=1, out_dims=1)(eta), mod.covariance(eta), rtol=0, atol=0
    )


@pytest.mark.parametrize("name", ["beta", "categorical"])
def test_custom_ops_pass_opcheck(name):
    mod = _module(name)
    eta = _eta(name).requires_grad_(True)
    for fn in ("mean", "covariance"):
        op = getattr(torch.ops.deqfam_gen, f"{name}_{mod.SPEC_SHA256[:12]}_{fn}")
        result = torch.library.opcheck(op, (eta,))
        assert all(v == "SUCCESS" for v in result.values()), (fn, result)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", ["gamma_shape", "categorical"])
def test_mean_and_covariance_script_and_export(name):
    mod = _module(name)
    eta = _eta(name)
    scripted_mean, scripted_cov = torch.jit.script(mod.mean), torch.jit.script(mod.covariance)
    torch.testing.assert_close(scripted_mean(eta), mod.mean(eta), rtol=0, atol=0)
    torch.testing.assert_close(scripted_cov(eta), mod.covariance(eta), rtol=0, atol=0)

    class MeanCov(torch.nn.Module):
        def forward(self, x):
            return mod.mean(x), mod.covariance(x)

    exported = torch.export.export(MeanCov(), (eta,))
    got_mean, got_cov = exported.module()(eta)
    torch.testing.assert_close(got_mean, mod.mean(eta), rtol=0, atol=0)
    torch.testing.assert_close(got_cov, mod.covariance(eta), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", VECTOR)
def test_every_module_function_is_scriptable(name):
    """log_partition, T, log h and the inverse mean script too; scripted equals eager."""
    mod = _module(name)
    eta = _eta(name)
    y = {"beta": [0.2, 0.7], "categorical": [0.0, 2.0, 3.0]}.get(name, [0.5, 2.0])
    y = torch.tensor(y, dtype=torch.float64)
    cases = [("log_partition", eta), ("sufficient_statistic", y)]
    if mod.LOG_BASE_MEASURE is not None:
        cases.append(("log_base_measure", y))
    if mod.INVERSE_MEAN is not None:
        cases.append(("inverse_mean", mod.mean(eta)))
    for fn_name, arg in cases:
        fn = getattr(mod, fn_name)
        torch.testing.assert_close(torch.jit.script(fn)(arg), fn(arg), rtol=0, atol=0)


@pytest.mark.parametrize("name", VECTOR)
@pytest.mark.parametrize("target", ["cpp", "cuda"])
def test_golden_vector_kernels_are_current(name, target):
    suffix = "cpp" if target == "cpp" else "cu"
    committed = (ROOT / "generated" / f"{name}_kernels.{suffix}").read_text(encoding="utf-8")
    assert render_vector_kernels(load_family(name), target) == committed


def test_categorical_support_max_is_k_minus_one():
    fam = _module("categorical").FAMILY
    assert fam.support_max == 3.0 and fam.k == 3
    assert _module("beta").FAMILY.support_max is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH (no CUDA toolkit)")
def test_vector_cuda_kernels_compile_with_nvcc(tmp_path):
    sources = [str(ROOT / "generated" / f"{n}_kernels.cu") for n in VECTOR]
    proc = subprocess.run(
        ["nvcc", "-c", *sources, "-odir", str(tmp_path), "-diag-suppress", "177"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*.o"))) == len(VECTOR)
