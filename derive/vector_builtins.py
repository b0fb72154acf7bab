"""The built-in vector families: ``specs/vector/<name>.yaml``.

They live in their own folder so that :func:`deqfam.derive.family.builtin_names` (the scalar
catalogue, which models, samplers and the scalar golden files iterate) is unchanged;
:func:`vector_builtin_names` lists these, and ``load_family`` accepts both.
"""

from __future__ import annotations

from typing import Any

from .builtin_specs import vector_builtin_names, vector_builtin_spec_text
from .spec import parse_spec
from .vector_derivation import VectorFamily, derive_vector_family
from .vector_spec import VectorFamilySpec


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
