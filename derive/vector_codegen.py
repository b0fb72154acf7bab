"""Code generation of a vector family: ``generated/<name>.py`` exporting ``FAMILY``, a
``runtime.vector_family.VectorTorchFamily``.

Each function of the module unpacks the ``k`` natural parameters from the last axis of its
input (``eta1 = eta[..., 0]``), computes common subexpressions once (SymPy's ``cse``), and
stacks the entries: ``mean`` along the last axis, ``covariance`` as rows of a ``k x k``
matrix. Expressions print with ``derive.codegen``'s torch printer, extended here by the
vector primitives (``logsumexp0``/``softmax0`` -> ``torch.logsumexp``/``torch.softmax`` over
``(0, eta_1, ..., eta_k)``) and the one-hot statistic (``KroneckerDelta(y, i)`` ->
``(y == i)`` as a float). The context holds strings only; the template has no logic beyond
loops.
"""

from __future__ import annotations

import keyword
from pathlib import Path

import sympy as sp

from deqfam.fsutil import atomic_write_text

from . import escape
from .codegen import (
    GENERATOR_VERSION,
    TorchLayerPrinter,
    _domain_literal,
    _environment,
    _source_name,
    _verdict_literal,
    float_literal,
    format_python,
)
from .vector_derivation import VectorFamily
from .vector_laws import exact_sampler_literal
from .vector_primitives import logsumexp0, softmax0
from .vector_spec import GENERATED_CODE_NAMES

#: Python names a natural parameter may not take in a generated module (refused when the
#: spec is read, derive/vector_spec.py; checked again here for families built otherwise)
_TAKEN = GENERATED_CODE_NAMES


class VectorTorchPrinter(TorchLayerPrinter):
    """The elementwise torch printer plus the vector primitives and Kronecker deltas."""

    def _stack0(self, args) -> str:
        first = self._print(args[0])
        inner = ", ".join([f"torch.zeros_like({first})", *(self._print(a) for a in args)])
        return f"torch.stack([{inner}], -1)"

    def _print_Function(self, expr):
        if isinstance(expr, logsumexp0):  # log1p-accurate when tiny (runtime/special_logsumexp)
            inner = ", ".join(self._print(a) for a in expr.args)
            return f"special.logsumexp0(torch.stack([{inner}], -1))"
        if isinstance(expr, softmax0):
            return f"torch.softmax({self._stack0(expr.args[1:])}, -1)[..., {int(expr.args[0])}]"
        return super()._print_Function(expr)

    def _print_KroneckerDelta(self, expr):
        a, b = sorted(expr.args, key=lambda e: e.is_number)  # (variable, category)
        return f"torch.eq({self._print(a)}, {float_literal(b)}).to({self._print(a)}.dtype)"


def _code(expr: sp.Expr, like: str) -> str:
    """Torch code of one entry; a constant becomes a tensor shaped like ``like``."""
    if not expr.free_symbols:
        return f"torch.full_like({like}, {float_literal(expr)})"
    return VectorTorchPrinter({"strict": True}).doprint(expr)


def _block(exprs: list[sp.Expr], like: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(temporaries, entries) of a list of expressions after common-subexpression
    elimination (temporaries ``_t0, _t1, ...``)."""
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), optimizations=None)
    return [(str(s), _code(v, like)) for s, v in temps], [_code(e, like) for e in reduced]


def _names(fam: VectorFamily) -> list[str]:
    names = []
    for e in fam.etas:
        name = escape.identifier(e.name, "natural parameter")
        if name in _TAKEN or keyword.iskeyword(name) or name.startswith("_t"):
            raise ValueError(f"natural parameter name {name!r} is reserved in generated code")
        names.append(name)
    return names


def vector_torch_context(
    fam: VectorFamily, warning: str | None = None, verdict: str | None = None
) -> dict:
    """Everything ``templates/vector_layer.py.j2`` needs, as strings."""
    names = _names(fam)
    first = names[0]
    k = fam.k
    a_temps, (a_code,) = _block([fam.A_stable], first)
    m_temps, m_codes = _block(list(fam.grad_stable), first)
    flat = [fam.hessian_stable[i][j] for i in range(k) for j in range(k)]
    c_temps, c_flat = _block(flat, first)
    cov_rows = [", ".join(c_flat[i * k : (i + 1) * k]) for i in range(k)]
    t_temps, t_codes = _block(list(fam.T), "y")
    inverse = None
    if fam.inverse_mean is not None:
        mus = fam.mean_symbols
        i_temps, i_codes = _block(list(fam.inverse_mean), mus[0].name)
        inverse = {
            "unpack": [(m.name, i) for i, m in enumerate(mus)],
            "temps": i_temps,
            "codes": i_codes,
        }
    log_h = fam.log_base_measure
    digest = fam.spec_sha256
    return {
        "name": escape.identifier(fam.name, "family name"),
        "description_doc": escape.python_docstring(fam.description),
        "source_comment": escape.python_comment(_source_name(fam)),
        "sha256": digest,
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.python_comment(sp.__version__),
        "has_warning": bool(warning),
        "warning_comment": escape.python_comment(warning or ""),
        "warning_literal": escape.python_string_literal(warning or ""),
        "admissibility_literal": _verdict_literal(verdict),
        "support_literal": escape.python_string_literal(fam.support),
        "support_max": "None" if fam.support_max is None else float_literal(fam.support_max),
        "op_name": f"{escape.identifier(fam.name, 'family name')}_{digest[:12]}",
        "k": k,
        "natural_parameters": [escape.python_string_literal(n) for n in names],
        "domain": [(_domain_literal(lo), _domain_literal(hi)) for lo, hi in fam.domain],
        "parameters": [
            (escape.identifier(key, "parameter name"), float_literal(v))
            for key, v in fam.parameters.items()
        ],
        "A_text": escape.python_docstring(sp.sstr(fam.A)),
        "T_text": escape.python_docstring(sp.sstr(fam.T)),
        "unpack": list(enumerate(names)),
        "A_temps": a_temps,
        "log_partition": a_code,
        "mean_temps": m_temps,
        "mean": m_codes,
        "cov_temps": c_temps,
        "cov_rows": cov_rows,
        "T_temps": t_temps,
        "sufficient_statistic": t_codes,
        "log_base_measure": None if log_h is None else _code(log_h, "y"),
        "h_text": "" if fam.h is None else escape.python_docstring(sp.sstr(fam.h)),
        "inverse": inverse,
        "exact_sampler": exact_sampler_literal(fam),
    }


def render_vector(fam: VectorFamily, warning: str | None = None, verdict: str | None = None):
    """The generated torch module of a vector family (formatted, deterministic)."""
    ctx = vector_torch_context(fam, warning, verdict)
    return format_python(_environment().get_template("vector_layer.py.j2").render(**ctx))


def write_vector_generated(
    fam: VectorFamily, out_dir: str | Path, warning: str | None = None, verdict=None
) -> dict[str, Path]:
    """Write ``out_dir/<name>.py`` atomically; ``{"torch": path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{fam.name}.py"
    atomic_write_text(path, render_vector(fam, warning, verdict))
    return {"torch": path}


__all__ = ["VectorTorchPrinter", "render_vector", "vector_torch_context", "write_vector_generated"]
