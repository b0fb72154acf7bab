"""Data-parallel training (issue #9, item 5): two gloo processes on 127.0.0.1, each taking half
of every global minibatch, end with the same parameters and loss curve as single-process
training on the same global batches (to 1e-8)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.distributed as dist

from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.distributed import local_share, spawn, train_distributed
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.train import TrainingDiverged, load_checkpoint, train

POISSON = importlib.import_module("deqfam.generated.poisson")

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


def _problem(model_seed: int):
    ds = make_dataset(POISSON, n_grid=10, data_dim=6, seed=2)  # 32 samples
    model = ExpFamPCA(
        POISSON,
        6,
        2,
        lam=0.1,
        weight_decay=0.5,
        init_scale=0.1,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(model_seed),
    )
    return ds.Y, model


def test_local_share_weights_recover_the_global_mean():
    batch = torch.arange(7.0)
    parts = [local_share(batch, r, 2) for r in range(2)]
    assert [p.tolist() for p, _ in parts] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    # (1/world) sum_r weight_r mean_r = mean of the whole batch
    averaged = sum(w * p.mean() for p, w in parts) / 2
    assert float(averaged) == pytest.approx(float(batch.mean()), rel=1e-15)


def test_two_processes_match_single_process_training(tmp_path):
    # batch 10 on 32 samples: 4 steps per epoch, the last one uneven (2 samples, 1 per rank)
    cfg = {"epochs": 2, "batch_size": 10, "lr": 5e-2, "seed": 4, "progress": False}
    Y, single = _problem(model_seed=0)
    history = train(single, Y, {**cfg, "checkpoint_dir": str(tmp_path / "one")})

    _, model = _problem(model_seed=0)
    ckpt = tmp_path / "ddp"
    out = spawn(train_distributed, 2, model, Y, {**cfg, "checkpoint_dir": str(ckpt)})
    state = out["model"]
    for name in ("W", "B"):
        np.testing.assert_allclose(
            state[name].numpy(), getattr(single, name).detach().numpy(), rtol=0, atol=1e-8
        )
    assert not np.allclose(state["W"].numpy(), model.W.detach().numpy())  # it did train
    np.testing.assert_allclose(out["result"].loss, history.loss, rtol=1e-10)
    # rank 0 wrote the checkpoint; a single process can resume from it
    saved = load_checkpoint(ckpt / "last.pt")
    assert saved["epoch"] == 1
    np.testing.assert_allclose(saved["model"]["W"].numpy(), state["W"].numpy(), atol=0)
    # warm starts: every rank's latents reach rank 0's cache, equal to the single process's
    single_cache = load_checkpoint(tmp_path / "one" / "last.pt")["latent_cache"]
    assert saved["latent_cache"].shape == (32, 2) and bool((single_cache != 0).all())
    np.testing.assert_allclose(saved["latent_cache"].numpy(), single_cache.numpy(), atol=1e-8)


def _nan_on_rank_1(model, batch, n_total):
    loss = model.loss(batch, n_total=n_total)
    return loss * float("nan") if dist.get_rank() == 1 else loss


@pytest.mark.slow  # a second pair of processes: ~5 s idle, ~13 s on a loaded machine
def test_a_diverging_rank_stops_every_rank():
    """A NaN loss on one rank is agreed on by all (no rank hangs in the gradient
    all-reduce); the error names the step."""
    Y, model = _problem(model_seed=0)
    cfg = {"epochs": 1, "batch_size": 16, "lr": 1e-2, "progress": False}
    with pytest.raises(Exception, match=r"epoch 0, batch 0: the loss is not finite") as info:
        spawn(train_distributed, 2, model, Y, cfg, loss_fn=_nan_on_rank_1, timeout_s=60)
    assert "TrainingDiverged" in str(info.value) or isinstance(info.value, TrainingDiverged)
