"""The built-in vector families: ``specs/vector/<name>.yaml``.

They live in their own folder so that :func:`deqfam.derive.family.builtin_names` (the scalar
catalogue, which models, samplers and the scalar golden files iterate) is unchanged;
:func:`vector_builtin_names` lists these, and ``load_family`` accepts both.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from .spec import parse_spec
from .vector_derivation import VectorFamily, derive_vector_family
from .vector_spec import VectorFamilySpec

_FOLDER = "vector"


def _root():
    return importlib.resources.files("deqfam.specs") / _FOLDER


def vector_builtin_names() -> list[str]:
    """Names of the built-in vector families, sorted."""
    return sorted(p.name[:-5] for p in _root().iterdir() if p.name.endswith(".yaml"))


def vector_builtin_spec_text(name: str) -> str:
    return (_root() / f"{name}.yaml").read_text("utf-8")


def load_vector_builtin(name: str) -> VectorFamily:
    """The derived built-in vector family ``name``."""
    spec = parse_spec(vector_builtin_spec_text(name), source=f"builtin:{name}")
    return derive_vector_family(spec)


def is_vector_spec(obj: Any) -> bool:
    return isinstance(obj, VectorFamilySpec)


def is_vector_family(obj: Any) -> bool:
    return isinstance(obj, VectorFamily)


__all__ = [
    "is_vector_family",
    "is_vector_spec",
    "load_vector_builtin",
    "vector_builtin_names",
    "vector_builtin_spec_text",
]
