"""deqfam: deep equilibrium layers derived from exponential families.

Public API (see DESIGN.md): ``load_family``, ``check``, ``generate``, ``ExpFamPCA``,
``KGLMDEQ``. Attributes are imported lazily so that ``import deqfam`` stays cheap and the
SymPy side never pulls in torch (and vice versa) unless asked.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_family": ("deqfam.derive.family", "load_family"),
    "Family": ("deqfam.derive.family", "Family"),
    "SpecError": ("deqfam.derive.spec", "SpecError"),
    "builtin_names": ("deqfam.derive.family", "builtin_names"),
    "check": ("deqfam.api", "check"),
    "generate": ("deqfam.api", "generate"),
    "ExpFamPCA": ("deqfam.api", "ExpFamPCA"),
    "KGLMDEQ": ("deqfam.api", "KGLMDEQ"),
    "PositiveConcaveDEQ": ("deqfam.runtime.pcdeq", "PositiveConcaveDEQ"),
    "kglm_init": ("deqfam.runtime.kernels", "kglm_init"),
    "DeepExpFamPCA": ("deqfam.api_deep", "DeepExpFamPCA"),
    # scikit-learn is optional: deqfam.estimator imports it, so only when asked for
    "ExponentialFamilyPCA": ("deqfam.estimator", "ExponentialFamilyPCA"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'deqfam' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
