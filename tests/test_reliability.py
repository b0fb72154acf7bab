"""Reliability: hostile data, numerical failure modes, no lost work (issue #9, items 2-4).

* Hostile data: every bad input to the layers and to ``deqfam fit`` is a clear error naming
  the row/column (or file), raised before anything is written.
* Numerical failure: exp overflow at large |eta|, Cholesky failure, non-convergence are
  detected per sample and never produce silent NaNs in the latents, loss or parameters.
* No lost work: checkpoints are atomic and checksummed; a run killed with SIGKILL mid-epoch
  resumes to the same result as an uninterrupted run; a diverging run stops with its last good
  checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deqfam.cli import main
from deqfam.data import load_data
from deqfam.fitting import fit
from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.family import as_torch_family
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.solvers import ConvergenceWarning, hessian_from_slope
from deqfam.runtime.train import (
    CHECKPOINT_MAGIC,
    CheckpointError,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    save_checkpoint,
    train,
)
from deqfam.runtime.validation import DataError, DomainError, validate_observations

POISSON = importlib.import_module("deqfam.generated.poisson")
NEGBIN = importlib.import_module("deqfam.generated.negative_binomial")
TESTS = Path(__file__).resolve().parent

#: the small problem shared with the SIGKILL child process (32 samples, 6 batches per epoch)
CFG = {"epochs": 3, "batch_size": 6, "lr": 2e-2, "seed": 5, "progress": False}


def small_problem(model_seed: int = 0):
    ds = make_dataset(POISSON, n_grid=10, data_dim=8, seed=0)
    model = ExpFamPCA(
        POISSON,
        8,
        2,
        lam=0.1,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(model_seed),
    )
    return ds.Y, model


def poisson_objective_gradient(W, B, y, lam, z):
    """grad J(z) = lam z - W^T (y - exp(W z + B)) in numpy (independent of the solver)."""
    W, B, y, z = (np.asarray(t.detach(), dtype=np.float64) for t in (W, B, y, z))
    return lam * z - (y - np.exp(z @ W.T + B)) @ W


# --------------------------------------------------------------------------------------------
# 2. Hostile data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "support", "phrase"),
    [
        (torch.zeros(3, 2, dtype=torch.int64), "real", "must be floating point"),
        (torch.zeros(0, 2, dtype=torch.float64), "real", "empty"),
        (torch.zeros(3, 0, dtype=torch.float64), "real", "no columns"),
        (torch.zeros(3, dtype=torch.float64), "real", "must be 2-D"),
        (torch.zeros(2, 2, 2, dtype=torch.float64), "real", "must be 2-D"),
        (np.zeros((2, 2)), "real", "must be a torch tensor"),
        (
            torch.tensor([[0.0, 1.0], [math.inf, 0.0]]),
            "real",
            "non-finite value inf at row 1, column 0",
        ),
        (torch.tensor([[0.0, 1.0], [2.0, -3.0]]), "nonnegative_integers", "row 1, column 1"),
        (torch.tensor([[0.0, 1.5]]), "nonnegative_integers", "row 0, column 1"),
        (torch.tensor([[1.0, 2.0]]), "binary", "value 2.0 at row 0, column 1"),
        (torch.tensor([[1.0, 0.0]]), "positive_real", "row 0, column 1"),
        (torch.tensor([[1.0, 0.0]]), "plus_minus_one", "row 0, column 1"),
        (torch.tensor([[0.0], [1.0], [0.0]]), "positive_integers", "2 such value(s)"),
    ],
)
def test_observations_are_validated_with_row_and_column(data, support, phrase):
    with pytest.raises(DataError) as info:
        validate_observations(data, support)
    assert phrase in str(info.value)


def test_layer_rejects_data_outside_the_support_naming_row_and_column():
    Y, model = small_problem()
    bad = Y.clone()
    bad[4, 6] = 2.5  # not a count
    with pytest.raises(DataError, match=r"Y value 2\.5 at row 4, column 6 is outside"):
        model(bad)
    with pytest.raises(DataError, match="floating dtype"):
        model(Y.long())


def test_canonical_parameters_outside_the_domain_are_refused():
    """Negative binomial: eta < 0. A B or a W z + B at or beyond 0 would make A, sigma and
    sigma' NaN or inf; the layer says which coordinate is outside instead."""
    model = ExpFamPCA(NEGBIN, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
    with torch.no_grad():
        model.B[1] = 0.25
    with pytest.raises(DomainError, match=r"B\[1\] = 0\.25 \(column 1\) is outside the domain"):
        model(y)
    with torch.no_grad():
        model.B.fill_(-1.0)
        model.W.zero_()
        model.W[2, 0] = 1.0
    z = torch.tensor([[0.5, 0.0], [2.0, 0.0]], dtype=torch.float64)  # eta[1, 2] = 1 > 0
    with pytest.raises(DomainError, match=r"eta = 1 at row 1, column 2 is outside the domain"):
        model.log_joint(torch.ones(2, 3, dtype=torch.float64), z)
    with pytest.raises(DomainError, match="row 1, column 2"):
        model.reconstruct(z)
    with torch.no_grad():
        model.W[0, 1] = math.nan
    with pytest.raises(DataError, match=r"parameter W\[0, 1\] = nan is not finite"):
        model(y)


class _Exploit:
    """Unpickling this would create ``marker``: a pickle payload must never be loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _hostile_files(tmp: Path) -> list[tuple[str, Path, str]]:
    marker = tmp / "pwned"
    cases = []

    def add(name: str, phrase: str, writer) -> None:
        path = tmp / name
        writer(path)
        cases.append((name, path, phrase))

    add("pickle.npy", "allow_pickle", lambda p: np.save(p, np.array([_Exploit(marker)]), True))
    add("text.csv", "could not convert string 'abc'", lambda p: p.write_text("1,2\n3,abc\n"))
    add("ragged.csv", "number of columns changed", lambda p: p.write_text("1,2\n3\n4,5\n"))
    add("empty.csv", "is empty", lambda p: p.write_text(""))
    add("complex.npy", "must be numeric", lambda p: np.save(p, np.ones((3, 2), complex)))
    add("strings.npy", "must be numeric", lambda p: np.save(p, np.array([["a", "b"]])))
    add("cube.npy", "must be 2-D", lambda p: np.save(p, np.ones((2, 2, 2))))
    add("truncated.npy", "cannot read", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"))
    add("data.json", "unsupported data format", lambda p: p.write_text("[1, 2]"))
    add("negative.csv", "row 1, column 0", lambda p: p.write_text("1,2\n-1,0\n"))
    add("nan.csv", "non-finite value nan at row 0, column 1", lambda p: p.write_text("1,nan\n"))
    add("fraction.csv", "row 0, column 0", lambda p: p.write_text("0.5,1\n"))
    return cases


def test_fit_cli_refuses_hostile_files_and_writes_nothing(tmp_path, capsys):
    for name, path, phrase in _hostile_files(tmp_path):
        out = tmp_path / f"out_{name}"
        argv = ["fit", str(path), "--family", "poisson", "--latent-dim", "1"]
        code = main([*argv, "--epochs", "1", "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert phrase in err, (name, err)
        assert not out.exists(), name
    assert not (tmp_path / "pwned").exists()  # the pickle was never loaded


def test_load_data_reads_integer_counts_and_bool_arrays(tmp_path):
    np.save(tmp_path / "ints.npy", np.array([[1, 2], [3, 4]], dtype=np.int32))
    np.save(tmp_path / "bools.npy", np.array([[True, False]]))
    assert load_data(tmp_path / "ints.npy").dtype == torch.float64
    assert load_data(tmp_path / "bools.npy").tolist() == [[1.0, 0.0]]


# --------------------------------------------------------------------------------------------
# 3. Numerical failure modes
# --------------------------------------------------------------------------------------------


def test_exp_overflow_at_large_weights_is_contained():
    """Poisson with |W| ~ 100: sigma = exp overflows to inf for most trial steps. The line
    search rejects those (J = inf), every sample converges, and the latents satisfy the
    stationarity condition (9) checked in numpy."""
    gen = torch.Generator().manual_seed(1)
    model = ExpFamPCA(POISSON, 20, 2, dtype=torch.float64, generator=gen, init_scale=1.0)
    with torch.no_grad():
        model.W.mul_(100.0)
    y = torch.poisson(torch.full((30, 20), 3.0, dtype=torch.float64), generator=gen)
    y[0] = 1e6  # extreme counts too
    z = model(y)
    stats = model.last_stats
    assert torch.isfinite(z).all()
    assert stats.all_converged, str(stats)
    probe = model.natural_parameters(torch.full((1, 2), 10.0, dtype=torch.float64))
    assert torch.isinf(POISSON.activation(probe)).any()  # the region the line search meets
    grad = poisson_objective_gradient(model.W, model.B, y, model.lam, z)
    scale = np.abs(y.numpy()) @ np.abs(model.W.detach().numpy())
    assert np.all(np.abs(grad) <= 1e-8 * (1 + scale))
    loss = model.loss(y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(model.W.grad).all() and torch.isfinite(model.B.grad).all()


def _nan_slope_poisson():
    """Poisson whose sigma' is NaN above eta = 0.5 (a broken generated family)."""
    fam = as_torch_family(POISSON)
    nan = torch.tensor(math.nan, dtype=torch.float64)
    return dataclasses.replace(
        fam, name="nan_slope", activation_grad=lambda e: torch.where(e > 0.5, nan, torch.exp(e))
    )


def _indefinite_poisson():
    """Poisson whose sigma' is wrong (negative): the Newton Hessian is indefinite, so its
    Cholesky factorisation fails; A and sigma (hence J and its gradient) are right."""
    fam = as_torch_family(POISSON)
    return dataclasses.replace(fam, name="indefinite", activation_grad=lambda e: -torch.exp(e))


def test_cholesky_failure_falls_back_and_never_yields_nan_latents():
    Y, _ = small_problem()
    model = ExpFamPCA(
        _indefinite_poisson(),
        8,
        2,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
        init_scale=0.3,
        solver_options={"max_iter": 200},
    )
    eta0 = model.B.detach().expand(32, 8)
    hess = hessian_from_slope(model.W.detach(), model.family.activation_grad(eta0), model.lam)
    assert bool((torch.linalg.cholesky_ex(hess)[1] != 0).all())  # every factorisation fails
    reference = ExpFamPCA(POISSON, 8, 2, dtype=torch.float64)
    reference.load_state_dict(model.state_dict())
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        z = model(Y)
    stats = model.last_stats
    assert torch.isfinite(z).all()
    # the steepest-descent fallback (with the line search on J) still drives the gradient
    # below tolerance for some samples, and they agree with the correct Newton solution; but
    # no sample counts as converged, since none has a Cholesky factor for the backward
    z_ref = reference(Y)
    small_grad = stats.residual <= stats.threshold
    assert 0 < int(small_grad.sum()) < 32
    torch.testing.assert_close(z[small_grad], z_ref[small_grad], rtol=1e-6, atol=1e-8)
    assert int(stats.converged.sum()) == 0
    assert stats.failed_indices() == list(range(32))


def test_nonconvergence_is_reported_per_sample_not_hidden():
    Y, model = small_problem()
    model.config = dataclasses.replace(model.config, max_iter=1)
    with pytest.warns(ConvergenceWarning, match=r"did not converge for \d+ of 32 samples"):
        z = model(Y)
    stats = model.last_stats
    assert torch.isfinite(z).all()
    assert stats.n_failed > 0 and stats.converged.shape == (32,)
    assert torch.all(stats.residual[~stats.converged] > stats.threshold[~stats.converged])


def test_nan_gradient_stops_training_before_the_parameters_are_touched(tmp_path):
    """A NaN sigma' makes the implicit backward produce NaN gradients: training stops at the
    first step, the parameters are still the finite initial ones."""
    Y, _ = small_problem()
    model = ExpFamPCA(
        _nan_slope_poisson(),
        8,
        2,
        dtype=torch.float64,
        init_scale=0.3,
        generator=torch.Generator().manual_seed(0),
        on_nonconvergence="ignore",
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match=r"epoch 0, batch 0: non-finite gradient at"):
        train(model, Y, {**CFG, "checkpoint_dir": str(tmp_path)})
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def _nan_at(step: int):
    calls = [0]

    def loss_fn(model, batch, n):
        calls[0] += 1
        loss = model.loss(batch, n_total=n)
        return loss * math.nan if calls[0] == step else loss

    return loss_fn


def test_nan_loss_stops_with_the_last_good_checkpoint_intact(tmp_path):
    Y, model = small_problem()
    cfg = {**CFG, "checkpoint_dir": str(tmp_path), "checkpoint_every": 2}
    # step 10 = epoch 1, batch 3 (6 batches per epoch); last checkpoint: epoch 1 after batch 2
    with pytest.raises(TrainingDiverged) as info:
        train(model, Y, cfg, loss_fn=_nan_at(10))
    err = info.value
    assert (err.epoch, err.batch) == (1, 3)
    assert "the loss is nan" in str(err) and "(epoch 1, batch 2)" in str(err)
    assert torch.isfinite(model.W).all() and torch.isfinite(model.B).all()
    state = load_checkpoint(err.checkpoint)  # checksum verified
    assert (state["epoch"], state["batch"]) == (1, 2)
    # the checkpoint is the good state: resuming from it reproduces an uninterrupted run
    _, resumed = small_problem(model_seed=7)
    rest = train(resumed, Y, cfg, resume=err.checkpoint)
    _, straight = small_problem()
    full = train(straight, Y, CFG)
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-10)
    torch.testing.assert_close(resumed.W, straight.W, rtol=1e-10, atol=1e-12)


def test_parameters_leaving_the_domain_stop_training(tmp_path):
    """Large counts pull B of a negative binomial (eta < 0) up towards 0; Adam with a huge
    step jumps past it: stopped, the coordinate named, no checkpoint of the bad state."""
    y = torch.full((10, 4), 50.0, dtype=torch.float64)
    model = ExpFamPCA(NEGBIN, 4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TrainingDiverged, match=r"B\[\d\] = .* is outside the domain \(-inf, 0\)"):
        train(model, y, {"epochs": 2, "batch_size": 100, "lr": 5.0, "progress": False,
                            "checkpoint_dir": str(tmp_path)})  # fmt: skip
    assert not (tmp_path / "last.pt").exists()  # the first step already failed


def test_fit_that_diverges_writes_no_outputs(tmp_path):
    y = torch.full((10, 4), 50.0, dtype=torch.float64)
    with pytest.raises(TrainingDiverged):
        fit(
            y,
            NEGBIN,
            1,
            optimizer="adam",  # a first-order step too large: the path that can diverge
            weight_decay=0.0,
            lr=5.0,
            epochs=2,
            out_dir=tmp_path / "fit",
            progress=False,
        )
    assert not (tmp_path / "fit" / "latents.npy").exists()


def test_fit_writes_per_sample_solver_stats(tmp_path):
    Y, _ = small_problem()
    res = fit(Y, POISSON, 2, epochs=1, batch_size=16, out_dir=tmp_path, progress=False)
    import json

    stats = json.loads((tmp_path / "solver_stats.json").read_text())
    assert stats["n_samples"] == 32 and stats["failed_samples"] == res.stats.failed_indices()
    assert np.isfinite(res.latents).all() and np.isfinite(res.covariances).all()


# --------------------------------------------------------------------------------------------
# 4. No lost work
# --------------------------------------------------------------------------------------------


def _checkpoint(tmp_path) -> Path:
    Y, model = small_problem()
    train(model, Y, {**CFG, "epochs": 1, "checkpoint_dir": str(tmp_path)})
    return tmp_path / "last.pt"


def test_corrupted_checkpoints_give_a_clear_error(tmp_path):
    path = _checkpoint(tmp_path)
    raw = path.read_bytes()
    assert raw.startswith(CHECKPOINT_MAGIC)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    cases = {
        "bitflip": (bytes(flipped), "is corrupted: SHA-256"),
        "truncated": (raw[: len(raw) - 100], "is corrupted: SHA-256"),
        "header": (b"PK\x03\x04" + raw[40:], "not a deqfam checkpoint"),
        "empty": (b"", "not a deqfam checkpoint"),
    }
    for name, (content, phrase) in cases.items():
        bad = tmp_path / f"{name}.pt"
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match=phrase):
            load_checkpoint(bad)
        Y, model = small_problem()
        with pytest.raises(CheckpointError, match=phrase):
            train(model, Y, CFG, resume=bad)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_payload_is_never_unpickled_as_code(tmp_path):
    """A checkpoint with a valid checksum but a pickled object (someone else's file) is
    refused by ``weights_only`` loading; the object's code does not run."""
    import hashlib
    import io

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"model": _Exploit(marker)}, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    bad = tmp_path / "evil.pt"
    bad.write_bytes(CHECKPOINT_MAGIC + digest + b"\n" + payload)
    with pytest.raises(CheckpointError, match="unpickling them could run code"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_crash_while_saving_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = _checkpoint(tmp_path)
    good = path.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 99})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    path = _checkpoint(tmp_path)
    Y, model = small_problem()
    with pytest.raises(CheckpointError, match="batch_size=6, this run has batch_size=7"):
        train(model, Y, {**CFG, "batch_size": 7}, resume=path)
    with pytest.raises(CheckpointError, match="written for 32 samples, this run has 20"):
        train(model, Y[:20], CFG, resume=path)


CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_reliability import CFG, small_problem
from deqfam.runtime.train import train

marker, kill_at = Path(sys.argv[1]), int(sys.argv[2])
calls = [0]

def loss_fn(model, batch, n):
    calls[0] += 1
    if calls[0] == kill_at:
        marker.write_text("ready")
        time.sleep(600)  # the parent kills us here, mid-epoch
    return model.loss(batch, n_total=n)

Y, model = small_problem()
train(model, Y, {{**CFG, "checkpoint_dir": {ckpt!r}, "checkpoint_every": 2}}, loss_fn=loss_fn)
"""


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS), ckpt=str(ckpt_dir)))
    marker = tmp_path / "ready"
    # 6 batches per epoch: the 11th loss is epoch 1, batch index 4; checkpoints were written
    # after epoch 0 and after 2 and 4 batches of epoch 1, the last one before the kill
    proc = subprocess.Popen([sys.executable, str(script), str(marker), "11"])
    try:
        t0 = time.monotonic()
        while not marker.exists():
            assert proc.poll() is None, "child exited early"
            assert time.monotonic() - t0 < 240, "child never reached the kill point"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    state = load_checkpoint(ckpt_dir / "last.pt")
    assert (state["epoch"], state["batch"]) == (1, 4)  # mid-epoch
    assert [p.name for p in ckpt_dir.iterdir()] == ["last.pt"]

    cfg = {**CFG, "checkpoint_dir": str(ckpt_dir), "checkpoint_every": 2}
    Y, resumed = small_problem(model_seed=3)  # everything must come from the checkpoint
    rest = train(resumed, Y, cfg, resume=ckpt_dir / "last.pt")
    Y, straight = small_problem()
    full = train(straight, Y, CFG)
    assert len(rest.loss) == CFG["epochs"]
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(resumed.W, straight.W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(resumed.B, straight.B, rtol=1e-10, atol=1e-12)


def test_train_config_rejects_nonsense():
    for bad in ({"lr": math.nan}, {"lr": -1.0}, {"epochs": 1.5}, {"checkpoint_every": -1}):
        with pytest.raises(ValueError, match="invalid training options"):
            TrainConfig.from_dict(bad)
