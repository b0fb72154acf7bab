"""Round 2 of the CLI's reliability (issue 17, items 6, 7, 8, 11 and the CLI parts of 12):
the exit-code contract (every bad input: exit 2, one line naming it, nothing left behind),
BOM-prefixed CSV files, resume provenance, parameter-dependent support, --help, --param and
export format inference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from deqfam.cli import main
from deqfam.data import load_data
from deqfam.derive.family import load_family
from deqfam.runtime.train import load_checkpoint, save_checkpoint
from deqfam.runtime.validation import DataError, validate_observations

VERBS = ("list", "derive", "check", "generate", "export", "fit", "demo")


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} | {
        str(p.relative_to(root)) for p in root.rglob(".*")
    }


def _counts(path: Path, rows: int = 20, cols: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savetxt(path, rng.poisson(2.0, (rows, cols)), delimiter=",", fmt="%d")
    return path


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Inputs of the exit-code table, in a folder that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    f = {"dir": tmp_path}
    f["data"] = _counts(tmp_path / "d.csv")
    f["one"] = _counts(tmp_path / "one.csv", cols=1)
    big = np.random.default_rng(1).poisson(2.0, (20, 5)).astype(float)
    big[3, 2] = 1e300
    np.save(tmp_path / "big.npy", big)
    f["big"] = tmp_path / "big.npy"
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere.yaml")
    f["file"] = tmp_path / "afile.txt"
    f["file"].write_text("x")
    return f


FIT = ["fit", "{data}", "--family", "poisson", "--epochs", "1", "--quiet", "--out", "{dir}/o"]

# (id, argv template, text the one-line message must contain)
CASES = [
    ("latent-dim 0", [*FIT, "--latent-dim", "0"], "--latent-dim: must be a positive integer"),
    ("latent-dim -1", [*FIT, "--latent-dim", "-1"], "--latent-dim: must be a positive integer"),
    ("latent-dim 100000", [*FIT, "--latent-dim", "100000"], "exceeds the data dimension 5"),
    ("lam 0", [*FIT, "--latent-dim", "2", "--lam", "0"], "--lam: must be a finite number > 0"),
    ("lam -1", [*FIT, "--latent-dim", "2", "--lam", "-1"], "--lam: must be a finite number > 0"),
    ("lam nan", [*FIT, "--latent-dim", "2", "--lam", "nan"], "--lam: must be a finite number"),
    ("batch-size 0", [*FIT, "--latent-dim", "2", "--batch-size", "0"], "--batch-size: must be"),
    ("lr nan", [*FIT, "--latent-dim", "2", "--lr", "nan"], "--lr: must be a finite number"),
    ("lr inf", [*FIT, "--latent-dim", "2", "--lr", "inf"], "--lr: must be a finite number"),
    ("weight-decay -1", [*FIT, "--latent-dim", "2", "--weight-decay", "-1"], "--weight-decay"),
    ("epochs 0", [*FIT, "--latent-dim", "2", "--epochs", "0"], "--epochs: must be a positive"),
    ("epochs -5", [*FIT, "--latent-dim", "2", "--epochs", "-5"], "--epochs: must be a positive"),
    (
        "one column, latent 2",
        ["fit", "{one}", "--family", "poisson", "--latent-dim", "2", "--out", "{dir}/o"],
        "exceeds the data dimension 1",
    ),
    (
        "values of 1e300",
        ["fit", "{big}", "--family", "poisson", "--latent-dim", "2", "--out", "{dir}/o"],
        "row 3, column 2 is larger in magnitude than 2**53",
    ),
    ("data is a directory", [*FIT[:1], "{dir}/adir", *FIT[2:], "--latent-dim", "1"], "directory"),
    ("fit --param unknown", [*FIT, "--latent-dim", "1", "--param", "k=2"], "unknown parameter"),
    ("generate -o file", ["generate", "poisson", "-o", "{file}"], "is a regular file, not a dir"),
    ("generate -o /dev/null", ["generate", "poisson", "-o", "/dev/null"], "character device"),
    ("check --plot x.jpgx", ["check", "poisson", "--plot", "x.jpgx"], "unsupported plot format"),
    ("check --plot missing dir", ["check", "poisson", "--plot", "no/x.png"], "does not exist"),
    ("export -o dir", ["export", "poisson", "-o", "{dir}/adir"], "is a directory"),
    (
        "export suffix mismatch",
        ["export", "poisson", "-o", "a.pt2", "--format", "torchscript"],
        "does not match",
    ),
    ("export unknown suffix", ["export", "poisson", "-o", "a.bin"], "cannot tell the format"),
    ("demo --n-grid 0", ["demo", "--n-grid", "0", "--out", "{dir}/dm"], "--n-grid: must be"),
    ("demo --out file", ["demo", "--out", "{file}"], "is a regular file, not a directory"),
    ("SPEC a directory", ["derive", "{dir}/adir"], "is a directory, not a spec file"),
    ("SPEC a FIFO", ["check", "{dir}/fifo"], "is a FIFO (named pipe), not a spec file"),
    ("SPEC dangling link", ["derive", "{dir}/dangling"], "is a dangling symbolic link"),
    ("--param out of range", ["derive", "binomial", "--param", "n=-3"], "n=-3.0 lies outside"),
    ("--param not a number", ["check", "binomial", "--param", "n=many"], "--param: parameter n"),
    ("--param twice", ["derive", "binomial", "--param", "n=3", "--param", "n=4"], "given twice"),
]


@pytest.mark.parametrize(("argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(files, capsys, argv, needle):
    before = _tree(files["dir"])
    code = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    assert _tree(files["dir"]) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_generate_into_read_only_directory_exits_2(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    assert main(["generate", "poisson", "-o", str(ro / "gen")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert not (ro / "gen").exists()


def test_check_plot_without_suffix_reports_the_real_path(tmp_path, capsys):
    assert main(["check", "poisson", "--plot", str(tmp_path / "adir")]) == 0
    written = tmp_path / "adir.png"
    assert f"plot written to {written}" in capsys.readouterr().out
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- item 6: a UTF-8 byte-order mark ---------------------------------------------------------


@pytest.mark.parametrize("header", [False, True])
def test_csv_with_byte_order_mark_keeps_every_row(tmp_path, header):
    rows = np.arange(120, dtype=float).reshape(40, 3)
    text = "\n".join(",".join(f"{v:g}" for v in r) for r in rows) + "\n"
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (("a,b,c\n" if header else "") + text).encode())
    np.testing.assert_array_equal(load_data(path).numpy(), rows)


# ---- item 7: resume provenance ---------------------------------------------------------------


def _fit(data: Path, out: Path, *extra: str) -> int:
    # the Adam path: these tests exercise its epoch/minibatch checkpoint contract
    argv = ["fit", str(data), "--family", "poisson", "--latent-dim", "2", "--epochs", "1"]
    argv += ["--optimizer", "adam"]
    return main([*argv, "--quiet", "--batch-size", "10", "--out", str(out), *extra])


@pytest.fixture
def fitted(tmp_path):
    data = _counts(tmp_path / "d.csv")
    assert _fit(data, tmp_path / "o") == 0
    return data, tmp_path / "o"


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        (["--lam", "0.5"], "lam=0.1"),
        (["--latent-dim", "3"], "latent_dim=2"),
        (["--family", "negative_binomial"], "family='poisson'"),
        (["--weight-decay", "0.1"], "weight_decay=2.5"),  # the default 0.125 x 20 rows
    ],
)
def test_resume_with_other_settings_is_refused(fitted, capsys, change, setting):
    data, out = fitted
    capsys.readouterr()
    assert _fit(data, out, "--resume", "--epochs", "2", *change) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and f"written with {setting}" in err


def test_resume_with_other_data_is_refused(fitted, tmp_path, capsys):
    _, out = fitted
    other = _counts(tmp_path / "other.csv", seed=5)
    capsys.readouterr()
    assert _fit(other, out, "--resume", "--epochs", "2") == 2
    assert "data_sha256" in capsys.readouterr().err


def test_fit_into_a_folder_with_a_checkpoint_needs_resume_or_overwrite(fitted, capsys):
    data, out = fitted
    ckpt = out / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert _fit(data, out) == 2
    assert "--resume" in capsys.readouterr().err and ckpt.read_bytes() == before
    assert _fit(data, out, "--overwrite", "--lam", "0.3") == 0
    assert load_checkpoint(ckpt)["run"]["lam"] == 0.3


def test_resume_continues_and_says_when_there_is_no_checkpoint(fitted, tmp_path, capsys):
    data, out = fitted
    assert _fit(data, out, "--resume", "--epochs", "2") == 0
    assert len(load_checkpoint(out / "checkpoints" / "last.pt")["history"]["loss"]) == 2
    capsys.readouterr()
    assert _fit(data, tmp_path / "fresh", "--resume") == 0
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "starting afresh" in err


def _tamper_w_shape(s):
    s["model"]["W"] = torch.zeros(7, 2, dtype=torch.float64)


def _tamper_optimizer(s):
    s["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)


def _tamper_shuffler(s):
    s["shuffler"] = torch.zeros(3, dtype=torch.uint8)


def _tamper_batch(s):
    s["batch"] = 99


def _tamper_extra_key(s):
    s["payload"] = "surprise"


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (_tamper_w_shape, "model tensor W has shape (7, 2)"),
        (_tamper_optimizer, "optimiser buffer exp_avg of parameter 0"),
        (_tamper_shuffler, "shuffler is not a random generator state"),
        (_tamper_batch, "batch index 99 is outside"),
        (_tamper_extra_key, "unexpected entries ['payload']"),
    ],
)
def test_tampered_checkpoint_with_valid_checksum_exits_2(fitted, capsys, tamper, needle):
    data, out = fitted
    ckpt = out / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)
    tamper(state)
    save_checkpoint(ckpt, state)  # a fresh, valid checksum: only the structure is wrong
    capsys.readouterr()
    assert _fit(data, out, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


# ---- item 8: support bounded by the family's parameters --------------------------------------


def test_binomial_support_bound_follows_the_parameter_n():
    fam = load_family("binomial")
    assert fam.support_max == 16.0
    assert load_family("binomial", n=10).support_max == 10.0
    # independent reference: scipy's binomial puts no mass above n
    assert stats.binom(16, 0.5).pmf(17) == 0.0 and stats.binom(16, 0.5).pmf(16) > 0.0
    from deqfam.api import torch_family

    tf = torch_family("binomial")
    ok = torch.tensor([[0.0, 16.0]], dtype=torch.float64)
    assert validate_observations(ok, tf.support, support_max=tf.support_max) is ok
    with pytest.raises(DataError, match=r"50\.0 at row 0, column 1 .*at most 16"):
        validate_observations(torch.tensor([[3.0, 50.0]]), tf.support, support_max=tf.support_max)


def test_fit_binomial_refuses_counts_above_n(tmp_path, capsys):
    y = np.random.default_rng(0).binomial(16, 0.4, (20, 5))
    y[4, 1] = 50
    np.savetxt(tmp_path / "b.csv", y, delimiter=",", fmt="%d")
    argv = ["fit", str(tmp_path / "b.csv"), "--family", "binomial", "--latent-dim", "1"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "50.0 at row 4, column 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    argv[4:4] = ["--param", "n=60"]  # with n = 60 the same count is inside the support
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet", "--epochs", "1"]) == 0


def test_parameter_override_gets_its_own_digest():
    """Two parameter values must never share a generated module / custom-op name."""
    from deqfam.derive.codegen import spec_digest

    base, other = load_family("binomial"), load_family("binomial", n=10)
    assert spec_digest(base) != spec_digest(other)
    assert spec_digest(load_family("binomial", n=16)) == spec_digest(base)
    eta = 0.3  # sigma = n * logistic(eta), checked against the closed form
    assert float(other.sigma.subs(other.eta, eta)) == pytest.approx(10 / (1 + np.exp(-eta)))


# ---- item 12 (CLI parts): --help, --param, export suffix -------------------------------------


@pytest.mark.parametrize("verb", VERBS)
def test_every_option_has_a_help_text(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    from deqfam.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[verb]
    for action in sub._actions:
        assert action.help, f"{verb} {action.option_strings or action.dest} has no help"
    if verb == "fit":
        text = capsys.readouterr().out
        assert "(default: 0.1)" in text and "(default: 300)" in text


def test_param_sets_a_spec_parameter(capsys):
    assert main(["derive", "binomial", "--param", "n=10"]) == 0
    out = capsys.readouterr().out
    assert "parameters n=10" in out and "10*log(exp(eta) + 1)" in out


@pytest.mark.parametrize(
    ("suffix", "kind", "marker"),
    [
        (".ts", "torchscript", "/code/__torch__/"),
        (".pt2", "exported-program", "/models/model.json"),
    ],
)
def test_export_infers_the_format_from_the_suffix(tmp_path, capsys, suffix, kind, marker):
    """The archive's own layout says which writer made it: TorchScript archives hold
    compiled ``code/``, torch.export archives a ``models/model.json`` (checked with zipfile,
    independently of deqfam); the .pt2 one also reloads and computes Poisson's exp."""
    import zipfile

    out = tmp_path / f"act{suffix}"
    assert main(["export", "poisson", "-o", str(out)]) == 0
    assert f"as {kind} to {out}" in capsys.readouterr().out
    assert any(marker in name for name in zipfile.ZipFile(out).namelist())
    if kind == "exported-program":
        x = torch.linspace(-3, 3, 7, dtype=torch.float64)
        torch.testing.assert_close(torch.export.load(str(out)).module()(x), torch.exp(x))
