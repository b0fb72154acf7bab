"""The thread policy (runtime/threads.py) as applied by fit: the setting, not the speed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import deqfam.fitting as pipeline
from deqfam.cli import main
from deqfam.runtime import threads as th


@pytest.fixture
def torch_threads(monkeypatch):
    """Start each test at torch's default-like count (the physical cores) with no
    OMP_NUM_THREADS, and restore the caller's count afterwards."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(th.physical_cores())
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture
def seen_in_training(monkeypatch) -> list[int]:
    """torch's thread count read inside ``train`` (a wrapper around the real one)."""
    seen: list[int] = []
    real = pipeline.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train", spy)
    return seen


def _data() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.poisson(torch.full((24, 4), 2.0, dtype=torch.float64), generator=gen)


def _fit(**kwargs):
    # the Adam path: the spy on pipeline.train sees the thread count training runs under
    return pipeline.fit(
        _data(), "poisson", 2, epochs=1, batch_size=8, progress=False, optimizer="adam", **kwargs
    )


def test_auto_uses_one_thread_for_small_work_and_restores(
    torch_threads, seen_in_training, tmp_path
):
    res = _fit(out_dir=tmp_path / "fit")
    assert seen_in_training == [1]
    assert torch.get_num_threads() == torch_threads
    assert res.threads["threads"] == 1 and res.threads["rule"] == th.RULE_SMALL
    assert res.threads["override"] is None and res.threads["work"] == 8 * 4 * 2**2
    recorded = json.loads((tmp_path / "fit" / "history.json").read_text())["threads"]
    assert recorded == res.threads


def test_large_work_uses_the_physical_cores(torch_threads, seen_in_training, monkeypatch):
    monkeypatch.setattr(th, "SMALL_WORK", 0)
    res = _fit()
    assert seen_in_training == [min(th.physical_cores(), torch_threads)]
    assert res.threads["rule"] == th.RULE_LARGE


def test_explicit_threads_override_the_policy(torch_threads, seen_in_training):
    res = _fit(threads=3)
    assert seen_in_training == [3]
    assert res.threads["override"] == "threads"
    assert torch.get_num_threads() == torch_threads


def test_omp_num_threads_is_left_as_set(torch_threads, seen_in_training, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch_threads))
    res = _fit()
    assert seen_in_training == [torch_threads]
    assert res.threads["override"] == "OMP_NUM_THREADS"


def test_a_count_set_in_torch_is_left_as_set(torch_threads, seen_in_training):
    mine = max(th._torch_defaults()) + 1  # not a count torch starts with
    torch.set_num_threads(mine)
    res = _fit()
    assert seen_in_training == [mine]
    assert res.threads["override"] == "torch.set_num_threads"
    assert torch.get_num_threads() == mine


def test_thread_scope_restores_after_an_error(torch_threads):
    with pytest.raises(RuntimeError), th.thread_scope(th.ThreadChoice(1, "test")):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == torch_threads


def test_physical_cores_within_the_available_cpus():
    logical = len(os.sched_getaffinity(0))
    assert 1 <= th.physical_cores() <= logical


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "2000"])
def test_cli_rejects_bad_thread_counts(value, tmp_path, capsys):
    data = tmp_path / "y.npy"
    np.save(data, _data().numpy())
    code = main(["fit", str(data), "--family", "poisson", "--latent-dim", "2", "--threads", value])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--threads" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("value", [0, -2, "x", 1.5, True])
def test_library_rejects_bad_thread_counts(value):
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        th.parse_threads(value)


def test_the_default_second_order_fit_runs_under_the_policy(torch_threads, monkeypatch):
    """The default optimizer (newton, runtime/fitting) is wrapped by the same thread scope."""
    seen: list[int] = []
    real = pipeline.fit_newton

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "fit_newton", spy)
    res = pipeline.fit(_data(), "poisson", 2, progress=False)
    assert seen == [1] and res.threads["rule"] == th.RULE_SMALL
    assert torch.get_num_threads() == torch_threads
