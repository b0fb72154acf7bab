"""The primitive table (derive/primitive_table.py) against the runtime and the printers.

runtime/ cannot import derive/, so the runtime keeps its own list of primitive calls
(``special.PRIMITIVE_CALLS``); these tests check the two lists are the same in both
directions, that every call resolves to a runtime callable or operator, and that the torch
call a table entry prints agrees with the entry's numpy reference (mpmath-checked elsewhere).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from deqfam.derive import primitive_table, primitives
from deqfam.derive.codegen import KernelPrinter, torch_code
from deqfam.derive.stable import stabilize
from deqfam.runtime import special

ETA = sp.Symbol("eta", real=True)
#: (order, x values) per primitive, inside each one's domain
SAMPLES = {
    "softplus": (None, [-30.0, -1.0, 0.0, 2.5, 40.0]),
    "sigmoid": (None, [-30.0, -1.0, 0.0, 2.5, 40.0]),
    "logcosh": (None, [-30.0, -0.3, 0.0, 2.5, 40.0]),
    "logexpm1": (None, [1e-6, 0.3, 2.5, 40.0]),
    "polylog_exp": (sp.Rational(3, 2), [-30.0, -2.0, -0.5, -1e-3]),
    "fermi_dirac": (sp.Rational(5, 2), [-30.0, -2.0, -0.5, -1e-3]),
    "logexpm1x": (sp.Integer(1), [-30.0, -0.2, 0.3, 4.0]),
    "logexpm1exp": (sp.Integer(2), [-30.0, -0.2, 0.3, 4.0]),
    "logli1exp": (sp.Integer(2), [-30.0, -2.0, -0.5, -1e-3]),
    "besselie": (sp.Integer(2), [-40.0, -3.0, 1e-3, 0.5, 35.0]),
}


def _resolve(call: str):
    """The runtime object a generated module reaches with ``call``."""
    prefix, name = call.rsplit(".", 1)
    if prefix == "special":
        return getattr(special, name)
    assert prefix == "torch.ops.deqfam", call
    return getattr(torch.ops.deqfam, name)


def test_table_and_runtime_list_the_same_primitives():
    table_calls = [p.torch_call for p in primitive_table.TABLE]
    assert len(set(table_calls)) == len(table_calls)
    assert set(table_calls) == set(special.PRIMITIVE_CALLS)
    assert len(set(special.PRIMITIVE_CALLS)) == len(special.PRIMITIVE_CALLS)


@pytest.mark.parametrize("call", special.PRIMITIVE_CALLS)
def test_every_runtime_primitive_resolves(call):
    assert callable(_resolve(call))
    if call.startswith("torch.ops.deqfam."):
        # exporters replace each operator by plain torch code (runtime/export_trace.py)
        assert f"deqfam::{call.rsplit('.', 1)[1]}" in special.OP_IMPLEMENTATIONS


def _concrete_primitives(cls: type) -> set[type]:
    """Every subclass of ``cls`` at any depth that is a primitive (has a ``numpy_impl``); the
    shared bases (``OrderedPrimitive``, ``DerivativePrimitive``) have none."""
    out: set[type] = set()
    for sub in cls.__subclasses__():
        out |= _concrete_primitives(sub) | ({sub} if hasattr(sub, "numpy_impl") else set())
    return out


def test_every_sympy_primitive_is_in_the_table():
    declared = {p.function for p in primitive_table.TABLE}
    defined = _concrete_primitives(primitives.StablePrimitive)
    assert declared == defined
    assert set(SAMPLES) == {p.name for p in primitive_table.TABLE}


@pytest.mark.parametrize("spec", primitive_table.TABLE, ids=lambda p: p.name)
def test_printed_torch_call_matches_numpy_reference(spec):
    order, xs = SAMPLES[spec.name]
    expr = spec.function(ETA) if order is None else spec.function(order, ETA)
    code = torch_code(expr, ETA)
    assert code.startswith(f"{spec.torch_call}(eta")
    x = torch.tensor(xs, dtype=torch.float64)
    fn = _resolve(spec.torch_call)
    got = (
        fn(x)
        if order is None
        else fn(x, float(order) if spec.torch_order == "float" else int(order))
    )
    ref = spec.numpy_reference(*([] if order is None else [order]), np.array(xs))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("spec", primitive_table.TABLE, ids=lambda p: p.name)
def test_c_printer_uses_the_table_call_and_records_orders(spec):
    order, _ = SAMPLES[spec.name]
    printer = KernelPrinter()
    expr = spec.function(ETA) if order is None else spec.function(order, ETA)
    text = printer.doprint(expr)
    assert text.startswith(spec.c_call + ("(" if order is None else "_s"))
    if order is None:
        assert printer.needed == {}
    else:
        assert printer.needed == {(spec.name, float(order)): order}
        assert spec.c_constants(order).kind == spec.name


@pytest.mark.parametrize(
    "spelling",
    [
        sp.log(-sp.log(1 - sp.exp(ETA))),
        sp.log(sp.polylog(1, sp.exp(ETA))),
        sp.log(-sp.log(1 - sp.exp(2 * ETA))) + ETA,
    ],
)
def test_stabiliser_finds_log_li1_through_the_table_rule(spelling):
    got = stabilize(spelling)
    assert got.has(primitives.logli1exp)
    assert not got.has(primitives.polylog_exp)
    # mathematically equal: compare with the unrewritten spelling in mpmath at 50 digits (the
    # cancellation of 1 - e^eta costs 9 of them at eta = -20). Not sp.N: its evalf of the
    # nested logs depended on SymPy's cache (a 2 pi i branch after some other tests had run).
    rewritten = sp.lambdify(ETA, primitives.to_definition(got), "mpmath")
    original = sp.lambdify(ETA, spelling, "mpmath")
    with mpmath.workdps(50):
        for eta in (mpmath.mpf(-20), mpmath.mpf(-1), mpmath.mpf(-1) / 100):
            a, b = rewritten(eta), original(eta)
            assert abs(a - b) < 1e-25 * max(1, abs(b))
