"""Per-sample warm starts for the Adam trainer: a cache of each row's last solved latents.

Row ``s`` of the training data has MAP latents ``z*_s(W, B)``, the minimiser of the strongly
convex inner objective ``J_s(z) = lam/2 |z|^2 - z^T W^T T(y_s) + 1^T A(W z + B)``. Between
two visits of the same row (one epoch apart) Adam moves ``W`` and ``B`` a little, so the last
solution ``z*_s(W_old, B_old)`` is a start close to the new one and Newton's method needs fewer
iterations from it than from ``z = 0``. The solution itself, and its implicit gradient
``-dJ/dtheta`` at ``z*`` (which depends only on ``z*``), do not depend on the start, so
warm starts change the iteration counts and nothing else (up to the solver's tolerance).

:class:`LatentCache` holds a tensor ``(N, latent_dim)``: rows never solved are 0 (the cold
start); :meth:`starts` gives a batch's rows, :meth:`store` writes back the batch's solved
latents (non-finite rows are left as they were). Its tensor goes into every checkpoint
(key ``latent_cache``), so a resumed run starts from the same latents as an uninterrupted
one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

#: the checkpoint key holding the cache tensor
CHECKPOINT_KEY = "latent_cache"


class LatentCache:
    """The last solved latents of every training row, zeros for rows not yet solved."""

    def __init__(self, n_samples: int, latent_dim: int, dtype: torch.dtype, device: Any) -> None:
        self.z = torch.zeros(n_samples, latent_dim, dtype=dtype, device=device)

    def starts(self, rows: Tensor) -> Tensor:
        """Warm starts ``z0`` for the data rows ``rows`` (a copy, shape ``(len(rows), l)``)."""
        return self.z[rows].clone()

    def store(self, rows: Tensor, latents: Tensor) -> None:
        """Remember ``latents`` (shape ``(len(rows), l)``) as the solutions of ``rows``;
        rows with a non-finite entry keep their previous start (a NaN start is never kept)."""
        latents = latents.detach().to(self.z.dtype)
        finite = torch.isfinite(latents).all(-1)
        self.z[rows[finite]] = latents[finite]

    def state(self) -> Tensor:
        """The tensor to checkpoint (a copy, so later updates do not alter a saved state)."""
        return self.z.detach().clone()

    def load(self, value: Tensor) -> None:
        """Restore a checkpointed tensor (validated by ``checkpoint_check`` beforehand)."""
        self.z = value.to(dtype=self.z.dtype, device=self.z.device).clone()


def accepts_z0(loss_fn: Callable[..., Any]) -> bool:
    """Whether ``loss_fn(model, batch, n_total, z0=...)`` can take warm starts."""
    try:
        params = inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    return "z0" in params


def make_cache(
    model: nn.Module, loss_fn: Callable[..., Any], n_samples: int, enabled: bool
) -> LatentCache | None:
    """A cache when warm starts are enabled, the loss takes ``z0`` and the model says its
    latent size (``model.latent_dim``, as :class:`ExpFamPCA` does); else ``None``."""
    latent_dim = getattr(model, "latent_dim", None)
    if not enabled or not accepts_z0(loss_fn) or not isinstance(latent_dim, int):
        return None
    ref = next(model.parameters(), None)
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    device = ref.device if ref is not None else "cpu"
    return LatentCache(n_samples, latent_dim, dtype, device)


def solved_latents(model: nn.Module, n_rows: int) -> Tensor | None:
    """The latents the last loss evaluation solved for (``model.last_z``, set by
    ``ExpFamPCA.loss``), or ``None`` when there are none for ``n_rows`` rows."""
    z = getattr(model, "last_z", None)
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] != n_rows:
        return None
    return z


def forget_latents(model: nn.Module) -> None:
    """Clear ``model.last_z`` before a step, so a stale value is never stored for new rows."""
    if isinstance(getattr(model, "last_z", None), Tensor):
        model.last_z = None


__all__ = [
    "CHECKPOINT_KEY",
    "LatentCache",
    "accepts_z0",
    "forget_latents",
    "make_cache",
    "solved_latents",
]
