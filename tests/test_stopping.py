"""The convergence test of training (runtime/stopping.py) and its use by the trainer.

The rule's logic is checked on loss sequences with a closed form, and on a tiny seeded
training problem where each decision is recomputed by hand from the recorded history.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.stopping import (
    CONVERGED,
    MAX_EPOCHS,
    StoppingRule,
    decide,
    relative_decrease,
)
from deqfam.runtime.train import TrainConfig, train

POISSON = importlib.import_module("deqfam.generated.poisson")


def geometric_losses(n: int, c: float = 2.0, q: float = 0.5) -> list[float]:
    """L_k = c + q^k (k = 0..n-1): rel over w epochs = q^(k-w) (1 - q^w) / (1 - q^k)."""
    return [c + q**k for k in range(n)]


def test_relative_decrease_matches_its_closed_form():
    losses = geometric_losses(12)
    for w in (1, 3, 5):
        assert relative_decrease(losses[:w], w) is None  # fewer than w + 1 epochs
        k = 11
        expected = 0.5 ** (k - w) * (1 - 0.5**w) / (1 - 0.5**k)
        assert relative_decrease(losses, w) == pytest.approx(expected, rel=1e-12)
        # an added constant or a scale factor does not change it (log h(y) is omitted)
        shifted = [3.0 * v - 4e4 for v in losses]
        assert relative_decrease(shifted, w) == pytest.approx(expected, rel=1e-9)
    # no progress at all is a plateau; `since` hides epochs before a restart
    assert relative_decrease([1.0, 2.0], 1) == 0.0
    assert relative_decrease([1.0, 1.0], 1) == 0.0
    assert relative_decrease([5.0, 4.0, 3.0], 2, since=1) is None


def test_rule_stops_at_the_first_epoch_whose_window_gain_is_below_tol():
    rule, w, tol = StoppingRule(tol=1e-3, window=3), 3, 1e-3
    losses = geometric_losses(40)
    # by the closed form: the first k (0-based, k >= w) with q^(k-w)(1-q^w)/(1-q^k) < tol
    first = next(k for k in range(w, 40) if 0.5 ** (k - w) * (1 - 0.5**w) / (1 - 0.5**k) < tol)
    for k in range(1, first + 1):  # k epochs recorded so far: continue until epoch first+1
        d = decide(rule, losses[:k], [0.1] * k, 0, max_epochs=100)
        assert d.action == "continue"
    d = decide(rule, losses[: first + 1], [0.1] * (first + 1), 0, max_epochs=100)
    assert (d.action, d.reason) == ("stop", CONVERGED)
    assert d.rel < tol and "converged after" in d.message and f"{d.rel:.2e}" in d.message


def test_rule_decays_the_learning_rate_then_waits_a_full_window():
    rule = StoppingRule(tol=1e-2, window=2, lr_decay=0.1, max_decays=1)
    flat = [1.0, 1.0, 1.0]
    assert decide(rule, flat, [0.1] * 3, 0, 50).action == "decay"
    # after the decay (epoch 4 at lr 0.01) the window restarts: no test until 2 new epochs
    assert decide(rule, [*flat, 1.0], [0.1] * 3 + [0.01], 1, 50).action == "continue"
    assert decide(rule, [*flat, 1.0, 1.0], [0.1] * 3 + [0.01] * 2, 1, 50).action == "continue"
    d = decide(rule, [*flat, 1.0, 1.0, 1.0], [0.1] * 3 + [0.01] * 3, 1, 50)
    assert (d.action, d.reason) == ("stop", CONVERGED) and "1 learning-rate decays" in d.message


def test_rule_without_tol_runs_to_the_maximum_and_says_so():
    d = decide(StoppingRule(), [1.0] * 4, [0.1] * 4, 0, max_epochs=4)
    assert (d.action, d.reason) == ("stop", MAX_EPOCHS) and "no convergence test" in d.message
    d = decide(StoppingRule(tol=1e-9, window=2), [3.0, 2.0, 1.0], [0.1] * 3, 0, max_epochs=3)
    assert (d.reason, d.rel) == (MAX_EPOCHS, pytest.approx(1.0))


@pytest.mark.parametrize(
    "bad",
    [
        {"tol": -1.0},
        {"tol": math.nan},
        {"window": 0},
        {"lr_decay": 0.0},
        {"lr_decay": 1.5},
        {"max_decays": -1},
    ],
)
def test_rule_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        StoppingRule(**bad)
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def _tiny_problem():
    ds = make_dataset(POISSON, n_grid=14, data_dim=12, seed=0)
    model = ExpFamPCA(
        POISSON, 12, 2, lam=0.1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    return ds, model


def test_trainer_stops_when_converged_and_reports_why():
    """Full-batch Adam on a tiny problem: the run ends before the maximum, each decision in
    the history is reproduced by hand, and the reason is recorded."""
    ds, model = _tiny_problem()
    cfg = {"epochs": 400, "batch_size": 1000, "lr": 0.05, "tol": 1e-3, "window": 5}
    hist = train(model, ds.Y, {**cfg, "lr_decay": 0.1, "max_decays": 1, "progress": False})
    n = len(hist.loss)
    assert hist.stop_reason == CONVERGED and n < 400 and "converged after" in hist.stop_message
    assert hist.decays == 1
    (switch,) = [i for i in range(1, n) if hist.lr[i] != hist.lr[i - 1]]
    assert hist.lr[0] == 0.05 and hist.lr[-1] == pytest.approx(0.005)

    def rel(k: int) -> float:  # after epoch k (1-based), by hand
        a, b = hist.loss[k - 1 - 5], hist.loss[k - 1]
        return (a - b) / (hist.loss[0] - b)

    assert all(rel(k) >= 1e-3 for k in range(6, switch))  # no plateau before the decay
    assert rel(switch) < 1e-3  # the plateau that triggered it
    assert all(rel(k) >= 1e-3 for k in range(switch + 6, n))  # fresh window, then ...
    assert n >= switch + 5 and rel(n) < 1e-3  # ... the final plateau


def test_resumed_run_with_the_rule_equals_an_uninterrupted_one(tmp_path):
    ds, straight = _tiny_problem()
    cfg = {
        "epochs": 400,
        "batch_size": 1000,
        "lr": 0.05,
        "tol": 1e-3,
        "window": 5,
        "lr_decay": 0.1,
        "max_decays": 1,
        "progress": False,
    }
    full = train(straight, ds.Y, cfg)
    cut = len(full.loss) - 3  # interrupted after the decay, 3 epochs before the stop
    _, first = _tiny_problem()
    part = train(first, ds.Y, {**cfg, "epochs": cut, "checkpoint_dir": str(tmp_path)})
    assert part.stop_reason == MAX_EPOCHS
    _, resumed = _tiny_problem()
    rest = train(
        resumed, ds.Y, {**cfg, "checkpoint_dir": str(tmp_path)}, resume=tmp_path / "last.pt"
    )
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-10, atol=0)
    assert rest.lr == full.lr and (rest.stop_reason, rest.decays) == (CONVERGED, 1)
    again = train(
        resumed, ds.Y, {**cfg, "checkpoint_dir": str(tmp_path)}, resume=tmp_path / "last.pt"
    )
    assert len(again.loss) == len(full.loss)  # a converged checkpoint trains no further


def test_checkpoint_check_knows_every_history_field():
    """The resume check validates each History field by kind (per-epoch list or run-level
    scalar); a field added to History without a rule there would be refused on resume."""
    from dataclasses import fields

    from deqfam.runtime.checkpoint_check import HISTORY_SCALARS, PER_EPOCH_HISTORY
    from deqfam.runtime.train import History

    assert {f.name for f in fields(History)} == set(PER_EPOCH_HISTORY) | set(HISTORY_SCALARS)
