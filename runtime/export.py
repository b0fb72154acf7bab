"""Export a generated activation for deployment: TorchScript or ``torch.export``.

Both paths save, reload and prove that the reloaded artifact reproduces the eager
activation on a probe batch (max absolute difference returned). Reloading an exported
program that uses deqfam's custom ops needs the generated module (and so the ops) imported.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import torch

from deqfam.fsutil import atomic_path

FORMATS = ("torchscript", "exported-program")


class ExportError(RuntimeError):
    """Export is not possible in this environment (message says why)."""


class ActivationModule(torch.nn.Module):
    """nn.Module wrapper around a generated family's activation sigma = A'."""

    def __init__(self, family_module: ModuleType) -> None:
        super().__init__()
        self.fn = family_module.activation

    def forward(self, eta: torch.Tensor) -> torch.Tensor:
        return self.fn(eta)


def probe_inputs(family_module: ModuleType, n: int = 257) -> torch.Tensor:
    """A float64 probe batch strictly inside the family's domain."""
    lo, hi = family_module.DOMAIN
    lo = max(lo, -20.0) if lo == float("-inf") or lo < -20 else lo
    hi = min(hi, 20.0)
    span = hi - lo
    return torch.linspace(lo + 1e-3 * span, hi - 1e-3 * span, n, dtype=torch.float64)


def _export_torchscript(module: torch.nn.Module, path: Path):
    if not hasattr(torch.jit, "script"):
        raise ExportError(
            "this torch has no TorchScript (torch.jit.script); use --format exported-program"
        )
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but is what this format means; say it once
            # in the docs rather than on every export
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.(script|load)` is deprecated")
            scripted = torch.jit.script(module)
            with atomic_path(path) as tmp:  # exclusive random temp name, then rename
                scripted.save(str(tmp))
            return torch.jit.load(str(path))
    except (RuntimeError, torch.jit.Error) as exc:  # type: ignore[attr-defined]
        raise ExportError(
            f"TorchScript export failed in torch {torch.__version__}: {str(exc).splitlines()[0]}"
        ) from None


def _export_program(module: torch.nn.Module, path: Path, example: torch.Tensor):
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    with atomic_path(path) as tmp:  # exclusive random temp name (suffix kept), then rename
        torch.export.save(program, str(tmp))
    return torch.export.load(str(path)).module()


def export_activation(family_module: ModuleType, fmt: str, path: str | Path) -> float:
    """Save ``family_module.activation`` as ``fmt`` at ``path``; reload; return max |diff|."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ActivationModule(family_module).eval()
    x = probe_inputs(family_module)
    reloaded = (
        _export_torchscript(module, path)
        if fmt == "torchscript"
        else _export_program(module, path, x)
    )
    with torch.no_grad():
        diff = (reloaded(x) - module(x)).abs()
    if not bool(torch.isfinite(diff).all()):
        raise ExportError("the reloaded artifact produced non-finite values on the probe batch")
    return float(diff.max())
