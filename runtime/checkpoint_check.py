"""Structural checks of a training checkpoint before it is resumed from.

The checksum of :func:`deqfam.runtime.train.load_checkpoint` catches corruption, not a
payload rewritten with a fresh checksum or one written by another run. Before any state is
restored, :func:`validate_resume_state` checks that every piece matches the run resuming:

* the top-level keys are exactly those the trainer writes (an extra key is refused);
* the run settings (``run``: family digest, lam, latent dimension, data digest ...) equal
  this run's, naming the first that differs;
* every model tensor has this model's name, shape and dtype;
* the optimiser state has one entry per parameter, with moment buffers shaped like it;
* the shuffling generator state has the size of a CPU generator's state;
* epoch, batch and history agree: ``0 <= epoch``, ``1 <= batch < n_batches`` (mid-epoch) and
  ``len(history) == epoch + 1`` at an epoch's end (``== epoch`` mid-epoch);
* the warm-start cache (``latent_cache``, :mod:`runtime.latent_cache`), when present, is a
  finite floating tensor of shape ``N x latent_dim`` (this run's data and model).

Every failure is a :class:`CheckpointError` naming the checkpoint and the bad piece.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: the keys the trainer writes (``run`` only when run settings were given)
REQUIRED_KEYS = frozenset({"model", "optimizer", "shuffler", "epoch", "history", "config"})
OPTIONAL_KEYS = frozenset(
    {"batch", "epoch_shuffler", "partial", "n_samples", "run", "latent_cache"}
)


def _error(path: Path, what: str) -> Exception:
    from .train import CheckpointError  # train imports this module

    return CheckpointError(f"cannot resume from {path}: {what}")


def check_run_settings(saved: Any, current: dict[str, Any] | None, path: Path) -> None:
    """Refuse a checkpoint whose run settings differ from ``current`` (name the first)."""
    if current is None:
        return
    if not isinstance(saved, dict):
        raise _error(
            path,
            "it records no run settings (family, lam, data), so it cannot be matched to this run",
        )
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise _error(
                path,
                f"it was written with {key}={saved.get(key)!r}, this run has "
                f"{key}={current.get(key)!r}; use the original settings, or another output "
                "folder (or --overwrite) to start afresh",
            )


def _check_model(state: Any, model: nn.Module, path: Path) -> None:
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise _error(path, f"its model tensors {got} differ from this model's {sorted(expected)}")
    for name, ref in expected.items():
        value = state[name]
        if not isinstance(value, torch.Tensor) or value.shape != ref.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise _error(
                path, f"model tensor {name} has shape {shape}, expected {tuple(ref.shape)}"
            )
        if value.dtype != ref.dtype:
            raise _error(path, f"model tensor {name} has dtype {value.dtype}, expected {ref.dtype}")


def _check_optimizer(state: Any, optimizer: torch.optim.Optimizer, path: Path) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise _error(path, "its optimiser state is not an optimiser state dict")
    groups, per_param = state["param_groups"], state["state"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise _error(path, "its optimiser has a different number of parameter groups")
    ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", [])]
    if sorted(ids) != list(range(len(params))):
        raise _error(path, f"its optimiser covers parameters {ids}, expected {len(params)}")
    if not isinstance(per_param, dict) or not set(per_param) <= set(range(len(params))):
        raise _error(path, "its optimiser state names parameters this model does not have")
    for i, entry in per_param.items():
        if not isinstance(entry, dict):
            raise _error(path, f"optimiser state of parameter {i} is not a mapping")
        for key, value in entry.items():
            if key == "step":
                continue
            if not isinstance(value, torch.Tensor) or value.shape != params[i].shape:
                raise _error(
                    path,
                    f"optimiser buffer {key} of parameter {i} does not have the parameter's "
                    f"shape {tuple(params[i].shape)}",
                )


#: the History fields with one entry per finished epoch, and its run-level scalars (by type)
PER_EPOCH_HISTORY = ("loss", "seconds", "nonconverged", "lr")
HISTORY_SCALARS: dict[str, type] = {"decays": int, "stop_reason": str, "stop_message": str}


def _check_generator_state(value: Any, name: str, path: Path) -> None:
    reference = torch.Generator().get_state()
    ok = isinstance(value, torch.Tensor) and value.dtype == reference.dtype
    if not ok or value.shape != reference.shape:
        raise _error(path, f"its {name} is not a random generator state")


def _check_position(state: dict[str, Any], n_batches: int, path: Path) -> None:
    epoch, batch, history = state["epoch"], state.get("batch"), state["history"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise _error(path, f"its epoch {epoch!r} is not a non-negative integer")
    if batch is not None and (not isinstance(batch, int) or not 1 <= batch < n_batches):
        raise _error(path, f"its batch index {batch!r} is outside 1..{n_batches - 1}")
    if not isinstance(history, dict) or not history:
        raise _error(path, "its history is not a record of epochs")
    want = epoch + 1 if batch is None else epoch
    for key in PER_EPOCH_HISTORY:
        values = history.get(key)
        if not isinstance(values, list) or len(values) != want:
            raise _error(path, f"its history {key!r} does not have {want} entries (epoch {epoch})")
    for key, kind in HISTORY_SCALARS.items():
        if not isinstance(history.get(key, kind()), kind):
            raise _error(path, f"its history {key!r} is not a {kind.__name__}")
    unknown = set(history) - set(PER_EPOCH_HISTORY) - set(HISTORY_SCALARS)
    if unknown:
        raise _error(path, f"its history has unknown records {sorted(unknown)}")
    if batch is not None:
        _check_generator_state(state.get("epoch_shuffler"), "epoch shuffler", path)
        partial = state.get("partial")
        if not isinstance(partial, dict) or set(partial) != {"loss_sum", "failed", "seconds"}:
            raise _error(path, "its mid-epoch record is incomplete")


def _check_latent_cache(value: Any, shape: tuple[int, int] | None, n: int, path: Path) -> None:
    """The cached latents: a finite floating ``N x latent_dim`` tensor (``shape``, when this
    run keeps a cache; otherwise at least ``N`` rows of a 2-D tensor)."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dim() != 2:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise _error(path, f"its latent cache {got} is not a 2-D floating tensor")
    want = shape if shape is not None else (n, value.shape[1])
    if tuple(value.shape) != tuple(want):
        raise _error(
            path,
            f"its latent cache has shape {tuple(value.shape)}, expected {tuple(want)} "
            "(samples x latent_dim)",
        )
    if not bool(torch.isfinite(value).all()):
        row = int(torch.nonzero(~torch.isfinite(value).all(-1))[0, 0])
        raise _error(path, f"its latent cache has non-finite entries (row {row})")


def validate_resume_state(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    n_samples: int,
    batch_size: int,
    path: str | Path,
    run: dict[str, Any] | None = None,
    latent_shape: tuple[int, int] | None = None,
) -> None:
    """Raise ``CheckpointError`` unless ``state`` can be restored into this run (see above).

    ``latent_shape``: the shape of this run's warm-start cache (``None``: it keeps none)."""
    path = Path(path)
    extra = set(state) - REQUIRED_KEYS - OPTIONAL_KEYS
    if extra:
        raise _error(path, f"it holds unexpected entries {sorted(map(str, extra))}")
    check_run_settings(state.get("run"), run, path)
    _check_model(state["model"], model, path)
    _check_optimizer(state["optimizer"], optimizer, path)
    _check_generator_state(state["shuffler"], "shuffler", path)
    _check_position(state, math.ceil(n_samples / batch_size), path)
    if "latent_cache" in state:
        _check_latent_cache(state["latent_cache"], latent_shape, n_samples, path)


__all__ = ["check_run_settings", "validate_resume_state"]
