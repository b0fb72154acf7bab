"""The primitive table: each stable primitive declared once.

A :class:`PrimitiveSpec` names, for one SymPy function of :mod:`deqfam.derive.primitives`,

* its torch call: the runtime function or custom op the torch printer emits
  (``special.<name>`` from ``deqfam.runtime.special``, or ``torch.ops.deqfam.<name>``),
  and how its order argument is printed after ``x`` (none, a float, an int);
* its C call: the ``deqfam_*`` device function, and for primitives with an order the
  template block of ``templates/_primitives.h.j2`` that defines one function per order
  together with the builder of that block's constants (:mod:`deqfam.derive.kernel_constants`);
* its float64 numpy reference (the class's ``numpy_impl``);
* its stabiliser rules: (SymPy node type, matcher) pairs that :mod:`deqfam.derive.stable`
  tries on nodes of that type after its built-in rules.

The printers in :mod:`deqfam.derive.codegen` dispatch on this table (one generic method per
printer), so adding a primitive means one entry here, its torch implementation in
``runtime/`` and, for a primitive with an order, its C block. ``runtime/`` cannot import this
module (no SymPy there); ``tests/test_primitive_table.py`` checks that the table's torch calls
and the runtime's ``special.PRIMITIVE_CALLS`` are the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from . import kernel_constants as kc
from .bessel_stable import besselie, cancel_signs, log_of_scaled, scaled_besseli
from .primitives import (
    StablePrimitive,
    fermi_dirac,
    logcosh,
    logexpm1,
    logexpm1exp,
    logexpm1x,
    logli1exp,
    polylog_exp,
    sigmoid,
    softplus,
)

#: A stabiliser rule: a SymPy node -> its stable replacement, or None.
Rule = Callable[[sp.Expr], "sp.Expr | None"]


@dataclass(frozen=True)
class PrimitiveSpec:
    """One stable primitive: SymPy function, torch call, C call, numpy reference, rules."""

    function: type[StablePrimitive]
    torch_call: str
    #: how the order argument (the first SymPy argument) prints after x: None, "float", "int"
    torch_order: str | None = None
    #: C function name; with an order, the per-order suffix ``_<tag>`` is appended
    c_call: str = ""
    #: builder of the per-order constants (its CPrimitive.kind names the template block)
    c_constants: Callable[[sp.Expr], kc.CPrimitive] | None = None
    rules: tuple[tuple[type[sp.Basic], Rule], ...] = ()

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def ordered(self) -> bool:
        """True when the SymPy function is (order, x) rather than (x,)."""
        return self.torch_order is not None

    @property
    def numpy_reference(self) -> Callable[..., np.ndarray]:
        """float64 evaluation, same arguments as the SymPy function."""
        return self.function.numpy_impl


def _log_of_li1(e: sp.Expr) -> sp.Expr | None:
    """log(polylog_exp(1, u)) = log Li_1(e^u) -> logli1exp(0, u).

    The stabiliser has already turned log(1 - e^u) into -polylog_exp(1, u), so the
    logarithmic-series A = log(-log(1 - e^eta)) arrives here as log(polylog_exp(1, eta)).
    """
    arg = e.args[0]
    if isinstance(arg, polylog_exp) and arg.args[0] == 1:
        return logli1exp(0, arg.args[1])
    return None


def _int_constants(builder: Callable[[int], kc.CPrimitive]) -> Callable[[sp.Expr], kc.CPrimitive]:
    """A builder for derivative orders k (integers) from one taking a Python int."""
    return lambda order: builder(int(order))


TABLE: tuple[PrimitiveSpec, ...] = (
    PrimitiveSpec(softplus, "special.softplus", c_call="deqfam_softplus"),
    PrimitiveSpec(sigmoid, "special.sigmoid", c_call="deqfam_sigmoid"),
    PrimitiveSpec(logcosh, "special.logcosh", c_call="deqfam_logcosh"),
    PrimitiveSpec(
        polylog_exp,
        "torch.ops.deqfam.polylog_exp",
        "float",
        "deqfam_polylog_exp",
        lambda order: kc.polylog_constants("polylog_exp", order),
    ),
    PrimitiveSpec(
        fermi_dirac,
        "torch.ops.deqfam.fermi_dirac",
        "float",
        "deqfam_fermi_dirac",
        lambda order: kc.polylog_constants("fermi_dirac", order),
    ),
    PrimitiveSpec(
        logexpm1x,
        "torch.ops.deqfam.logexpm1x",
        "int",
        "deqfam_logexpm1x",
        _int_constants(kc.logexpm1x_constants),
    ),
    PrimitiveSpec(logexpm1, "special.logexpm1", c_call="deqfam_logexpm1"),
    PrimitiveSpec(
        logexpm1exp,
        "torch.ops.deqfam.logexpm1exp",
        "int",
        "deqfam_logexpm1exp",
        _int_constants(kc.logexpm1exp_constants),
    ),
    PrimitiveSpec(
        logli1exp,
        "torch.ops.deqfam.logli1exp",
        "int",
        "deqfam_logli1exp",
        _int_constants(kc.logli1exp_constants),
        rules=((sp.log, _log_of_li1),),
    ),
    PrimitiveSpec(
        besselie,
        "special.besselie",
        "int",
        "deqfam_besselie",
        _int_constants(kc.besselie_constants),
        rules=(
            (sp.besseli, scaled_besseli),
            (sp.log, log_of_scaled),
            (sp.Add, cancel_signs),
            (sp.Mul, cancel_signs),
        ),
    ),
)

_BY_NAME: dict[str, PrimitiveSpec] = {p.name: p for p in TABLE}


def spec_of(expr: StablePrimitive) -> PrimitiveSpec:
    """The table entry of a primitive call (KeyError for a primitive missing from the table)."""
    return _BY_NAME[type(expr).__name__]


def spec_named(name: str) -> PrimitiveSpec:
    """The table entry of the primitive called ``name``."""
    return _BY_NAME[name]


def rules_for(node: sp.Basic) -> tuple[Rule, ...]:
    """Table rules that apply to ``node``'s SymPy type, in table order."""
    return tuple(rule for p in TABLE for kind, rule in p.rules if isinstance(node, kind))


def numpy_module() -> dict[str, object]:
    """Name -> float64 implementation mapping for ``sympy.lambdify(..., modules=[...])``.

    Derivatives of piecewise specs (Max, Abs) bring Heaviside and DiracDelta; they evaluate
    to their almost-everywhere values (H(0) = 1/2, delta = 0 off the kink).
    """
    table: dict[str, object] = {p.name: p.numpy_reference for p in TABLE}
    table["Heaviside"] = lambda x, h0=0.5: np.heaviside(x, h0)
    table["DiracDelta"] = lambda x, k=0: np.zeros_like(np.asarray(x, dtype=float))
    return table


# --- Special functions (digamma, polygamma, Bessel I, log-gamma) ------------------------------
#
# These are SymPy's own functions (not stable primitives: SymPy differentiates them itself,
# polygamma(n, x) -> polygamma(n + 1, x), besseli(0, x) -> besseli(1, x)), so they have their
# own table: one row per (SymPy node, order) names the torch call, the C call and the float64
# reference. A spec writes them as ``digamma(x)``, ``polygamma(n, x)``, ``besseli(n, x)``,
# ``lgamma(x)`` (:data:`SPEC_FUNCTIONS`, added to the parser's whitelist).

#: largest order n of polygamma(n, x) a spec may use (derivatives add up to 3 more)
MAX_POLYGAMMA_ORDER = 6
#: largest |x| of a numeric argument of the special functions (as MAX_SPECIAL_ARG)
_MAX_NUMERIC_ARG = 1000


@dataclass(frozen=True)
class SpecialCall:
    """One special function at one order (None: any order, printed as an argument).

    Attributes:
        node: the SymPy function class the printers see.
        order: the fixed first argument this row covers, or None for every other order.
        torch_call: the torch function; with ``order`` None it is called ``(n, x)``.
        c_call: the C device function; with ``order`` None the suffix ``_<n>`` is appended
            and ``c_kind`` names the ``templates/_primitives.h.j2`` block that defines it.
        c_kind: the template block of the C function ("" for a C library call).
        numpy_reference: float64 evaluation with the SymPy function's arguments.
    """

    node: type[sp.Function]
    order: int | None
    torch_call: str
    c_call: str
    c_kind: str
    numpy_reference: Callable[..., np.ndarray]


def _scipy():
    from scipy import special as sps

    return sps


SPECIAL_CALLS: tuple[SpecialCall, ...] = (
    SpecialCall(
        sp.polygamma,
        0,
        "special.digamma",
        "deqfam_digamma",
        "digamma",
        lambda n, x: _scipy().digamma(x),
    ),
    SpecialCall(
        sp.polygamma,
        None,
        "special.polygamma",
        "deqfam_polygamma",
        "polygamma",
        lambda n, x: _scipy().polygamma(int(n), x),
    ),
    SpecialCall(
        sp.besseli,
        0,
        "torch.special.i0",
        "deqfam_besseli0",
        "besseli",
        lambda n, x: _scipy().i0(x),
    ),
    SpecialCall(
        sp.besseli,
        1,
        "torch.special.i1",
        "deqfam_besseli1",
        "besseli",
        lambda n, x: _scipy().i1(x),
    ),
    SpecialCall(sp.loggamma, None, "torch.lgamma", "lgamma", "", lambda x: _scipy().gammaln(x)),
)


def special_call(expr: sp.Expr) -> SpecialCall | None:
    """The row of :data:`SPECIAL_CALLS` that prints ``expr``, or None (not a special call,
    or an order without a row: ``besseli(2, x)`` must be reduced first,
    :func:`reduce_besseli`)."""
    for row in SPECIAL_CALLS:
        if type(expr) is not row.node:
            continue
        if row.node is sp.loggamma:
            return row
        n = expr.args[0]
        if row.order is not None and n == row.order:
            return row
        if row.order is None and n.is_Integer and 1 <= int(n):
            return row
    return None


def reduce_besseli(expr: sp.Expr) -> sp.Expr:
    """Rewrite integer-order ``besseli(n, x)``, n >= 2, onto I_0 and I_1 by the recurrence
    ``I_{n+1}(x) = I_{n-1}(x) - (2n/x) I_n(x)`` (the derivatives of I_0 and I_1 bring I_2,
    I_3, ...; torch and C have I_0 and I_1 only). ``I_{-n} = I_n`` for integer n."""

    def lower(n: int, x: sp.Expr) -> sp.Expr:
        n = abs(n)
        if n <= 1:
            return sp.besseli(n, x)
        return lower(n - 2, x) - 2 * (n - 1) / x * lower(n - 1, x)

    return expr.replace(
        lambda e: isinstance(e, sp.besseli) and e.args[0].is_Integer and abs(int(e.args[0])) > 1,
        lambda e: lower(int(e.args[0]), e.args[1]),
    )


def _numeric_arg_bounded(name: str, x: sp.Expr) -> None:
    if x.is_number and abs(complex(sp.N(x, 15))) > _MAX_NUMERIC_ARG:
        raise ValueError(f"numeric arguments of {name} are limited to |x| <= {_MAX_NUMERIC_ARG}")


def _order(name: str, n: sp.Expr, lo: int, hi: int) -> int:
    if not (n.is_Integer and lo <= int(n) <= hi):
        raise ValueError(f"the order of {name} must be an integer {lo}..{hi}, got {n}")
    return int(n)


def _digamma(x: sp.Expr) -> sp.Expr:
    """digamma(x) = psi(x) = d/dx log Gamma(x) (SymPy's polygamma(0, x))."""
    _numeric_arg_bounded("digamma", x)
    return sp.polygamma(0, x)


def _polygamma(n: sp.Expr, x: sp.Expr) -> sp.Expr:
    """polygamma(n, x) = d^n/dx^n digamma(x) for an integer order 0..MAX_POLYGAMMA_ORDER."""
    _numeric_arg_bounded("polygamma", x)
    return sp.polygamma(_order("polygamma", n, 0, MAX_POLYGAMMA_ORDER), x)


def _besseli(n: sp.Expr, x: sp.Expr) -> sp.Expr:
    """besseli(n, x) = I_n(x), the modified Bessel function of the first kind, for an integer
    order 0..MAX_POLYGAMMA_ORDER (reduced to I_0 and I_1 by :func:`reduce_besseli`)."""
    _numeric_arg_bounded("besseli", x)
    return reduce_besseli(sp.besseli(_order("besseli", n, 0, MAX_POLYGAMMA_ORDER), x))


def _lgamma(x: sp.Expr) -> sp.Expr:
    """lgamma(x) = log Gamma(x) (SymPy's loggamma)."""
    _numeric_arg_bounded("lgamma", x)
    return sp.loggamma(x)


#: spec-facing names of the special functions -> their checked SymPy constructors
SPEC_FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "digamma": _digamma,
    "polygamma": _polygamma,
    "besseli": _besseli,
    "lgamma": _lgamma,
}
