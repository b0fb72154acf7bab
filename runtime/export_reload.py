"""Reload an exported artifact in a fresh Python process and evaluate it on a probe batch.

A reload in the exporting process proves little: the custom ops the artifact may name are
registered there already. The child interpreter here imports torch and exactly the modules
the artifact declares it needs (none for a self-contained one); every other ``deqfam``
import is blocked, so an artifact that secretly depends on deqfam fails the check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

#: seconds the child may take (importing torch alone takes seconds on a loaded machine)
RELOAD_TIMEOUT_S = 300.0

_CHILD = r"""
import importlib, sys
fmt, artifact, probe, out = sys.argv[1:5]
requires = [m for m in sys.argv[5:] if m]
if not requires:
    sys.modules["deqfam"] = None  # any import of deqfam now raises ImportError
import torch
torch.set_num_threads(1)
for name in requires:
    importlib.import_module(name)
x = torch.load(probe, weights_only=True)
if fmt == "torchscript":
    fn = torch.jit.load(artifact)
else:
    fn = torch.export.load(artifact).module()
with torch.no_grad():
    torch.save(fn(x), out)
"""


class FreshReloadError(RuntimeError):
    """The artifact did not load or run in a fresh interpreter (message has its stderr)."""


def _child_env() -> dict[str, str]:
    """The parent's environment with one thread per library (the probe batch is tiny)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def evaluate_in_fresh_process(
    fmt: str, artifact: str | Path, x: torch.Tensor, requires: Sequence[str] = ()
) -> torch.Tensor:
    """Load ``artifact`` (format ``fmt``) in a new interpreter that imports only torch and
    ``requires``; return its output on ``x``. Raises :class:`FreshReloadError`."""
    with tempfile.TemporaryDirectory(prefix="deqfam-reload-") as tmp:
        probe, out = Path(tmp) / "probe.pt", Path(tmp) / "out.pt"
        torch.save(x, probe)
        cmd = [sys.executable, "-c", _CHILD, fmt, str(artifact), str(probe), str(out)]
        try:
            proc = subprocess.run(
                [*cmd, *requires],
                capture_output=True,
                text=True,
                timeout=RELOAD_TIMEOUT_S,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FreshReloadError(
                f"reloading {artifact} in a fresh process took over {RELOAD_TIMEOUT_S:.0f} s"
            ) from None
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {proc.returncode}"
            raise FreshReloadError(f"{artifact} does not load in a fresh process: {last}")
        return torch.load(out, weights_only=True)
