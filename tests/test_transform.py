"""Reuse of a fit: ``deqfam.fitted.load_fit`` and ``deqfam transform DIR DATA``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deqfam.cli import main
from deqfam.fitted import FitDirError, load_fit
from deqfam.fitting import fit


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    """A small Poisson fit written to a folder, and its training data file."""
    root = tmp_path_factory.mktemp("fit")
    gen = torch.Generator().manual_seed(0)
    rate = torch.exp(torch.randn(30, 5, generator=gen, dtype=torch.float64) * 0.5)
    data = torch.poisson(rate, generator=gen)
    np.save(root / "y.npy", data.numpy())
    fit(data, "poisson", 2, epochs=3, batch_size=10, progress=False, out_dir=root / "fit")
    return root


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_transform_of_the_training_rows_gives_the_fitted_latents(fitted_dir, capsys):
    out = fitted_dir / "t.npz"
    code = main(
        ["transform", str(fitted_dir / "fit"), str(fitted_dir / "y.npy"), "--out", str(out)]
    )
    assert code == 0
    got = np.load(out)
    np.testing.assert_allclose(
        got["latents"], np.load(fitted_dir / "fit" / "latents.npy"), atol=1e-8
    )
    np.testing.assert_allclose(
        got["covariances"], np.load(fitted_dir / "fit" / "covariances.npy"), atol=1e-8
    )
    # independently: z* solves lam z = W^T (y - e^{Wz + B}) and cov = (lam I + W^T diag(e^eta) W)^-1
    params = torch.load(fitted_dir / "fit" / "params.pt", weights_only=True)
    W, B, lam = params["W"].numpy(), params["B"].numpy(), params["lam"]
    y, z = np.load(fitted_dir / "y.npy"), got["latents"]
    rate = np.exp(z @ W.T + B)
    np.testing.assert_allclose(lam * z, (y - rate) @ W, atol=1e-8)
    hess = lam * np.eye(2) + np.einsum("di,nd,dj->nij", W, rate, W)
    np.testing.assert_allclose(got["covariances"], np.linalg.inv(hess), rtol=1e-8, atol=1e-12)


def test_transform_prints_one_json_object_per_row(fitted_dir, capsys):
    assert main(["transform", str(fitted_dir / "fit"), str(fitted_dir / "y.npy")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 30
    np.testing.assert_allclose(
        [r["latent"] for r in rows], np.load(fitted_dir / "fit" / "latents.npy"), atol=1e-8
    )


def test_wrong_column_count_exits_2(fitted_dir, tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.ones((4, 6)))
    assert main(["transform", str(fitted_dir / "fit"), str(tmp_path / "wide.npy")]) == 2
    assert "6 columns" in _one_error_line(capsys)


def test_data_outside_the_support_exits_2(fitted_dir, tmp_path, capsys):
    np.save(tmp_path / "neg.npy", -np.ones((3, 5)))
    assert main(["transform", str(fitted_dir / "fit"), str(tmp_path / "neg.npy")]) == 2
    _one_error_line(capsys)


def _copy_fit(src, dst):
    dst.mkdir()
    for name in ("params.pt", "spec.yaml"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["missing_dir", "no_params", "tampered_spec", "garbage_params"])
def test_missing_or_tampered_fit_dir_exits_2(fitted_dir, tmp_path, capsys, damage):
    folder = _copy_fit(fitted_dir / "fit", tmp_path / "fit")
    if damage == "missing_dir":
        folder = tmp_path / "nowhere"
    elif damage == "no_params":
        (folder / "params.pt").unlink()
    elif damage == "tampered_spec":
        text = (folder / "spec.yaml").read_text()
        (folder / "spec.yaml").write_text(text.replace("Poisson", "poisson!"))
    else:
        (folder / "params.pt").write_bytes(b"not a torch file")
    assert main(["transform", str(folder), str(fitted_dir / "y.npy")]) == 2
    _one_error_line(capsys)
    with pytest.raises(FitDirError):
        load_fit(folder)
