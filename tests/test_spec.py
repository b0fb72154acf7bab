"""Spec parsing: valid specs parse; each malformed spec raises one SpecError naming the field."""

from __future__ import annotations

import pytest
import sympy as sp

from deqfam.derive.spec import ETA, SpecError, parse_spec, read_spec

GOOD = """\
name: poisson_like
description: test
support: nonnegative_integers
sufficient_statistic: y
log_partition: c*exp(eta)
base_measure: 1/factorial(y)
parameters: {c: 2}
domain: [-oo, oo]
"""


def test_good_spec_parses_to_sympy():
    spec = parse_spec(GOOD, source="good.yaml")
    c = spec.parameter_symbols["c"]
    assert sp.simplify(spec.log_partition - c * sp.exp(ETA)) == 0
    assert spec.parameters == {"c": 2}
    assert spec.domain == (-sp.oo, sp.oo)


def test_float_parameters_are_exact_rationals():
    spec = parse_spec(GOOD.replace("{c: 2}", "{c: 1.5}"))
    assert spec.parameters["c"] == sp.Rational(3, 2)


def _replace(field: str, value: str) -> str:
    lines = [ln for ln in GOOD.splitlines() if not ln.startswith(field + ":")]
    return "\n".join(lines) + f"\n{field}: {value}\n"


# (spec text, field the message must name, a phrase the message must contain)
MALFORMED = [
    (GOOD + "colour: red\n", "colour", "unknown field"),
    (
        GOOD.replace("log_partition: c*exp(eta)", "log_partition: c*exp(zeta_)"),
        "log_partition",
        "unknown symbol 'zeta_'",
    ),
    (GOOD.replace("c*exp(eta)", "d*exp(eta)"), "log_partition", "unknown symbol 'd'"),
    (
        GOOD.replace("c*exp(eta)", "__import__('os').system('true')"),
        "log_partition",
        "double-underscore",
    ),
    (GOOD.replace("c*exp(eta)", "exp(eta).real"), "log_partition", "attribute access"),
    (GOOD.replace("c*exp(eta)", "eval(eta)"), "log_partition", "unknown function 'eval'"),
    (GOOD.replace("c*exp(eta)", "exp(eta).__class__"), "log_partition", "double-underscore"),
    (GOOD.replace("c*exp(eta)", "'(lambda: 1)()'"), "log_partition", "only plain function calls"),
    (GOOD.replace("c*exp(eta)", "exp(eta"), "log_partition", "cannot parse"),
    (GOOD.replace("c*exp(eta)", "10**10**10 * eta"), "log_partition", "exponent"),
    (GOOD.replace("c*exp(eta)", "eta^2"), "log_partition", "write '**'"),
    (GOOD.replace("c*exp(eta)", "c*ехр(eta)"), "log_partition", "non-ASCII"),
    (GOOD.replace("c*exp(eta)", "c"), "log_partition", "must depend on eta"),
    (GOOD.replace("domain: [-oo, oo]", "domain: [0, 0]"), "domain", "lo < hi"),
    (GOOD.replace("domain: [-oo, oo]", "domain: [1, -1]"), "domain", "lo < hi"),
    (GOOD.replace("domain: [-oo, oo]", "domain: [-oo]"), "domain", "two ends"),
    (GOOD.replace("domain: [-oo, oo]", "domain: [-oo, infinity]"), "domain", "-oo/oo"),
    (GOOD.replace("support: nonnegative_integers", "support: naturals"), "support", "Input"),
    (GOOD.replace("name: poisson_like", "name: Poisson Like"), "name", "must match"),
    (
        GOOD.replace("log_partition: c*exp(eta)", "log_partition: 3"),
        "log_partition",
        "valid string",
    ),
    (GOOD.replace("parameters: {c: 2}", "parameters: {eta: 2}"), "parameters", "reserved"),
    (
        GOOD.replace("sufficient_statistic: y", "sufficient_statistic: eta"),
        "sufficient_statistic",
        "unknown symbol 'eta'",
    ),
    (_replace("log_partition", "").replace("log_partition: \n", ""), "log_partition", "missing"),
    (GOOD + "parameter_ranges: {c: [3, oo]}\n", "parameter_ranges", "outside its range"),
]


@pytest.mark.parametrize(("text", "field", "phrase"), MALFORMED)
def test_malformed_spec_names_field_and_line(text, field, phrase, tmp_spec):
    path = tmp_spec(text)
    with pytest.raises(SpecError) as info:
        read_spec(path)
    err = info.value
    assert err.field == field
    assert phrase in str(err)
    assert str(path) in str(err)
    lines = text.splitlines()
    if any(ln.startswith(field + ":") for ln in lines):
        expected = next(i for i, ln in enumerate(lines, 1) if ln.startswith(field + ":"))
        assert err.line == expected
        assert f"{path}:{expected}:" in str(err)


def test_bad_yaml_reports_line():
    with pytest.raises(SpecError) as info:
        parse_spec("name: x\nsupport: [real\n", source="s.yaml")
    assert info.value.line is not None
    assert "invalid YAML" in str(info.value)


def test_yaml_aliases_and_python_tags_are_refused():
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
    with pytest.raises(SpecError, match="aliases"):
        parse_spec(bomb)
    with pytest.raises(SpecError, match="invalid YAML"):
        parse_spec("name: !!python/object/apply:os.system ['true']\n")


def test_not_a_mapping():
    with pytest.raises(SpecError, match="mapping"):
        parse_spec("- just\n- a list\n")


def test_deeply_nested_expression_is_refused():
    deep = "(" * 60 + "eta" + ")" * 60
    text = GOOD.replace("c*exp(eta)", "exp(" * 60 + "eta" + ")" * 60)
    with pytest.raises(SpecError, match="nested"):
        parse_spec(text)
    # plain parentheses do not nest the AST, so they are fine
    assert parse_spec(GOOD.replace("c*exp(eta)", deep)).log_partition == ETA


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        read_spec(tmp_path / "nope.yaml")
