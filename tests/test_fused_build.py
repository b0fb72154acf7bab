"""Building the fused layer: generated sources, the fallback when no compiler is found, the
CUDA source under nvcc, concurrent first builds, and the sweep over every family."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch
from oracles.fused_problems import both_paths, max_relative, tilted_problem

from deqfam.api import builtin_module, generate, register_fused_source
from deqfam.derive.codegen import output_paths, render
from deqfam.derive.family import builtin_names, load_family
from deqfam.runtime import fused_build
from deqfam.runtime.fused import fused_ops_many
from deqfam.runtime.models import ExpFamPCA

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _solver_block(text: str) -> str:
    start = text.index("/* ---- the per-sample solver")
    return text[start : text.index("/* ---- host helpers")]


def test_cpu_and_cuda_sources_share_one_solver_text():
    """The fused .cpp and .cu carry the same per-sample solver, the family's A, T and T'
    printed in C, and bind the ops of one namespace (CPU in the .cpp, CUDA in the .cu)."""
    fam = load_family("poisson")
    cpp, cu = render(fam, "fused_cpp"), render(fam, "fused_cuda")
    assert _solver_block(cpp) == _solver_block(cu)
    assert "return exp(x);" in cpp  # A(eta) = e^eta
    assert "TORCH_LIBRARY(deqfam_fused_poisson, m)" in cpp
    assert "TORCH_LIBRARY_IMPL(deqfam_fused_poisson, CUDA, m)" in cu
    assert "static constexpr bool FAM_WHOLE_LINE = true;" in cpp
    gamma = render(load_family("gamma"), "fused_cpp")
    assert "FAM_HI = (0.0);" in gamma and "FAM_WHOLE_LINE = false" in gamma
    paths = output_paths(fam, Path("out"))
    assert paths["fused_cpp"].name == "poisson_fused.cpp"
    assert paths["fused_cuda"].name == "poisson_fused.cu"


def test_missing_compiler_falls_back_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fused_build, "_FAILED", set())
    monkeypatch.setattr(fused_build, "_WARNED", set())
    monkeypatch.setattr(fused_build, "_LOADED", {})
    fam = builtin_module("gaussian").FAMILY
    model = ExpFamPCA(fam, 5, 2, backend="fused", dtype=torch.float64)
    Y = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        z = model(Y)
        model(Y)
    messages = [str(w.message) for w in caught if "fused solver" in str(w.message)]
    assert messages == [
        "deqfam: the fused solver for gaussian is unavailable (no C++ compiler found); "
        "using the torch path"
    ]
    assert model.last_stats.solver == "newton"
    # the torch path's answer: Gaussian J is quadratic, z* = (lam I + W^T W)^-1 W^T (Y - B)^T
    W, B = model.W.detach(), model.B.detach()
    exact = torch.linalg.solve(0.1 * torch.eye(2, dtype=W.dtype) + W.T @ W, W.T @ (Y - B).T).T
    torch.testing.assert_close(z.detach(), exact, rtol=1e-9, atol=1e-12)


def test_register_fused_source_writes_a_spec_s_source(tmp_path):
    spec = EXAMPLES[0]
    module = generate(spec, tmp_path, check_admissibility=False)
    path = register_fused_source(str(spec), module)
    assert path == tmp_path / f"{module.FAMILY.name}_fused.cpp"
    assert fused_build.fused_source(module.FAMILY) == path
    assert module.FAMILY.spec_sha256 in path.read_text(encoding="utf-8")[:400]


def _nvcc_flags() -> list[str]:
    from torch.utils import cpp_extension

    includes = [*cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
    return ["-std=c++17", "--expt-relaxed-constexpr", *(f"-I{p}" for p in includes)]


@pytest.mark.skipif(
    shutil.which("nvcc") is None,
    reason="nvcc is not on PATH: the CUDA sources compile only where the toolkit is installed",
)
def test_fused_cuda_source_compiles_with_nvcc(tmp_path):
    """The torch CUDA extension source compiles (it is never run without a GPU).

    In the default run (about 35 s on 2 cores): the issue asks that the tests compile the
    CUDA op wherever nvcc exists.
    """
    source = ROOT / "generated" / "poisson_fused.cu"
    out = tmp_path / "poisson_fused.o"
    cmd = ["nvcc", "-c", str(source), "-o", str(out), "-diag-suppress", "177", *_nvcc_flags()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.stat().st_size > 0


_BUILD_CHILD = """
import sys, torch
from deqfam.api import builtin_module
from deqfam.runtime.fused import fused_ops
ops = fused_ops(builtin_module("bernoulli"))
W = torch.full((3, 1), 0.5, dtype=torch.float64)
z = ops.solve(torch.ones(2, 3, dtype=torch.float64), W, torch.zeros(3, dtype=torch.float64),
              None, 0.1, 1e-10, 1e-14, 100, 1e-4, 0.5, 3, 1e-20)[0]
print("z", float(z[0, 0]))
"""


@pytest.mark.slow
def test_concurrent_first_builds_share_one_cache(tmp_path):
    """Two processes build the same family into an empty cache at once: both load a working
    op and only one of them compiled (the other waited on the lock)."""
    env = {**__import__("os").environ, "DEQFAM_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_CHILD], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    # the root of 0.1 z + 3 (0.5 sigmoid(0.5 z) - 0.5) = 0 (Bernoulli, y = 1, W = 0.5)
    roots = [float(o.split("z ")[-1]) for o in outs]
    f = [0.1 * r - 1.5 * (1 - 1 / (1 + math.exp(-0.5 * r))) for r in roots]
    assert max(abs(v) for v in f) <= 1e-12 and roots[0] == roots[1]
    assert sum("compiling fused solver" in o for o in outs) == 1


@pytest.mark.slow
def test_every_family_matches_torch_path(tmp_path):
    """Every built-in family and both example specs, built as one extension: z* to 1e-10 and
    the gradients to 1e-9 relative (float64), at tilts inside each domain."""
    mods = [builtin_module(n) for n in builtin_names()]
    for spec in EXAMPLES:
        module = generate(spec, tmp_path / spec.stem, check_admissibility=False)
        register_fused_source(str(spec), module)
        mods.append(module)
    ops = fused_ops_many(mods)
    for mod, op in zip(mods, ops, strict=True):
        fam = mod.FAMILY
        for scale in (0.01, 0.3):
            W, B, Y = tilted_problem(fam, n=40, d=10, l=3, scale=scale, seed=11)
            (zf, sf, gf), (zt, st, gt) = both_paths(op, fam, W, B, Y, 0.1)
            # counts above sup sigma (fermi_dirac's mean is below 1) have no interior MAP:
            # both paths must then stall on the same samples, at the same iterates
            assert torch.equal(sf.converged, st.converged), fam.name
            assert float(st.converged.double().mean()) >= 0.8, fam.name
            assert torch.equal(sf.iterations, st.iterations), fam.name
            assert float((zf - zt).abs().max()) <= 1e-10, fam.name
            for a, b in zip(gf, gt, strict=True):
                assert max_relative(a, b) <= 1e-9 or math.isclose(float(b.abs().max()), 0)


def test_libmvec_flags_follow_the_platform(monkeypatch):
    """The vector-math build flags are set only for GCC on x86-64 glibc >= 2.35 (where
    libmvec has exp, log, log1p and expm1); the build key changes with the flags, so a
    library built with other flags is never reused."""
    from deqfam.runtime import fused_build as fb

    monkeypatch.setattr(fb.sys, "platform", "linux")
    monkeypatch.setattr(fb.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(fb.platform, "libc_ver", lambda: ("glibc", "2.36"))
    assert fb.libmvec_available()
    cflags, ldflags = fb.compile_flags()
    assert "-DDEQFAM_LIBMVEC" in cflags and ldflags == ["-lmvec"]
    key_with = fb._build_key("source")
    monkeypatch.setattr(fb.platform, "libc_ver", lambda: ("glibc", "2.34"))
    assert not fb.libmvec_available()
    assert fb.compile_flags() == (
        ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
        [],
    )
    assert fb._build_key("source") != key_with
    monkeypatch.setattr(fb.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setenv("CXX", "clang++")
    assert not fb.libmvec_available()
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(fb.platform, "machine", lambda: "aarch64")
    assert not fb.libmvec_available()
