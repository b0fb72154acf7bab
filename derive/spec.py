"""Family specs: YAML text -> validated, SymPy-parsed :class:`FamilySpec`.

The spec reader is a trust boundary. YAML is read with a safe loader that also refuses
aliases (no "billion laughs"), and expressions are parsed by walking Python's ``ast`` of the
text against a whitelist of symbols and functions, building SymPy objects directly:
nothing is ever passed to ``eval``/``sympify``/``parse_expr``. Every failure is one
:class:`SpecError` naming the file, the field and the line.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import sympy as sp
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

SUPPORTS = (
    "real",
    "binary",
    "plus_minus_one",
    "unit_interval",
    "integers",
    "nonnegative_integers",
    "positive_integers",
    "positive_real",
)
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
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
RESERVED = {"eta", "y", *FUNCTIONS, *CONSTANTS, "oo"}

MAX_SPEC_BYTES = 64 * 1024
MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 40
MAX_LITERAL_EXPONENT = 1000
NAME_RE = r"^[a-z][a-z0-9_]*$"
PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

ETA = sp.Symbol("eta", real=True)
Y = sp.Symbol("y", real=True)


class SpecError(ValueError):
    """A malformed family spec. ``str()`` names the file, the field and the line."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<spec>",
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.source, self.field, self.line, self.message = source, field, line, message
        where = source if line is None else f"{source}:{line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}")


class _SpecModel(BaseModel):
    """Schema of a spec document (types and field names only; expressions parsed later)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = ""
    support: SupportName
    sufficient_statistic: str = "y"
    log_partition: str
    base_measure: str | None = None
    parameters: dict[str, int | float] = {}
    parameter_ranges: dict[str, list[int | float | str]] = {}
    domain: list[int | float | str]

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not re.match(NAME_RE, v) or len(v) > 64:
            raise ValueError(f"must match {NAME_RE} (at most 64 characters), got {v!r}")
        return v


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


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader that refuses anchors/aliases, which specs never need (billion laughs)."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases/anchors are not allowed in a spec", event.start_mark
            )
        return super().compose_node(parent, index)


def _key_lines(text: str) -> dict[str, int]:
    """Map each top-level key of the YAML document to its 1-based line number."""
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}


def _yaml_error(exc: yaml.YAMLError, source: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return SpecError(f"invalid YAML: {problem}", source=source, field=None, line=line)


class _ExprBuilder(ast.NodeVisitor):
    """Build a SymPy expression from a whitelisted Python AST (no eval anywhere)."""

    _BINOPS: ClassVar[dict[type, Any]] = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
    }

    def __init__(self, symbols: dict[str, sp.Symbol], fail) -> None:
        self.symbols = symbols
        self.fail = fail
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
        self.fail(f"syntax {type(node).__name__!r} is not allowed in expressions")
        raise AssertionError  # unreachable: fail raises

    def _constant(self, value: Any) -> sp.Expr:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"literal {value!r} is not a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail("non-finite literal")
            return sp.Rational(repr(value))
        if abs(value) > 10**60:
            self.fail("integer literal too large")
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
        if isinstance(node.op, ast.BitXor):
            self.fail("'^' is not a power here; write '**'")
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Pow):
            if left.is_number and right.is_number and abs(sp.N(right, 15)) > MAX_LITERAL_EXPONENT:
                self.fail(f"numeric exponent larger than {MAX_LITERAL_EXPONENT}")
            return left**right
        op = self._BINOPS.get(type(node.op))
        if op is None:
            self.fail(f"operator {type(node.op).__name__!r} is not allowed")
        if isinstance(node.op, ast.Div) and right == 0:
            self.fail("division by zero")
        return op(left, right)

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
        try:
            return FUNCTIONS[name](*args)
        except (TypeError, ValueError) as exc:
            self.fail(f"bad call {name}(...): {exc}")
        raise AssertionError


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
    whitelisted :data:`FUNCTIONS` are accepted.
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
        fail(f"cannot parse expression {text!r}: {getattr(exc, 'msg', exc)}")
    try:
        expr = _ExprBuilder(symbols, fail).build(tree)
    except RecursionError:
        fail("expression too deeply nested")
    if not isinstance(expr, sp.Expr) or expr.has(sp.zoo, sp.nan):
        fail(f"expression {text!r} is not a finite real expression")
    return expr


def _bound(value: int | float | str, fail) -> sp.Expr:
    """One end of an open interval: a number, or ``-oo``/``oo``."""
    if isinstance(value, str):
        table = {"-oo": -sp.oo, "oo": sp.oo, "+oo": sp.oo, "-inf": -sp.oo, "inf": sp.oo}
        if value.strip() not in table:
            fail(f"interval ends must be numbers or -oo/oo, got {value!r}")
        return table[value.strip()]
    if isinstance(value, float) and not math.isfinite(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Rational(repr(value)) if isinstance(value, float) else sp.Integer(value)


def _interval(values: list, fail) -> tuple[sp.Expr, sp.Expr]:
    if len(values) != 2:
        fail(f"an open interval [lo, hi] needs exactly two ends, got {len(values)}")
    lo, hi = (_bound(v, fail) for v in values)
    if not bool(lo < hi):
        fail(f"open interval needs lo < hi, got [{lo}, {hi}] (an empty or degenerate interval)")
    return lo, hi


def _pydantic_error(exc: ValidationError, source: str, lines: dict[str, int]) -> SpecError:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    fld = loc[0] if loc else None
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        hint = difflib.get_close_matches(fld or "", list(_SpecModel.model_fields), n=1)
        msg = "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    elif err.get("type") == "missing":
        msg = "required field is missing"
    elif len(loc) > 1:
        msg = f"{'.'.join(loc[1:])}: {msg}"
    return SpecError(msg, source=source, field=fld, line=lines.get(fld or ""))


def parse_spec(text: str, source: str = "<spec>") -> FamilySpec:
    """Parse and validate spec ``text`` (see DESIGN.md for the format)."""
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError(f"spec larger than {MAX_SPEC_BYTES} bytes", source=source)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    if not isinstance(data, dict):
        raise SpecError("a spec must be a YAML mapping of fields", source=source, line=1)
    lines = _key_lines(text)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SpecError(f"field names must be strings, got {bad_keys[0]!r}", source=source)
    try:
        model = _SpecModel.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, source, lines) from None

    def failer(fld: str):
        def fail(msg: str):
            raise SpecError(msg, source=source, field=fld, line=lines.get(fld))

        return fail

    params: dict[str, sp.Rational] = {}
    symbols: dict[str, sp.Symbol] = {}
    for pname, value in model.parameters.items():
        fail = failer("parameters")
        if not PARAM_RE.match(pname) or pname in RESERVED:
            fail(f"parameter name {pname!r} is not an identifier or clashes with a reserved name")
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"parameter {pname!r} must be finite")
        params[pname] = sp.Rational(repr(value)) if isinstance(value, float) else sp.Integer(value)
        symbols[pname] = sp.Symbol(pname, real=True)

    ranges: dict[str, tuple[sp.Expr, sp.Expr]] = {}
    for pname, values in model.parameter_ranges.items():
        fail = failer("parameter_ranges")
        if pname not in params:
            fail(f"range given for undeclared parameter {pname!r}")
        lo, hi = _interval(values, fail)
        if not bool(lo < params[pname] < hi):
            fail(f"parameter {pname}={params[pname]} lies outside its range ({lo}, {hi})")
        ranges[pname] = (lo, hi)

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
