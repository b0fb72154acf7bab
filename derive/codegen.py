"""Code generation: print a :class:`Family`'s stable forms and render the Jinja2 templates.

Two printers share one idea: every primitive of ``derive.primitives`` maps to one call in the
target language, read from its entry in ``derive.primitive_table`` (one generic
``_print_stable_primitive`` per printer), numeric subexpressions are evaluated at generation
time (mpmath, 30 digits) and emitted as round-trip float literals, and nothing else about a
family is hand-written.

* :class:`TorchLayerPrinter` (an ``AbstractPythonCodePrinter``, not SymPy's ``TorchPrinter``):
  elementwise torch code that TorchScript accepts and ``torch.compile(fullgraph=True)``
  traces without graph breaks;
  the delicate primitives are the ``torch.ops.deqfam`` custom ops of ``runtime/special.py``.
* :class:`KernelPrinter` (a SymPy ``C99CodePrinter``): double-precision C for the fused
  C++/CUDA kernels; primitives become ``deqfam_*`` device functions whose per-order
  constants (zeta(s-k)/k!, Gamma(1-s), Taylor coefficients) are computed with mpmath in
  ``derive/kernel_constants.py``.

Why one module of this size: the two printers and the template contexts share the literal
and CSE rules and change together; the primitive table (``primitive_table.py``), the C
constants (``kernel_constants.py``) and escaping (``escape.py``) are already separate.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import jinja2
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.pycode import AbstractPythonCodePrinter

from deqfam.fsutil import atomic_write_text
from deqfam.vocab import Verdict

from . import escape
from .family import Family
from .generator_version import GENERATOR_VERSION
from .kernel_constants import KERNEL_NEAR0_TERMS, KERNEL_SERIES_TERMS, CPrimitive, order_tag
from .laws import identify_law
from .primitive_table import spec_named, spec_of, special_call
from .primitives import LOGEXPM1X_SERIES_ORDER, StablePrimitive
from .special_kernels import print_special, special_primitives

TARGETS = ("torch", "cpp", "cuda", "fused_cpp", "fused_cuda")


def float_literal(value: sp.Expr | float) -> str:
    """A round-trip float literal (``repr`` of the nearest double) of a real number."""
    v = float(sp.N(value, 30)) if isinstance(value, sp.Basic) else float(value)
    if math.isnan(v):
        raise ValueError(f"numeric constant {value} is not a real number")
    if math.isinf(v):
        return "math.inf" if v > 0 else "-math.inf"
    return repr(v)


#: Elementary functions and their elementwise torch names.
TORCH_FUNCTIONS = {
    "exp": "torch.exp",
    "log": "torch.log",
    "sqrt": "torch.sqrt",
    "tanh": "torch.tanh",
    "cosh": "torch.cosh",
    "sinh": "torch.sinh",
    "cos": "torch.cos",
    "sin": "torch.sin",
    "atan": "torch.atan",
    "sign": "torch.sign",
}


class TorchLayerPrinter(AbstractPythonCodePrinter):
    """Elementwise torch printer for deqfam's expressions.

    Why not SymPy 1.14's ``TorchPrinter``: its module imports torch at import time, which
    would make ``derive/`` import torch (the architecture forbids it), and the stock printer
    fails on log1p/expm1/polylog, prints ``Max`` as ``torch.max(0, x)`` (not elementwise)
    and emits Python fractions. Here numbers are float literals, every function maps to one
    elementwise torch call, and the stable primitives print as calls that stay exact and
    differentiable. Anything else is refused (``strict``), never printed half-way.
    """

    printmethod = "_deqfam_torchcode"
    language = "Python with PyTorch"
    _kf: ClassVar[dict[str, str]] = TORCH_FUNCTIONS
    _kc: ClassVar[dict[str, str]] = {}

    def _print_Function(self, expr):
        if isinstance(expr, StablePrimitive):
            return self._print_stable_primitive(expr)
        name = type(expr).__name__
        if name in TORCH_FUNCTIONS:
            args = ", ".join(self._print(a) for a in expr.args)
            return f"{TORCH_FUNCTIONS[name]}({args})"
        return super()._print_Function(expr)

    def _print_Symbol(self, expr):
        return expr.name

    def _print(self, expr, **kwargs):
        if (isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Atom) or (
            isinstance(expr, sp.Number | sp.NumberSymbol)
        ):
            return float_literal(expr)
        return super()._print(expr, **kwargs)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.as_base_exp()
        b = self._print(base)
        if e == -1:
            return f"torch.reciprocal({b})"
        if e == sp.Rational(1, 2):
            return f"torch.sqrt({b})"
        if e == sp.Rational(-1, 2):
            return f"torch.rsqrt({b})"
        if e == 2:
            return f"torch.square({b})"
        if e.is_Integer:
            return f"torch.pow({b}, {int(e)})"
        return f"torch.pow({b}, {self._print(e)})"

    def _print_Max(self, expr):
        return self._print_minmax(expr, "torch.maximum", "min")

    def _print_Min(self, expr):
        return self._print_minmax(expr, "torch.minimum", "max")

    def _print_minmax(self, expr, fn: str, clamp_kw: str) -> str:
        nums = [a for a in expr.args if a.is_number]
        rest = [self._print(a) for a in expr.args if not a.is_number]
        out = rest[0]
        for r in rest[1:]:
            out = f"{fn}({out}, {r})"
        for n in nums:
            out = f"torch.clamp({out}, {clamp_kw}={float_literal(n)})"
        return out

    def _print_Abs(self, expr):
        return f"torch.abs({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        # the second argument is the value at 0 (SymPy's default 1/2)
        x = self._print(expr.args[0])
        h0 = float_literal(expr.args[1]) if len(expr.args) > 1 else "0.5"
        return f"torch.heaviside({x}, torch.full_like({x}, {h0}))"

    def _print_DiracDelta(self, expr):
        # almost-everywhere value of the derivative of a kink (piecewise specs only)
        return f"torch.zeros_like({self._print(expr.args[0])})"

    def _print_loggamma(self, expr):
        return f"torch.lgamma({self._print(expr.args[0])})"

    def _print_polygamma(self, expr):
        return self._print_special(expr)

    def _print_besseli(self, expr):
        return self._print_special(expr)

    def _print_special(self, expr) -> str:
        """digamma/polygamma/besseli print as their row of the special-function table
        (``primitive_table.SPECIAL_CALLS``): ``f(x)`` at a fixed order, else ``f(n, x)``."""
        row = special_call(expr)
        if row is None:
            raise ValueError(f"no torch call for {expr} (orders: see SPECIAL_CALLS)")
        n, x = expr.args
        if row.order is not None:
            return f"{row.torch_call}({self._print(x)})"
        return f"{row.torch_call}({int(n)}, {self._print(x)})"

    def _print_stable_primitive(self, expr: StablePrimitive) -> str:
        """A primitive prints as its table entry's torch call: (x) or (x, order)."""
        spec = spec_of(expr)
        if not spec.ordered:
            return f"{spec.torch_call}({self._print(expr.args[0])})"
        order, x = expr.args
        printed = float_literal(order) if spec.torch_order == "float" else str(int(order))
        return f"{spec.torch_call}({self._print(x)}, {printed})"


def torch_code(expr: sp.Expr, var: sp.Symbol, name: str = "eta") -> str:
    """Elementwise torch code for ``expr`` in the tensor variable ``name``.

    A constant prints as ``torch.full_like`` so every function returns a tensor shaped like
    its input; a symbol ``var`` prints as ``name``.
    """
    expr = expr.xreplace({var: sp.Symbol(name, real=True)})
    if not expr.free_symbols:
        return f"torch.full_like({name}, {float_literal(expr)})"
    if expr.is_Symbol:  # a fresh tensor: custom-op outputs must not alias their inputs
        return f"{name}.clone()"
    return TorchLayerPrinter({"strict": True}).doprint(expr)


class KernelPrinter(C99CodePrinter):
    """C99 printer for the fused kernels; records the primitive orders it used."""

    def __init__(self, settings=None):
        super().__init__(settings or {})
        self.needed: dict[tuple[str, float], sp.Expr] = {}
        #: (kind, order) of the special functions printed (derive/special_kernels.py)
        self.needed_special: set[tuple[str, int]] = set()

    def _print_polygamma(self, expr):
        return print_special(self, expr, self.needed_special)

    def _print_besseli(self, expr):
        return print_special(self, expr, self.needed_special)

    def _print(self, expr, **kwargs):
        if (isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Atom) or (
            isinstance(expr, sp.Number | sp.NumberSymbol)
        ):
            return f"({float_literal(expr)})"
        return super()._print(expr, **kwargs)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.as_base_exp()
        b = self._print(base)
        if e == -1:
            return f"(1.0/{b})"
        if e == 2:
            return f"(({b})*({b}))"
        if e == sp.Rational(1, 2):
            return f"sqrt({b})"
        return f"pow({b}, {float_literal(e)})"

    def _print_Heaviside(self, expr):
        x = self._print(expr.args[0])
        return f"(({x}) > 0.0 ? 1.0 : (({x}) < 0.0 ? 0.0 : 0.5))"

    def _print_DiracDelta(self, expr):
        return "0.0"  # almost-everywhere value (piecewise specs only)

    def _print_Function(self, expr):
        # SymPy's dispatcher skips a Function subclass's base classes, so primitives are
        # recognised here rather than by a _print_StablePrimitive method
        if isinstance(expr, StablePrimitive):
            return self._print_stable_primitive(expr)
        return super()._print_Function(expr)

    def _print_stable_primitive(self, expr: StablePrimitive) -> str:
        """A primitive prints as its table entry's C call; an ordered one as
        ``<c_call>_<tag>(x)``, recording the order so its device function is emitted."""
        spec = spec_of(expr)
        if not spec.ordered:
            return f"{spec.c_call}({self._print(expr.args[0])})"
        order, x = expr.args
        self.needed[(spec.name, float(order))] = order
        return f"{spec.c_call}_{order_tag(order)}({self._print(x)})"


def kernel_primitives(printer: KernelPrinter) -> list[CPrimitive]:
    """Device functions for every (primitive, order) the printer emitted, sorted."""
    return [
        spec_named(name).c_constants(order) for (name, _), order in sorted(printer.needed.items())
    ] + special_primitives(printer.needed_special)


def _cse_kernel(family: Family) -> tuple[list[tuple[str, str]], str, str, KernelPrinter]:
    """Common-subexpression-eliminated C for (sigma, sigma') in one pass."""
    printer = KernelPrinter()
    x = sp.Symbol("x", real=True)
    exprs = [
        family.sigma_stable.xreplace({family.eta: x}),
        family.dsigma_stable.xreplace({family.eta: x}),
    ]
    temps, (sig, dsig) = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations=None)
    lines = [(str(sym), printer.doprint(val)) for sym, val in temps]
    return lines, printer.doprint(sig), printer.doprint(dsig), printer


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (importlib.resources.files("deqfam.templates") / name).read_text("utf-8")
    )
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _domain_literal(v: sp.Expr) -> str:
    return float_literal(v) if v.is_finite else ("math.inf" if v > 0 else "-math.inf")


def sup_activation_grad(family: Family) -> float:
    """sup over the domain of sigma' = A'' (the contraction constant), numerically.

    A'' is evaluated on a grid dense near the domain's finite ends and out to |eta| = 60;
    growth towards an end (the maximum sitting at the last grid point and still rising)
    reports +inf (Poisson, negative binomial near 0, ...).
    """
    import numpy as np

    lo, hi = family.domain_floats
    a = lo if math.isfinite(lo) else (hi - 120 if math.isfinite(hi) else -60.0)
    b = hi if math.isfinite(hi) else (lo + 120 if math.isfinite(lo) else 60.0)
    u = np.linspace(0.0, 1.0, 4001)[1:-1]
    # cluster points near finite ends geometrically, down to 1e-8 from the end
    grid = a + (b - a) * u
    ends = []
    if math.isfinite(lo):
        ends.append(lo + np.geomspace(1e-8, 1.0, 200))
    if math.isfinite(hi):
        ends.append(hi - np.geomspace(1e-8, 1.0, 200))
    grid = np.sort(np.concatenate([grid, *ends]))
    vals = np.asarray(family.numpy_function("activation_grad")(grid), dtype=float) * np.ones_like(
        grid
    )
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = int(np.argmax(vals))
    if not np.isfinite(vals[i]) or (
        i in (0, len(vals) - 1) and vals[i] > 1.0001 * np.max(np.delete(vals, i))
    ):
        return math.inf
    return float(vals[i])


def spec_digest(family: Family) -> str:
    return hashlib.sha256(family.spec.text.encode("utf-8")).hexdigest()


def _source_name(family: Family) -> str:
    """The spec's file name (not its folder) or ``builtin:<name>``, unescaped."""
    source = family.spec.source
    return Path(source).name if "/" in source else source


def exact_sampler_literal(family: Family) -> str:
    """The ``ExactSampler(...)`` expression for the law ``family`` provably is (see
    ``derive/laws.py``), or ``None`` (the generic samplers apply)."""
    found = identify_law(family)
    if found is None:
        return "None"
    params = ", ".join(f'"{k}": {float_literal(v)}' for k, v in found.parameters.items())
    return f'ExactSampler(law="{found.law}", parameters={{{params}}})'


def torch_context(family: Family, warning: str | None = None, verdict: str | None = None) -> dict:
    """Everything the torch-module template needs (strings only: templates hold no logic).

    ``verdict`` is ``deqfam check``'s verdict (a ``deqfam.vocab.Verdict`` value) recorded in
    ``FAMILY.admissibility``; ``None`` when the module is generated without the check.

    Text from the spec or its file name is escaped here for the one context it is written
    into (``derive.escape``: ``*_comment``, ``*_doc``, ``*_literal``); names that become
    identifiers are checked instead.
    """
    eta, y = family.eta, family.y
    digest = spec_digest(family)
    lo, hi = family.domain
    sup = sup_activation_grad(family)
    name = escape.identifier(family.name, "family name")
    return {
        "name": name,
        "description_doc": escape.python_docstring(family.description),
        "source_comment": escape.python_comment(_source_name(family)),
        "sha256": digest,
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.python_comment(sp.__version__),
        "has_warning": bool(warning),
        "warning_comment": escape.python_comment(warning or ""),
        "warning_doc": escape.python_docstring(warning or ""),
        "warning_literal": escape.python_string_literal(warning or ""),
        "admissibility_literal": _verdict_literal(verdict),
        "support_literal": escape.python_string_literal(family.support),
        "support_max": "None" if family.support_max is None else repr(family.support_max),
        "domain_lo": _domain_literal(lo),
        "domain_hi": _domain_literal(hi),
        "parameters": [
            (escape.identifier(k, "parameter name"), float_literal(v))
            for k, v in family.parameters.items()
        ],
        "sup_activation_grad": "math.inf" if math.isinf(sup) else repr(sup),
        "op_name": f"{name}_{digest[:12]}_activation",
        "kernel_namespace": f"deqfam_{name}",
        "A_text": escape.python_docstring(sp.sstr(family.A)),
        "sigma_text": escape.python_docstring(sp.sstr(family.sigma)),
        "dsigma_text": escape.python_docstring(sp.sstr(family.dsigma)),
        "log_partition": torch_code(family.A_stable, eta),
        "activation": torch_code(family.sigma_stable, eta),
        "activation_grad": torch_code(family.dsigma_stable, eta),
        "activation_grad2": torch_code(family.d2sigma_stable, eta),
        "sufficient_statistic": torch_code(family.T, y, name="y"),
        "log_base_measure": (
            None
            if family.log_base_measure is None
            else torch_code(family.log_base_measure, y, name="y")
        ),
        "h_text": escape.python_docstring(sp.sstr(family.h)) if family.h is not None else "",
        "log_base_measure_ref": "None" if family.log_base_measure is None else "log_base_measure",
        "exact_sampler": exact_sampler_literal(family),
    }


def _verdict_literal(verdict: str | None) -> str:
    """The Python literal of an admissibility verdict (checked against the vocabulary)."""
    return "None" if verdict is None else escape.python_string_literal(Verdict(verdict).value)


def kernel_context(family: Family, warning: str | None = None, verdict: str | None = None) -> dict:
    temps, sig, dsig, printer = _cse_kernel(family)
    ctx = torch_context(family, warning, verdict)
    ctx.update(
        {
            # the kernels' header comments are C++ comments, not Python ones
            "source_comment": escape.c_comment(_source_name(family)),
            "sympy_version": escape.c_comment(sp.__version__),
            "warning_comment": escape.c_comment(warning or ""),
            "temps": temps,
            "sigma_c": sig,
            "dsigma_c": dsig,
            "primitives": kernel_primitives(printer),
            "op_namespace": ctx["kernel_namespace"],  # one name: FAMILY.kernel_namespace
            "near0_terms": KERNEL_NEAR0_TERMS,
            "series_terms": KERNEL_SERIES_TERMS,
            "logexpm1x_order": LOGEXPM1X_SERIES_ORDER,
        }
    )
    return ctx


def format_python(source: str) -> str:
    """Format generated Python with the pinned ruff (deterministic golden output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--line-length", "100", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ruff could not format the generated module:\n{proc.stderr}")
    return proc.stdout


def render(
    family: Family, target: str, warning: str | None = None, verdict: str | None = None
) -> str:
    """Render one target (one of ``TARGETS``) for ``family`` (``warning`` and
    ``verdict`` as for :func:`torch_context`)."""
    env = _environment()
    if target == "torch":
        return format_python(
            env.get_template("layer.py.j2").render(**torch_context(family, warning, verdict))
        )
    if target in ("cpp", "cuda"):
        template = "kernels.cpp.j2" if target == "cpp" else "kernels.cu.j2"
        return env.get_template(template).render(**kernel_context(family, warning, verdict))
    if target in ("fused_cpp", "fused_cuda"):
        from .fused_codegen import render_fused  # it imports this module

        return render_fused(family, target, warning, verdict)
    raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def output_paths(family: Family, out_dir: Path) -> dict[str, Path]:
    return {
        "torch": out_dir / f"{family.name}.py",
        "cpp": out_dir / f"{family.name}_kernels.cpp",
        "cuda": out_dir / f"{family.name}_kernels.cu",
        "fused_cpp": out_dir / f"{family.name}_fused.cpp",
        "fused_cuda": out_dir / f"{family.name}_fused.cu",
    }


def write_generated(
    family: Family,
    out_dir: str | Path,
    targets=TARGETS,
    warning: str | None = None,
    verdict: str | None = None,
) -> dict[str, Path]:
    """Render ``targets`` into ``out_dir``, each file atomically (``deqfam.fsutil``: an
    exclusively created, randomly named temp file, fsync, rename; never a predictable name
    a planted symlink could redirect)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = output_paths(family, out)
    written = {}
    for target in targets:
        text = render(family, target, warning, verdict)
        atomic_write_text(paths[target], text)
        written[target] = paths[target]
    return written
