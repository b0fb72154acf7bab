"""Training a deep stack: ``runtime.train.train`` with a per-layer freezing schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..train import History, TrainConfig, load_checkpoint, train
from .model import DeepExpFamPCA


class _ScheduledLoss:
    """A ``train`` loss function that freezes layer ``l`` before epoch ``unfreeze[l]``.

    ``train`` calls the loss once per minibatch, ``ceil(n / batch_size)`` times per epoch, in
    order, so the epoch is known from the call count (offset by the resumed epoch). Frozen
    parameters get no gradient, so Adam leaves them (and their moments) untouched.
    """

    def __init__(
        self,
        model: DeepExpFamPCA,
        unfreeze: list[int],
        n_batches: int,
        start: int,
        inner: Callable[[nn.Module, Tensor, int], Tensor],
    ) -> None:
        self.model, self.unfreeze, self.n_batches = model, unfreeze, n_batches
        self.calls, self.start, self.inner = 0, start, inner

    def __call__(self, model: nn.Module, batch: Tensor, n_total: int) -> Tensor:
        epoch = self.start + self.calls // self.n_batches
        self.calls += 1
        self.model.set_trainable([epoch >= k for k in self.unfreeze])
        return self.inner(model, batch, n_total)


def _model_loss(model: nn.Module, batch: Tensor, n_total: int) -> Tensor:
    return model.loss(batch, n_total=n_total)


def train_deep(
    model: DeepExpFamPCA,
    data: Tensor,
    config: TrainConfig | dict | None = None,
    *,
    unfreeze_epochs: Sequence[int] | None = None,
    loss_fn: Callable[[nn.Module, Tensor, int], Tensor] | None = None,
    resume: Any = None,
) -> History:
    """``runtime.train.train`` with a per-layer freezing schedule: layer ``l`` (0-based list
    index) is trainable from epoch ``unfreeze_epochs[l]`` on (default: all from epoch 0).

    The objective is ``model.loss`` (with each layer's weight decay as a Gaussian prior) unless
    ``loss_fn`` is given. Every layer is trainable again when training returns.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    unfreeze = [0] * model.depth if unfreeze_epochs is None else [int(k) for k in unfreeze_epochs]
    if len(unfreeze) != model.depth or any(k < 0 for k in unfreeze):
        raise ValueError(
            f"unfreeze_epochs needs {model.depth} nonnegative integers, got {unfreeze}"
        )
    start = 0 if resume is None else int(load_checkpoint(resume)["epoch"]) + 1
    n_batches = math.ceil(data.shape[0] / cfg.batch_size)
    scheduled = _ScheduledLoss(model, unfreeze, n_batches, start, loss_fn or _model_loss)
    try:
        return train(model, data, cfg, loss_fn=scheduled, resume=resume)
    finally:
        model.set_trainable([True] * model.depth)
