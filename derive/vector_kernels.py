"""C++/CUDA kernels of a vector family: mean and covariance per data coordinate in one pass.

For each row ``eta = (eta_1, ..., eta_k)`` the kernel writes ``mu = grad A(eta)`` (k values)
and ``C = Hess A(eta)`` (k x k, row-major; the upper triangle is computed and mirrored, C is
symmetric). The entries are the family's stable forms, printed by ``derive.codegen``'s
:class:`KernelPrinter` after one common-subexpression elimination over all of them; natural
parameters become the C locals ``e0 .. e{k-1}`` (positional, so a parameter name can never
clash with a C identifier).

The vector primitives print through arrays computed once per distinct argument list:
``logsumexp0(a_1..a_n)`` and ``softmax0(i, a_1..a_n)`` share one call
``lse = deqfam_softmax0(a, n, p)`` that fills ``p`` with the softmax over ``(0, a_1..a_n)``
(max-shifted, so it never overflows) and returns the log-sum-exp; the expressions then refer
to the locals ``lse<m>`` and ``p<m>[i - 1]``.
"""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from deqfam.fsutil import atomic_write_text

from . import escape
from .codegen import (
    GENERATOR_VERSION,
    KernelPrinter,
    _environment,
    _source_name,
    kernel_primitives,
)
from .kernel_constants import KERNEL_NEAR0_TERMS, KERNEL_SERIES_TERMS
from .primitives import LOGEXPM1X_SERIES_ORDER
from .vector_derivation import VectorFamily
from .vector_primitives import logsumexp0, softmax0

VECTOR_KERNEL_TARGETS = ("cpp", "cuda")


class _ArrayEntry(sp.Symbol):
    """The C local ``p<m>[i]`` (a softmax entry), printed verbatim."""


def _softmax_arrays(exprs: list[sp.Expr]) -> tuple[list[sp.Expr], list[tuple[int, tuple]]]:
    """Replace logsumexp0 / softmax0 calls by locals; return (expressions, arrays) with
    arrays[m] = (m, argument expressions) in order of first appearance."""
    arrays: dict[tuple, int] = {}

    def index(args: tuple) -> int:
        return arrays.setdefault(tuple(args), len(arrays))

    def lse(e: logsumexp0) -> sp.Expr:
        return sp.Symbol(f"lse{index(e.args)}", real=True)

    def soft(e: softmax0) -> sp.Expr:
        m = index(e.args[1:])
        return _ArrayEntry(f"p{m}[{int(e.args[0]) - 1}]", real=True)

    out = [
        e.replace(lambda w: isinstance(w, logsumexp0), lse).replace(
            lambda w: isinstance(w, softmax0), soft
        )
        for e in exprs
    ]
    return out, [(m, args) for args, m in arrays.items()]


def vector_kernel_context(fam: VectorFamily, warning: str | None = None) -> dict:
    """Everything ``templates/vector_kernels.{cpp,cu}.j2`` need, as strings."""
    k = fam.k
    locals_ = {e: sp.Symbol(f"e{i}", real=True) for i, e in enumerate(fam.etas)}
    upper = [(i, j) for i in range(k) for j in range(i, k)]
    exprs = [g.xreplace(locals_) for g in fam.grad_stable]
    exprs += [fam.hessian_stable[i][j].xreplace(locals_) for i, j in upper]
    exprs, arrays = _softmax_arrays(exprs)
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations=None)
    printer = KernelPrinter()
    temp_lines = [(str(s), printer.doprint(v)) for s, v in temps]
    array_lines = [
        {"index": m, "size": len(args), "entries": ", ".join(printer.doprint(a) for a in args)}
        for m, args in arrays
    ]
    codes = [printer.doprint(e) for e in reduced]
    name = escape.identifier(fam.name, "family name")
    return {
        "name": name,
        "k": k,
        "source_comment": escape.c_comment(_source_name(fam)),
        "sha256": fam.spec_sha256,
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.c_comment(sp.__version__),
        "has_warning": bool(warning),
        "warning_comment": escape.c_comment(warning or ""),
        "unpack": list(range(k)),
        "arrays": array_lines,
        "temps": temp_lines,
        "mean": list(enumerate(codes[:k])),
        "cov": [(i, j, code) for (i, j), code in zip(upper, codes[k:], strict=True)],
        "primitives": kernel_primitives(printer),
        "near0_terms": KERNEL_NEAR0_TERMS,
        "series_terms": KERNEL_SERIES_TERMS,
        "logexpm1x_order": LOGEXPM1X_SERIES_ORDER,
    }


def render_vector_kernels(fam: VectorFamily, target: str, warning: str | None = None) -> str:
    """The C++ (``cpp``) or CUDA (``cuda``) kernel source of ``fam``."""
    if target not in VECTOR_KERNEL_TARGETS:
        raise ValueError(f"unknown kernel target {target!r}; choose from cpp, cuda")
    template = "vector_kernels.cpp.j2" if target == "cpp" else "vector_kernels.cu.j2"
    return _environment().get_template(template).render(**vector_kernel_context(fam, warning))


def vector_kernel_paths(fam: VectorFamily, out_dir: Path) -> dict[str, Path]:
    """Where the kernels of ``fam`` are written: ``<name>_kernels.cpp`` / ``.cu``."""
    return {
        "cpp": out_dir / f"{fam.name}_kernels.cpp",
        "cuda": out_dir / f"{fam.name}_kernels.cu",
    }


def write_vector_kernels(
    fam: VectorFamily, out_dir: str | Path, targets=VECTOR_KERNEL_TARGETS, warning=None
) -> dict[str, Path]:
    """Write the requested kernel targets atomically; ``{target: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = vector_kernel_paths(fam, out)
    written = {}
    for target in targets:
        atomic_write_text(paths[target], render_vector_kernels(fam, target, warning))
        written[target] = paths[target]
    return written


__all__ = [
    "VECTOR_KERNEL_TARGETS",
    "render_vector_kernels",
    "vector_kernel_context",
    "vector_kernel_paths",
    "write_vector_kernels",
]
