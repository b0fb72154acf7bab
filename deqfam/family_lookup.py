"""An already generated module for a family named by a built-in name or a spec file, found
without SymPy: the fit path of a built-in or once-generated family derives nothing.

* A built-in name: the committed module ``deqfam.generated.<name>``, if its
  ``FAMILY.spec_sha256`` is the SHA-256 of the built-in spec text (the drift test keeps it so).
* A spec file: the module ``deqfam.api.generate`` wrote to the per-user cache for a spec with
  the same text, under the same generator version, and a verdict the caller accepts: the
  folder ``g<version>-<digest[:16]>`` (admissible) or ``...-inconclusive``, and
  ``...-inadmissible-allowed`` only with ``allow_inadmissible``. A folder written without
  the check (``-unchecked``) is never used. The module's recorded digest must equal the full
  digest of the text.

Whatever is found is still held to the admissibility rule (``api.check_module_admissibility``)
by the caller; anything not found returns ``None`` and the caller derives, checks and
generates as before (and so caches the module for the next run).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from deqfam.derive.builtin_specs import builtin_names, builtin_spec_text, text_digest
from deqfam.vocab import Verdict

#: cache folder suffix of each verdict a module was generated under (None: without the check)
VERDICT_SUFFIX: dict[Verdict | None, str] = {
    Verdict.ADMISSIBLE: "",
    Verdict.INCONCLUSIVE: "-inconclusive",
    Verdict.NOT_ADMISSIBLE: "-inadmissible-allowed",
    None: "-unchecked",
}


def folder_key(version: str, digest: str, verdict: Verdict | None) -> str:
    """The cache folder name of a module: generator version, spec digest, verdict."""
    return f"g{version}-{digest[:16]}{VERDICT_SUFFIX[verdict]}"


def builtin_committed_module(name: str) -> ModuleType | None:
    """The committed module of built-in ``name`` if it matches today's spec text, else None."""
    try:
        module = importlib.import_module(f"deqfam.generated.{name}")
    except ModuleNotFoundError:
        return None
    return module if module.FAMILY.spec_sha256 == text_digest(builtin_spec_text(name)) else None


def cached_spec_module(
    path: Path, root: Path, version: str, allow_inadmissible: bool
) -> ModuleType | None:
    """The cached module generated from the spec file ``path`` (module docstring), or None."""
    from deqfam.api import import_generated

    try:
        digest = text_digest(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None  # the derivation path reports the problem
    verdicts = [Verdict.ADMISSIBLE, Verdict.INCONCLUSIVE]
    if allow_inadmissible:
        verdicts.append(Verdict.NOT_ADMISSIBLE)
    for verdict in verdicts:
        files = sorted((root / folder_key(version, digest, verdict)).glob("*.py"))
        if len(files) != 1:
            continue
        module = import_generated(files[0])
        fam = getattr(module, "FAMILY", None)
        if getattr(fam, "spec_sha256", None) == digest and fam.admissibility == verdict:
            return module
    return None


def known_module(
    family: Any, root: Path, version: str, allow_inadmissible: bool
) -> ModuleType | None:
    """The committed or cached module of ``family`` (a built-in name or a spec path), or None
    for anything else (a Family, a spec not generated before, parameter overrides)."""
    if isinstance(family, str) and family in builtin_names():
        return builtin_committed_module(family)
    if isinstance(family, str | Path) and Path(family).is_file():
        return cached_spec_module(Path(family), root, version, allow_inadmissible)
    return None
