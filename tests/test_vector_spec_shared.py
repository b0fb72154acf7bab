"""Vector specs go through the scalar spec reader's shared helpers (issue 16 clean-up).

The parameters/ranges reader, the parameter-value guard of ``run_derivation``, the parameter
override and ``log h`` serve both kinds of spec; these tests hold the vector side to the
scalar side's rules. References: closed forms (``math.lgamma``) and the messages of the rules.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp

from deqfam.derive.family import load_family, log_of_base_measure
from deqfam.derive.spec import SpecError, Y, parse_spec

HEAD = "name: v\nsupport: real\nnatural_parameters: [a, b]\nsufficient_statistic: [y, y**2]\n"
BOX = "domain: {a: [-oo, oo], b: [-oo, 0]}\n"


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        load_family(parse_spec(text, source="v.yaml"))
    return err.value


def test_vector_parameter_values_are_guarded_before_derivation():
    """``c**c`` with ``c = 2000`` is refused by the substitution guard (a numeric exponent
    above the limit), naming the field and its line, before SymPy computes it."""
    text = HEAD + "log_partition: -a**2/(4*b) - log(-2*b)/2 + c**c\nparameters: {c: 2000}\n" + BOX
    err = _error(text)
    assert err.field == "log_partition" and err.line == 5
    assert "with parameters c=2000" in str(err) and "numeric exponent" in str(err)


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("parameters: {y: 1}\n", "parameters", "clashes with a reserved name"),
        ("parameters: {c: .inf}\n", "parameters", "must be finite"),
        ("parameter_ranges: {c: [0, 1]}\n", "parameter_ranges", "undeclared parameter"),
        ("parameters: {c: 3}\nparameter_ranges: {c: [0, 1]}\n", "parameter_ranges", "outside"),
        ("paramters: {c: 1}\n", "paramters", "did you mean 'parameters'"),
    ],
)
def test_vector_parameter_errors_follow_the_scalar_rules(extra, field, words):
    """The same message for a scalar and a vector spec, with the vector spec's line."""
    scalar = "name: s\nsupport: real\nlog_partition: eta**2/2\ndomain: [-oo, oo]\n" + extra
    vector = HEAD + "log_partition: -a**2/(4*b) - log(-2*b)/2\n" + BOX + extra
    for text in (scalar, vector):
        err = _error(text)
        assert err.field == field and words in str(err)
        lines = text.splitlines()
        assert err.line == next(i for i, l in enumerate(lines, 1) if l.startswith(field))


def test_vector_with_parameters_refuses_unknown_and_out_of_range():
    fam = load_family("categorical")
    with pytest.raises(SpecError, match=r"unknown parameter\(s\) \['L'\]; the spec declares"):
        fam.with_parameters(L=3)
    with pytest.raises(SpecError, match="lies outside its range"):
        fam.with_parameters(K=70)
    assert fam.with_parameters(K=4) is fam
    assert "# parameters overridden: K=3" in fam.with_parameters(K=3).spec.text


def test_log_of_base_measure_matches_lgamma():
    """log binomial(n, y) / y! as log-gamma terms, against math.lgamma at n=40, y=7."""
    n = sp.Integer(40)
    expr = log_of_base_measure(sp.binomial(n, Y) / sp.factorial(Y))
    want = math.lgamma(41) - math.lgamma(8) - math.lgamma(34) - math.lgamma(8)
    assert float(expr.subs(Y, 7)) == pytest.approx(want, rel=1e-14)
    assert log_of_base_measure(None) is None


def test_categories_spec_with_a_box_domain_says_one_interval():
    text = "name: c\nsupport: nonnegative_integers\ncategories: 3\ndomain: {eta1: [-oo, oo]}\n"
    err = _error(text)
    assert err.field == "domain" and err.line == 4
    assert "takes one interval [lo, hi] for every eta_i" in str(err)
