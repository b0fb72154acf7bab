"""Vector family specs: ``k`` natural parameters, a ``k``-vector statistic, a product domain.

A vector spec is a scalar spec (``derive.spec``) with three fields changed::

    natural_parameters: [eta1, eta2]          # k identifiers, in order
    sufficient_statistic: [y, y**2]           # one expression in y per natural parameter
    log_partition: -eta1**2/(4*eta2) - log(-2*eta2)/2
    domain: {eta1: [-oo, oo], eta2: [-oo, 0]} # one open interval per natural parameter

or, for a categorical law on ``{0, ..., K-1}``, one key instead of the first three::

    categories: K              # an integer 2..64 or the name of an integer parameter
    domain: [-oo, oo]          # one interval for every eta_i (a mapping also works)

which stands for ``K - 1`` natural parameters ``eta1 .. eta{K-1}`` (category 0 is the
reference), ``T_i(y) = [y == i]`` (one-hot minus the reference) and
``A = log(1 + sum_i exp(eta_i))``. ``K`` is expanded when the family is derived, so
``--param K=6`` re-derives a six-category family.

Parsing follows the scalar reader exactly: the same safe YAML loader (no aliases, merge keys or
duplicate keys), the same hidden-character scan, the AST whitelist of
:func:`deqfam.derive.spec.parse_expression` (never ``eval``/``sympify`` on raw text), the same
numeric bounds, and the same complexity guard applied once per natural parameter. Every
failure is one :class:`~deqfam.derive.spec.SpecError` naming the field and its line.
"""

from __future__ import annotations

import difflib
import keyword
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from pydantic import ValidationError

from .bounds import check_log_multipliers
from .spec import (
    PARAM_RE,
    RESERVED,
    SpecError,
    SpecModelBase,
    Y,
    _interval,
    _short,
    _support_max,
    check_complexity,
    field_failer,
    parse_expression,
    parse_parameter_ranges,
    parse_parameters,
    pydantic_error,
)

#: most natural parameters of one vector spec (and most categories - 1)
MAX_NATURAL_PARAMETERS = 64
#: keys whose presence makes a spec a vector spec
VECTOR_KEYS = ("natural_parameters", "categories")
#: names the generated torch module binds where the natural parameters become local
#: variables (modules, the function arguments, the inverse mean's ``mu``); with Python's
#: keywords, a natural parameter may not take them (``derive/vector_codegen.py``)
GENERATED_CODE_NAMES = frozenset({"torch", "math", "special", "eta", "mu", "y"})


class _VectorSpecModel(SpecModelBase):
    """Schema of a vector spec document: the shared fields (``name``, ``support``,
    ``parameters``, ...) plus the vector ones (types and names only)."""

    natural_parameters: list[str] | None = None
    sufficient_statistic: list[str] | None = None
    log_partition: str | None = None
    categories: str | int | None = None
    base_measure: str | int | None = None
    domain: dict[str, list[int | float | str]] | list[int | float | str]


@dataclass(frozen=True)
class VectorFamilySpec:
    """A parsed vector spec. For a ``categories`` spec the natural parameters, statistic and
    log-partition are empty here and built from ``K`` by :func:`expand_categories`."""

    name: str
    description: str
    support: str
    natural_parameters: tuple[sp.Symbol, ...]
    sufficient_statistic: tuple[sp.Expr, ...]
    log_partition: sp.Expr | None
    base_measure: sp.Expr | None
    parameters: dict[str, sp.Rational]
    parameter_symbols: dict[str, sp.Symbol]
    parameter_ranges: dict[str, tuple[sp.Expr, sp.Expr]]
    #: one (lo, hi) per natural parameter; for ``categories``, one interval for all
    domain: tuple[tuple[sp.Expr, sp.Expr], ...]
    source: str
    text: str = field(repr=False)
    support_max: sp.Expr | None = None
    #: ``K`` of a categorical spec (an integer or a parameter symbol), else None
    categories: sp.Expr | None = None

    @property
    def k(self) -> int:
        return len(self.natural_parameters)


def is_vector_document(data: dict[str, Any]) -> bool:
    """Whether a parsed YAML mapping is a vector spec (it names natural parameters or K)."""
    return any(key in data for key in VECTOR_KEYS)


class _Reader:
    """Field-by-field parsing of a validated model, failing with the field's line."""

    def __init__(self, model: _VectorSpecModel, source: str, lines: dict[str, int]) -> None:
        self.model, self.source, self.lines = model, source, lines

    def fail(self, fld: str, msg: str) -> None:
        raise SpecError(msg, source=self.source, field=fld, line=self.lines.get(fld))

    def failer(self, fld: str):
        return field_failer(self.source, self.lines)(fld)

    def expr(self, fld: str, text: str, symbols: dict[str, sp.Symbol]) -> sp.Expr:
        return parse_expression(
            text, symbols, source=self.source, field=fld, line=self.lines.get(fld)
        )

    def parameters(self) -> tuple[dict[str, sp.Rational], dict[str, sp.Symbol]]:
        """The ``parameters`` mapping (:func:`deqfam.derive.spec.parse_parameters`)."""
        return parse_parameters(self.model.parameters, self.failer("parameters"))

    def ranges(self, params: dict[str, sp.Rational]) -> dict[str, tuple[sp.Expr, sp.Expr]]:
        """The ``parameter_ranges`` (:func:`deqfam.derive.spec.parse_parameter_ranges`)."""
        return parse_parameter_ranges(
            self.model.parameter_ranges, params, self.failer("parameter_ranges")
        )

    def natural_parameters(self, params: dict[str, sp.Rational]) -> tuple[sp.Symbol, ...]:
        names = self.model.natural_parameters or []
        fail = self.failer("natural_parameters")
        if not names:
            fail("at least one natural parameter is needed")
        if len(names) > MAX_NATURAL_PARAMETERS:
            fail(f"at most {MAX_NATURAL_PARAMETERS} natural parameters are allowed")
        for n in names:
            if not PARAM_RE.match(n) or n in RESERVED or n in params:
                fail(
                    f"natural parameter {_short(repr(n))} is not an identifier or clashes with "
                    "a reserved name or a parameter"
                )
        if len(set(names)) != len(names):
            fail("natural parameter names must be distinct")
        clash = sorted(n for n in names if n in GENERATED_CODE_NAMES or keyword.iskeyword(n))
        if clash:
            fail(
                f"natural parameter name(s) {', '.join(map(repr, clash))} clash with names of "
                "the generated code (Python keywords and "
                f"{', '.join(sorted(GENERATED_CODE_NAMES))}); rename them"
            )
        return tuple(sp.Symbol(n, real=True) for n in names)

    def statistic(self, k: int, symbols: dict[str, sp.Symbol]) -> tuple[sp.Expr, ...]:
        items = self.model.sufficient_statistic
        fail = self.failer("sufficient_statistic")
        if items is None:
            fail(
                "a vector spec needs sufficient_statistic: a list, one entry per natural parameter"
            )
        if len(items) != k:
            fail(f"{len(items)} entries but {k} natural parameters: give one T_i(y) each")
        out = []
        for text in items:
            t = self.expr("sufficient_statistic", text, {"y": Y, **symbols})
            if not t.has(Y):
                fail(f"entry {_short(text)!r} must depend on y")
            out.append(t)
        return tuple(out)

    def log_partition(self, etas: tuple[sp.Symbol, ...], symbols) -> sp.Expr:
        text = self.model.log_partition
        if text is None:
            self.fail("log_partition", "required field is missing")
        A = self.expr("log_partition", text, {**{e.name: e for e in etas}, **symbols})
        missing = [e.name for e in etas if not A.has(e)]
        if missing:
            self.fail("log_partition", f"log_partition must depend on {', '.join(missing)}")
        for e in etas:
            check_log_multipliers(A, e, self.failer("log_partition"))
            check_complexity(A, e, self.failer("log_partition"))
        return A

    def domain(self, names: list[str]) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
        """A mapping name -> interval (exactly the natural parameters), or one interval for
        every coordinate."""
        value = self.model.domain
        fail = self.failer("domain")
        if isinstance(value, list):
            box = _interval(value, fail)
            return tuple(box for _ in names) if names else (box,)
        for key in value:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                fail(
                    f"domain key {_short(repr(key))} is not a natural parameter"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; natural parameters: {', '.join(names)}"
                )
        missing = [n for n in names if n not in value]
        if missing:
            fail(f"no interval for natural parameter(s) {', '.join(missing)}")
        return tuple(_interval(value[n], fail) for n in names)

    def categories(self, params: dict[str, sp.Rational], symbols) -> sp.Expr:
        for fld in ("natural_parameters", "sufficient_statistic", "log_partition"):
            if getattr(self.model, fld) is not None:
                self.fail(fld, "a 'categories' spec implies this field; leave it out")
        value = self.model.categories
        fail = self.failer("categories")
        if isinstance(value, int):
            K: sp.Expr = sp.Integer(value)
        elif value in symbols:
            K = symbols[value]
        else:
            fail(f"categories must be an integer or a declared parameter, got {value!r}")
        check_categories(K.subs({symbols[k]: v for k, v in params.items()}), fail)
        return K


def check_categories(K: sp.Expr, fail) -> int:
    """``K`` as an int in 2..MAX_NATURAL_PARAMETERS + 1, else ``fail``."""
    if not (K.is_Integer and 2 <= int(K) <= MAX_NATURAL_PARAMETERS + 1):
        fail(f"categories K must be an integer 2..{MAX_NATURAL_PARAMETERS + 1}, got {K}")
    return int(K)


def parse_vector_spec(
    data: dict[str, Any], text: str, source: str, lines: dict[str, int]
) -> VectorFamilySpec:
    """Validate and parse a vector spec document (``data``, already loaded safely)."""
    try:
        model = _VectorSpecModel.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, source, lines, _VectorSpecModel) from None
    r = _Reader(model, source, lines)
    params, symbols = r.parameters()
    ranges = r.ranges(params)
    K = etas = None
    if model.categories is not None:
        K = r.categories(params, symbols)
        etas, T, A = (), (), None
        if isinstance(model.domain, dict):  # its eta_i are named only when K is expanded
            r.fail("domain", "a 'categories' spec takes one interval [lo, hi] for every eta_i")
        domain = r.domain([])
    else:
        etas = r.natural_parameters(params)
        T = r.statistic(len(etas), symbols)
        A = r.log_partition(etas, symbols)
        domain = r.domain([e.name for e in etas])
    h = None
    if model.base_measure is not None:
        h = r.expr("base_measure", str(model.base_measure), {"y": Y, **symbols})
    support_max = _support_max(model.support_max, symbols, source, lines.get("support_max"))
    return VectorFamilySpec(
        name=model.name,
        description=model.description,
        support=model.support,
        natural_parameters=etas,
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
        categories=K,
    )


def expand_categories(spec: VectorFamilySpec, K: int) -> VectorFamilySpec:
    """The explicit spec of a ``categories`` spec at ``K`` categories: natural parameters
    ``eta1 .. eta{K-1}``, ``T_i(y) = KroneckerDelta(y, i)`` and
    ``A = log(1 + sum_i exp(eta_i))``."""
    etas = tuple(sp.Symbol(f"eta{i}", real=True) for i in range(1, K))
    T = tuple(sp.KroneckerDelta(Y, i) for i in range(1, K))
    A = sp.log(1 + sp.Add(*(sp.exp(e) for e in etas)))
    box = spec.domain[0]
    return VectorFamilySpec(
        **{
            **spec.__dict__,
            "natural_parameters": etas,
            "sufficient_statistic": T,
            "log_partition": A,
            "domain": tuple(box for _ in etas),
            "support_max": sp.Integer(K - 1),
        }
    )


__all__ = [
    "MAX_NATURAL_PARAMETERS",
    "VECTOR_KEYS",
    "VectorFamilySpec",
    "check_categories",
    "expand_categories",
    "is_vector_document",
    "parse_vector_spec",
]
