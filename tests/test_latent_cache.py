"""Warm starts of the Adam trainer (issue 15): a per-sample latent cache that reaches the same
optimum as cold starts with fewer Newton iterations, survives a checkpoint round trip, and is
refused with exit 2 when a checkpoint's cache is tampered with."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from deqfam.cli import main
from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.latent_cache import LatentCache, accepts_z0
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.train import default_loss, load_checkpoint, save_checkpoint, train

POISSON = importlib.import_module("deqfam.generated.poisson")
TIGHT = {"tol": 1e-13, "max_iter": 200}  # the inner solve converges to rounding level


def _problem(seed: int = 0):
    ds = make_dataset(POISSON, n_grid=8, data_dim=6, seed=1)  # 15 samples
    model = ExpFamPCA(
        POISSON,
        6,
        2,
        lam=0.1,
        weight_decay=0.5,
        init_scale=0.1,
        solver_options=TIGHT,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(seed),
    )
    return ds.Y, model


class _CountingLoss:
    """``default_loss`` that adds up the Newton iterations of every solve."""

    def __init__(self) -> None:
        self.iterations = 0

    def __call__(self, model, batch, n_total, z0=None):
        loss = default_loss(model, batch, n_total, z0=z0)
        self.iterations += int(model.last_stats.iterations.sum())
        return loss


def _objective(model, Y) -> float:
    """The full-data outer objective at the final parameters, solved from cold starts."""
    with torch.no_grad():
        return float(model.loss(Y))


def test_warm_starts_reach_the_cold_optimum_with_fewer_newton_iterations():
    cfg = {"epochs": 6, "batch_size": 8, "lr": 2e-2, "seed": 5, "progress": False}
    Y, cold = _problem()
    cold_loss = _CountingLoss()
    cold_hist = train(cold, Y, {**cfg, "warm_start": False}, loss_fn=cold_loss)
    _, warm = _problem()
    warm_loss = _CountingLoss()
    warm_hist = train(warm, Y, cfg, loss_fn=warm_loss)

    for name in ("W", "B"):
        a, b = getattr(warm, name).detach().numpy(), getattr(cold, name).detach().numpy()
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert _objective(warm, Y) == pytest.approx(_objective(cold, Y), rel=1e-8)
    np.testing.assert_allclose(warm_hist.loss, cold_hist.loss, rtol=1e-8)
    assert warm_hist.nonconverged == cold_hist.nonconverged == [0] * 6
    # the first epoch starts every row at 0 in both runs; later epochs start near the solution
    assert warm_loss.iterations < 0.9 * cold_loss.iterations  # measured 347 vs 440


def test_cache_after_one_full_batch_epoch_holds_the_map_latents(tmp_path):
    """With one batch per epoch, the cache after epoch 0 holds the rows' MAP latents at the
    initial parameters (solved again here by the model itself, independently of the cache),
    and the fixed point z = (1/lam) W^T (T(y) - sigma(W z + B)) of (10) holds there."""
    Y, model = _problem()
    _, reference = _problem()
    expected = reference(Y).detach()
    cfg = {"epochs": 1, "batch_size": 20, "lr": 1e-2, "progress": False}
    with torch.no_grad():
        W0, B0 = model.W.clone(), model.B.clone()
    train(model, Y, {**cfg, "checkpoint_dir": str(tmp_path)})
    cache = load_checkpoint(tmp_path / "last.pt")["latent_cache"]
    torch.testing.assert_close(cache, expected, rtol=1e-10, atol=1e-12)
    residual = (Y - torch.exp(cache @ W0.T + B0)) @ W0 / 0.1 - cache
    assert float(residual.abs().max()) < 1e-9


def test_resume_restores_the_cache_and_equals_an_uninterrupted_run(tmp_path):
    cfg = {"epochs": 3, "batch_size": 6, "lr": 2e-2, "seed": 2, "progress": False}
    Y, straight = _problem()
    counter_full = _CountingLoss()
    full = train(straight, Y, {**cfg, "checkpoint_dir": str(tmp_path / "a")}, loss_fn=counter_full)

    _, first = _problem()
    counter_a = _CountingLoss()
    # stop after epoch 0; the resumed run must start epochs 1-2 from the saved cache
    train(
        first,
        Y,
        {**cfg, "epochs": 1, "checkpoint_dir": str(tmp_path / "b")},
        loss_fn=counter_a,
    )
    mid = load_checkpoint(tmp_path / "b" / "last.pt")
    assert mid["latent_cache"].shape == (15, 2) and bool(mid["latent_cache"].abs().sum() > 0)
    _, resumed = _problem(seed=7)  # different init: everything comes from the file
    counter_b = _CountingLoss()
    rest = train(
        resumed,
        Y,
        {**cfg, "checkpoint_dir": str(tmp_path / "b")},
        loss_fn=counter_b,
        resume=tmp_path / "b" / "last.pt",
    )
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-12)
    torch.testing.assert_close(resumed.W, straight.W, rtol=1e-12, atol=1e-14)
    # identical warm starts: the same Newton iterations as the uninterrupted run
    assert counter_a.iterations + counter_b.iterations == counter_full.iterations
    end_a = load_checkpoint(tmp_path / "a" / "last.pt")["latent_cache"]
    end_b = load_checkpoint(tmp_path / "b" / "last.pt")["latent_cache"]
    torch.testing.assert_close(end_b, end_a, rtol=1e-12, atol=1e-14)


def test_mid_epoch_resume_with_the_cache(tmp_path):
    cfg = {"epochs": 2, "batch_size": 6, "lr": 2e-2, "seed": 2, "progress": False}
    Y, straight = _problem()
    full = train(straight, Y, cfg)
    _, first = _problem()
    ck = {**cfg, "checkpoint_dir": str(tmp_path), "checkpoint_every": 2}

    def stop_in_epoch_1(model, batch, n_total, z0=None):
        stop_in_epoch_1.calls += 1
        if stop_in_epoch_1.calls == 6:  # batch 2 of epoch 1 (3 batches per epoch)
            raise KeyboardInterrupt
        return default_loss(model, batch, n_total, z0=z0)

    stop_in_epoch_1.calls = 0
    with pytest.raises(KeyboardInterrupt):
        train(first, Y, ck, loss_fn=stop_in_epoch_1)
    assert load_checkpoint(tmp_path / "last.pt")["batch"] == 2
    _, resumed = _problem(seed=3)
    rest = train(resumed, Y, ck, resume=tmp_path / "last.pt")
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-12)
    torch.testing.assert_close(resumed.B, straight.B, rtol=1e-12, atol=1e-14)


def test_cache_store_skips_nonfinite_rows_and_unsolved_rows_start_at_zero():
    cache = LatentCache(4, 2, torch.float64, "cpu")
    rows = torch.tensor([2, 0])
    cache.store(rows, torch.tensor([[1.0, 2.0], [float("nan"), 3.0]], dtype=torch.float64))
    assert cache.starts(torch.tensor([0, 1, 2])).tolist() == [[0, 0], [0, 0], [1, 2]]
    assert accepts_z0(default_loss) and not accepts_z0(lambda m, b, n: b)


# ---- the CLI refuses a tampered cache with exit 2 ------------------------------------------


def _fit(data, out, *extra: str) -> int:
    argv = ["fit", str(data), "--family", "poisson", "--latent-dim", "2", "--epochs", "1"]
    argv += ["--optimizer", "adam", "--quiet", "--batch-size", "10", "--out", str(out)]
    return main([*argv, *extra])


@pytest.fixture
def fitted(tmp_path):
    data = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    np.savetxt(data, rng.poisson(2.0, (20, 5)), delimiter=",", fmt="%d")
    assert _fit(data, tmp_path / "o") == 0
    return data, tmp_path / "o"


def _nan_cache(state):
    state["latent_cache"][3, 1] = float("nan")


def _short_cache(state):
    state["latent_cache"] = state["latent_cache"][:7]


def _wide_cache(state):
    state["latent_cache"] = torch.zeros(20, 3, dtype=torch.float64)


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (_nan_cache, "latent cache has non-finite entries (row 3)"),
        (_short_cache, "latent cache has shape (7, 2), expected (20, 2)"),
        (_wide_cache, "latent cache has shape (20, 3), expected (20, 2)"),
    ],
)
def test_tampered_latent_cache_exits_2(fitted, capsys, tamper, needle):
    data, out = fitted
    ckpt = out / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)
    assert state["latent_cache"].shape == (20, 2)
    tamper(state)
    save_checkpoint(ckpt, state)  # a fresh, valid checksum: only the cache is wrong
    capsys.readouterr()
    assert _fit(data, out, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
