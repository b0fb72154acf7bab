"""Code generation: print a :class:`Family`'s stable forms and render the Jinja2 templates.

Two printers share one idea: every primitive of ``derive.primitives`` maps to one call in the
target language, numeric subexpressions are evaluated at generation time (mpmath, 30 digits)
and emitted as round-trip float literals, and nothing else about a family is hand-written.

* :class:`TorchLayerPrinter` (a SymPy ``TorchPrinter``): elementwise torch code that
  TorchScript accepts and ``torch.compile(fullgraph=True)`` traces without graph breaks;
  the delicate primitives are the ``torch.ops.deqfam`` custom ops of ``runtime/special.py``.
* :class:`KernelPrinter` (a SymPy ``C99CodePrinter``): double-precision C for the fused
  C++/CUDA kernels; primitives become ``deqfam_*`` device functions whose per-order
  constants (zeta(s-k)/k!, Gamma(1-s), Taylor coefficients) are computed here with mpmath.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jinja2
import mpmath
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.pycode import AbstractPythonCodePrinter

from deqfam.fsutil import atomic_write_text
from deqfam.vocab import Verdict

from . import escape
from .family import Family
from .laws import identify_law
from .primitives import (
    LOGEXPM1X_SERIES_ORDER,
    logexpm1exp_far_terms,
    logexpm1exp_series,
    logexpm1x_series,
)

#: Bumped when generated output changes for the same spec (golden files then change too).
GENERATOR_VERSION = "2"
TARGETS = ("torch", "cpp", "cuda")


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

    def _print_softplus(self, expr):
        return f"special.softplus({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr):
        return f"special.sigmoid({self._print(expr.args[0])})"

    def _print_logcosh(self, expr):
        return f"special.logcosh({self._print(expr.args[0])})"

    def _print_polylog_exp(self, expr):
        s, x = expr.args
        return f"torch.ops.deqfam.polylog_exp({self._print(x)}, {float_literal(s)})"

    def _print_fermi_dirac(self, expr):
        s, x = expr.args
        return f"torch.ops.deqfam.fermi_dirac({self._print(x)}, {float_literal(s)})"

    def _print_logexpm1x(self, expr):
        k, x = expr.args
        return f"torch.ops.deqfam.logexpm1x({self._print(x)}, {int(k)})"

    def _print_logexpm1(self, expr):
        return f"special.logexpm1({self._print(expr.args[0])})"

    def _print_logexpm1exp(self, expr):
        k, x = expr.args
        return f"torch.ops.deqfam.logexpm1exp({self._print(x)}, {int(k)})"


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


def _order_tag(s: sp.Expr) -> str:
    """C identifier fragment for a real order s: 3/2 -> 's1p5', -1/2 -> 'sm0p5'."""
    text = repr(float(s)).replace("-", "m").replace(".", "p")
    return "s" + re.sub(r"[^0-9a-zA-Z]", "_", text)


@dataclass(frozen=True)
class CPrimitive:
    """One device function the kernel needs, with its generation-time constants."""

    kind: str  # 'polylog_exp' | 'fermi_dirac' | 'logexpm1x'
    order: float
    tag: str
    integer: bool
    near0: tuple[str, ...]  # Taylor coefficients about 0 (literals)
    singular: tuple[str, ...]  # extra constants of the singular/log term
    poly: tuple[str, ...]  # closed-form polynomial coefficients (integer orders)
    series: tuple[str, ...] = ()  # k^{-s}, k = 1..KERNEL_SERIES_TERMS (far-branch weights)


class KernelPrinter(C99CodePrinter):
    """C99 printer for the fused kernels; records the primitive orders it used."""

    def __init__(self, settings=None):
        super().__init__(settings or {})
        self.needed: dict[tuple[str, float], sp.Expr] = {}

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

    def _print_softplus(self, expr):
        return f"deqfam_softplus({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr):
        x = self._print(expr.args[0])
        return f"(({x}) > 0.0 ? 1.0 : (({x}) < 0.0 ? 0.0 : 0.5))"

    def _print_DiracDelta(self, expr):
        return "0.0"  # almost-everywhere value (piecewise specs only)

    def _print_sigmoid(self, expr):
        return f"deqfam_sigmoid({self._print(expr.args[0])})"

    def _print_logcosh(self, expr):
        return f"deqfam_logcosh({self._print(expr.args[0])})"

    def _print_ordered(self, kind: str, order: sp.Expr, x: sp.Expr) -> str:
        self.needed[(kind, float(order))] = order
        return f"deqfam_{kind}_{_order_tag(order)}({self._print(x)})"

    def _print_polylog_exp(self, expr):
        return self._print_ordered("polylog_exp", *expr.args)

    def _print_fermi_dirac(self, expr):
        return self._print_ordered("fermi_dirac", *expr.args)

    def _print_logexpm1x(self, expr):
        return self._print_ordered("logexpm1x", *expr.args)

    def _print_logexpm1(self, expr):
        return f"deqfam_logexpm1({self._print(expr.args[0])})"

    def _print_logexpm1exp(self, expr):
        return self._print_ordered("logexpm1exp", *expr.args)


#: Terms of the series sum_k (+-1)^k e^{kx} / k^s used for x < -1: the terms shrink by
#: e^x <= e^-1, so 40 terms reach e^-40 ~ 4e-18 relative.
KERNEL_SERIES_TERMS = 40
#: Terms of the expansions about 0 emitted into kernels: they converge for |x| < 2 pi
#: (pi for Fermi-Dirac) and are used for |x| <= 1, so the truncation error is below
#: (1/pi)^40 ~ 1e-20 relative.
KERNEL_NEAR0_TERMS = 40


def _polylog_constants(kind: str, s: sp.Expr) -> CPrimitive:
    """mpmath constants for Li_s(e^x) (or -Li_s(-e^x)) about x = 0, at 40 digits.

    Li_s(e^x) = Gamma(1-s)(-x)^(s-1) + sum_k zeta(s-k) x^k/k!  (s not an integer);
    Li_n(e^x) = x^(n-1)/(n-1)! (H_{n-1} - log(-x)) + sum_{k != n-1} zeta(n-k) x^k/k!;
    -Li_s(-e^x) = sum_k eta(s-k) x^k/k!, eta the Dirichlet eta function (entire).
    """
    sf = float(s)
    integer = sf == int(sf)
    near0: list[str] = []
    singular: tuple[str, ...] = ()
    poly: tuple[str, ...] = ()
    with mpmath.workdps(40):
        if kind == "polylog_exp" and integer and sf <= 0:
            poly = tuple(repr(float(c)) for c in _li_nonpositive_poly(int(-sf)))
        elif kind == "fermi_dirac" and integer and sf <= 1:
            poly = ()
        else:
            for k in range(KERNEL_NEAR0_TERMS):
                if kind == "fermi_dirac":
                    c = mpmath.altzeta(sf - k) / mpmath.factorial(k)
                elif integer and k == int(sf) - 1:
                    c = mpmath.mpf(0)
                else:
                    c = mpmath.zeta(sf - k) / mpmath.factorial(k)
                near0.append(repr(float(c)))
            if kind == "polylog_exp" and integer:
                n = int(sf)
                singular = (
                    repr(float(mpmath.harmonic(n - 1))),
                    repr(float(1 / mpmath.factorial(n - 1))),
                )
            elif kind == "polylog_exp":
                singular = (repr(float(mpmath.gamma(1 - sf))),)
    series: tuple[str, ...] = ()
    if near0:
        with mpmath.workdps(40):
            series = tuple(
                repr(float(mpmath.mpf(k) ** -sf)) for k in range(1, KERNEL_SERIES_TERMS + 1)
            )
    return CPrimitive(kind, sf, _order_tag(s), integer, tuple(near0), singular, poly, series)


def _li_nonpositive_poly(n: int) -> list[sp.Rational]:
    """Coefficients (ascending) of P_n with Li_{-n}(e^x) = P_n(g), g = e^x/(1-e^x).

    P_0(g) = g and P_{m+1}(g) = g (1 + g) P_m'(g)  (since dg/dx = g(1+g)).
    """
    g = sp.Symbol("g")
    p = g
    for _ in range(n):
        p = sp.expand(g * (1 + g) * sp.diff(p, g))
    return sp.Poly(p, g).all_coeffs()[::-1]


def _logexpm1x_constants(k: int) -> CPrimitive:
    """Constants of d^k/dx^k log((e^x-1)/x): Taylor coefficients about 0 (SymPy series) and,
    for the far branch of ``logexpm1x`` (see derive/primitives.py), the polynomial of
    Li_{1-k}, the pole coefficient (-1)^k (k-1)!, the sign (-1)^(k-1) and offset [k = 1]."""
    coeffs = tuple(repr(c) for c in logexpm1x_series(k))
    if k == 0:
        return CPrimitive("logexpm1x", 0.0, _order_tag(sp.Integer(0)), True, coeffs, (), ())
    poly = tuple(repr(float(c)) for c in _li_nonpositive_poly(k - 1))
    far = (
        repr(float((-1) ** k * math.factorial(k - 1))),
        repr(float((-1) ** (k - 1))),
        "1.0" if k == 1 else "0.0",
    )
    return CPrimitive("logexpm1x", float(k), _order_tag(sp.Integer(k)), True, coeffs, far, poly)


def _logexpm1exp_constants(k: int) -> CPrimitive:
    """Constants of G^(k), G(x) = log(e^(e^x) - 1) (derive/primitives.py): the Taylor
    coefficients in u = e^x and, in ``singular[0]``, the closed form D^(k-1) phi as one C
    expression in u and b = 1/expm1(u) (integer coefficients, exact)."""
    if k == 0:
        return CPrimitive("logexpm1exp", 0.0, _order_tag(sp.Integer(0)), True, (), (), ())
    coeffs = tuple(repr(c) for c in logexpm1exp_series(k))
    far = " + ".join(
        f"({float(coef)!r}) * pow(u, {a}) * pow(b, {c})" for coef, a, c in logexpm1exp_far_terms(k)
    )
    return CPrimitive("logexpm1exp", float(k), _order_tag(sp.Integer(k)), True, coeffs, (far,), ())


def kernel_primitives(printer: KernelPrinter) -> list[CPrimitive]:
    """Device functions for every (primitive, order) the printer emitted, sorted."""
    out = []
    for (kind, _), order in sorted(printer.needed.items()):
        if kind == "logexpm1exp":
            out.append(_logexpm1exp_constants(int(order)))
        elif kind == "logexpm1x":
            out.append(_logexpm1x_constants(int(order)))
        else:
            out.append(_polylog_constants(kind, order))
    return out


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
    """Render one target ('torch', 'cpp' or 'cuda') for ``family`` (``warning`` and
    ``verdict`` as for :func:`torch_context`)."""
    env = _environment()
    if target == "torch":
        return format_python(
            env.get_template("layer.py.j2").render(**torch_context(family, warning, verdict))
        )
    if target in ("cpp", "cuda"):
        template = "kernels.cpp.j2" if target == "cpp" else "kernels.cu.j2"
        return env.get_template(template).render(**kernel_context(family, warning, verdict))
    raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def output_paths(family: Family, out_dir: Path) -> dict[str, Path]:
    return {
        "torch": out_dir / f"{family.name}.py",
        "cpp": out_dir / f"{family.name}_kernels.cpp",
        "cuda": out_dir / f"{family.name}_kernels.cu",
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
