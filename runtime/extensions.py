"""Build and bind the generated fused C++ kernels as ``torch.library`` ops.

``load_cpp_kernel(cpp_path, family)`` compiles ``<name>_kernels.cpp`` with
``torch.utils.cpp_extension.load`` (gcc), which registers the op
``torch.ops.<FAMILY.kernel_namespace>.activation_and_grad(eta) -> (sigma, sigma')``; here its
fake (meta) rule and its autograd rule are registered from Python. The backward of
(sigma, sigma') is g_sigma * A'' + g_dsigma * A''' with A''' the contract's
``activation_grad2``, so the op is differentiable twice over through the torch path.
``family`` is a generated module or its ``FAMILY`` (a ``TorchFamily``); only the contract is
read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from deqfam.fsutil import atomic_write_text
from deqfam.runtime.family import TorchFamily, as_torch_family

_LOADED: dict[str, object] = {}


def kernel_build_dir(create: bool = True) -> Path:
    """Where compiled kernels are cached (``$DEQFAM_CACHE`` or ``~/.cache/deqfam``), created
    unless ``create`` is false (a lookup that must leave no trace)."""
    root = Path(os.environ.get("DEQFAM_CACHE", Path.home() / ".cache" / "deqfam"))
    path = root / "kernels"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _register_rules(fam: TorchFamily) -> None:
    """The fake and autograd rules of ``fam``'s kernel op (see the module docstring)."""
    qualname = f"{fam.kernel_namespace}::activation_and_grad"
    grad2 = fam.activation_grad2

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
            grad = grad + g_dsigma * grad2(eta)
        return grad

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)


def _kernel_family(family: Any) -> TorchFamily:
    """The contract of a family whose C++ kernel is to be loaded: it must name the kernel's
    ``torch.library`` namespace and its spec digest (which keys the build)."""
    fam = as_torch_family(family)
    if fam.kernel_namespace is None or fam.spec_sha256 is None:
        raise ValueError(
            f"family {fam.name!r} names no generated C++ kernel (kernel_namespace and "
            "spec_sha256 are set by `deqfam generate`)"
        )
    return fam


def _loaded_key(fam: TorchFamily) -> str:
    return f"{fam.kernel_namespace}:{fam.spec_sha256}"


def load_cpp_kernels(pairs: list[tuple[str | Path, Any]], verbose: bool = False) -> list:
    """Compile several generated kernels as ONE translation unit (one slow compile) and
    return their ops in order. Each kernel lives in its own C++ namespace, so they combine.
    ``pairs`` holds ``(cpp_path, family)``, ``family`` a generated module or its ``FAMILY``.
    """
    fams = [(Path(p), _kernel_family(m)) for p, m in pairs]
    todo = [(p, f) for p, f in fams if _loaded_key(f) not in _LOADED]
    if todo:
        from torch.utils import cpp_extension

        key = hashlib.sha256("".join(f.spec_sha256 for _, f in todo).encode()).hexdigest()[:12]
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
        for _, f in todo:
            _register_rules(f)
            namespace = getattr(torch.ops, f.kernel_namespace)  # the op namespace, by its name
            _LOADED[_loaded_key(f)] = namespace.activation_and_grad
    return [_LOADED[_loaded_key(f)] for _, f in fams]


def load_cpp_kernel(cpp_path: str | Path, family: Any, verbose: bool = False):
    """Compile (cached) and load one generated C++ kernel; return its op.

    The op computes (sigma, sigma') = (A'(eta), A''(eta)) in one fused pass on CPU tensors.
    """
    return load_cpp_kernels([(cpp_path, family)], verbose=verbose)[0]
