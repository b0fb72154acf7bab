"""The stages of the admissibility check, one module each, all behind :class:`..stage.Stage`.

``domain``, ``convexity``, ``structure``, ``series``, ``fourier`` (``bound`` and
``base_measure`` at one tilt; evidence of the masses in :mod:`.measure`), ``exp_convexity``
and ``hankel``.
"""

from __future__ import annotations

from .convexity import ConvexityStage
from .domain import DomainStage
from .exp_convexity import ExpConvexityStage
from .fourier import FourierStage
from .hankel import HankelStage
from .series import SeriesStage
from .structure import StructureStage

__all__ = [
    "ConvexityStage",
    "DomainStage",
    "ExpConvexityStage",
    "FourierStage",
    "HankelStage",
    "SeriesStage",
    "StructureStage",
]
