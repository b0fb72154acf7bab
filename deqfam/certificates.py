"""``deqfam.certificates``: pcDEQ certificates with symbolic activation proofs.

This facade wires the SymPy side (``derive/concavity.py``: is ``sigma`` monotone and concave on
``[lower, oo)``?) into the runtime certificate (``runtime/pcdeq/``). The implicit CK/NTK of
random DEQs lives in ``deqfam.runtime.kernel_limits``.
"""

from __future__ import annotations

import functools
from typing import Any

from deqfam.derive import concavity as _concavity
from deqfam.runtime import pcdeq as _pcdeq

ConcavityVerdict = _concavity.ConcavityVerdict
PCDEQCertificate = _pcdeq.PCDEQCertificate
CertificationError = _pcdeq.CertificationError


@functools.lru_cache(maxsize=64)
def _cached_proof(source: str, name: str, lower: float) -> ConcavityVerdict:
    if source == "family":
        return _concavity.family_concavity(name, lower)
    return _concavity.activation_concavity(name, lower=lower)


def activation_proof(activation: Any, lower: float = 0.0) -> ConcavityVerdict | None:
    """Symbolic pcDEQ verdict on ``activation`` over ``[lower, oo)`` when it comes from a
    family spec (``derive.concavity.family_concavity``) or is a named activation
    (``activation_concavity``); ``None`` for a custom callable (the certificate then uses its
    grid check)."""
    act = _pcdeq.as_activation(activation)
    if act.source == "family" and act.family is not None:
        try:
            return _cached_proof("family", act.family, float(lower))
        except (ValueError, OSError):  # not loadable as a spec (SpecError): grid check only
            return None
    if act.source == "builtin" and act.name in _concavity.NAMED_ACTIVATIONS:
        return _cached_proof("builtin", act.name, float(lower))
    return None


def certify_map(W: Any, x: Any, activation: Any, symbolic: bool = True, **kwargs: Any):
    """``runtime.pcdeq.certify_map`` with the symbolic verdict on ``sigma`` attached (over
    ``[min(0, min x), oo)``) when one exists and ``symbolic`` is true."""
    if x.dim() == 1:
        x = x[None]
    lower = min(0.0, float(x.min()))
    proof = activation_proof(activation, lower) if symbolic else None
    return _pcdeq.certify_map(W, x, activation, proof, **kwargs)


def certify(layer: Any, u: Any, symbolic: bool = True, **kwargs: Any) -> PCDEQCertificate:
    """Certificate of a ``PositiveConcaveDEQ`` on inputs ``u`` (``runtime.pcdeq.certify``),
    with the symbolic activation verdict when available."""
    x = layer.injection(u if u.dim() > 1 else u[None]).detach()
    return certify_map(layer.weight.detach(), x, layer.activation, symbolic, **kwargs)


def concavity(spec: Any, lower: float = 0.0) -> ConcavityVerdict:
    """pcDEQ admissibility of a family's activation (built-in name, spec path or Family)."""
    return _concavity.family_concavity(spec, lower)


__all__ = [
    "CertificationError",
    "ConcavityVerdict",
    "PCDEQCertificate",
    "activation_proof",
    "certify",
    "certify_map",
    "concavity",
]
