"""A small trainer for implicit layers: Adam, minibatches, epochs, progress, checkpoints.

Every epoch the model, the optimiser, the shuffling generator's state and the history are
written atomically (temporary file, then rename) to ``checkpoint_dir/last.pt``; training
resumed from it continues the loss curve exactly as an uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

CHECKPOINT_NAME = "last.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train` (unknown keys are rejected by :meth:`from_dict`)."""

    epochs: int = 30
    batch_size: int = 500
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"invalid training options: {self}")

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None) -> TrainConfig:
        options = dict(options or {})
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown training option(s) {sorted(unknown)}; valid: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        return cls(**options)


@dataclass
class History:
    """Per-epoch records of a training run."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nonconverged: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


LossFn = Callable[[nn.Module, Tensor, int], Tensor]


def default_loss(model: nn.Module, batch: Tensor, n_total: int) -> Tensor:
    """The model's own outer objective (ExpFamPCA: Theorem 1 (6) with its L2 prior)."""
    return model.loss(batch, n_total=n_total)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def _nonconverged(model: nn.Module) -> int:
    stats = getattr(model, "last_stats", None)
    if stats is None:
        return 0
    return int((~stats.converged).sum())


def train(
    model: nn.Module,
    data: Tensor,
    config: TrainConfig | dict | None = None,
    *,
    loss_fn: LossFn = default_loss,
    resume: str | Path | None = None,
) -> History:
    """Minimise ``loss_fn`` over minibatches of ``data`` (rows are samples) with Adam.

    With ``resume`` (a checkpoint path), the model, optimiser, shuffling order and history
    are restored and training continues at the next epoch, up to ``config.epochs``.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if data.ndim < 1 or data.shape[0] == 0:
        raise ValueError("training data is empty")
    device = torch.device(cfg.device)
    model.to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    shuffler = torch.Generator().manual_seed(cfg.seed)
    history, start = History(), 0
    if resume is not None:
        state = load_checkpoint(resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffler.set_state(state["shuffler"])
        history = History(**state["history"])
        start = int(state["epoch"]) + 1
    n = data.shape[0]
    n_batches = math.ceil(n / cfg.batch_size)
    ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir else None
    bar = tqdm(
        range(start, cfg.epochs),
        desc="training",
        unit="epoch",
        disable=not cfg.progress,
        initial=start,
        total=cfg.epochs,
    )
    for epoch in bar:
        t0, total, failed = time.perf_counter(), 0.0, 0
        order = torch.randperm(n, generator=shuffler).to(device)
        model.train()
        for b in range(n_batches):
            batch = data[order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch, n)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(
                    f"non-finite loss at epoch {epoch}, batch {b}: lower "
                    "lr or init_scale, or check the data"
                )
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.shape[0]
            failed += _nonconverged(model)
        history.loss.append(total / n)
        history.seconds.append(time.perf_counter() - t0)
        history.nonconverged.append(failed)
        bar.set_postfix(loss=f"{history.loss[-1]:.5g}", failed=failed)
        if ckpt is not None:
            save_checkpoint(
                ckpt,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "shuffler": shuffler.get_state(),
                    "epoch": epoch,
                    "history": history.to_dict(),
                    "config": asdict(cfg),
                },
            )
    bar.close()
    return history
