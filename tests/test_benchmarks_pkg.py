"""The benchmarks package: shared helpers, JSON records, and BENCHMARKS.md rendered from them.

Nothing heavy runs here: scripts are imported and asked for ``--help`` only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import common, render  # noqa: E402

HELPERS = {"common", "fused_figures", "render", "tables"}
SCRIPTS = sorted(
    m.name for m in pkgutil.iter_modules([str(ROOT / "benchmarks")]) if m.name not in HELPERS
)

CHECK_TIME = {
    "repeats": 3,
    "rows": [
        {"family": "poisson", "verdict": "admissible", "strength": "proven", "median_s": 0.0164},
        {"family": "gamma", "verdict": "admissible", "strength": "proven", "median_s": 1.23456},
    ],
}
EXPECTED_TABLE = """| family | verdict | strength | median s |
|---|---|---|---:|
| poisson | admissible | proven | 0.016 |
| gamma | admissible | proven | 1.235 |"""
PROSE_BEFORE = "# Benchmarks\n\nHand-written prose, kept *as is*.\n\n"
PROSE_AFTER = "\n\nMore prose: | not | a table |\n"


def record(figures: dict, quick: bool = False) -> dict:
    return {"benchmark": "check_time", "command": "python -m benchmarks.check_time", "date": "x",
            "quick": quick, "machine": {}, "figures": figures}  # fmt: skip


@pytest.fixture
def doc_and_results(tmp_path):
    """A Markdown file with one stale check_time table and a results folder for it."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "check_time.json").write_text(json.dumps([record(CHECK_TIME)]))
    doc = tmp_path / "BENCHMARKS.md"
    stale = "<!-- table:check_time -->\n| old | table |\n<!-- /table:check_time -->"
    doc.write_text(PROSE_BEFORE + stale + PROSE_AFTER)
    return doc, results


def test_render_round_trip_json_to_table(doc_and_results):
    doc, results = doc_and_results
    text = render.render_text(doc.read_text(), results)
    block = f"<!-- table:check_time -->\n{EXPECTED_TABLE}\n<!-- /table:check_time -->"
    assert text == PROSE_BEFORE + block + PROSE_AFTER


def test_check_detects_a_stale_table_and_render_fixes_it(doc_and_results, capsys):
    doc, results = doc_and_results
    argv = ["--doc", str(doc), "--results", str(results)]
    assert render.main(["--check", *argv]) == 1
    assert "stale tables: check_time" in capsys.readouterr().err
    assert render.main(argv) == 0
    assert EXPECTED_TABLE in doc.read_text()
    assert render.main(["--check", *argv]) == 0


def test_quick_records_are_never_rendered(doc_and_results):
    doc, results = doc_and_results
    quick = {**CHECK_TIME, "rows": [{**CHECK_TIME["rows"][0], "median_s": 99.0}]}
    path = results / "check_time.json"
    path.write_text(json.dumps([record(CHECK_TIME), record(quick, quick=True)]))
    text = render.render_text(doc.read_text(), results)
    assert "| poisson | admissible | proven | 0.016 |" in text
    assert "99.000" not in text


def test_missing_record_or_unknown_table_is_bad_input(doc_and_results):
    doc, results = doc_and_results
    (results / "check_time.json").unlink()
    assert render.main(["--check", "--doc", str(doc), "--results", str(results)]) == 2
    doc.write_text("<!-- table:nope -->\n<!-- /table:nope -->\n")
    with pytest.raises(render.RenderError, match="unknown table"):
        render.render_text(doc.read_text(), results)


def test_committed_benchmarks_md_is_up_to_date_with_the_json():
    assert render.main(["--check"]) == 0


def test_median_time_takes_the_median_of_the_timed_runs_after_warmup():
    """Fake clock: call k (warm-up included) lasts durations[k] ticks."""
    durations = iter([100.0, 5.0, 1.0, 3.0, 2.0, 4.0])
    now = [0.0]

    def fn():
        now[0] += next(durations)

    median = common.median_time(fn, 5, warmup=1, clock=lambda: now[0])
    assert median == 3.0  # median of 5, 1, 3, 2, 4; the 100-tick warm-up is not timed
    assert common.time_runs(lambda: None, 2, warmup=0, clock=lambda: 7.0) == [0.0, 0.0]
    with pytest.raises(ValueError):
        common.median_time(fn, 0)


def test_write_result_appends_records_with_command_machine_and_strict_json(tmp_path):
    out = tmp_path / "r.json"
    args = argparse.Namespace(json_out=out, quick=True)
    common.write_result("demo", args, {"x": float("inf"), "y": [1.5, float("nan")]}, argv=["-a"])
    common.write_result("demo", args, {"x": 2.0}, argv=["--b", "c d"])
    records = json.loads(out.read_text())  # strict: no NaN/Infinity literals
    assert [r["figures"] for r in records] == [{"x": None, "y": [1.5, None]}, {"x": 2.0}]
    assert records[1]["command"] == "python -m benchmarks.demo --b 'c d'"
    assert records[0]["quick"] is True
    assert {"cores", "torch", "threads"} <= records[0]["machine"].keys()


def test_grid_for_is_the_smallest_grid_with_enough_latents():
    from deqfam.runtime.datasets import ground_truth_latents

    side = common.grid_for(500)
    assert ground_truth_latents(side).shape[0] >= 500 > ground_truth_latents(side - 1).shape[0]


def test_paper_batch_rows_come_from_the_library_dataset():
    batch = common.paper_batch("poisson", 40, data_dim=5, seed=3)
    full = common.paper_dataset("poisson", n_grid=common.grid_for(40), data_dim=5, seed=3)
    assert batch.Y.shape == (40, 5)
    # every drawn latent is a distinct row of the library's data set, with its own Y
    rows = [int((full.Z == z).all(1).nonzero()) for z in batch.Z]
    assert len(set(rows)) == 40
    assert (full.Y[rows] == batch.Y).all()


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_imports_and_parses_help(name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--seed", "--repeats", "--threads", "--json-out", "--quick"):
        assert option in help_text


def test_no_benchmark_reaches_into_tests():
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "runtime_families" not in text and "sys.path" not in text, path.name
