"""kGLM initialisation (Theorem 3, Corollaries 6 and 11): set a kGLM-DEQ layer's weights from
kernel matrices (or filters) so that its forward pass solves the kGLM (5)."""

from __future__ import annotations

from typing import Any

import torch


def is_conv_layer(layer: Any) -> bool:
    """Whether ``layer`` is a ``ConvKGLMDEQ`` (filters ``C1..C3``, readout ``D1, D2``)."""
    return hasattr(layer, "C1") and hasattr(layer, "D1")


@torch.no_grad()
def kglm_init(layer: Any, K: Any, K_cross: Any, lam: float) -> Any:
    """Initialise a kGLM-DEQ layer to solve the kGLM (5) in its forward pass (Theorem 3):

        W1 = W3 = -K/lam,  W2 = K/lam,  V1 = -K_cross/lam,  V2 = K_cross/lam,  b = c = 0.

    ``KGLMDEQ``: ``K = k(X, X)`` is ``(n, n)`` and ``K_cross = k(X~, X)`` is ``(n_out, n)``.
    ``ConvKGLMDEQ`` (Corollary 11): ``K`` and ``K_cross`` are filters ``(C, C, 2r+1, 2r+1)``
    (``conv_filter``), giving ``C1 = C3 = -K/lam`` etc. ``K_cross=None`` leaves the readout as it
    is (the paper's "naive" initialisation keeps a random readout). ``W3`` is set only when the
    layer has a prior. Returns the layer.
    """
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    conv = is_conv_layer(layer)
    hidden = ("C1", "C2", "C3") if conv else ("W1", "W2", "W3")
    readout = ("D1", "D2") if conv else ("V1", "V2")
    ref = getattr(layer, hidden[0])
    Kt = torch.as_tensor(K, dtype=ref.dtype, device=ref.device)
    if Kt.shape != ref.shape:
        raise ValueError(f"K must have shape {tuple(ref.shape)}, got {tuple(Kt.shape)}")
    getattr(layer, hidden[0]).copy_(-Kt / lam)
    getattr(layer, hidden[1]).copy_(Kt / lam)
    w3 = getattr(layer, hidden[2])
    if w3 is not None:
        w3.copy_(-Kt / lam)
    if K_cross is not None:
        v1 = getattr(layer, readout[0])
        Kc = torch.as_tensor(K_cross, dtype=v1.dtype, device=v1.device)
        if Kc.shape != v1.shape:
            raise ValueError(f"K_cross must have shape {tuple(v1.shape)}, got {tuple(Kc.shape)}")
        v1.copy_(-Kc / lam)
        getattr(layer, readout[1]).copy_(Kc / lam)
    for name in ("b", "c"):
        bias = getattr(layer, name, None)
        if bias is not None and (name == "b" or K_cross is not None):
            bias.zero_()
    return layer
