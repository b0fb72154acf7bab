"""Build and call the generated C++ kernels of vector families (``<name>_kernels.cpp``).

A vector kernel is plain C++ with one C entry point per family,
``int deqfam_<name>_mean_cov_f64(const double* eta, double* mean, double* cov, int64_t n)``,
which for each of the ``n`` rows of ``eta`` (``n x k``, row-major) writes the mean
``grad A`` (``n x k``) and the covariance ``Hess A`` (``n x k x k``). It needs no torch
headers, so it compiles with the system C++ compiler in about a second; this module builds
it (several families as ONE shared library, cached by the specs' digests under
``$DEQFAM_CACHE``) and binds it with ctypes to CPU tensors.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from deqfam.fsutil import atomic_write_text
from deqfam.runtime.vector_family import as_vector_family

MeanCov = Callable[[Tensor], tuple[Tensor, Tensor]]
_LIBRARIES: dict[str, ctypes.CDLL] = {}


def _build_dir() -> Path:
    root = Path(os.environ.get("DEQFAM_CACHE", Path.home() / ".cache" / "deqfam"))
    path = root / "vector_kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compile(sources: list[Path], key: str) -> ctypes.CDLL:
    """One shared library of the concatenated kernel sources (each family has its own C++
    namespace and C entry point, so they combine into one translation unit)."""
    if key in _LIBRARIES:
        return _LIBRARIES[key]
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++)")
    build = _build_dir() / key
    build.mkdir(parents=True, exist_ok=True)
    lib = build / "libdeqfam_vector.so"
    if not lib.exists():
        unit = build / "combined.cpp"
        atomic_write_text(unit, "\n".join(p.read_text(encoding="utf-8") for p in sources))
        tmp = build / f"lib.{os.getpid()}.so"
        proc = subprocess.run(
            [compiler, "-std=c++17", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(unit)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the vector kernels failed:\n{proc.stderr[-4000:]}")
        tmp.replace(lib)
    _LIBRARIES[key] = ctypes.CDLL(str(lib))
    return _LIBRARIES[key]


def _bind(lib: ctypes.CDLL, name: str, k: int) -> MeanCov:
    """The ``mean_cov`` callable of family ``name`` (k natural parameters) in ``lib``."""
    fn = getattr(lib, f"deqfam_{name}_mean_cov_f64")
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]

    def mean_cov(eta: Tensor) -> tuple[Tensor, Tensor]:
        """(grad A(eta), Hess A(eta)) for CPU ``eta`` of shape (..., k), in eta's dtype
        (evaluated in float64)."""
        if eta.device.type != "cpu" or eta.shape[-1:] != (k,):
            raise ValueError(f"{name} kernel: CPU tensor of shape (..., {k}) expected")
        x = eta.detach().to(torch.float64).contiguous()
        rows = x.numel() // k
        mean = torch.empty_like(x)
        cov = torch.empty((*x.shape, k), dtype=torch.float64)
        fn(x.data_ptr(), mean.data_ptr(), cov.data_ptr(), rows)
        return mean.to(eta.dtype), cov.to(eta.dtype)

    return mean_cov


def load_vector_kernels(pairs: list[tuple[str | Path, Any]]) -> list[MeanCov]:
    """Compile (cached) the kernels of several vector families as one library; return one
    ``mean_cov(eta) -> (mean, cov)`` per pair. ``pairs`` holds ``(cpp_path, family)``,
    ``family`` a generated module or its ``FAMILY`` (a ``VectorTorchFamily``)."""
    fams = [(Path(p), as_vector_family(m)) for p, m in pairs]
    digest = "".join(f"{f.name}:{f.spec_sha256}" for _, f in fams)
    texts = "".join(p.read_text(encoding="utf-8") for p, _ in fams)
    key = hashlib.sha256((digest + texts).encode()).hexdigest()[:16]
    lib = _compile([p for p, _ in fams], key)
    return [_bind(lib, f.name, f.k) for _, f in fams]


__all__ = ["MeanCov", "load_vector_kernels"]
