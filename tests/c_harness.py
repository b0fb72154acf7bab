"""Compile generated C text with gcc into a shared library and call it through ctypes.

The generated kernels' math (``templates/_primitives.h.j2``: the primitives and a family's
fused ``eval`` function) is plain C99 once ``DEQFAM_FN`` is defined, so the tests compile it
alone with gcc (about a second) instead of building a torch extension; ``DEQFAM_FN`` is
defined empty, so every function is an exported symbol ctypes can call.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from deqfam.derive.codegen import _environment
from deqfam.derive.kernel_constants import KERNEL_NEAR0_TERMS, KERNEL_SERIES_TERMS
from deqfam.derive.primitives import LOGEXPM1X_SERIES_ORDER

GCC = shutil.which("gcc")


def render_primitives(context: dict) -> str:
    """``_primitives.h.j2`` rendered with ``context`` (its ``primitives`` list, and for a
    scalar family ``name``/``temps``/``sigma_c``/``dsigma_c``), as a C translation unit."""
    ctx = {
        "near0_terms": KERNEL_NEAR0_TERMS,
        "series_terms": KERNEL_SERIES_TERMS,
        "logexpm1x_order": LOGEXPM1X_SERIES_ORDER,
        **context,
    }
    body = _environment().get_template("_primitives.h.j2").render(**ctx)
    return "#include <math.h>\n#include <stdint.h>\n#define DEQFAM_FN\n" + body + "\n"


def compile_c(source: str, out_dir: Path, name: str = "harness", cxx: bool = False):
    """gcc -O2 -shared ``source`` into ``out_dir/lib<name>.so``; the loaded ctypes library."""
    suffix = "cpp" if cxx else "c"
    src = out_dir / f"{name}.{suffix}"
    lib = out_dir / f"lib{name}.so"
    src.write_text(source, encoding="utf-8")
    compiler = shutil.which("g++") if cxx else GCC
    std = "-std=c++17" if cxx else "-std=c99"
    proc = subprocess.run(
        [compiler, std, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gcc failed:\n{proc.stderr[-4000:]}")
    return ctypes.CDLL(str(lib))


def scalar_function(lib, name: str):
    """``double name(double)`` from ``lib`` as a numpy-vectorised function."""
    fn = getattr(lib, name)
    fn.restype = ctypes.c_double
    fn.argtypes = [ctypes.c_double]
    return np.vectorize(lambda x: fn(float(x)), otypes=[float])
