"""Code generation: generated modules and kernels against independent references."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch

from deqfam.api import generate, import_generated
from deqfam.derive.codegen import TARGETS, output_paths, render
from deqfam.derive.family import builtin_names, load_family

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = builtin_names()
# float64 stable forms vs 50-digit mpmath of the plain derivatives: each torch op is
# accurate to a few ulps (special functions to ~1e-14), so 1e-10 relative is a wide margin
# that still catches any wrong branch or coefficient.
RTOL = 1e-10


def _module(name: str):
    return importlib.import_module(f"deqfam.generated.{name}")


def _points(name: str, n: int = 60, width: float = 8.0, seed: int = 3) -> np.ndarray:
    fam = load_family(name)
    return np.sort(fam.sample_points(n, np.random.default_rng(seed), width=width))


@pytest.mark.parametrize("name", BUILTINS)
def test_generated_functions_match_mpmath(name):
    fam, mod = load_family(name), _module(name)
    etas = _points(name)
    x = torch.tensor(etas, dtype=torch.float64)
    with mpmath.workdps(50):
        for fn, expr in (
            (mod.log_partition, fam.A),
            (mod.activation, fam.sigma),
            (mod.activation_grad, fam.dsigma),
            (mod.activation_grad2, fam.d2sigma),
        ):
            f = fam.mpmath_function(expr)
            ref = np.array([float(f(mpmath.mpf(float(e)))) for e in etas])
            got = fn(x).numpy()
            np.testing.assert_allclose(
                got, ref, rtol=RTOL, atol=1e-300, err_msg=f"{name}.{fn.__name__}"
            )


@pytest.mark.parametrize("name", BUILTINS)
def test_activation_gradcheck_and_custom_backward(name):
    mod = _module(name)
    x = torch.tensor(_points(name, n=8, width=4.0, seed=5), dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(mod.activation, (x,))
    assert torch.autograd.gradgradcheck(mod.activation, (x,))
    # the registered backward is A'' itself, not autograd through the forward's stable form
    (g,) = torch.autograd.grad(mod.activation(x).sum(), x)
    torch.testing.assert_close(g, mod.activation_grad(x.detach()), rtol=0, atol=0)


@pytest.mark.parametrize("name", BUILTINS)
def test_torchscript_equals_eager(name):
    mod = _module(name)
    x = torch.tensor(_points(name, n=40), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated")
        for fn in (mod.log_partition, mod.activation, mod.activation_grad):
            scripted = torch.jit.script(fn)
            torch.testing.assert_close(scripted(x), fn(x), rtol=0, atol=0)


def test_torch_compile_fullgraph_has_no_graph_break():
    mod = _module("bose_einstein")
    x = -torch.logspace(-3, 1, 33, dtype=torch.float64)
    compiled = torch.compile(mod.activation, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), mod.activation(x), rtol=0, atol=0)


def test_regenerated_output_is_byte_identical_to_committed(tmp_path):
    """Drift check: the committed generated/ files are exactly what the generator makes."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deqfam",
            "generate",
            "--builtins",
            "--target",
            "all",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in BUILTINS:
        fam = load_family(name)
        for target, path in output_paths(fam, tmp_path).items():
            committed = ROOT / "generated" / path.name
            assert committed.read_bytes() == path.read_bytes(), (
                f"{committed} is stale: run `make generated` ({target})"
            )
    shared = "pcdeq_activations.py"  # one module for the built-ins (derive/emit.py)
    assert (ROOT / "generated" / shared).read_bytes() == (tmp_path / shared).read_bytes()


def test_output_does_not_depend_on_hash_seed(tmp_path):
    code = (
        "import sys; from deqfam.derive.family import load_family; "
        "from deqfam.derive.codegen import render; "
        "sys.stdout.write(render(load_family('continuous_bernoulli'), 'cpp') + "
        "render(load_family('ising'), 'torch'))"
    )
    outs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.append(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert outs[0] == outs[1] and len(outs[0]) > 1000


USER_SPEC = """\
name: bernoulli_plus_poisson
description: a Bernoulli and an independent Poisson count, summed
support: nonnegative_integers
log_partition: log(1 + exp(eta)) + exp(eta)
domain: [-oo, oo]
"""


def test_user_spec_end_to_end(tmp_path):
    spec = tmp_path / "bp.yaml"
    spec.write_text(USER_SPEC)
    mod = generate(spec, tmp_path / "out", check_admissibility=False)
    assert Path(mod.__file__).parent == tmp_path / "out"
    x = torch.linspace(-4, 3, 9, dtype=torch.float64, requires_grad=True)
    sig = mod.activation(x)
    ref = torch.sigmoid(x) + torch.exp(x)  # closed form of A'
    torch.testing.assert_close(sig, ref, rtol=1e-14, atol=0)
    sig.sum().backward()
    torch.testing.assert_close(
        x.grad, torch.sigmoid(x) * torch.sigmoid(-x) + torch.exp(x), rtol=1e-14, atol=0
    )
    layer = mod.Layer(data_dim=6, latent_dim=2)
    y = torch.poisson(
        torch.full((5, 6), 1.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0)
    )
    z = layer.double()(y)
    assert z.shape == (5, 2) and torch.isfinite(z).all()


def test_cpp_kernels_match_torch_path():
    """All built-in C++ kernels, compiled once as one translation unit (gcc)."""
    from deqfam.runtime.extensions import load_cpp_kernels

    mods = [_module(n) for n in BUILTINS]
    ops = load_cpp_kernels(
        [(ROOT / "generated" / f"{n}_kernels.cpp", m) for n, m in zip(BUILTINS, mods, strict=True)]
    )
    for name, mod, op in zip(BUILTINS, mods, ops, strict=True):
        x = torch.tensor(_points(name, n=200), dtype=torch.float64)
        sig, dsig = op(x)
        torch.testing.assert_close(sig, mod.activation(x), rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(dsig, mod.activation_grad(x), rtol=1e-12, atol=1e-300)
        xs = x[:4].clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t, op=op: op(t), (xs,))
        result = torch.library.opcheck(op, (x[:16],))
        assert all(v == "SUCCESS" for v in result.values()), (name, result)


@pytest.mark.skipif(
    shutil.which("nvcc") is None,
    reason="nvcc is not on PATH: CUDA sources "
    "are only compiled where the CUDA toolkit is installed",
)
def test_cuda_kernels_compile_with_nvcc(tmp_path):
    sources = [str(ROOT / "generated" / f"{n}_kernels.cu") for n in BUILTINS]
    proc = subprocess.run(
        ["nvcc", "-c", *sources, "-odir", str(tmp_path), "-diag-suppress", "177"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*.o"))) == len(BUILTINS)


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_export_round_trip(fmt, tmp_path):
    from deqfam.runtime.export import export_activation

    for name in ("poisson", "bose_einstein"):
        diff = export_activation(_module(name), fmt, tmp_path / f"{name}.{fmt}")
        assert diff == 0.0


def test_render_rejects_unknown_target():
    with pytest.raises(ValueError, match="unknown target"):
        render(load_family("poisson"), "fortran")
    assert TARGETS == ("torch", "cpp", "cuda", "fused_cpp", "fused_cuda")


def test_import_generated_is_idempotent(tmp_path):
    mod = generate("ising", tmp_path, check_admissibility=False)
    again = import_generated(Path(mod.__file__))
    assert again is mod
