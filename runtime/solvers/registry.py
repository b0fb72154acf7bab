"""Solvers by name: ``name -> solver`` registries for the two kinds of solve.

*Generic* solvers ``(f, z0, config) -> Solution`` find ``z = f(z)``; *objective* solvers
``(family, W, B, T, lam, z0, config) -> Solution`` minimise the inner problem of Theorem 1.
Both return a ``Solution``. A new solver is added with ``register_solver`` and is then
accepted wherever a solver is chosen by name (models, kGLM, implicit layers).
"""

from __future__ import annotations

from collections.abc import Callable

from .anderson import anderson
from .broyden import broyden
from .dense import cg_newton, newton
from .fixed_point import fixed_point
from .result import Solution

KINDS = ("generic", "objective")

GENERIC_SOLVERS: dict[str, Callable[..., Solution]] = {
    "fixed_point": fixed_point,
    "anderson": anderson,
    "broyden": broyden,
}
OBJECTIVE_SOLVERS: dict[str, Callable[..., Solution]] = {
    "newton": newton,
    "cg_newton": cg_newton,
}
_REGISTRIES = {"generic": GENERIC_SOLVERS, "objective": OBJECTIVE_SOLVERS}


def _registry(kind: str) -> dict[str, Callable[..., Solution]]:
    if kind not in _REGISTRIES:
        raise ValueError(f"solver kind must be one of {KINDS}, got {kind!r}")
    return _REGISTRIES[kind]


def register_solver(
    name: str, solver: Callable[..., Solution], kind: str = "generic", replace: bool = False
) -> None:
    """Make ``solver`` available under ``name`` (``kind`` ``"generic"`` or ``"objective"``).
    A name taken in either registry is refused unless ``replace``."""
    registry = _registry(kind)
    taken = any(name in r for r in _REGISTRIES.values())
    if taken and not (replace and name in registry):
        raise ValueError(f"a solver named {name!r} is already registered")
    if not callable(solver):
        raise TypeError(f"solver {name!r} must be callable")
    registry[name] = solver


def list_solvers(kind: str | None = None) -> list[str]:
    """Sorted names of the registered solvers of ``kind`` (all kinds when ``None``)."""
    kinds = KINDS if kind is None else (kind,)
    return sorted(name for k in kinds for name in _registry(k))


def get_solver(name: str, kind: str | None = None) -> Callable[..., Solution]:
    """The solver registered as ``name`` (in ``kind``'s registry, or either when ``None``);
    a clear error lists the valid names."""
    kinds = KINDS if kind is None else (kind,)
    for k in kinds:
        if name in _registry(k):
            return _registry(k)[name]
    label = "" if kind is None else f"{kind} "
    raise ValueError(f"unknown {label}solver {name!r}; choose one of {list_solvers(kind)}")


def get_generic_solver(name: str) -> Callable[..., Solution]:
    """Look up a generic solver by name (clear error listing the valid names)."""
    return get_solver(name, "generic")
