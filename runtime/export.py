"""Export a generated activation for deployment: TorchScript or ``torch.export``.

Every function here takes the family contract (a generated module or its ``FAMILY``, a
:class:`~deqfam.runtime.family.TorchFamily`) and reads only that. The artifact is
self-contained: it records the family's plain-torch forward (``activation_plain``, not the
generated module's ``torch.ops.deqfam_gen`` op), traced through deqfam's special-function operators
into core aten ops (``runtime/export_trace.py``), so ``torch.jit.load`` / ``torch.export.load``
in a process that has only ``import torch`` runs it. Should an operator remain in the graph
(one without a plain-torch implementation), the artifact names the one import that
registers it (``REQUIRES`` in its ``deqfam.json`` extra file) and the export says so.

Every export is verified twice before it is reported: reloaded in this process, and in a
fresh interpreter that imports torch and only the declared modules
(``runtime/export_reload.py``); both must reproduce the eager activation on a probe batch.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deqfam.fsutil import atomic_path
from deqfam.runtime.export_reload import FreshReloadError, evaluate_in_fresh_process
from deqfam.runtime.export_trace import (
    StandaloneActivation,
    custom_ops_in,
    inlined_deqfam_ops,
    program_text,
)
from deqfam.runtime.family import as_torch_family

FORMATS = ("torchscript", "exported-program")
#: the import that registers torch.ops.deqfam.* in a process loading an artifact
SPECIAL_OPS_MODULE = "deqfam.runtime.special"
#: name of the JSON metadata file stored inside every artifact
METADATA_NAME = "deqfam.json"


class ExportError(RuntimeError):
    """Export is not possible in this environment (message says why)."""


@dataclass
class ExportResult:
    """What an export wrote and how it was verified."""

    path: Path
    fmt: str
    #: max |artifact - eager activation| over the probe batch, in this process and a fresh one
    max_abs_diff: float
    #: modules a loading process must import first (empty: ``import torch`` suffices)
    requires: list[str] = field(default_factory=list)
    #: deqfam operators the artifact still calls ('ns::name')
    custom_ops: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line saying what a user needs to load the artifact."""
        if not self.requires:
            return "self-contained: loads in a fresh process with `import torch` alone"
        imports = "; ".join(f"import {m}" for m in self.requires)
        return f"needs `{imports}` before loading (it calls {', '.join(self.custom_ops)})"


class ActivationModule(torch.nn.Module):
    """nn.Module wrapper around a family's activation sigma = A' (as the layer calls it)."""

    def __init__(self, family_module: Any) -> None:
        super().__init__()
        self.fn = as_torch_family(family_module).activation

    def forward(self, eta: torch.Tensor) -> torch.Tensor:
        return self.fn(eta)


def probe_inputs(family_module: Any, n: int = 257) -> torch.Tensor:
    """A float64 probe batch strictly inside the family's domain."""
    lo, hi = as_torch_family(family_module).domain
    lo = max(lo, -20.0) if lo == float("-inf") or lo < -20 else lo
    hi = min(hi, 20.0)
    span = hi - lo
    return torch.linspace(lo + 1e-3 * span, hi - 1e-3 * span, n, dtype=torch.float64)


def _metadata(family_module: Any, fmt: str, ops: list[str]) -> str:
    """The artifact's ``deqfam.json``: provenance and what a loading process must import."""
    fam = as_torch_family(family_module)
    return json.dumps(
        {
            "family": fam.name,
            "spec_sha256": fam.spec_sha256,
            "format": fmt,
            "computes": "sigma(eta) = A'(eta), evaluated in float64, rounded to the input dtype",
            "requires": _requires(ops),
            "custom_ops": ops,
            "admissibility": None if fam.admissibility is None else str(fam.admissibility),
            "admissibility_warning": fam.admissibility_warning,
        },
        indent=2,
    )


def _requires(ops: list[str]) -> list[str]:
    """Imports that register ``ops``; a generated module's own op cannot be re-registered."""
    generated = [op for op in ops if op.startswith("deqfam_gen::")]
    if generated:
        raise ExportError(
            f"the traced artifact still calls {', '.join(generated)}, which exists only while "
            "its generated module is imported; regenerate the module with this deqfam"
        )
    return [SPECIAL_OPS_MODULE] if ops else []


def _script_or_trace(module: torch.nn.Module, example: torch.Tensor):
    """TorchScript of ``module``: scripted when its code is plain torch (keeps control flow
    and dtype generality); traced through deqfam's operators when it calls them."""
    scripted = torch.jit.script(module)
    if not custom_ops_in(str(scripted.inlined_graph)):
        return scripted
    with inlined_deqfam_ops():
        return torch.jit.trace(module, (example,), check_trace=False)


def _export_torchscript(module: torch.nn.Module, family_module: Any, path: Path, x):
    if not hasattr(torch.jit, "script"):
        raise ExportError(
            "this torch has no TorchScript (torch.jit.script); use --format exported-program"
        )
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but is what this format means; say it once
            # in the docs rather than on every export
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.(script|load|trace|trace_method)` is deprecated"
            )
            compiled = _script_or_trace(module, x)
            ops = custom_ops_in(str(compiled.inlined_graph))
            meta = _metadata(family_module, "torchscript", ops)
            with atomic_path(path) as tmp:  # exclusive random temp name, then rename
                compiled.save(str(tmp), _extra_files={METADATA_NAME: meta})
            return torch.jit.load(str(path)), ops
    except (RuntimeError, torch.jit.Error) as exc:  # type: ignore[attr-defined]
        raise ExportError(
            f"TorchScript export failed in torch {torch.__version__}: {str(exc).splitlines()[0]}"
        ) from None


def _export_program(module: torch.nn.Module, family_module: Any, path: Path, x):
    batch = torch.export.Dim("batch", min=2)
    with inlined_deqfam_ops():
        program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    ops = custom_ops_in(program_text(program))
    meta = _metadata(family_module, "exported-program", ops)
    with atomic_path(path) as tmp:  # exclusive random temp name (suffix kept), then rename
        torch.export.save(program, str(tmp), extra_files={METADATA_NAME: meta})
    return torch.export.load(str(path)).module(), ops


def _max_abs_diff(got: torch.Tensor, want: torch.Tensor, where: str) -> float:
    """max |got - want|, refusing non-finite values (the probe lies inside the domain)."""
    diff = (got - want).abs()
    if not bool(torch.isfinite(diff).all()):
        raise ExportError(f"the artifact reloaded {where} produced non-finite values on the probe")
    return float(diff.max())


def export_artifact(family_module: Any, fmt: str, path: str | Path) -> ExportResult:
    """Save a family's activation (``family_module``: a generated module or its ``FAMILY``)
    as ``fmt`` at ``path`` and verify the artifact, reloaded here and in a fresh
    interpreter, against the eager activation.

    On any failure the artifact is removed and :class:`ExportError` says why.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fam = as_torch_family(family_module)
    module = StandaloneActivation(fam).eval()
    x = probe_inputs(fam)
    # a second probe of another length catches a graph specialised to the example's shape
    x_fresh = probe_inputs(fam, n=131)
    export = _export_torchscript if fmt == "torchscript" else _export_program
    try:
        reloaded, ops = export(module, fam, path, x)
        requires = _requires(ops)
        with torch.no_grad():
            here = _max_abs_diff(reloaded(x), fam.activation(x), "in this process")
            fresh_out = evaluate_in_fresh_process(fmt, path, x_fresh, requires)
            fresh = _max_abs_diff(fresh_out, fam.activation(x_fresh), "in a fresh process")
    except FreshReloadError as exc:
        path.unlink(missing_ok=True)
        raise ExportError(str(exc)) from None
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    return ExportResult(path, fmt, max(here, fresh), requires, ops)


def export_activation(family_module: Any, fmt: str, path: str | Path) -> float:
    """Save a family's activation as ``fmt`` at ``path``; verify the reload in this
    process and a fresh one (:func:`export_artifact`); return the max |diff|."""
    return export_artifact(family_module, fmt, path).max_abs_diff


def read_metadata(path: str | Path) -> dict:
    """The ``deqfam.json`` stored in an artifact of either format, read from its zip archive
    (loads no code, so it works where the artifact's operators are missing)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"extra/{METADATA_NAME}")]
        if not names:
            raise ExportError(f"{path} carries no {METADATA_NAME}: not exported by deqfam")
        return json.loads(archive.read(names[0]))
