"""Vector and mixed families end to end: the estimator (transform against scipy) and the
CLI (a column map with a vector family, fitted second-order, reloaded by transform)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles.vector_numpy import scipy_map

from deqfam.cli import main


def _table(n: int, seed: int) -> np.ndarray:
    """Columns x (real, rank-1 signal), n (counts), g (positive)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    x = z + 0.5 * rng.standard_normal(n)
    counts = rng.poisson(np.exp(0.4 * z))
    g = rng.gamma(2.0, 0.25 * np.exp(0.3 * z))
    return np.stack([x, counts, g], 1)


def test_estimator_with_a_vector_family_transform_matches_scipy():
    pytest.importorskip("sklearn")
    from deqfam.estimator import ExponentialFamilyPCA

    g = _table(40, 0)[:, 2]
    X = np.stack([0.5 * g + 0.05, 0.2 * g + 0.1], 1)  # positive: gamma_shape on both columns
    est = ExponentialFamilyPCA("gamma_shape", 1, weight_decay=0.1, max_iter=300).fit(X)
    assert est.converged_
    Z = est.transform(X[:6])
    W, B = est.components_.T, est.offsets_
    ref = scipy_map(["gamma_shape"] * 2, W, B, X[:6], est.lam)
    np.testing.assert_allclose(Z, ref, rtol=1e-7, atol=1e-9)


def test_cli_column_map_with_a_vector_family_and_transform(tmp_path, capsys):
    """``--family 'x:normal_unknown_variance,n:poisson,g:gamma_shape'`` fits second-order;
    ``deqfam transform`` of the training rows returns the fitted latents, which scipy's
    per-row minimiser of J reproduces."""
    data = _table(50, 1)
    csv = tmp_path / "t.csv"
    np.savetxt(csv, data, delimiter=",", header="x,n,g", comments="")
    out = tmp_path / "fit"
    fam = "x:normal_unknown_variance,n:poisson,g:gamma_shape"
    args = ["fit", str(csv), "--family", fam, "--latent-dim", "1", "--out", str(out), "--quiet"]
    assert main([*args, "--weight-decay", "0.5"]) == 0
    assert "newton fit" in capsys.readouterr().out
    assert (out / "columns.json").is_file()
    npz = tmp_path / "z.npz"
    assert main(["transform", str(out), str(csv), "--out", str(npz)]) == 0
    latents = np.load(npz)["latents"]
    np.testing.assert_allclose(latents, np.load(out / "latents.npy"), rtol=1e-8, atol=1e-10)
    params = torch.load(out / "params.pt", weights_only=True)
    W, B = params["W"].numpy(), params["B"].numpy()
    names = ["normal_unknown_variance", "poisson", "gamma_shape"]
    ref = scipy_map(names, W, B, data[:5], params["lam"])
    np.testing.assert_allclose(latents[:5], ref, rtol=1e-7, atol=1e-9)
    # a resumed run checks its provenance: other data is refused (exit 2)
    np.savetxt(csv, data[:-1], delimiter=",", header="x,n,g", comments="")
    assert main([*args, "--weight-decay", "0.5", "--resume"]) == 2
    assert "data_s" in capsys.readouterr().err
