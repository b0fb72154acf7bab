"""Bounded work (issue 17, item 2): spec-level bounds on the numbers that drive work, and one
wall-clock budget for check/generate/export/fit setup/demo, in any thread.

The hang cases of the issue (polylog orders 10**9, -10**9, -999) must end quickly with exit
2 and a message naming the field; a slow but accepted spec must end within the budget with
exit 3 (check) or 2 (generate, export, fit), never a hang or a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sympy as sp

import deqfam
from deqfam.cli import main
from deqfam.derive.bounds import (
    MAX_LOG_MULTIPLIER,
    MAX_POLYLOG_ORDER,
    MAX_SERIES_TERMS,
    polynomial_degree_bound,
    series_too_long,
)
from deqfam.derive.budget import (
    BudgetExceeded,
    DeadlineExceeded,
    checkpoint,
    configured_time_limit,
    deadline,
    resolve_time_limit,
    time_budget,
)
from deqfam.derive.family import load_family
from deqfam.derive.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[1]
#: seconds an expired budget may take to unwind on a busy 2-core machine
MARGIN = 3.0


def _polylog_spec(order: str, domain: str = "[-oo, 0]") -> str:
    return (
        "name: p\nsupport: nonnegative_integers\n"
        f"log_partition: polylog({order}, exp(eta))\ndomain: {domain}\n"
    )


#: accepted (|s| <= MAX_POLYLOG_ORDER) but slow: mpmath's polylog of a negative non-integer
#: order costs ~0.4 s a point; measured 26 s for check and 30 s for generate
SLOW_SPEC = _polylog_spec("-99.5")


# ------------------------------------------------------------------------------------------
# (a) bounds on the numbers of a spec
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["10**9", "-10**9", "-999", "101", "-100.5"])
def test_polylog_order_is_bounded_at_parse_time(order):
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse_spec(_polylog_spec(order), source="p.yaml")
    assert time.perf_counter() - t0 < 2.0
    err = info.value
    assert err.field == "log_partition" and err.line == 3
    assert "polylog order" in err.message and str(MAX_POLYLOG_ORDER) in err.message


@pytest.mark.parametrize("order", ["10**9", "-10**9", "-999"])
@pytest.mark.parametrize("verb", ["check", "generate", "export"])
def test_issue_hang_cases_end_at_once_with_exit_2(order, verb, tmp_spec, tmp_path, capsys):
    path = tmp_spec(_polylog_spec(order))
    extra = {"generate": ["-o", str(tmp_path / "g")], "export": ["-o", str(tmp_path / "x.pt2")]}
    t0 = time.perf_counter()
    code = main([verb, str(path), "--time-limit", "5", *extra.get(verb, [])])
    assert code == 2
    assert time.perf_counter() - t0 < 5.0 + MARGIN
    err = capsys.readouterr().err
    assert "field 'log_partition'" in err and "polylog order" in err and ":3:" in err


def _builtin_text(name: str) -> str:
    return (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")


def test_polylog_order_from_a_parameter_is_bounded(tmp_spec):
    text = _builtin_text("bose_einstein").replace("j: 1.5", "j: 150")
    with pytest.raises(SpecError) as info:
        deqfam.load_family(tmp_spec(text))
    assert info.value.field == "log_partition"
    assert "j=150" in info.value.message and "polylog order" in info.value.message


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Modules generated on the fly go to a per-test cache, not ~/.cache."""
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("builtin", "old", "new", "field", "needle"),
    [
        ("binomial", "n: 16", "n: 1000000", "log_partition", "MAX_LOG_MULTIPLIER"),
        ("negative_binomial", "r: 3", "r: 1001", "log_partition", "MAX_LOG_MULTIPLIER"),
    ],
)
def test_parameters_that_drive_work_are_bounded(builtin, old, new, field, needle, tmp_spec):
    text = _builtin_text(builtin)
    assert old in text
    with pytest.raises(SpecError) as info:
        deqfam.load_family(tmp_spec(text.replace(old, new)))
    assert info.value.field == field and needle in info.value.message


def test_log_multiplier_literal_names_field_and_line():
    text = "name: b\nsupport: nonnegative_integers\nlog_partition: 5000*log(1 + exp(eta))\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text + "domain: [-oo, oo]\n")
    assert info.value.field == "log_partition" and info.value.line == 3
    assert str(MAX_LOG_MULTIPLIER) in info.value.message


def test_special_function_offset_is_bounded():
    text = (
        "name: g\nsupport: nonnegative_integers\nlog_partition: exp(eta)\n"
        "base_measure: 1/gamma(y + 1000000)\ndomain: [-oo, oo]\n"
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.field == "base_measure" and info.value.line == 4
    assert "MAX_SPECIAL_OFFSET" in info.value.message


@pytest.mark.slow
def test_builtins_and_examples_stay_within_the_bounds():
    from deqfam.derive.family import builtin_names

    for name in builtin_names():
        assert load_family(name).name == name
    for example in ("bernoulli_poisson", "logarithmic"):
        assert load_family(ROOT / "examples" / f"{example}.yaml").name


@pytest.mark.parametrize(
    "expr",
    ["(1 + x)**7 * (2 + x**3)**2", "x**5 + 3*x + 1", "((1 + x)**2 + x)**3 * x"],
)
def test_degree_bound_is_an_upper_bound_of_the_expanded_degree(expr):
    x = sp.Symbol("x", positive=True)
    e = sp.sympify(expr, locals={"x": x})
    assert polynomial_degree_bound(e, x) >= sp.Poly(sp.expand(e), x).degree()


def test_long_polynomial_series_is_skipped_not_expanded():
    x = sp.Symbol("x", positive=True)
    assert series_too_long((1 + x) ** (MAX_SERIES_TERMS - 1), x) is None
    why = series_too_long((1 + x) ** 1000, x)
    assert why is not None and "MAX_SERIES_TERMS" in why


# ------------------------------------------------------------------------------------------
# (b) the wall-clock budget
# ------------------------------------------------------------------------------------------


def test_resolve_time_limit_precedence(monkeypatch):
    monkeypatch.delenv("DEQFAM_TIME_LIMIT", raising=False)
    assert resolve_time_limit() == 120.0
    monkeypatch.setenv("DEQFAM_TIME_LIMIT", "7.5")
    assert resolve_time_limit() == 7.5
    with configured_time_limit("3"):
        assert resolve_time_limit() == 3.0
        assert resolve_time_limit(9) == 9.0
    monkeypatch.setenv("DEQFAM_TIME_LIMIT", "inf")
    assert resolve_time_limit() == float("inf")
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(ValueError):
            resolve_time_limit(bad)


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "soon"])
def test_bad_time_limit_is_exit_2(bad, capsys):
    assert main(["check", "bernoulli", "--time-limit", bad]) == 2
    assert "--time-limit" in capsys.readouterr().err


def test_bad_env_time_limit_is_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("DEQFAM_TIME_LIMIT", "-3")
    assert main(["check", "bernoulli"]) == 2
    assert "DEQFAM_TIME_LIMIT" in capsys.readouterr().err


def test_check_of_a_slow_spec_ends_within_budget_with_exit_3(tmp_spec, capsys):
    path = tmp_spec(SLOW_SPEC)
    t0 = time.perf_counter()
    code = main(["check", str(path), "--time-limit", "3", "--json"])
    elapsed = time.perf_counter() - t0
    assert code == 3 and elapsed < 3.0 + MARGIN
    captured = capsys.readouterr()
    assert '"verdict": "inconclusive"' in captured.out
    assert "time limit of 3 s" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("verb", ["generate", "export"])
def test_generate_and_export_end_within_budget_with_exit_2(verb, tmp_spec, tmp_path, capsys):
    path = tmp_spec(SLOW_SPEC)
    out = ["-o", str(tmp_path / ("g" if verb == "generate" else "x.pt2"))]
    if verb == "generate":
        out.append("--allow-inadmissible")
    t0 = time.perf_counter()
    code = main([verb, str(path), "--time-limit", "3", *out])
    assert code == 2 and time.perf_counter() - t0 < 3.0 + MARGIN
    assert "time limit of 3 s" in capsys.readouterr().err


def test_budget_works_in_a_worker_thread(tmp_spec):
    path = tmp_spec(SLOW_SPEC)
    outcome: dict[str, object] = {}

    def work() -> None:
        t0 = time.perf_counter()
        try:
            deqfam.check(path, time_limit=2.0)
            outcome["result"] = "finished"
        except BaseException as exc:  # record whatever ended it
            outcome["result"] = exc
        outcome["elapsed"] = time.perf_counter() - t0

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(2.0 + MARGIN + 5.0)
    assert not worker.is_alive()
    assert isinstance(outcome["result"], BudgetExceeded), outcome
    assert outcome["elapsed"] < 2.0 + MARGIN


def test_deadline_interrupts_pure_python_in_a_worker_thread():
    """No signal reaches a worker thread: the watchdog's asynchronous exception must."""
    outcome: list[object] = []

    def spin() -> None:
        try:
            with deadline(0.2):
                while True:
                    pass
        except DeadlineExceeded as exc:
            outcome.append(exc)

    worker = threading.Thread(target=spin)
    t0 = time.perf_counter()
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive() and len(outcome) == 1
    assert time.perf_counter() - t0 < 0.2 + MARGIN


def test_inner_deadline_cannot_swallow_the_outer_budget():
    """An optional step's own deadline (inner) must let the command budget (outer) through."""
    t0 = time.perf_counter()
    with pytest.raises(BudgetExceeded), time_budget(0.2, "outer"):
        try:
            with deadline(30.0):
                while True:
                    checkpoint()
        except DeadlineExceeded:  # what optional_step does with its own overrun
            pytest.fail("the inner deadline converted the outer budget's expiry")
    assert time.perf_counter() - t0 < 0.2 + MARGIN


@pytest.mark.slow
def test_subprocess_check_and_env_budget(tmp_spec):
    path = tmp_spec(SLOW_SPEC)
    env = {**os.environ, "DEQFAM_TIME_LIMIT": "4", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "deqfam", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "time limit of 4 s" in proc.stderr and "Traceback" not in proc.stderr
    # the interpreter start and imports (~5 s on a busy machine) come on top of the budget
    assert time.perf_counter() - t0 < 4.0 + MARGIN + 15.0
