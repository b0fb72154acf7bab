"""Hostile specs: the spec reader and the derivation are a trust boundary.

Every hostile input of the table below gets one ``SpecError`` naming the field (never a
traceback from SymPy or PyYAML, never code execution) in bounded time, and a property-based
fuzz test over generated spec documents checks that *any* document gives either a valid
``Family`` or a ``SpecError`` within a per-case time bound.

``python tests/test_fuzz_spec.py`` prints the Markdown table of ``docs/reliability.md``
(each hostile input and the exact message the user sees); a test checks the two agree.
"""

from __future__ import annotations

import math
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deqfam.derive import spec as spec_module
from deqfam.derive.family import Family, derive_family
from deqfam.derive.spec import (
    SUPPORTS,
    DeadlineExceeded,
    SpecError,
    deadline,
    parse_spec,
)
from deqfam.derive.spec_derivation import run_derivation

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
SECONDS_PER_CASE = 5.0  # generous on a loaded 2-core machine; typical refusals take ~1 ms

BASE = """\
name: hostile
support: real
sufficient_statistic: y
log_partition: eta**2/2
domain: [-oo, oo]
"""


def with_field(field: str, value: str) -> str:
    """BASE with ``field`` set to the raw YAML ``value`` (added when absent)."""
    lines = [ln for ln in BASE.splitlines() if not ln.startswith(field + ":")]
    lines.insert(3 if field == "log_partition" else len(lines), f"{field}: {value}")
    return "\n".join(lines) + "\n"


def A(expr: str) -> str:
    """BASE with log_partition = expr (single-quoted YAML scalar)."""
    return with_field("log_partition", "'" + expr.replace("'", "''") + "'")


# (id, spec text, field named by the error or None, phrase the message contains)
HOSTILE: list[tuple[str, str, str | None, str]] = [
    # --- YAML layer
    ("billion laughs", 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n', None, "aliases"),
    ("merge key alias", "base: &b {name: x}\n<<: *b\n", None, "aliases"),
    (
        "python/object tag",
        "name: !!python/object/apply:os.system ['true']\n",
        None,
        "could not determine a constructor",
    ),
    ("python/name tag", "name: !!python/name:os.system\n", None, "could not determine"),
    ("deep YAML nesting", "a: " + "[" * 20000 + "]" * 20000 + "\n", None, "nested too deeply"),
    ("5000-digit integer", BASE + "parameters: {c: " + "9" * 5000 + "}\n", None, "4300 digits"),
    ("duplicate key", BASE + "name: other\n", None, "duplicate key 'name'"),
    ("spec > 64 KiB", BASE + "description: " + "x" * 70000 + "\n", None, "larger than 65536"),
    ("not a mapping", "- a\n- list\n", None, "YAML mapping"),
    ("empty document", "", None, "YAML mapping"),
    ("NUL byte", BASE.replace("eta**2/2", "eta\x00"), None, "unacceptable character"),
    # --- schema: missing fields and wrong types in every field
    (
        "missing log_partition",
        BASE.replace("log_partition: eta**2/2\n", ""),
        "log_partition",
        "required field is missing",
    ),
    ("missing domain", BASE.replace("domain: [-oo, oo]\n", ""), "domain", "missing"),
    ("missing support", BASE.replace("support: real\n", ""), "support", "missing"),
    ("unknown field (look-alike key)", BASE + "nаme: x\n", "nаme", "did you mean 'name'"),
    ("name: number", with_field("name", "123"), "name", "valid string"),
    ("name: date", with_field("name", "2001-01-01"), "name", "valid string"),
    ("name: 100 chars", with_field("name", "a" * 100), "name", "at most 64 characters"),
    ("support: number", with_field("support", "5"), "support", "Input should be 'real'"),
    ("support: look-alike", with_field("support", "reаl"), "support", "Input should be"),
    ("description: list", with_field("description", "[1, 2]"), "description", "valid string"),
    ("log_partition: number", with_field("log_partition", "3"), "log_partition", "valid string"),
    ("log_partition: list", with_field("log_partition", "[eta]"), "log_partition", "valid string"),
    ("log_partition: null", with_field("log_partition", "null"), "log_partition", "valid string"),
    (
        "sufficient_statistic: mapping",
        with_field("sufficient_statistic", "{a: 1}"),
        "sufficient_statistic",
        "valid string",
    ),
    ("base_measure: boolean", with_field("base_measure", "true"), "base_measure", "valid string"),
    ("parameters: list", with_field("parameters", "[1, 2]"), "parameters", "valid dictionary"),
    (
        "parameters: string value",
        with_field("parameters", "{c: '10**40'}"),
        "parameters",
        "valid integer",
    ),
    (
        "parameters: boolean value",
        with_field("parameters", "{c: true}"),
        "parameters",
        "valid integer",
    ),
    (
        "parameters: 1e35",
        with_field("parameters", "{c: 100000000000000000000000000000000000}"),
        "parameters",
        "larger than 1e+30",
    ),
    ("parameters: .nan", with_field("parameters", "{c: .nan}"), "parameters", "finite"),
    ("parameters: reserved name", with_field("parameters", "{eta: 1}"), "parameters", "reserved"),
    (
        "parameter_ranges: number",
        BASE + "parameters: {c: 1}\nparameter_ranges: {c: 5}\n",
        "parameter_ranges",
        "valid list",
    ),
    ("domain: string", with_field("domain", "'[-oo, oo]'"), "domain", "valid list"),
    ("domain: three ends", with_field("domain", "[-oo, 0, oo]"), "domain", "exactly two"),
    ("domain: nan", with_field("domain", "[.nan, 1]"), "domain", "got nan"),
    (
        "domain: 4000-digit end",
        with_field("domain", "[-oo, " + "9" * 4000 + "]"),
        "domain",
        "4000-digit number",
    ),
    ("domain: empty interval", with_field("domain", "[1, 1]"), "domain", "lo < hi"),
    # --- expressions: code execution attempts
    ("__import__", A("__import__('os').system('true')"), "log_partition", "double-underscore"),
    ("__class__ escape", A("Symbol('x').__class__.__mro__"), "log_partition", "double-underscore"),
    ("attribute access", A("eta.func"), "log_partition", "attribute access"),
    ("lambda", A("(lambda: eta)()"), "log_partition", "only plain function calls"),
    ("lambda value", A("lambda: eta"), "log_partition", "lambda is not allowed"),
    ("eval call", A("eval('eta')"), "log_partition", "unknown function 'eval'"),
    ("Symbol call", A("Symbol('x')"), "log_partition", "unknown function 'Symbol'"),
    ("string literal", A("'eta'"), "log_partition", "is not a number"),
    ("f-string", A("f'{eta}'"), "log_partition", "'JoinedStr' is not allowed"),
    ("conditional", A("eta if eta else 1"), "log_partition", "'IfExp' is not allowed"),
    ("subscript", A("eta[0]"), "log_partition", "'Subscript' is not allowed"),
    ("unicode look-alike", A("ехр(eta)"), "log_partition", "non-ASCII"),
    ("fullwidth letters", A("ｅｔａ**2"), "log_partition", "non-ASCII"),
    ("unknown symbol", A("x**2"), "log_partition", "unknown symbol 'x'"),
    ("caret power", A("eta^2"), "log_partition", "write '**'"),
    # --- expressions: size, nesting, runaway numbers
    (
        "very long expression",
        A("+".join(["eta**2"] * 400)),
        "log_partition",
        "longer than 2000 characters",
    ),
    (
        "deeply nested calls",
        A("exp(" * 60 + "eta" + ")" * 60),
        "log_partition",
        "nested deeper than 40",
    ),
    ("unary minus chain", A("-" * 1900 + "eta"), "log_partition", "nested deeper than 40"),
    (
        "too many nodes",
        A("+".join(f"exp({k}*eta)" for k in range(1, 150))),
        "log_partition",
        "more than 300 nodes",
    ),
    ("10**10**10", A("10**10**10 * eta"), "log_partition", "numeric exponent larger than 1000"),
    ("E**E**E**E", A("E**E**E**E*eta"), "log_partition", "numeric exponent larger than 1000"),
    ("2**1000", A("2**1000*eta**2"), "log_partition", "larger than 1e+30"),
    ("1e308 literal", A("1e308*eta**2"), "log_partition", "larger than 1e+30"),
    ("exp(1000) constant", A("exp(1000)*eta**2"), "log_partition", "overflows float64"),
    ("factorial(10**6)", A("factorial(10**6)*eta**2"), "log_partition", "limited to |x| <= 1000"),
    (
        "factorial tower",
        A("factorial(factorial(factorial(10)))*eta"),
        "log_partition",
        "limited to |x| <= 1000",
    ),
    (
        "binomial(10**50, 10**20)",
        A("binomial(10**50, 10**20)*eta"),
        "log_partition",
        "larger than 1e+30",
    ),
    ("eta**1000", A("eta**1000"), "log_partition", "limited to |p| <= 16"),
    ("(1+eta)**1000", A("(1 + eta)**1000"), "log_partition", "limited to |p| <= 16"),
    ("merged power (eta**10)**10", A("(eta**10)**10"), "log_partition", "|p| <= 16"),
    (
        "exp(exp(exp(eta)))",
        A("exp(exp(exp(eta)))"),
        "log_partition",
        "3 nested exponential-type functions",
    ),
    (
        "exp(exp(exp(exp(eta))))",
        A("exp(exp(exp(exp(eta))))"),
        "log_partition",
        "4 nested exponential-type functions",
    ),
    ("2**2**2**eta", A("2**2**2**eta"), "log_partition", "nested exponential-type"),
    # --- expressions: undefined or complex values
    ("gamma(-1)", A("gamma(-1)*eta**2"), "log_partition", "gamma(-1) is infinite or undefined"),
    ("log(0)", A("eta**2/2 + log(0)"), "log_partition", "log(0) is infinite or undefined"),
    ("zeta(1)", A("zeta(1)*eta**2"), "log_partition", "infinite or undefined"),
    ("loggamma(0)", A("loggamma(0)*eta**2"), "log_partition", "infinite or undefined"),
    ("zoo symbol", A("zoo*eta"), "log_partition", "unknown symbol 'zoo'"),
    ("division by zero", A("eta/0"), "log_partition", "division by zero"),
    ("division by eta-eta", A("1/(eta - eta)"), "log_partition", "division by zero"),
    ("sqrt(-1)", A("sqrt(-1)*eta**2"), "log_partition", "is not real"),
    ("log(-1)", A("log(-1)*eta**2"), "log_partition", "is not real"),
    ("complex polylog", A("polylog(3, 2)*eta**2"), "log_partition", "is not real"),
    ("no eta", A("pi"), "log_partition", "must depend on eta"),
    # --- parameter values that blow up after substitution (checked before SymPy sees them)
    (
        "c**c**c with c=1000",
        A("eta**2*c**c**c") + "parameters: {c: 1000}\n",
        "log_partition",
        "with parameters c=1000",
    ),
    (
        "eta**c with c=1000",
        A("eta**c") + "parameters: {c: 1000}\n",
        "log_partition",
        "limited to |p| <= 16",
    ),
    (
        "1/c with c=0",
        A("eta**2/c") + "parameters: {c: 0}\n",
        "log_partition",
        "infinite or undefined",
    ),
    (
        "log(c) with c=-1",
        A("eta**2 + log(c)") + "parameters: {c: -1}\n",
        "log_partition",
        "is not real",
    ),
]
IDS = [case[0] for case in HOSTILE]


def refusal(text: str) -> SpecError:
    """The SpecError for ``text`` (parse and derive), or fail the test."""
    try:
        derive_family(parse_spec(text, source="hostile.yaml"))
    except SpecError as exc:
        return exc
    pytest.fail("the hostile spec was accepted")


@pytest.mark.parametrize(("name", "text", "field", "phrase"), HOSTILE, ids=IDS)
def test_hostile_spec_is_refused_clearly_and_quickly(name, text, field, phrase):
    t0 = time.perf_counter()
    err = refusal(text)
    elapsed = time.perf_counter() - t0
    assert elapsed < SECONDS_PER_CASE, (name, elapsed)
    assert err.field == field, str(err)
    assert phrase in str(err), str(err)
    assert str(err).startswith("hostile.yaml")
    assert err.__cause__ is None or not isinstance(err.__cause__, RecursionError)


def test_python_tags_do_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError):
        parse_spec(text)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# The derivation step: SymPy failures and overruns become SpecError
# --------------------------------------------------------------------------------------------


def test_sympy_failure_in_derivation_names_the_field():
    spec = parse_spec(BASE, source="s.yaml")

    def broken(_spec):
        raise ZeroDivisionError("division by zero inside SymPy")

    with pytest.raises(SpecError, match="SymPy failed while deriving the family: ZeroDiv") as info:
        run_derivation(spec, broken)
    assert info.value.field == "log_partition" and info.value.line == 4

    def recursing(_spec):
        return recursing(_spec)

    with pytest.raises(SpecError, match="recursion limit"):
        run_derivation(spec, recursing)


def test_slow_derivation_is_refused_within_its_time_limit():
    spec = parse_spec(BASE)

    def busy(_spec):  # pure Python, like SymPy: interrupted by the alarm
        while True:
            sum(range(1000))

    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"took longer than 0\.3 s") as info:
        run_derivation(spec, busy, time_limit=0.3)
    assert time.perf_counter() - t0 < 3.0
    assert info.value.field == "log_partition"


def test_real_sympy_work_is_interrupted():
    """An allowed but expensive log-partition (unseen by SymPy's cache: odd coefficient)
    is refused after the budget instead of running for tens of seconds."""
    text = A("log(cosh(sinh(eta)))**5/7919 + tanh(eta)**16*atan(eta)**13/104729")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"took longer than 0\.5 s"):
        derive_family(parse_spec(text), time_limit=0.5)
    assert time.perf_counter() - t0 < 4.0


def test_optional_steps_fall_back_instead_of_refusing(monkeypatch):
    """Inverse link and convexity proof get their own small budget; overrunning it gives
    'no inverse link' / 'unproven', not a refusal of a legitimate spec."""
    monkeypatch.setattr(spec_module, "OPTIONAL_STEP_TIME_LIMIT", 1e-3)
    fam = derive_family(parse_spec(A("log(cosh(eta))/3 + eta**2/7907")))
    assert isinstance(fam, Family)
    assert fam.inverse_link is None
    assert not fam.convexity.proven and "timed out" in fam.convexity.method


def test_deadline_nests_and_restores_the_callers_timer():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with pytest.raises(DeadlineExceeded), deadline(5.0), deadline(0.05):
            while True:
                pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20.0 < remaining <= 30.0  # the caller's timer is back, minus our time
        assert signal.getsignal(signal.SIGALRM) is not spec_module._on_alarm
        with deadline(None):  # no limit: a no-op
            pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


# --------------------------------------------------------------------------------------------
# Property-based fuzzing of whole spec documents
# --------------------------------------------------------------------------------------------

FUZZ_TIME_LIMIT = 2.0  # derivation budget per case; the case bound below adds slack

LEAVES = [
    "eta", "y", "c", "0", "1", "2", "-1", "0.5", "3.25", "1e308", "10**40", "pi", "E",
    "oo", "zoo", "nan", "I", "x", "еta", "__x", "'s'", "[1]", "True",
]  # fmt: skip
UNARY = [
    "exp", "log", "sqrt", "cosh", "sinh", "tanh", "atan", "log1p", "expm1", "factorial",
    "gamma", "loggamma", "zeta", "Abs", "eval", "__import__", "Symbol", "open", "ехр",
]  # fmt: skip
BINARY = ["polylog", "binomial", "Max", "Min", "getattr"]
OPS = ["+", "-", "*", "/", "**", "^", "%", "//", "@", "<", " if 1 else "]


def _combine(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(OPS), children).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"
        ),
        st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(BINARY), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        children.map(lambda a: f"-({a})"),
        children.map(lambda a: f"({a}).__class__"),
        children.map(lambda a: f"({a}).func"),
        children.map(lambda a: f"lambda: {a}"),
    )


EXPR = st.recursive(st.sampled_from(LEAVES), _combine, max_leaves=5)
# well-formed expressions over whitelisted names only, so that many documents reach the
# derivation (and some of those are weird enough to need its guards)
CLEAN_UNARY = ["exp", "log", "sqrt", "cosh", "sinh", "tanh", "atan", "log1p", "gamma", "Abs"]
CLEAN = st.recursive(
    st.sampled_from(["eta", "eta", "c", "1", "2", "0.5", "3", "pi"]),
    lambda children: st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"
        ),
        st.tuples(st.sampled_from(CLEAN_UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=4,
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
NUMBER = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-3, max_value=20),
)


HOSTILE_FIELDS = {
    "name": st.one_of(st.text(max_size=10), JUNK),
    "description": JUNK,
    "support": st.one_of(st.text(max_size=12), JUNK),
    "sufficient_statistic": st.one_of(EXPR, JUNK),
    "log_partition": st.one_of(EXPR, EXPR.map(lambda e: f"eta**2/2 + {e}"), JUNK),
    "base_measure": st.one_of(EXPR, JUNK),
    "parameters": st.one_of(
        st.dictionaries(st.sampled_from(["c", "eta", "__c", "с", "c d", "pi"]), NUMBER, max_size=2),
        JUNK,
    ),
    "domain": st.one_of(
        st.lists(st.one_of(NUMBER, st.sampled_from(["-oo", "oo", "inf", "x"])), max_size=3),
        JUNK,
    ),
}
YAML_NOISE = ["&a ", "*a", "!!python/object/apply:os.system ['true'] ", "{", "]", ": ", "\t"]


@st.composite
def spec_documents(draw) -> str:
    """A valid-looking document (well-formed log-partition over eta and c), then 0-2 hostile
    mutations: a field replaced by a hostile value, a field deleted, an unknown field, or raw
    YAML damage."""
    doc = {
        "name": "fuzz",
        "support": draw(st.sampled_from(SUPPORTS)),
        "sufficient_statistic": "y",
        "log_partition": draw(st.one_of(CLEAN, CLEAN.map(lambda e: f"eta**2/2 + {e}"))),
        "parameters": {"c": draw(st.sampled_from([2, 0.5, -1, 0, 1000]))},
        "domain": draw(st.sampled_from([["-oo", "oo"], ["-oo", 0], [0, "oo"]])),
    }
    damage = None
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["replace", "replace", "delete", "extra", "yaml"]))
        key = draw(st.sampled_from(sorted(HOSTILE_FIELDS)))
        if kind == "replace":
            doc[key] = draw(HOSTILE_FIELDS[key])
        elif kind == "delete":
            doc.pop(key, None)
        elif kind == "extra":
            doc[draw(st.sampled_from(["colour", "nаme", "Domain"]))] = draw(JUNK)
        else:
            damage = draw(st.sampled_from(YAML_NOISE))
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if damage is not None:  # YAML syntax the dumper never writes
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + damage + text[pos:]
    return text


def test_fuzzed_specs_give_a_family_or_a_spec_error_in_bounded_time(monkeypatch):
    monkeypatch.setattr(spec_module, "OPTIONAL_STEP_TIME_LIMIT", 0.25)
    outcomes = {"family": 0, "refused": 0}
    slowest = [0.0]
    bound = FUZZ_TIME_LIMIT + 2 * 0.25 + 2.0

    @settings(
        max_examples=200,  # derandomized: the same 200 documents on every run (about 10 s)
        deadline=timedelta(seconds=bound + 5.0),
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec_documents())
    def check(text: str) -> None:
        t0 = time.perf_counter()
        try:
            fam = derive_family(parse_spec(text, source="fuzz.yaml"), time_limit=FUZZ_TIME_LIMIT)
        except SpecError as exc:
            assert str(exc).startswith("fuzz.yaml")
            outcomes["refused"] += 1
        else:
            assert isinstance(fam, Family)
            assert math.isfinite(fam.domain_floats[0]) or fam.domain_floats[0] == -math.inf
            outcomes["family"] += 1
        elapsed = time.perf_counter() - t0
        slowest[0] = max(slowest[0], elapsed)
        assert elapsed < bound, (text, elapsed)

    check()
    print(outcomes, slowest)
    assert outcomes["family"] + outcomes["refused"] >= 200, outcomes
    assert outcomes["family"] >= 10, outcomes  # the generator also produces valid specs


# --------------------------------------------------------------------------------------------
# docs/reliability.md shows exactly these messages
# --------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(text: str, limit: int = 70) -> str:
    """The lines of ``text`` that differ from BASE (``-`` removed, else added), shortened."""
    base, lines = BASE.splitlines(), text.splitlines()
    parts = [ln for ln in lines if ln not in base]
    if any(ln in base for ln in lines) or not lines:  # an edited spec: also show removals
        parts += [f"- {ln}" for ln in base if ln not in lines]
    text = " / ".join(parts) if parts else text
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return "`" + _cell(text).replace("`", "'").replace("\x00", "\\0") + "`"


def hostile_spec_rows() -> list[str]:
    """Markdown rows: case | input | message the user sees."""
    rows = []
    for name, text, _field, _phrase in HOSTILE:
        err = refusal(text)
        rows.append(f"| {_cell(name)} | {_shown(text)} | {_cell(str(err))} |")
    return rows


def test_docs_table_matches_current_messages():
    doc = DOC.read_text(encoding="utf-8")
    missing = [row for row in hostile_spec_rows() if row not in doc]
    assert not missing, (
        "docs/reliability.md is stale; regenerate with "
        "`python tests/test_fuzz_spec.py`:\n" + "\n".join(missing[:5])
    )


if __name__ == "__main__":  # pragma: no cover - prints the table for docs/reliability.md
    print("| hostile input | lines changed in a valid spec | what the user sees |")
    print("|---|---|---|")
    print("\n".join(hostile_spec_rows()))
