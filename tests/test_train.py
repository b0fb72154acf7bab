"""Training: resume reproduces an uninterrupted run; fit/demo pipelines; data validation."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from deqfam.alignment import align_to
from deqfam.cli import main
from deqfam.data import load_data
from deqfam.demo import DemoConfig, run_demo
from deqfam.fitting import fit
from deqfam.runtime.datasets import make_dataset
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.train import TrainConfig, train
from deqfam.runtime.validation import DataError, validate_observations

POISSON = importlib.import_module("deqfam.generated.poisson")


def _small_problem(seed: int = 0):
    ds = make_dataset(POISSON, n_grid=14, data_dim=12, seed=seed)
    model = ExpFamPCA(
        POISSON, 12, 2, lam=0.1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    return ds, model


def test_resume_continues_the_loss_curve_exactly(tmp_path):
    ds, straight = _small_problem()
    cfg = {"epochs": 4, "batch_size": 40, "lr": 1e-2, "seed": 3, "progress": False}
    full = train(straight, ds.Y, cfg)

    _, first = _small_problem()
    train(first, ds.Y, {**cfg, "epochs": 2, "checkpoint_dir": str(tmp_path)})
    _, resumed = _small_problem(seed=99)  # different init: everything must come from the file
    rest = train(
        resumed, ds.Y, {**cfg, "checkpoint_dir": str(tmp_path)}, resume=tmp_path / "last.pt"
    )
    np.testing.assert_allclose(rest.loss, full.loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(resumed.W, straight.W, rtol=1e-10, atol=1e-12)
    assert len(rest.loss) == 4


def test_training_decreases_the_loss():
    ds, model = _small_problem()
    hist = train(model, ds.Y, {"epochs": 5, "batch_size": 50, "lr": 2e-2, "progress": False})
    assert hist.loss[-1] < hist.loss[0]
    assert all(n == 0 for n in hist.nonconverged)


def test_train_config_rejects_unknown_option():
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})


def test_deq_beats_pca_on_small_poisson_dataset():
    """The paper's claim at a small scale: after Procrustes alignment the DEQ embedding is
    closer to the ground truth than PCA's (StandardScaler + PCA)."""
    from deqfam.alignment import orthogonal_basis, pca_embedding

    ds = make_dataset(POISSON, n_grid=30, seed=4)
    res = fit(ds.Y, POISSON, 2, epochs=12, batch_size=100, lr=2e-2, progress=False)
    z, _ = orthogonal_basis(res.latents, res.model.W.detach().numpy())
    _, deq_err, _, _ = align_to(ds.Z.numpy(), z)
    _, pca_err, _, _ = align_to(ds.Z.numpy(), pca_embedding(ds.Y.numpy()))
    assert deq_err < pca_err, (deq_err, pca_err)


def test_align_to_recovers_a_rotated_scaled_copy():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    aligned, err, _, _ = align_to(truth, 3.0 * truth @ rot + 5.0)
    assert err < 1e-20
    np.testing.assert_allclose(aligned, truth, atol=1e-10)


@pytest.mark.parametrize(
    ("values", "support", "phrase"),
    [
        ([[0.0, -1.0]], "nonnegative_integers", "row 0, column 1"),
        ([[0.0, 0.5]], "binary", "outside the family's support"),
        ([[1.0, float("nan")]], "real", "non-finite"),
        ([[2.0, 1.0]], "unit_interval", "row 0, column 0"),
    ],
)
def test_validation_names_row_and_column(values, support, phrase):
    with pytest.raises(DataError, match=phrase):
        validate_observations(torch.tensor(values, dtype=torch.float64), support)


def test_validation_shapes():
    with pytest.raises(DataError, match="2-D"):
        validate_observations(torch.zeros(3, dtype=torch.float64), "real")
    with pytest.raises(DataError, match="empty"):
        validate_observations(torch.zeros(0, 3, dtype=torch.float64), "real")
    with pytest.raises(DataError, match="columns"):
        validate_observations(torch.zeros(2, 3, dtype=torch.float64), "real", data_dim=4)


def test_fit_cli_writes_outputs_and_rejects_bad_data(tmp_path, capsys):
    ds = make_dataset(POISSON, n_grid=12, data_dim=8, seed=2)
    data = tmp_path / "counts.csv"
    np.savetxt(data, ds.Y.numpy(), delimiter=",", header="c" * 8)
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            str(data),
            "--family",
            "poisson",
            "--latent-dim",
            "2",
            "--optimizer",
            "adam",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    for name in (
        "latents.npy",
        "covariances.npy",
        "params.pt",
        "history.json",
        "embedding.png",
        "loss.png",
        "checkpoints/last.pt",
    ):
        assert (out / name).is_file(), name
    z, cov = np.load(out / "latents.npy"), np.load(out / "covariances.npy")
    assert z.shape == (ds.Y.shape[0], 2) and cov.shape == (ds.Y.shape[0], 2, 2)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2
    assert load_data(data).shape == ds.Y.shape

    bad = tmp_path / "bad.npy"
    arr = ds.Y.numpy().copy()
    arr[3, 5] = -2.0
    np.save(bad, arr)
    code = main(
        [
            "fit",
            str(bad),
            "--family",
            "poisson",
            "--latent-dim",
            "2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "never"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "row 3, column 5" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_demo_pipeline_tiny(tmp_path):
    summary = run_demo(
        DemoConfig(out=tmp_path, n_grid=12, epochs=2, batch_size=100, progress=False)
    )
    assert summary["verdict"] == "admissible"
    report = (tmp_path / "report.md").read_text()
    for png in ("deq_embedding.png", "pca_embedding.png", "ground_truth.png"):
        assert (tmp_path / png).is_file() and png in report
    assert 0 <= summary["deq_procrustes"] <= 1 and 0 <= summary["pca_procrustes"] <= 1


def test_warm_start_gives_the_same_solution_in_fewer_iterations():
    ds, model = _small_problem()
    model.W.data.mul_(30.0)  # a non-trivial solve
    z_cold = model(ds.Y)
    cold_iters = model.last_stats.iterations.clone()
    z_warm = model(ds.Y, z0=z_cold + 1e-3)
    torch.testing.assert_close(z_warm, z_cold, rtol=0, atol=1e-9)
    assert int(model.last_stats.iterations.sum()) < int(cold_iters.sum())
    # the gradient is taken at the solution, so it does not depend on the start
    (g_cold,) = torch.autograd.grad(model(ds.Y).sum(), model.W)
    (g_warm,) = torch.autograd.grad(model(ds.Y, z0=z_cold).sum(), model.W)
    torch.testing.assert_close(g_warm, g_cold, rtol=1e-7, atol=1e-9)


def test_warm_start_rows_outside_the_domain_restart_from_zero():
    module = importlib.import_module("deqfam.generated.negative_binomial")
    ds = make_dataset(module, n_grid=10, data_dim=6, seed=3)
    model = ExpFamPCA(
        module,
        6,
        2,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
        init_scale=0.3,
    )
    z_ref = model(ds.Y)
    z0 = torch.full_like(z_ref, 1e6)  # W z0 + B far outside eta < 0
    torch.testing.assert_close(model(ds.Y, z0=z0), z_ref, rtol=0, atol=1e-9)
    with pytest.raises(DataError, match="z0 must have shape"):
        model(ds.Y, z0=z_ref[:, :1])
