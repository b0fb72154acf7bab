"""The built-in family catalogue (``specs/*.yaml``, vector families in ``specs/vector/``) as
text, without SymPy.

Names and spec texts are all a caller needs to find a built-in family's committed generated
module (its ``FAMILY.spec_sha256`` is the SHA-256 of this text), so the fit path of a
built-in family never imports SymPy or derives anything (``deqfam.family_lookup``).
"""

from __future__ import annotations

import hashlib
import importlib.resources


def builtin_names() -> list[str]:
    """Names of the built-in families (``specs/*.yaml``)."""
    root = importlib.resources.files("deqfam.specs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def builtin_spec_text(name: str) -> str:
    """The YAML text of built-in family ``name``."""
    return (importlib.resources.files("deqfam.specs") / f"{name}.yaml").read_text("utf-8")


def vector_builtin_names() -> list[str]:
    """Names of the built-in vector families (``specs/vector/*.yaml``), sorted."""
    root = importlib.resources.files("deqfam.specs") / "vector"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def vector_builtin_spec_text(name: str) -> str:
    """The YAML text of built-in vector family ``name``."""
    return (importlib.resources.files("deqfam.specs") / "vector" / f"{name}.yaml").read_text(
        "utf-8"
    )


def text_digest(text: str) -> str:
    """SHA-256 (hex) of a spec's text: the spec digest ``derive.codegen.spec_digest`` gives
    a family derived from that text (parameter overrides change the text, hence the digest)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
