"""Family specs: YAML text -> validated, SymPy-parsed :class:`FamilySpec`.

The spec reader is a trust boundary: a spec from someone else must not execute code, hang or
exhaust memory. YAML is read with a safe loader that also refuses aliases (no "billion
laughs") and duplicate keys, and expressions are parsed by walking Python's ``ast`` of the
text against a whitelist of symbols and functions, building SymPy objects directly: nothing
is ever passed to ``eval``/``sympify``/``parse_expr``. While an expression is built, every
numeric sub-expression is evaluated and bounded (magnitude, finiteness, realness), powers and
special-function arguments are bounded *before* SymPy computes them (``factorial(10**6)`` or
``10**10**10`` would otherwise run for minutes inside one C call), and the finished expression
must pass a complexity guard (node count, powers of eta, nesting of exponential-type
functions). The derivation in ``derive.family`` runs under
:func:`deqfam.derive.spec_derivation.run_derivation`: the parameter substitution is checked
the same way, SymPy failures become :class:`SpecError` naming the field, and the whole
derivation gets a wall-clock budget (``derive.budget``).
Every failure is one :class:`SpecError` naming the file, the field and the line.

Why one module of this size: it is the spec reader's trust boundary, and reviewing it means
reading the YAML loader, the AST whitelist and the guards together; the numeric bounds
(``bounds.py``), hidden-character scan (``spec_text.py``), deadlines (``budget.py``) and the
bounded derivation (``spec_derivation.py``) are separate.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import sympy as sp
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from deqfam.derive.bounds import check_call_bounds, check_log_multipliers

# The deadline machinery lives in derive/budget.py (it also serves worker threads and the
# command budgets); its names stay importable from here for existing callers.
from deqfam.derive.budget import DeadlineExceeded, _on_alarm, deadline  # noqa: F401
from deqfam.vocab import Support

from . import spec_text
from .primitive_table import SPEC_FUNCTIONS
from .spec_error import SpecError

#: The support names (one definition, shared with runtime/: ``deqfam.vocab.Support``).
SUPPORTS = tuple(str(s) for s in Support)
SupportName = Literal[
    "real",
    "binary",
    "plus_minus_one",
    "unit_interval",
    "integers",
    "nonnegative_integers",
    "positive_integers",
    "positive_real",
]

#: Functions a spec expression may call, mapped to SymPy constructors. ``log1p``/``expm1``
#: are expanded to their definitions; the stabiliser (``derive.stable``) recovers stable forms.
FUNCTIONS: dict[str, Any] = {
    "exp": sp.exp,
    "log": sp.log,
    "log1p": lambda u: sp.log(1 + u),
    "expm1": lambda u: sp.exp(u) - 1,
    "sqrt": sp.sqrt,
    "cosh": sp.cosh,
    "sinh": sp.sinh,
    "tanh": sp.tanh,
    "cos": sp.cos,
    "sin": sp.sin,
    "atan": sp.atan,
    "polylog": sp.polylog,
    "zeta": sp.zeta,
    "factorial": sp.factorial,
    "gamma": sp.gamma,
    "loggamma": sp.loggamma,
    "binomial": sp.binomial,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "Max": sp.Max,
    "Min": sp.Min,
    **SPEC_FUNCTIONS,  # digamma, polygamma, besseli, lgamma (derive/primitive_table.py)
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
RESERVED = {"eta", "y", *FUNCTIONS, *CONSTANTS, "oo"}

MAX_SPEC_BYTES = 64 * 1024
MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 40
#: largest |p| in ``number**p`` (``10**10**10`` is refused before it is computed)
MAX_LITERAL_EXPONENT = 1000
#: largest |p| in ``expr**p`` for an expression in eta/y (``(1 + eta)**1000`` makes the three
#: symbolic derivatives and their simplification explode)
MAX_SYMBOLIC_POWER = 16
#: largest magnitude of any number, parameter value, domain end or numeric sub-expression
MAX_NUMBER = 10**30
#: largest |x| of a numeric argument of factorial/gamma/loggamma/binomial/zeta/polylog, checked
#: before SymPy evaluates it (``factorial(10**6)`` is an exact 5.5-million-digit integer)
MAX_SPECIAL_ARG = 1000
#: largest number of nodes of a parsed expression tree
MAX_EXPR_NODES = 300
#: deepest nesting of exponential-type functions (exp, cosh, sinh, gamma, factorial, x**eta):
#: ``exp(exp(exp(eta)))`` overflows float64 already at eta ~ 1.9
MAX_GROWTH_NESTING = 2
MAX_PARAMETERS = 32
#: wall-clock budget (seconds) of one derivation (``derive.family.derive_family``); enforced
#: in any thread by ``derive.budget.deadline``
DERIVE_TIME_LIMIT = 60.0
#: budget of each optional derivation step (inverse link, convexity proof): on overrun the step
#: is skipped (no closed-form inverse link / convexity "unproven"), not the whole spec refused
OPTIONAL_STEP_TIME_LIMIT = 10.0
NAME_RE = r"^[a-z][a-z0-9_]*$"
PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

ETA = sp.Symbol("eta", real=True)
Y = sp.Symbol("y", real=True)


class SpecModelBase(BaseModel):
    """The fields a scalar and a vector spec document share (types and names only;
    expressions are parsed later). Unknown keys are refused (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = ""
    support: SupportName
    parameters: dict[str, int | float] = {}
    parameter_ranges: dict[str, list[int | float | str]] = {}
    #: largest value y may take, an expression in the parameters (binomial: n); optional
    support_max: str | int | None = None

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not re.match(NAME_RE, v) or len(v) > 64:
            raise ValueError(f"must match {NAME_RE} (at most 64 characters), got {v!r}")
        return v


class _SpecModel(SpecModelBase):
    """Schema of a scalar spec document."""

    sufficient_statistic: str = "y"
    log_partition: str
    base_measure: str | None = None
    domain: list[int | float | str]


@dataclass(frozen=True)
class FamilySpec:
    """A parsed, validated spec: SymPy expressions in ``eta``/``y`` and parameter symbols."""

    name: str
    description: str
    support: str
    sufficient_statistic: sp.Expr
    log_partition: sp.Expr
    base_measure: sp.Expr | None
    parameters: dict[str, sp.Rational]
    parameter_symbols: dict[str, sp.Symbol]
    parameter_ranges: dict[str, tuple[sp.Expr, sp.Expr]]
    domain: tuple[sp.Expr, sp.Expr]
    source: str
    text: str = field(repr=False)
    #: upper end of the support of y in the parameters (e.g. ``n``), or None (unbounded)
    support_max: sp.Expr | None = None


MERGE_TAG = "tag:yaml.org,2002:merge"
MERGE_KEY_MESSAGE = (
    "YAML merge keys ('<<') are not allowed in a spec: write every field out (a merged "
    "field next to an explicit one would silently pick one of them)"
)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader that refuses anchors/aliases, which specs never need (billion laughs), and
    duplicate keys (PyYAML would silently keep the last one)."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases/anchors are not allowed in a spec", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # '<<': would silently pick one of two values
                raise yaml.constructor.ConstructorError(
                    None, None, MERGE_KEY_MESSAGE, key_node.start_mark
                )
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {seen[key]})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _key_lines(text: str) -> dict[str, int]:
    """Map each top-level key of the YAML document to its 1-based line number."""
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except (yaml.YAMLError, ValueError, RecursionError, MemoryError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        k.value: k.start_mark.line + 1
        for k, _ in node.value
        if isinstance(k, yaml.ScalarNode) and isinstance(k.value, str)
    }


def _yaml_error(exc: yaml.YAMLError, source: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return SpecError(f"invalid YAML: {problem}", source=source, field=None, line=line)


def _short(expr: Any, limit: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _magnitude(value: float) -> str:
    """``value`` for a message, even when it is an int too large for a float."""
    try:
        return f"{value:.3g}"
    except OverflowError:
        return f"a {len(str(abs(int(value))))}-digit number"


#: SymPy functions whose numeric arguments are bounded by MAX_SPECIAL_ARG before evaluation
_BOUNDED_ARG_FUNCS: dict[Any, str] = {
    sp.factorial: "factorial",
    sp.gamma: "gamma",
    sp.loggamma: "loggamma",
    sp.binomial: "binomial",
    sp.zeta: "zeta",
    sp.polylog: "polylog",
}
#: exponential-type functions counted by the MAX_GROWTH_NESTING guard (plus x**(...eta...))
_GROWTH_FUNCS = (sp.exp, sp.cosh, sp.sinh, sp.gamma, sp.factorial)


class _Guard:
    """Bounded construction of SymPy nodes, shared by the parser and the parameter check.

    Checks that must happen *before* SymPy evaluates a node (exponents of powers, numeric
    arguments of special functions) and after (every numeric node is finite, real and at most
    MAX_NUMBER in magnitude), so no single SymPy call can run away on a hostile constant.
    """

    def __init__(self, fail: Callable[[str], Any]) -> None:
        self.fail = fail

    def value(self, expr: sp.Expr, what: str | None = None) -> float:
        """Float value of a numeric node, refusing infinite, undefined, complex, huge ones.
        ``what`` describes the node in messages (default: the SymPy expression)."""
        what = what or f"the constant {_short(expr)}"
        if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            self.fail(f"{what} is infinite or undefined (SymPy gives {_short(expr)})")
        try:
            v = complex(sp.N(expr, 15))
        except (TypeError, ValueError, ArithmeticError, RecursionError):
            self.fail(f"cannot evaluate {what} to a number")
            raise AssertionError from None
        if not (math.isfinite(v.real) and math.isfinite(v.imag)):
            self.fail(f"{what} is too large (it overflows float64)")
        if abs(v.imag) > 1e-12 * max(1.0, abs(v.real)):
            self.fail(f"{what} is not real (it is {v:.6g})")
        if abs(v.real) > MAX_NUMBER:
            self.fail(
                f"{what} ~ {v.real:.3g} is larger than {MAX_NUMBER:.0e}, the limit on numbers "
                "in a spec"
            )
        return v.real

    def check(self, expr: Any, what: str | None = None) -> Any:
        if isinstance(expr, sp.Expr) and expr.is_number:
            self.value(expr, what)
        return expr

    def check_pow(self, base: sp.Expr, exponent: sp.Expr) -> None:
        if not exponent.is_number:
            return
        p = abs(self.value(exponent))
        if base.is_number:
            if p > MAX_LITERAL_EXPONENT:
                self.fail(f"numeric exponent larger than {MAX_LITERAL_EXPONENT}")
        elif p > MAX_SYMBOLIC_POWER:
            self.fail(
                f"power ({_short(base)})**{_short(exponent)}: exponents of non-constant "
                f"expressions are limited to |p| <= {MAX_SYMBOLIC_POWER} (higher powers make the "
                "symbolic derivatives explode)"
            )

    def check_special_args(self, name: str, args: list[sp.Expr]) -> None:
        """Numeric arguments of a call SymPy will evaluate (all arguments numbers) are
        bounded; ``binomial(n, y)`` with a large ``n`` stays symbolic and is fine."""
        if not all(a.is_number for a in args):
            return
        for a in args:
            if abs(self.value(a)) > MAX_SPECIAL_ARG:
                self.fail(
                    f"{name}() of the constant {_short(a)}: numeric arguments of {name} are "
                    f"limited to |x| <= {MAX_SPECIAL_ARG}"
                )

    def make(self, func: Any, args: list[sp.Expr], name: str | None = None) -> sp.Expr:
        """``func(*args)`` with the pre- and post-checks."""
        if func is sp.Pow:
            self.check_pow(*args)
        label = name or _BOUNDED_ARG_FUNCS.get(func)
        if label in _BOUNDED_ARG_FUNCS.values():
            self.check_special_args(label, args)
            check_call_bounds(label, args, self.fail)
        fname = name or getattr(func, "__name__", str(func))
        if func is sp.Pow:
            what = f"({_short(args[0], 30)})**({_short(args[1], 30)})"
        elif func in (sp.Add, sp.Mul):
            what = None  # "the constant <value>"
        else:
            what = f"{fname}({', '.join(_short(a, 30) for a in args)})"
        try:
            out = func(*args)
        except (TypeError, ValueError, ArithmeticError, NotImplementedError) as exc:
            self.fail(f"bad call {what}: {exc}")
            raise AssertionError from None
        return self.check(out, what)


def _growth_depth(expr: sp.Expr, var: sp.Symbol) -> int:
    """Deepest nesting of exponential-type functions of ``var`` in ``expr``."""
    if not expr.has(var):
        return 0
    inner = max((_growth_depth(a, var) for a in expr.args), default=0)
    grows = isinstance(expr, _GROWTH_FUNCS) or (isinstance(expr, sp.Pow) and expr.exp.has(var))
    return inner + int(grows)


def check_complexity(expr: sp.Expr, variable: sp.Symbol, fail: Callable[[str], Any]) -> None:
    """Refuse expressions whose symbolic derivation or float64 evaluation would blow up: more
    than MAX_EXPR_NODES nodes, a power ``expr**p`` with |p| > MAX_SYMBOLIC_POWER (also one
    SymPy created by merging powers), exponential-type functions nested deeper than
    MAX_GROWTH_NESTING."""
    nodes = 0
    for node in sp.preorder_traversal(expr):
        nodes += 1
        if nodes > MAX_EXPR_NODES:
            fail(f"expression too large (more than {MAX_EXPR_NODES} nodes)")
        if isinstance(node, sp.Pow) and node.exp.is_number and not node.base.is_number:
            p = node.exp
            if abs(float(p)) > MAX_SYMBOLIC_POWER:
                fail(
                    f"power ({_short(node.base)})**{_short(p)}: exponents of non-constant "
                    f"expressions are limited to |p| <= {MAX_SYMBOLIC_POWER} (higher powers make "
                    "the symbolic derivatives explode)"
                )
    depth = _growth_depth(expr, variable)
    if depth > MAX_GROWTH_NESTING:
        fail(
            f"{depth} nested exponential-type functions (exp, cosh, sinh, gamma, factorial, "
            f"x**{variable}) of {variable}: at most {MAX_GROWTH_NESTING} are allowed (e.g. "
            "exp(exp(exp(eta))) overflows float64 already at eta ~ 1.9)"
        )


class _ExprBuilder(ast.NodeVisitor):
    """Build a SymPy expression from a whitelisted Python AST (no eval anywhere)."""

    _BINOPS: ClassVar[dict[type, Any]] = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
    }
    #: operators whose left-deep chains (``a + b - c + ...``) are built iteratively, so a long
    #: sum does not count as deep nesting
    _CHAINS: ClassVar[tuple[tuple[type, ...], ...]] = ((ast.Add, ast.Sub), (ast.Mult, ast.Div))

    def __init__(self, symbols: dict[str, sp.Symbol], fail) -> None:
        self.symbols = symbols
        self.fail = fail
        self.guard = _Guard(fail)
        self.depth = 0

    def build(self, node: ast.AST) -> sp.Expr:
        self.depth += 1
        if self.depth > MAX_EXPR_DEPTH:
            self.fail(f"expression nested deeper than {MAX_EXPR_DEPTH} levels")
        try:
            return self._build(node)
        finally:
            self.depth -= 1

    def _build(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            self.fail("attribute access ('.') is not allowed in expressions")
        if isinstance(node, ast.Lambda):
            self.fail("lambda is not allowed in expressions")
        self.fail(f"syntax {type(node).__name__!r} is not allowed in expressions")
        raise AssertionError  # unreachable: fail raises

    def _constant(self, value: Any) -> sp.Expr:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"literal {_short(repr(value))} is not a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail("non-finite literal")
            return self.guard.check(sp.Rational(repr(value)))
        if abs(value) > MAX_NUMBER:
            self.fail(f"integer literal too large (limit {MAX_NUMBER:.0e})")
        return sp.Integer(value)

    def _name(self, name: str) -> sp.Expr:
        if name in self.symbols:
            return self.symbols[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            self.fail(f"function {name!r} used without arguments")
        known = [*self.symbols, *CONSTANTS]
        hint = difflib.get_close_matches(name, known, n=1)
        self.fail(
            f"unknown symbol {name!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; allowed symbols: {', '.join(sorted(known))}; declare parameters under "
            "'parameters'"
        )
        raise AssertionError

    def _binop(self, node: ast.BinOp) -> sp.Expr:
        for chain in self._CHAINS:
            if isinstance(node.op, chain):
                # Walk the left spine of a+b-c+... iteratively; operands nest one level.
                operands: list[tuple[type, ast.AST]] = []
                cur: ast.AST = node
                while isinstance(cur, ast.BinOp) and isinstance(cur.op, chain):
                    operands.append((type(cur.op), cur.right))
                    cur = cur.left
                acc = self.build(cur)
                for op, right in reversed(operands):
                    acc = self._apply(op, acc, self.build(right))
                return acc
        if isinstance(node.op, ast.BitXor):
            self.fail("'^' is not a power here; write '**'")
        if not isinstance(node.op, ast.Pow):
            self.fail(f"operator {type(node.op).__name__!r} is not allowed")
        left, right = self.build(node.left), self.build(node.right)
        return self.guard.make(sp.Pow, [left, right])

    def _apply(self, op: type, left: sp.Expr, right: sp.Expr) -> sp.Expr:
        if op is ast.Div and right.is_number and (right == 0 or self.guard.value(right) == 0):
            self.fail("division by zero")
        return self.guard.check(self._BINOPS[op](left, right))

    def _call(self, node: ast.Call) -> sp.Expr:
        if isinstance(node.func, ast.Attribute):
            self.fail("attribute access ('.') is not allowed in expressions")
        if not isinstance(node.func, ast.Name):
            self.fail("only plain function calls like exp(eta) are allowed")
        name = node.func.id
        if name not in FUNCTIONS:
            hint = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            self.fail(
                f"unknown function {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            self.fail(f"{name}() takes positional arguments only")
        args = [self.build(a) for a in node.args]
        return self.guard.make(FUNCTIONS[name], args, name=name)


def parse_expression(
    text: str,
    symbols: dict[str, sp.Symbol],
    *,
    source: str = "<expr>",
    field: str | None = None,
    line: int | None = None,
) -> sp.Expr:
    """Parse ``text`` into a SymPy expression over the whitelisted ``symbols``.

    Only numbers, the given symbols, ``pi``/``E``, ``+ - * / **`` and calls of the
    whitelisted :data:`FUNCTIONS` are accepted, within the limits of the module constants.
    """

    def fail(msg: str):
        raise SpecError(msg, source=source, field=field, line=line)

    if not isinstance(text, str):
        fail(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_EXPR_CHARS:
        fail(f"expression longer than {MAX_EXPR_CHARS} characters")
    if "__" in text:
        fail("double-underscore names are not allowed in expressions")
    if not text.isascii():
        fail("expression contains non-ASCII characters (look-alike letters are not allowed)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        fail(f"cannot parse expression {_short(text)!r}: {getattr(exc, 'msg', exc)}")
    try:
        expr = _ExprBuilder(symbols, fail).build(tree)
    except RecursionError:
        fail("expression too deeply nested")
    if not isinstance(expr, sp.Expr) or expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        fail(f"expression {_short(text)!r} is not a finite real expression")
    variables = [s for s in symbols.values() if s.name in ("eta", "y")]
    check_complexity(expr, variables[0] if variables else ETA, fail)
    return expr


def _bound(value: int | float | str, fail) -> sp.Expr:
    """One end of an open interval: a number (|x| <= MAX_NUMBER), or ``-oo``/``oo``."""
    if isinstance(value, str):
        table = {"-oo": -sp.oo, "oo": sp.oo, "+oo": sp.oo, "-inf": -sp.oo, "inf": sp.oo}
        if value.strip() not in table:
            fail(f"interval ends must be numbers or -oo/oo, got {_short(repr(value))}")
        return table[value.strip()]
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            fail("interval ends must be numbers or -oo/oo, got nan")
        return sp.oo if value > 0 else -sp.oo
    if abs(value) > MAX_NUMBER:
        fail(
            f"interval end {_magnitude(value)} is larger than {MAX_NUMBER:.0e}; write oo for "
            "infinity"
        )
    return sp.Rational(repr(value)) if isinstance(value, float) else sp.Integer(value)


def _interval(values: list, fail) -> tuple[sp.Expr, sp.Expr]:
    if len(values) != 2:
        fail(f"an open interval [lo, hi] needs exactly two ends, got {len(values)}")
    lo, hi = (_bound(v, fail) for v in values)
    if not bool(lo < hi):
        fail(f"open interval needs lo < hi, got [{lo}, {hi}] (an empty or degenerate interval)")
    return lo, hi


def pydantic_error(
    exc: ValidationError, source: str, lines: dict[str, int], model: type[BaseModel]
) -> SpecError:
    """The first schema error of ``model`` (a scalar or vector spec model) as one
    :class:`SpecError` naming the field and its line (with a close-match hint for an unknown
    field)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    fld = loc[0] if loc else None
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        hint = difflib.get_close_matches(fld or "", list(model.model_fields), n=1)
        msg = "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    elif err.get("type") == "missing":
        msg = "required field is missing"
    elif len(loc) > 1:
        msg = f"{'.'.join(loc[1:])}: {msg}"
    return SpecError(msg, source=source, field=fld, line=lines.get(fld or ""))


def field_failer(source: str, lines: dict[str, int]) -> Callable[[str], Callable[[str], Any]]:
    """``failer(field)(message)`` raises :class:`SpecError` naming ``field`` and its line."""

    def failer(fld: str) -> Callable[[str], Any]:
        def fail(msg: str):
            raise SpecError(msg, source=source, field=fld, line=lines.get(fld))

        return fail

    return failer


def parse_parameters(
    values: dict[str, int | float], fail: Callable[[str], Any]
) -> tuple[dict[str, sp.Rational], dict[str, sp.Symbol]]:
    """The ``parameters`` mapping as exact values and real symbols: at most MAX_PARAMETERS,
    identifiers that are not reserved, finite, ``|value| <= MAX_NUMBER``."""
    params: dict[str, sp.Rational] = {}
    symbols: dict[str, sp.Symbol] = {}
    if len(values) > MAX_PARAMETERS:
        fail(f"at most {MAX_PARAMETERS} parameters are allowed")
    for pname, value in values.items():
        if not PARAM_RE.match(pname) or pname in RESERVED:
            fail(
                f"parameter name {_short(repr(pname))} is not an identifier or clashes with a "
                "reserved name"
            )
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"parameter {pname!r} must be finite")
        if abs(value) > MAX_NUMBER:
            fail(f"parameter {pname!r} = {_magnitude(value)} is larger than {MAX_NUMBER:.0e}")
        params[pname] = sp.Rational(repr(value)) if isinstance(value, float) else sp.Integer(value)
        symbols[pname] = sp.Symbol(pname, real=True)
    return params, symbols


def parse_parameter_ranges(
    values: dict[str, list], params: dict[str, sp.Rational], fail: Callable[[str], Any]
) -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """The ``parameter_ranges`` mapping: an open interval per declared parameter, which must
    contain the parameter's value."""
    ranges: dict[str, tuple[sp.Expr, sp.Expr]] = {}
    for pname, interval in values.items():
        if pname not in params:
            fail(f"range given for undeclared parameter {_short(repr(pname))}")
        lo, hi = _interval(interval, fail)
        if not bool(lo < params[pname] < hi):
            fail(f"parameter {pname}={params[pname]} lies outside its range ({lo}, {hi})")
        ranges[pname] = (lo, hi)
    return ranges


def _refuse_hidden_characters(text: str, data: dict[str, Any], source: str) -> None:
    """SpecError for an invisible/control/bidi character (``derive.spec_text``) in the raw
    ``text`` (comments included) or in the parsed strings ``data`` (YAML escapes), naming
    the field and line. Runs after YAML parsing, which already refuses most C0/C1 controls
    in the raw text with its own message."""
    lines = _key_lines(text)
    finding = spec_text.scan_raw_text(text, lines) or spec_text.scan_values(data, lines)
    if finding is not None:
        raise SpecError(finding.message(), source=source, field=finding.field, line=finding.line)


def parse_spec(text: str, source: str = "<spec>") -> FamilySpec:
    """Parse and validate spec ``text`` (see DESIGN.md for the format); a vector spec (one
    with ``natural_parameters`` or ``categories``) gives a
    :class:`~deqfam.derive.vector_spec.VectorFamilySpec`."""
    if not isinstance(text, str):
        raise SpecError(f"a spec must be text, got {type(text).__name__}", source=source)
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError(f"spec larger than {MAX_SPEC_BYTES} bytes", source=source)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply", source=source) from None
    except (ValueError, OverflowError, MemoryError) as exc:  # e.g. a 5000-digit integer
        reason = str(exc).split(";")[0] or type(exc).__name__
        raise SpecError(f"invalid YAML: {_short(reason, 200)}", source=source) from None
    if not isinstance(data, dict):
        raise SpecError("a spec must be a YAML mapping of fields", source=source, line=1)
    lines = _key_lines(text)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SpecError(f"field names must be strings, got {bad_keys[0]!r}", source=source)
    _refuse_hidden_characters(text, data, source)
    if any(key in data for key in ("natural_parameters", "categories")):
        from .vector_spec import parse_vector_spec  # k natural parameters (issue 16)

        return parse_vector_spec(data, text, source, lines)
    try:
        model = _SpecModel.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, source, lines, _SpecModel) from None
    failer = field_failer(source, lines)
    params, symbols = parse_parameters(model.parameters, failer("parameters"))
    ranges = parse_parameter_ranges(model.parameter_ranges, params, failer("parameter_ranges"))

    eta_syms = {"eta": ETA, **symbols}
    y_syms = {"y": Y, **symbols}
    A = parse_expression(
        model.log_partition,
        eta_syms,
        source=source,
        field="log_partition",
        line=lines.get("log_partition"),
    )
    if not A.has(ETA):
        failer("log_partition")("log_partition must depend on eta")
    check_log_multipliers(A, ETA, failer("log_partition"))
    T = parse_expression(
        model.sufficient_statistic,
        y_syms,
        source=source,
        field="sufficient_statistic",
        line=lines.get("sufficient_statistic"),
    )
    if not T.has(Y):
        failer("sufficient_statistic")("sufficient_statistic must depend on y")
    h = None
    if model.base_measure is not None:
        h = parse_expression(
            model.base_measure,
            y_syms,
            source=source,
            field="base_measure",
            line=lines.get("base_measure"),
        )
    domain = _interval(model.domain, failer("domain"))
    support_max = _support_max(model.support_max, symbols, source, lines.get("support_max"))
    return FamilySpec(
        name=model.name,
        description=model.description,
        support=model.support,
        sufficient_statistic=T,
        log_partition=A,
        base_measure=h,
        parameters=params,
        parameter_symbols=symbols,
        parameter_ranges=ranges,
        domain=domain,
        source=source,
        text=text,
        support_max=support_max,
    )


def _support_max(
    value: str | int | None, symbols: dict[str, sp.Symbol], source: str, line: int | None
) -> sp.Expr | None:
    """Parse the optional ``support_max`` field: an expression in the parameters only (no
    eta, no y), so the bound follows the family's parameters (binomial: ``support_max: n``)."""
    if value is None:
        return None
    return parse_expression(
        str(value), dict(symbols), source=source, field="support_max", line=line
    )


def read_spec(path: str | Path) -> FamilySpec:
    """Read and parse the spec file at ``path``."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"spec larger than {MAX_SPEC_BYTES} bytes", source=str(p))
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec: {exc}", source=str(p)) from None
    return parse_spec(text, source=str(p))
