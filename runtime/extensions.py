"""Build and bind the generated fused C++ kernels as ``torch.library`` ops.

``load_cpp_kernel(cpp_path, family_module)`` compiles ``<name>_kernels.cpp`` with
``torch.utils.cpp_extension.load`` (gcc), which registers the op
``torch.ops.deqfam_<name>.activation_and_grad(eta) -> (sigma, sigma')``; here its fake
(meta) rule and its autograd rule are registered from Python. The backward of
(sigma, sigma') is g_sigma * A'' + g_dsigma * A''' with A''' taken from the generated torch
module, so the op is differentiable twice over through the torch path.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import torch

from deqfam.fsutil import atomic_write_text

_LOADED: dict[str, object] = {}


def kernel_build_dir() -> Path:
    """Where compiled kernels are cached (``$DEQFAM_CACHE`` or ``~/.cache/deqfam``)."""
    root = Path(os.environ.get("DEQFAM_CACHE", Path.home() / ".cache" / "deqfam"))
    path = root / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _register_rules(namespace: str, family_module: ModuleType) -> None:
    qualname = f"{namespace}::activation_and_grad"

    @torch.library.register_fake(qualname)
    def _(eta: torch.Tensor):
        return torch.empty_like(eta), torch.empty_like(eta)

    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0], output[1])

    def backward(ctx, g_sigma, g_dsigma):
        eta, dsigma = ctx.saved_tensors
        grad = torch.zeros_like(eta)
        if g_sigma is not None:
            grad = grad + g_sigma * dsigma
        if g_dsigma is not None:
            grad = grad + g_dsigma * family_module.activation_grad2(eta)
        return grad

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)


def load_cpp_kernels(pairs: list[tuple[str | Path, ModuleType]], verbose: bool = False) -> list:
    """Compile several generated kernels as ONE translation unit (one slow compile) and
    return their ops in order. Each kernel lives in its own C++ namespace, so they combine.
    """
    import hashlib

    todo = [(Path(p), m) for p, m in pairs if f"deqfam_{m.NAME}:{m.SPEC_SHA256}" not in _LOADED]
    if todo:
        from torch.utils import cpp_extension

        key = hashlib.sha256("".join(m.SPEC_SHA256 for _, m in todo).encode()).hexdigest()[:12]
        build = kernel_build_dir() / f"combined_{key}"
        build.mkdir(parents=True, exist_ok=True)
        unit = build / "combined.cpp"
        # the kernels' text itself, not '#include "<path>"': a path is not C++ (a quote or
        # newline in it would end the include and inject code; escapes do not apply there)
        atomic_write_text(unit, "\n".join(p.read_text(encoding="utf-8") for p, _ in todo))
        cpp_extension.load(
            name=f"deqfam_combined_{key}",
            sources=[str(unit)],
            extra_cflags=["-O3"],
            build_directory=str(build),
            is_python_module=False,
            verbose=verbose,
        )
        for _, m in todo:
            _register_rules(f"deqfam_{m.NAME}", m)
            _LOADED[f"deqfam_{m.NAME}:{m.SPEC_SHA256}"] = getattr(
                torch.ops, f"deqfam_{m.NAME}"
            ).activation_and_grad
    return [_LOADED[f"deqfam_{m.NAME}:{m.SPEC_SHA256}"] for _, m in pairs]


def load_cpp_kernel(cpp_path: str | Path, family_module: ModuleType, verbose: bool = False):
    """Compile (cached) and load one generated C++ kernel; return its op.

    The op computes (sigma, sigma') = (A'(eta), A''(eta)) in one fused pass on CPU tensors.
    """
    return load_cpp_kernels([(cpp_path, family_module)], verbose=verbose)[0]
