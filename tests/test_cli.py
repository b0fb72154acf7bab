"""The command line: list, derive, and clean failures with exit code 2."""

from __future__ import annotations

import subprocess
import sys

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
