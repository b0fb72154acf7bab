"""log(1 + sum_i e^{a_i}) over the last axis, accurate to rounding even when it is tiny.

The categorical log-partition ``A = logsumexp0(eta) = log(1 + sum_i e^{eta_i})`` as
``torch.logsumexp`` over ``(0, eta_1, ..., eta_k)`` computes ``m + log(s)`` with ``s``
rounded to 1 whenever every other term is below 1e-16 of the largest: ``A`` comes out 0 where
it is 3e-22 (all eta_i = -50). Here the largest term (exactly 1 after the shift by ``m``) is
left out of the sum and ``log1p`` adds it back: ``A = m + log1p(sum_{i != max} e^{z_i - m})``
over ``z = (0, a_1, ..., a_k)`` (ties for the maximum add their count minus one). TorchScript
compiles it and autograd differentiates it (the gradient is the softmax).
"""

from __future__ import annotations

import torch
from torch import Tensor


def logsumexp0(a: Tensor) -> Tensor:
    """log(1 + sum_i exp(a[..., i])): (..., k) -> (...)."""
    z = torch.cat([torch.zeros_like(a[..., :1]), a], -1)
    m = torch.amax(z, -1, keepdim=True)
    is_max = z == m
    e = torch.where(is_max, torch.zeros_like(z), torch.exp(z - m))
    rest = e.sum(-1) + (is_max.sum(-1) - 1).to(z.dtype)
    return m.squeeze(-1) + torch.log1p(rest)


__all__ = ["logsumexp0"]
