"""benchmarks/paper_fig3.py's bookkeeping: the resumable per-trial JSON-lines log, the win
counts of the summary (checked against counts made by hand), the Procrustes disparity
(checked against a closed form) and the table renderer on old and new records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import paper_fig3, tables  # noqa: E402

CONFIG = {"n_grid": 30, "head_epochs": 50, "umap": True}


def trial(t: int, pca: float, umap: float, deq: float) -> dict:
    """A finished trial record with the given test MSEs (Procrustes fixed, n = 350)."""
    rec = {"family": "poisson", "trial": t, "n": 350, "pca": pca, "umap": umap, "deq": deq}
    rec.update({"procrustes_pca": 0.3, "procrustes_umap": 0.2, "procrustes_deq": 0.1 * (t + 1)})
    return {**rec, "deq_seconds": float(t + 1), "config": CONFIG}


def test_trials_log_round_trips_and_skips_other_configurations(tmp_path):
    path = tmp_path / "trials.jsonl"
    paper_fig3.append_trial(path, trial(0, 1.0, 2.0, 0.5))
    paper_fig3.append_trial(path, {**trial(1, 1.0, 2.0, 0.5), "config": {**CONFIG, "n_grid": 9}})
    paper_fig3.append_trial(path, trial(2, 1.0, 2.0, 0.5))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["family"] == "poisson" for line in lines)
    done = paper_fig3.load_trials(path, CONFIG)
    assert sorted(done) == [("poisson", 0), ("poisson", 2)]  # trial 1 ran under n_grid 9
    assert paper_fig3.load_trials(tmp_path / "absent.jsonl", CONFIG) == {}


def test_summary_counts_match_a_hand_count():
    # winners by hand: deq, pca, umap, deq; deq < pca in trials 0, 2 (2.0 < 3.0) and 3
    results = [
        trial(0, 1.0, 2.0, 0.5),
        trial(1, 0.2, 2.0, 0.5),
        trial(2, 3.0, 1.0, 2.0),
        trial(3, 1.0, 1.5, 0.9),
    ]
    row = paper_fig3.summarise("poisson", results)
    assert row["wins"] == {"pca": 1, "umap": 1, "deq": 2}
    assert row["deq_beats_pca"] == 3
    assert row["n_trials"] == 4 and row["paper_deq_wins"] == 84
    assert row["median_mse"]["deq"] == pytest.approx((0.5 + 0.9) / 2)  # median of 4 values
    assert row["median_procrustes"]["deq"] == pytest.approx((0.2 + 0.3) / 2)
    assert row["deq_seconds"] == pytest.approx(2.5)


def test_procrustes_error_is_zero_for_a_similar_copy_and_matches_closed_form():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(40, 2))
    c, s = np.cos(0.7), np.sin(0.7)
    copy = 3.0 * truth @ np.array([[c, -s], [s, c]]) + np.array([1.0, -2.0])
    assert paper_fig3.procrustes_error(truth, copy) == pytest.approx(0.0, abs=1e-12)
    # closed form: both sides centred and unit-normed, disparity = 1 - (sum of singular
    # values of a^T b)^2
    emb = rng.normal(size=(40, 2))
    a, b = truth - truth.mean(0), emb - emb.mean(0)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    expected = 1.0 - np.linalg.svd(a.T @ b, compute_uv=False).sum() ** 2
    assert paper_fig3.procrustes_error(truth, emb) == pytest.approx(expected, rel=1e-10)


def test_table_renders_new_records_and_old_ones_without_the_new_fields():
    row = paper_fig3.summarise("poisson", [trial(0, 1.0, 2.0, 0.5)])
    new = tables.paper_fig3_lines({"rows": [row]})[1].split()
    assert new[:8] == ["poisson", "1", "350", "0", "0", "1", "84", "1"]
    old = {"family": "gaussian", "wins": {"pca": 2, "deq": 8}, "deq_seconds": 0.5}
    old["median_mse"] = {"pca": 0.26, "deq": 0.1}
    cells = tables.paper_fig3_lines({"rows": [old]})[1].split()
    assert cells[:8] == ["gaussian", "-", "-", "2", "-", "8", "-", "-"]
