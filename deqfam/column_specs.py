"""The families of a per-column fit by their specs: resolving vector specs to runtime
families, and recording the specs in a fit folder so ``deqfam transform`` can reload it.

``deqfam fit --family gamma_shape`` (a vector family for every column) and column maps with
vector families (``--family 'x:normal_unknown_variance,n:poisson'``) fit the per-column
model (``deqfam.mixed_fit``). Its fit folder holds ``columns.json``: the distinct spec texts
with their SHA-256 digests and, per data column, the index of its spec (and the CSV column
names when known). :func:`load_columns` re-derives every spec from its text, refuses a text
whose digest differs from the recorded one, and returns the ``ColumnFamilies`` in column
order (columns with the same spec share one family object, so they are one group).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deqfam.fitted import COLUMNS_NAME


@dataclass
class ColumnSpecs:
    """The SPEC of every data column (a name or a path, or None for a runtime family given
    directly), its runtime family, and the column names (or None)."""

    specs: list[Any]
    families: list[Any]
    names: list[str] | None = None


def spec_text(spec: str | Path) -> str:
    """The YAML text of a built-in (scalar or vector) or of a spec file."""
    from deqfam.derive.builtin_specs import (
        builtin_names,
        builtin_spec_text,
        vector_builtin_names,
        vector_builtin_spec_text,
    )

    text = str(spec)
    if isinstance(spec, str) and text in builtin_names():
        return builtin_spec_text(text)
    if isinstance(spec, str) and text in vector_builtin_names():
        return vector_builtin_spec_text(text)
    return Path(text).read_text("utf-8")


#: a top-level key only a vector spec has (``derive/vector_spec.py``)
_VECTOR_KEY = re.compile(r"^(natural_parameters|categories)[ \t]*:", re.MULTILINE)


def is_vector_spec(spec: Any) -> bool:
    """Whether a SPEC (a built-in name or a spec file) is a vector family: a vector built-in,
    or a file with a top-level ``natural_parameters`` or ``categories`` key. Read as text, not
    derived, so the fit path of a scalar family imports no SymPy; the spec itself is parsed
    and validated later by whichever reader it goes to."""
    from deqfam.derive.builtin_specs import builtin_names, vector_builtin_names

    if not isinstance(spec, str | Path) or str(spec) in builtin_names():
        return False
    if str(spec) in vector_builtin_names():
        return True
    path = Path(spec)
    try:
        return path.is_file() and _VECTOR_KEY.search(path.read_text("utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False  # the scalar reader reports the unreadable file


def vector_torch_family(spec: Any, allow_inadmissible: bool = False) -> Any:
    """The runtime family of a vector SPEC: a built-in's committed module when its digest
    matches the spec, else the module generated into the cache after ``deqfam check``'s
    vector stages (refused when not admissible unless ``allow_inadmissible``)."""
    import importlib

    from deqfam.api import InadmissibleFamilyError, cache_dir, import_generated
    from deqfam.derive.builtin_specs import vector_builtin_names
    from deqfam.derive.codegen import GENERATOR_VERSION
    from deqfam.derive.family import load_family
    from deqfam.derive.vector_check import check_vector_family
    from deqfam.derive.vector_codegen import write_vector_generated
    from deqfam.vocab import Verdict

    fam = load_family(spec)
    if str(spec) in vector_builtin_names():
        module = importlib.import_module(f"deqfam.generated.{fam.name}")
        if module.FAMILY.spec_sha256 == fam.spec_sha256:
            return module.FAMILY
    report = check_vector_family(fam)
    verdict = Verdict(report.verdict)
    if verdict is Verdict.NOT_ADMISSIBLE and not allow_inadmissible:
        raise InadmissibleFamilyError(f"{fam.name} is not admissible: {report.reason}")
    warning = None if verdict is Verdict.ADMISSIBLE else f"deqfam check: {verdict.value}"
    out = cache_dir() / f"g{GENERATOR_VERSION}-{fam.spec_sha256[:16]}-{verdict.value}"
    path = write_vector_generated(fam, out, warning=warning, verdict=verdict.value)["torch"]
    return import_generated(path).FAMILY


def column_family(spec: Any, allow_inadmissible: bool = False) -> Any:
    """The runtime family of any SPEC (scalar through ``deqfam.api.torch_family``)."""
    from deqfam.api import torch_family

    if is_vector_spec(spec):
        return vector_torch_family(spec, allow_inadmissible)
    return torch_family(spec, allow_inadmissible=allow_inadmissible)


def resolve_column_specs(
    specs: list[Any], names: list[str] | None = None, allow_inadmissible: bool = False
) -> ColumnSpecs:
    """``ColumnSpecs`` of per-column SPECs (the same SPEC gives the same family object)."""
    resolved = {str(s): column_family(s, allow_inadmissible) for s in dict.fromkeys(specs)}
    return ColumnSpecs(list(specs), [resolved[str(s)] for s in specs], names)


def columns_record(columns: ColumnSpecs) -> bytes:
    """``columns.json`` (module docstring) of per-column SPECs; ValueError when a column has
    no spec text (a runtime family given directly cannot be reloaded)."""
    if any(s is None for s in columns.specs):
        raise ValueError("a column family without a spec cannot be recorded")
    texts = list(dict.fromkeys(spec_text(s) for s in columns.specs))
    specs = [{"text": t, "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()} for t in texts]
    index = [texts.index(spec_text(s)) for s in columns.specs]
    record = {"specs": specs, "columns": index, "names": columns.names}
    return json.dumps(record, indent=2).encode("utf-8")


def columns_digests(columns: ColumnSpecs) -> list[str | None]:
    """The spec digest of every column's family (for the run settings of a checkpoint)."""
    return [getattr(f, "spec_sha256", None) for f in columns.families]


def _builtin_with_text(text: str) -> str | None:
    """The built-in whose spec text is ``text`` (its committed module is then reused)."""
    from deqfam.derive.builtin_specs import builtin_names, vector_builtin_names

    for name in [*builtin_names(), *vector_builtin_names()]:
        if spec_text(name) == text:
            return name
    return None


def load_columns(path: Path) -> Any:
    """The ``ColumnFamilies`` recorded in ``columns.json`` (module docstring); ValueError for
    an altered or malformed record."""
    import tempfile

    from deqfam.runtime.columns import ColumnFamilies

    try:
        record = json.loads(path.read_text("utf-8"))
        specs, index = record["specs"], record["columns"]
        texts = [s["text"] for s in specs]
        digests = [s["sha256"] for s in specs]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a column record: {exc}") from None
    families = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (text, digest) in enumerate(zip(texts, digests, strict=True)):
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
                raise ValueError(f"{path}: spec {i} does not match its recorded digest")
            spec = _builtin_with_text(text)
            if spec is None:
                spec = Path(tmp) / f"spec_{i}.yaml"
                spec.write_text(text, encoding="utf-8")
            families.append(column_family(spec, allow_inadmissible=True))  # fitted already
    if not all(isinstance(j, int) and 0 <= j < len(families) for j in index) or not index:
        raise ValueError(f"{path}: its column indices do not name its specs")
    return ColumnFamilies([families[j] for j in index])


__all__ = [
    "COLUMNS_NAME",
    "ColumnSpecs",
    "column_family",
    "columns_digests",
    "columns_record",
    "is_vector_spec",
    "load_columns",
    "resolve_column_specs",
    "spec_text",
]
