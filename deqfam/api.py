"""The Python API: where derive/ (SymPy), templates and runtime/ (torch) are wired together.

``generate`` renders a family's layer module and imports it; ``torch_family`` returns the
runtime view of any family (built-in name, spec path, Family, generated module);
``ExpFamPCA``/``KGLMDEQ`` accept any of those as their ``family``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from deqfam.derive.budget import time_budget
from deqfam.derive.codegen import spec_digest, write_generated
from deqfam.derive.family import Family, builtin_names, load_family


class InadmissibleFamilyError(ValueError):
    """``generate`` refused a family that ``check`` found not admissible."""


def check(family: Any, *, time_limit: float | None = None):
    """Admissibility report of a family (see ``derive/admissibility.py``), within a wall-clock
    budget of ``time_limit`` seconds (default: ``derive.budget.resolve_time_limit``); raises
    ``derive.budget.BudgetExceeded`` when it runs out, in any thread."""
    from deqfam.derive.admissibility import check as _check

    with time_budget(time_limit, "deqfam check"):
        return _check(load_family(family))


def cache_dir() -> Path:
    """Where modules generated on the fly go (``$DEQFAM_CACHE`` or ``~/.cache/deqfam``)."""
    root = Path(os.environ.get("DEQFAM_CACHE", Path.home() / ".cache" / "deqfam"))
    return root / "generated"


def import_generated(path: str | Path) -> ModuleType:
    """Import a generated module from its file, under a name unique to its content."""
    path = Path(path).resolve()
    text = path.read_bytes()
    import hashlib

    digest = hashlib.sha256(text).hexdigest()[:16]
    modname = f"deqfam_generated_{path.stem}_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import generated module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[modname]
        raise
    return module


def _admissibility_warning(fam: Family, allow_inadmissible: bool) -> str | None:
    report = check(fam)
    if report.verdict != "not_admissible":
        return None
    reason = report.reason if hasattr(report, "reason") else report.format_text()
    if not allow_inadmissible:
        raise InadmissibleFamilyError(
            f"family {fam.name!r} is not an admissible log-partition function: {reason}. "
            "Pass allow_inadmissible=True (--allow-inadmissible) to generate it anyway."
        )
    message = f"family {fam.name} is NOT admissible ({reason}); generated on request"
    warnings.warn(message, stacklevel=3)
    return message


def generate(
    family: Any,
    out_dir: str | Path | None = None,
    *,
    targets=("torch",),
    allow_inadmissible: bool = False,
    check_admissibility: bool = True,
    time_limit: float | None = None,
) -> ModuleType:
    """Generate a family's layer module (and kernels in ``targets``) and import it.

    ``out_dir`` defaults to a per-user cache. A family that ``check`` finds not admissible
    is refused unless ``allow_inadmissible`` (the module then carries a loud warning).
    Loading, checking and writing run within ``time_limit`` seconds (see :func:`check`).
    """
    with time_budget(time_limit, "deqfam generate"):
        fam = load_family(family)
        warning = _admissibility_warning(fam, allow_inadmissible) if check_admissibility else None
        out = Path(out_dir) if out_dir is not None else cache_dir() / spec_digest(fam)[:16]
        targets = tuple(dict.fromkeys(("torch", *targets)))
        paths = write_generated(fam, out, targets=targets, warning=warning)
    return import_generated(paths["torch"])


def builtin_module(name: str) -> ModuleType:
    """The committed generated module of a built-in family (``deqfam.generated.<name>``)."""
    return importlib.import_module(f"deqfam.generated.{name}")


def family_module(family: Any) -> ModuleType:
    """The generated module of any family, reusing the committed one for built-ins."""
    if isinstance(family, ModuleType):
        return family
    if isinstance(family, str) and family in builtin_names():
        try:
            module = builtin_module(family)
        except ModuleNotFoundError:
            module = None
        if module is not None and module.SPEC_SHA256 == spec_digest(load_family(family)):
            return module
    return generate(family, check_admissibility=False)


def torch_family(family: Any):
    """The runtime (torch) view of a family given in any accepted form."""
    from deqfam.runtime.family import TorchFamily, as_torch_family

    if isinstance(family, TorchFamily):
        return family
    return as_torch_family(family_module(family))


def _runtime_models():
    return importlib.import_module("deqfam.runtime.models")


def ExpFamPCA(family: Any, data_dim: int, latent_dim: int, **kwargs):
    """Exponential-family PCA DEQ layer (Theorem 1) for any family form; see runtime.models."""
    return _runtime_models().ExpFamPCA(torch_family(family), data_dim, latent_dim, **kwargs)


def KGLMDEQ(family: Any, n: int, n_out: int, **kwargs):
    """kGLM-initialised DEQ layer (runtime.kglm) for any family form."""
    kglm = importlib.import_module("deqfam.runtime.kglm")
    return kglm.KGLMDEQ(torch_family(family), n, n_out, **kwargs)
