"""The command line: list, derive, and clean failures with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deqfam.cli import main


def test_list_names_every_builtin(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gaussian", "bose_einstein", "negative_binomial"):
        assert name in out


def test_derive_prints_stable_forms(capsys):
    assert main(["derive", "bose_einstein"]) == 0
    out = capsys.readouterr().out
    assert "polylog_exp(3/2, eta)" in out
    assert "strict convexity" in out and "proven" in out


def test_derive_latex(capsys):
    assert main(["derive", "bernoulli", "--latex"]) == 0
    assert r"\log{\left(e^{\eta} + 1 \right)}" in capsys.readouterr().out


def test_bad_spec_exits_2_with_message(tmp_spec):
    path = tmp_spec("name: x\nsupport: real\nlog_partition: __import__('os')\ndomain: [-oo, oo]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "deqfam", "derive", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "field 'log_partition'" in proc.stderr and f"{path}:3" in proc.stderr
    assert "Traceback" not in proc.stderr


RELU = "name: relu_model\nsupport: real\nlog_partition: Max(0, eta)**2/2\ndomain: [-oo, oo]\n"


def test_check_exit_codes_and_json(capsys, tmp_path):
    import json

    assert main(["check", "poisson", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "poisson" and out["verdict"] == "admissible"
    assert {"convexity", "evidence"} <= set(out)
    png = tmp_path / "fd.png"
    assert main(["check", "fermi_dirac", "--plot", str(png)]) == 1
    assert "not_admissible" in capsys.readouterr().out
    assert png.stat().st_size > 10_000


def test_generate_refuses_inadmissible_unless_allowed(tmp_spec, tmp_path, capsys):
    spec = tmp_spec(RELU)
    assert main(["generate", str(spec), "-o", str(tmp_path / "a")]) == 1
    assert "not an admissible" in capsys.readouterr().err
    assert not (tmp_path / "a" / "relu_model.py").exists()
    with pytest.warns(UserWarning, match="NOT admissible"):
        assert main(["generate", str(spec), "-o", str(tmp_path / "b"), "--allow-inadmissible"]) == 0
    text = (tmp_path / "b" / "relu_model.py").read_text()
    assert text.splitlines()[3].startswith("# WARNING: family relu_model is NOT admissible")


def test_generate_all_targets(tmp_path, capsys):
    assert main(["generate", "gamma", "-o", str(tmp_path), "--target", "all"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "gamma.py",
        "gamma_fused.cpp",
        "gamma_fused.cu",
        "gamma_kernels.cpp",
        "gamma_kernels.cu",
    ]


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_export_cli(fmt, tmp_path, capsys):
    out = tmp_path / f"act.{fmt}"
    assert main(["export", "ising", "--format", fmt, "-o", str(out)]) == 0
    assert out.is_file() and "max |diff| = 0" in capsys.readouterr().out
