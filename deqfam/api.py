"""The Python API: where derive/ (SymPy), templates and runtime/ (torch) are wired together.

``generate`` renders a family's layer module and imports it; ``torch_family`` returns the
runtime view of any family (built-in name, spec path, Family, generated module);
``ExpFamPCA``/``KGLMDEQ`` accept any of those as their ``family``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from deqfam.derive.budget import time_budget
from deqfam.derive.generator_version import GENERATOR_VERSION
from deqfam.family_lookup import folder_key, known_module
from deqfam.vocab import Verdict

if TYPE_CHECKING:
    from deqfam.derive.family import Family

# derive.codegen and derive.family (SymPy, Jinja2) are imported where a family is derived,
# not here: the fit path of a built-in or cached family never needs them (family_lookup).


class InadmissibleFamilyError(ValueError):
    """``generate`` refused a family that ``check`` found not admissible."""


def check(family: Any, *, time_limit: float | None = None):
    """Admissibility report of a family (see ``derive/admissibility/``), within a wall-clock
    budget of ``time_limit`` seconds (default: ``derive.budget.resolve_time_limit``); raises
    ``derive.budget.BudgetExceeded`` when it runs out, in any thread."""
    from deqfam.derive.admissibility import check as _check
    from deqfam.derive.family import load_family

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


def emitted_module(text: str, stem: str) -> ModuleType:
    """Import a generated module given as text (``derive.emit``: deep-stack roles, kGLM
    priors): written once, atomically, to ``cache_dir()/emitted/<stem>_<sha256[:16]>.py``
    (the name follows the content, so a file is never rewritten with other text) and loaded
    by :func:`import_generated`."""
    import hashlib

    from deqfam.fsutil import atomic_write_text

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)  # a file name, whatever the caller's name
    path = cache_dir() / "emitted" / f"{stem}_{digest}.py"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return import_generated(path)


def torch_prior(prior: Any):
    """The runtime view (``runtime.kglm.TorchPrior``) of a kGLM prior: a
    ``derive.prior.Prior`` is printed into a generated module (``derive.emit.render_prior``)
    and imported; anything else goes to ``runtime.kglm.as_torch_prior`` as is."""
    from deqfam.derive.prior import Prior
    from deqfam.runtime.kglm import as_torch_prior

    if isinstance(prior, Prior):
        from deqfam.derive.emit import render_prior

        prior = emitted_module(render_prior(prior), f"prior_{prior.family_name}")
    return as_torch_prior(prior)


#: how an admissibility warning starts for each verdict that carries one (text for people;
#: decisions read the typed verdict, ``TorchFamily.admissibility``)
NOT_ADMISSIBLE_MARK = "is NOT admissible"
INCONCLUSIVE_MARK = "admissibility is INCONCLUSIVE"
_REPORTS: dict[str, Any] = {}


@dataclass(frozen=True)
class AdmissibilityNote:
    """``deqfam check``'s verdict on a family, as a generated module records it
    (``FAMILY.admissibility``), and the warning it carries (``FAMILY.admissibility_warning``;
    ``None`` for an admissible family)."""

    verdict: Verdict
    warning: str | None = None


def cached_check(fam: Family):
    """``check(fam)``, cached per spec digest (which covers the parameter values)."""
    from deqfam.derive.codegen import spec_digest

    key = spec_digest(fam)
    if key not in _REPORTS:
        _REPORTS[key] = check(fam)
    return _REPORTS[key]


def refusal_message(name: str, verdict: str, reason: str) -> str:
    """Why a family is refused, naming the verdict and the flag that overrides it."""
    return (
        f"family {name!r} is not an admissible log-partition function (verdict {verdict}): "
        f"{reason}. Pass allow_inadmissible=True (--allow-inadmissible) to use it anyway."
    )


def admissibility_note(fam: Family, allow_inadmissible: bool) -> AdmissibilityNote:
    """The rule on every path that turns a spec into a layer (``deqfam check``'s verdict):

    * admissible: no warning;
    * inconclusive: proceed with a warning (the check found neither proof nor a witness);
    * not_admissible: refuse with :class:`InadmissibleFamilyError` unless
      ``allow_inadmissible``, then proceed with a loud warning.

    Returns the verdict and warning the generated module records in its ``FAMILY``.
    """
    report = cached_check(fam)
    reason = report.reason
    verdict = Verdict(report.verdict)
    if verdict is Verdict.INCONCLUSIVE:
        message = f"family {fam.name} {INCONCLUSIVE_MARK} ({reason}); generated anyway"
    elif verdict is Verdict.NOT_ADMISSIBLE:
        if not allow_inadmissible:
            raise InadmissibleFamilyError(refusal_message(fam.name, verdict, reason))
        message = f"family {fam.name} {NOT_ADMISSIBLE_MARK} ({reason}); generated on request"
    else:
        return AdmissibilityNote(verdict)
    warnings.warn(message, stacklevel=3)
    return AdmissibilityNote(verdict, message)


def _admissibility_warning(fam: Family, allow_inadmissible: bool) -> str | None:
    """The warning of :func:`admissibility_note` alone (``None`` for an admissible family)."""
    return admissibility_note(fam, allow_inadmissible).warning


def check_module_admissibility(module: Any, allow_inadmissible: bool) -> Any:
    """Apply the rule of :func:`admissibility_note` to an already generated module (or its
    ``TorchFamily``), from the verdict its ``FAMILY`` recorded when it was generated
    (``admissibility``; ``None``, generated without the check, passes)."""
    from deqfam.runtime.family import as_torch_family

    fam = as_torch_family(module)
    warning = fam.admissibility_warning
    if fam.admissibility == Verdict.NOT_ADMISSIBLE and not allow_inadmissible:
        reason = warning or "recorded when the module was generated"
        raise InadmissibleFamilyError(refusal_message(fam.name, Verdict.NOT_ADMISSIBLE, reason))
    if warning:
        warnings.warn(warning, stacklevel=3)
    return module


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
    is refused unless ``allow_inadmissible`` (the module then carries a loud warning); an
    inconclusive verdict proceeds with a warning (carried too). Loading, checking and writing
    run within ``time_limit`` seconds (see :func:`check`).
    """
    from deqfam.derive.codegen import write_generated
    from deqfam.derive.family import load_family

    with time_budget(time_limit, "deqfam generate"):
        fam = load_family(family)
        note = admissibility_note(fam, allow_inadmissible) if check_admissibility else None
        out = Path(out_dir) if out_dir is not None else _cache_folder(fam, note)
        targets = tuple(dict.fromkeys(("torch", *targets)))
        paths = write_generated(
            fam,
            out,
            targets=targets,
            warning=None if note is None else note.warning,
            verdict=None if note is None else note.verdict,
        )
    return import_generated(paths["torch"])


def builtin_module(name: str) -> ModuleType:
    """The committed generated module of a built-in family (``deqfam.generated.<name>``)."""
    return importlib.import_module(f"deqfam.generated.{name}")


def _cache_folder(fam: Family, note: AdmissibilityNote | None) -> Path:
    """The cache folder of a generated module: the generator version (a module written by an
    older generator lacks parts of today's contract, e.g. the exact sampler or ``log h``),
    the spec digest, and the verdict the module was generated under (a module generated on
    request must never be served to a run that did not ask, nor a warning-free one to a run
    that did; one generated without the check is kept apart from both)."""
    from deqfam.derive.codegen import spec_digest

    verdict = None if note is None else note.verdict
    return cache_dir() / folder_key(GENERATOR_VERSION, spec_digest(fam), verdict)


def family_module(family: Any, *, allow_inadmissible: bool = False) -> ModuleType:
    """The generated module of any family, reusing the committed one for built-ins and the
    cached one for a spec file generated before (found by spec digest without SymPy,
    ``deqfam.family_lookup``); otherwise derived, checked and generated (into the cache).

    A family that ``check`` rejects is refused unless ``allow_inadmissible`` (see
    :func:`admissibility_note`); a module passed in, or found, is judged by the verdict its
    ``FAMILY`` recorded (:func:`check_module_admissibility`).
    """
    if isinstance(family, ModuleType):
        return check_module_admissibility(family, allow_inadmissible)
    module = known_module(family, cache_dir(), GENERATOR_VERSION, allow_inadmissible)
    if module is not None:
        return check_module_admissibility(module, allow_inadmissible)
    return generate(family, allow_inadmissible=allow_inadmissible)


def torch_family(family: Any, *, allow_inadmissible: bool = False):
    """The runtime (torch) view of a family given in any accepted form (a spec is held to
    the admissibility rule of :func:`family_module`; a ``TorchFamily`` is taken as is)."""
    from deqfam.runtime.family import TorchFamily, as_torch_family

    if isinstance(family, TorchFamily):
        return family
    return as_torch_family(family_module(family, allow_inadmissible=allow_inadmissible))


def register_fused_source(family: Any, module: Any, derive: bool = True) -> Path | None:
    """Make the fused C++ source of ``module``'s family known to ``runtime.fused``: the
    committed one of a built-in, else ``<name>_fused.cpp`` next to the generated module (for
    the same spec digest), else (when ``derive``) that file written from ``family``'s spec (a
    name, path or ``Family``). ``None`` when there is none (the fused backend then warns and
    runs the torch path)."""
    from deqfam.runtime.family import as_torch_family
    from deqfam.runtime.fused_build import fused_source
    from deqfam.runtime.fused_build import register_fused_source as register

    fam = as_torch_family(module)
    found = fused_source(fam)
    if found is not None:
        return found
    folder = getattr(module, "__file__", None)
    beside = Path(folder).parent / f"{fam.name}_fused.cpp" if folder is not None else None
    if beside is not None and beside.is_file():
        if f"sha256 {fam.spec_sha256}" in beside.read_text(encoding="utf-8")[:400]:
            register(fam, beside)
            return beside
    if not derive:
        return None
    # only now SymPy: the spec is derived to write the fused source
    from deqfam.derive.codegen import spec_digest, write_generated
    from deqfam.derive.family import Family, load_family

    if not isinstance(family, str | Path | Family):
        return None
    spec = load_family(family)
    folder = getattr(module, "__file__", None)
    if folder is None or spec_digest(spec) != fam.spec_sha256:
        return None
    path = write_generated(spec, Path(folder).parent, targets=("fused_cpp",))["fused_cpp"]
    register(fam, path)
    return path


def _runtime_models():
    return importlib.import_module("deqfam.runtime.models")


def ExpFamPCA(family: Any, data_dim: int, latent_dim: int, **kwargs):
    """Exponential-family PCA DEQ layer (Theorem 1) for any family form; see runtime.models.

    ``allow_inadmissible=True`` accepts a family that ``check`` rejects (with a warning)."""
    allow = kwargs.pop("allow_inadmissible", False)
    fam = torch_family(family, allow_inadmissible=allow)
    if kwargs.get("backend", "torch") != "torch" and not isinstance(family, type(fam)):
        register_fused_source(family, family_module(family, allow_inadmissible=allow))
    return _runtime_models().ExpFamPCA(fam, data_dim, latent_dim, **kwargs)


def KGLMDEQ(family: Any, n: int, n_out: int, **kwargs):
    """kGLM-initialised DEQ layer (runtime.kglm) for any family form (``allow_inadmissible``
    as for :func:`ExpFamPCA`)."""
    kglm = importlib.import_module("deqfam.runtime.kglm")
    allow = kwargs.pop("allow_inadmissible", False)
    if "prior" in kwargs:
        kwargs["prior"] = torch_prior(kwargs["prior"])
    return kglm.KGLMDEQ(torch_family(family, allow_inadmissible=allow), n, n_out, **kwargs)
