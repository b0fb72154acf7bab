"""Find, build (once, cached) and load the generated fused DEQ layers (``<name>_fused.cpp``).

A family's fused source is found by its spec digest: a source registered with
:func:`register_fused_source` (``deqfam.api`` registers the ones it generates), else the
committed ``deqfam.generated/<name>_fused.cpp`` when its header names the same digest.

Builds go to ``kernel_build_dir()/fused_<key>`` (``key`` = digest of the sources' text), under an
exclusive ``fcntl.flock`` on ``fused_<key>.lock``: a second process building the same family
waits, then finds the library built and only loads it, so concurrent first builds cannot
corrupt the cache. A first build prints one line naming the family and the time it took. A
missing compiler or a failed build gives one ``FusedUnavailableWarning`` per family (no
traceback) and ``None``: the caller then runs the torch path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import os
import platform
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deqfam.fsutil import atomic_write_text
from deqfam.runtime.extensions import kernel_build_dir
from deqfam.runtime.family import TorchFamily, as_torch_family

_SOURCES: dict[str, Path] = {}  # spec digest -> registered fused C++ source
_LOADED: dict[str, str] = {}  # spec digest -> the torch.library namespace of its ops
_FAILED: set[str] = set()  # spec digests whose build failed (not retried in this process)
_WARNED: set[str] = set()
_NAMESPACE = re.compile(r"^TORCH_LIBRARY\((deqfam_fused_[a-z][a-z0-9_]*), m\)", re.MULTILINE)


class FusedUnavailableWarning(UserWarning):
    """The fused layer could not be built or does not apply; the torch path runs instead."""


def register_fused_source(family: Any, cpp_path: str | Path) -> None:
    """Use ``cpp_path`` (a generated ``<name>_fused.cpp``) as ``family``'s fused source."""
    fam = as_torch_family(family)
    if fam.spec_sha256 is None:
        raise ValueError(f"family {fam.name!r} has no spec digest (not a generated family)")
    _SOURCES[fam.spec_sha256] = Path(cpp_path)


def fused_source(family: Any) -> Path | None:
    """The fused C++ source of ``family`` (see the module docstring), or ``None``."""
    fam = as_torch_family(family)
    if fam.spec_sha256 is None:
        return None
    if fam.spec_sha256 in _SOURCES:
        return _SOURCES[fam.spec_sha256]
    committed = importlib.resources.files("deqfam.generated") / f"{fam.name}_fused.cpp"
    if committed.is_file():
        head = committed.read_text(encoding="utf-8")[:400]
        if f"sha256 {fam.spec_sha256}" in head:
            return Path(str(committed))
    return None


def loaded_namespace(family: Any) -> str | None:
    """The op namespace of ``family``'s fused layer if it is loaded in this process."""
    fam = as_torch_family(family)
    return _LOADED.get(fam.spec_sha256 or "")


def compiler_available() -> bool:
    """Whether the C++ compiler torch's extension builder uses (``$CXX`` or ``c++``) exists."""
    return shutil.which(os.environ.get("CXX", "c++")) is not None


@contextlib.contextmanager
def _build_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock held while a build folder is written and compiled."""
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _warn_once(fams: list[TorchFamily], reason: str) -> None:
    names = [f.name for f in fams if f.spec_sha256 not in _WARNED]
    _WARNED.update(f.spec_sha256 or "" for f in fams)
    if names:
        warnings.warn(
            f"deqfam: the fused solver for {', '.join(names)} is unavailable ({reason}); "
            "using the torch path",
            FusedUnavailableWarning,
            stacklevel=3,
        )


def _give_up(fams: list[TorchFamily], reason: str) -> None:
    """Remember that these families cannot be built here, and say so once."""
    _FAILED.update(f.spec_sha256 or "" for f in fams)
    _warn_once(fams, reason)


def libmvec_available() -> bool:
    """Whether glibc's vector math library has what the fused sources declare SIMD (exp,
    log, log1p, expm1: x86-64 glibc >= 2.35) and the compiler is GCC (the ``simd`` and
    ``target_clones`` attributes)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    lib, version = platform.libc_ver()
    parts = tuple(int(v) for v in re.findall(r"\d+", version)[:2])
    compiler = os.path.basename(os.environ.get("CXX", "c++"))
    return lib == "glibc" and parts >= (2, 35) and "clang" not in compiler


def compile_flags() -> tuple[list[str], list[str]]:
    """The C++ and link flags of a fused build. ``-fno-math-errno``: libm calls without
    errno are pure, so one ``exp(-|x|)`` serves softplus, sigmoid and sigmoid' of one x;
    ``-fno-trapping-math``: no FP exception is observed, so a select between two quotients
    needs no branch (the family pass vectorises); ``-ffp-contract=off``: no fused
    multiply-add in the AVX2 clone, so it rounds as the baseline and the torch path do; with
    libmvec, ``DEQFAM_LIBMVEC`` and ``-lmvec`` (``family_at`` in the solver)."""
    cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    if libmvec_available():
        return [*cflags, "-DDEQFAM_LIBMVEC"], ["-lmvec"]
    return cflags, []


def _build_key(text: str) -> str:
    """The cache key of a build: the digest of its sources' text and compile flags."""
    return hashlib.sha256((text + repr(compile_flags())).encode("utf-8")).hexdigest()[:16]


def fused_built(family: Any) -> bool:
    """Whether ``family``'s fused layer is loaded in this process or its library is already
    in the build cache (built alone, as :func:`load_fused` of one family builds it), so that
    using it costs no compilation."""
    fam = as_torch_family(family)
    if fam.spec_sha256 in _LOADED:
        return True
    src = fused_source(fam)
    if src is None:
        return False
    key = _build_key(src.read_text(encoding="utf-8"))
    return (kernel_build_dir(create=False) / f"fused_{key}" / f"deqfam_fused_{key}.so").is_file()


def _compile(fams: list[TorchFamily], sources: list[Path], verbose: bool) -> None:
    """Compile the sources as ONE translation unit (each family has its own namespace)."""
    from torch.utils import cpp_extension

    # the sources' text itself, never '#include "<path>"' (a path is not C++); the build is
    # keyed by that text (it names the spec digests in its headers), so another generator
    # version's source for the same spec builds in its own folder instead of over this one
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    key = _build_key(text)
    root = kernel_build_dir()
    build = root / f"fused_{key}"
    name = f"deqfam_fused_{key}"
    with _build_lock(root / f"fused_{key}.lock"):
        build.mkdir(parents=True, exist_ok=True)
        library = build / f"{name}.so"
        unit = build / "fused.cpp"
        first = not library.exists()
        if first or unit.read_text(encoding="utf-8") != text:
            atomic_write_text(unit, text)
        if first:
            label = ", ".join(f.name for f in fams)
            print(f"deqfam: compiling fused solver for {label} (first use)...", end="", flush=True)
        start = time.perf_counter()
        cflags, ldflags = compile_flags()
        cpp_extension.load(
            name=name,
            sources=[str(unit)],
            extra_cflags=cflags,
            extra_ldflags=ldflags,
            build_directory=str(build),
            is_python_module=False,
            verbose=verbose,
        )
        if first:
            print(f" done in {time.perf_counter() - start:.1f} s", flush=True)


def load_fused(
    families: list[Any], register: Callable[[str], None], verbose: bool = False
) -> list[str | None]:
    """Build (cached) and load the fused layers of ``families`` as one extension; return each
    family's op namespace, or ``None`` (with one warning) when it cannot be had. ``register``
    is called once per newly loaded namespace (it registers the fake and autograd rules)."""
    fams = [as_torch_family(f) for f in families]
    todo = [f for f in fams if f.spec_sha256 not in _LOADED and f.spec_sha256 not in _FAILED]
    with_source = [(f, fused_source(f)) for f in todo]
    missing = [f for f, src in with_source if src is None]
    if missing:
        _warn_once(missing, "no generated fused source; run `deqfam generate --target all`")
    ready = [(f, src) for f, src in with_source if src is not None]
    if ready and not compiler_available():
        _give_up([f for f, _ in ready], "no C++ compiler found")
        ready = []
    if ready:
        try:
            _compile([f for f, _ in ready], [src for _, src in ready], verbose)
        except Exception as exc:  # any build failure means: run the torch path
            print(file=sys.stdout, flush=True)
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)
            _give_up([f for f, _ in ready], f"the build failed: {reason}")
            ready = []
        for fam, src in ready:
            namespace = _NAMESPACE.search(src.read_text(encoding="utf-8"))
            if namespace is None:
                _warn_once([fam], f"{src.name} registers no fused op namespace")
                continue
            register(namespace.group(1))
            _LOADED[fam.spec_sha256 or ""] = namespace.group(1)
    return [_LOADED.get(f.spec_sha256 or "") for f in fams]


__all__ = [
    "FusedUnavailableWarning",
    "compiler_available",
    "fused_built",
    "fused_source",
    "load_fused",
    "loaded_namespace",
    "register_fused_source",
]
