"""``deqfam fit data.csv --family 'NAME:SPEC,...,*:SPEC'`` (deqfam/column_map.py,
deqfam/mixed_fit.py): parsing, the errors (exit 2) and the fits it leads to."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deqfam.cli import main
from deqfam.column_map import ColumnMap, ColumnMapError, is_column_map, parse_column_map

HEADER = ["age", "visits", "smoker", "extra"]


def test_parse_a_map_with_a_default():
    cmap = parse_column_map(" age:gaussian , visits:poisson,*:bernoulli")
    assert cmap == ColumnMap({"age": "gaussian", "visits": "poisson"}, "bernoulli")
    assert cmap.specs_for(HEADER) == ["gaussian", "poisson", "bernoulli", "bernoulli"]


def test_a_spec_path_may_hold_a_colon():
    assert parse_column_map("age:dir:x/spec.yaml").named == {"age": "dir:x/spec.yaml"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age:gaussian,age:poisson", "names column 'age' twice"),
        ("*:poisson,*:gaussian", "default .* twice"),
        ("age:gaussian,poisson", "entry 'poisson' is not NAME:SPEC"),
        ("age:,visits:poisson", "empty column name or family"),
    ],
)
def test_malformed_maps_are_refused_naming_the_entry(text, message):
    with pytest.raises(ColumnMapError, match=message):
        parse_column_map(text)


def test_unknown_and_unmapped_columns_are_named():
    with pytest.raises(ColumnMapError, match=r"'weight'.* does not have; its columns are 'age'"):
        parse_column_map("weight:gaussian,*:poisson").specs_for(HEADER)
    with pytest.raises(ColumnMapError, match="'smoker', 'extra' have no family"):
        parse_column_map("age:gaussian,visits:poisson").specs_for(HEADER)


def test_a_spec_or_an_existing_file_is_not_a_map(tmp_path):
    assert not is_column_map("poisson")
    assert is_column_map("age:gaussian")
    odd = tmp_path / "a:b.yaml"
    odd.write_text("name: x\n")
    assert not is_column_map(str(odd))


CSV_HEADER = ",".join(HEADER)


def _table(tmp_path, header=CSV_HEADER, n=40, seed=0, smoker_row3=None):
    """A CSV whose columns follow one latent: a Gaussian, a Poisson, a Bernoulli and a
    Poisson column."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    cols = [
        1.0 + z + 0.3 * rng.normal(size=n),
        rng.poisson(np.exp(0.5 + 0.5 * z)),
        (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int),
        rng.poisson(2.0, size=n),
    ]
    rows = np.column_stack(cols).astype(float)
    if smoker_row3 is not None:
        rows[3, 2] = smoker_row3
    path = tmp_path / "data.csv"
    lines = [header] if header else []
    lines += [",".join(f"{v:.17g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path, rows


def _fit(path, family, out, *extra):
    argv = ["fit", str(path), "--family", family, "--latent-dim", "1", "--out", str(out)]
    return main([*argv, "--quiet", *extra])


def _error(capsys) -> str:
    return capsys.readouterr().err


def test_value_outside_its_columns_support_exits_2_naming_row_and_column(tmp_path, capsys):
    path, _ = _table(tmp_path, smoker_row3=2)
    code = _fit(path, "age:gaussian,visits:poisson,smoker:bernoulli,*:poisson", tmp_path / "o")
    assert code == 2
    err = _error(capsys)
    assert "column 'smoker': value 2.0 at row 3" in err and "bernoulli (binary)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("header", "family", "message"),
    [
        (CSV_HEADER, "weight:gaussian,*:poisson", "'weight'"),
        ("age,visits,age,extra", "*:poisson", "names column 'age' twice"),
        ("", "*:poisson", "needs a CSV file whose first row names the columns"),
        (CSV_HEADER, "age:gaussian", "have no family"),
    ],
)
def test_bad_maps_and_headers_exit_2(tmp_path, capsys, header, family, message):
    path, _ = _table(tmp_path, header=header)
    assert _fit(path, family, tmp_path / "o") == 2
    assert message in _error(capsys)


def test_param_does_not_apply_to_a_map(tmp_path, capsys):
    path, _ = _table(tmp_path)
    assert _fit(path, "*:binomial", tmp_path / "o", "--param", "n=3") == 2
    assert "--param applies to one SPEC" in _error(capsys)


def test_one_family_for_every_column_is_the_single_family_fit(tmp_path):
    _, rows = _table(tmp_path)
    counts = rows[:, [1, 3]]
    np.savetxt(tmp_path / "counts.csv", counts, delimiter=",", header="visits,extra", comments="")
    assert _fit(tmp_path / "counts.csv", "*:poisson", tmp_path / "a") == 0
    assert _fit(tmp_path / "counts.csv", "poisson", tmp_path / "b") == 0
    a = torch.load(tmp_path / "a" / "params.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "params.pt", weights_only=True)
    assert a["family"] == "poisson" and torch.equal(a["W"], b["W"])


def test_mixed_columns_fit_gives_map_latents(tmp_path):
    """The mixed fit's latents solve the MAP equation lam z = W^T (T(y) - mu(W z + B)),
    with each column's mean in closed form: Gaussian eta, Poisson e^eta, Bernoulli
    sigmoid(eta)."""
    path, rows = _table(tmp_path)
    family = "age:gaussian,visits:poisson,smoker:bernoulli,*:poisson"
    assert _fit(path, family, tmp_path / "o", "--epochs", "3", "--threads", "1") == 0
    params = torch.load(tmp_path / "o" / "params.pt", weights_only=True)
    W, B, lam = params["W"].numpy(), params["B"].numpy(), params["lam"]
    z = np.load(tmp_path / "o" / "latents.npy")
    eta = z @ W.T + B
    mu = np.column_stack([eta[:, 0], np.exp(eta[:, 1]), 1 / (1 + np.exp(-eta[:, 2]))])
    mu = np.column_stack([mu, np.exp(eta[:, 3])])
    assert W.shape == (4, 1) and z.shape == (40, 1)
    np.testing.assert_allclose(lam * z, (rows - mu) @ W, atol=1e-8)
    # the Laplace covariance is the inverse of lam + sum_j W_j^2 Var_j
    var = np.column_stack([np.ones(40), mu[:, 1], mu[:, 2] * (1 - mu[:, 2]), mu[:, 3]])
    cov = np.load(tmp_path / "o" / "covariances.npy")[:, 0, 0]
    np.testing.assert_allclose(cov, 1 / (lam + var @ (W[:, 0] ** 2)), rtol=1e-10)
