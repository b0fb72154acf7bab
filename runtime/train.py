"""A small trainer for implicit layers: Adam, minibatches, epochs, progress, checkpoints.

No lost work:

* After every epoch (and, with ``checkpoint_every = k``, after every k-th minibatch) the model,
  the optimiser, the shuffling generator's state, the position in the epoch and the history
  are written to ``checkpoint_dir/last.pt`` atomically: a temporary file in the same folder is
  written, flushed and fsync'ed, then renamed over the old one, so a crash (even SIGKILL)
  leaves either the old or the new checkpoint, never a torn one.
* Each checkpoint carries a SHA-256 checksum of its payload, verified on load: a corrupted
  or truncated file gives a :class:`CheckpointError` saying so, and the payload is read with
  ``torch.load(weights_only=True)`` (a checkpoint from someone else cannot run code).
* Training resumed from a checkpoint (``resume=``) continues exactly where it stopped, also
  mid-epoch: the epoch's shuffled order is regenerated from the saved generator state, so the
  loss curve and the parameters equal those of an uninterrupted run with the same seed.

Never silent NaNs: a non-finite loss, a non-finite gradient (checked before the optimiser
step, so the parameters are never poisoned) or parameters that leave the model's valid set
(``model.check_parameters()``, e.g. ExpFamPCA's ``B`` outside the family's domain) stop the
run with :class:`TrainingDiverged`, naming the epoch, the batch and the last good checkpoint,
which is left untouched.

Why one module of this size: the minibatch loop, its checkpoint format and resume rules
change together (a resumed run must equal an uninterrupted one); the pieces that stand
alone are already separate (``checkpoint_check.py``, ``stopping.py``, ``latent_cache.py``).
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from deqfam.fsutil import atomic_write_bytes

from . import latent_cache as warm
from .checkpoint_check import validate_resume_state
from .stopping import CONVERGED, StoppingRule, decide
from .validation import DataError

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_MAGIC = b"DEQFAM-CHECKPOINT v1 sha256="
_DIGEST_LEN = 64


class TrainingError(RuntimeError):
    """Training could not continue (see the subclasses)."""


class TrainingDiverged(TrainingError, FloatingPointError):
    """A non-finite loss or gradient, or parameters outside their valid set.

    Attributes: ``epoch``, ``batch`` (where it happened) and ``checkpoint`` (path of the last
    good checkpoint, or ``None`` when no ``checkpoint_dir`` was set).
    """

    def __init__(self, message: str, epoch: int, batch: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.checkpoint = epoch, batch, checkpoint


class CheckpointError(TrainingError):
    """A checkpoint that is missing, corrupted, or does not match the run resuming from it."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train` (unknown keys are rejected by :meth:`from_dict`).

    ``checkpoint_every``: also checkpoint after every this many minibatches within an epoch
    (0: only at the end of each epoch).

    ``epochs`` is the maximum number of epochs. ``tol`` > 0 turns on the convergence test of
    :mod:`runtime.stopping`: stop when the epoch loss decreased by less than ``tol``
    (relative) over the last ``window`` epochs, first multiplying ``lr`` by ``lr_decay`` up to
    ``max_decays`` times. The default ``tol = 0`` runs exactly ``epochs`` epochs.

    ``warm_start``: start each row's inner solve from its latents of the previous visit
    (:mod:`runtime.latent_cache`; only the iteration counts change), when the loss takes ``z0``.
    """

    epochs: int = 30
    batch_size: int = 500
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    tol: float = 0.0
    window: int = 5
    lr_decay: float = 1.0
    max_decays: int = 0
    warm_start: bool = True

    @property
    def stopping(self) -> StoppingRule:
        """The convergence test (see :mod:`runtime.stopping`)."""
        return StoppingRule(self.tol, self.window, self.lr_decay, self.max_decays)

    def __post_init__(self) -> None:
        ints = (self.epochs, self.batch_size, self.seed, self.checkpoint_every)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError(f"invalid training options (integers expected): {self}")
        if self.epochs < 0 or self.batch_size < 1 or self.checkpoint_every < 0:
            raise ValueError(f"invalid training options: {self}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"invalid training options (lr must be finite and > 0): {self}")
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"invalid training options (warm_start must be a bool): {self}")
        _ = self.stopping  # validates tol, window, lr_decay, max_decays

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
    """Per-epoch records of a training run, and why it stopped.

    ``lr``: the learning rate of each epoch; ``decays``: plateau decays applied so far;
    ``stop_reason``: ``"converged"`` or ``"max_epochs"`` (empty while running);
    ``stop_message``: the same in words, with the measured relative decrease.
    """

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nonconverged: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    decays: int = 0
    stop_reason: str = ""
    stop_message: str = ""

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


LossFn = Callable[[nn.Module, Tensor, int], Tensor]


def default_loss(model: nn.Module, batch: Tensor, n_total: int, z0: Tensor | None = None) -> Tensor:
    """The model's own outer objective (ExpFamPCA: Theorem 1 (6) with its L2 prior);
    ``z0`` warm-starts the inner solve (the trainer's latent cache)."""
    if z0 is None:
        return model.loss(batch, n_total=n_total)
    return model.loss(batch, n_total=n_total, z0=z0)


# --------------------------------------------------------------------------------------------
# Checkpoint files: header with a checksum, then a torch.save payload
# --------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically, with a SHA-256 checksum of the payload.

    Format: ``CHECKPOINT_MAGIC`` + 64 hex digits + newline + ``torch.save(state)`` bytes.
    The bytes go to a temporary file in the same folder, which is fsync'ed and then renamed
    over ``path`` (``os.replace`` is atomic), so a crash never leaves a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    # exclusive random temp name, fsync, rename, fsync of the folder (deqfam.fsutil)
    atomic_write_bytes(path, CHECKPOINT_MAGIC + digest + b"\n" + payload)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying its checksum.

    Raises :class:`CheckpointError` when the file is missing, not a deqfam checkpoint,
    truncated or corrupted (checksum mismatch), or its payload cannot be read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    head = len(CHECKPOINT_MAGIC) + _DIGEST_LEN + 1
    if not raw.startswith(CHECKPOINT_MAGIC) or len(raw) < head or raw[head - 1 : head] != b"\n":
        raise CheckpointError(
            f"{path} is not a deqfam checkpoint (missing or damaged header); it may be "
            "corrupted or written by something else"
        )
    expected = raw[len(CHECKPOINT_MAGIC) : head - 1].decode("ascii", "replace")
    payload = raw[head:]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: SHA-256 of its {len(payload)}-byte payload is "
            f"{actual[:16]}..., the header records {expected[:16]}...; delete it to start "
            "afresh or restore a copy"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"cannot load checkpoint {path}: it holds Python objects other than tensors and "
            "plain data; refused, because unpickling them could run code"
        ) from exc
    except Exception as exc:  # checksum fine but unreadable: a different torch, say
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a training state")
    return state


def _check_resumable(state: dict[str, Any], cfg: TrainConfig, n: int, path: Path) -> None:
    required = {"model", "optimizer", "shuffler", "epoch", "history", "config"}
    missing = required - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}")
    saved = state["config"]
    for key in ("batch_size", "seed"):
        if saved.get(key) != getattr(cfg, key):
            raise CheckpointError(
                f"cannot resume from {path}: it was written with {key}={saved.get(key)!r}, "
                f"this run has {key}={getattr(cfg, key)!r} (the minibatch sequence would differ)"
            )
    if state.get("n_samples", n) != n:
        raise CheckpointError(
            f"cannot resume from {path}: it was written for {state['n_samples']} samples, "
            f"this run has {n}"
        )


# --------------------------------------------------------------------------------------------
# Divergence checks
# --------------------------------------------------------------------------------------------


def _nonconverged(model: nn.Module) -> int:
    stats = getattr(model, "last_stats", None)
    if stats is None:
        return 0
    return int((~stats.converged).sum())


def first_nonfinite_gradient(model: nn.Module) -> str | None:
    """``"name[index]"`` of the first non-finite gradient entry, or ``None``."""
    for name, p in model.named_parameters():
        if p.grad is not None:
            finite = torch.isfinite(p.grad)
            if not bool(finite.all()):
                idx = torch.nonzero(~finite)[0].tolist()
                return f"{name}{idx}"
    return None


def check_parameters(model: nn.Module) -> str | None:
    """A message if the model's parameters are invalid (non-finite, or rejected by the
    model's own ``check_parameters()``), else ``None``."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            return f"parameter {name} has non-finite entries"
    check = getattr(model, "check_parameters", None)
    if callable(check):
        try:
            check()
        except DataError as exc:
            return str(exc)
    return None


class _Loop:
    """The epoch/minibatch loop shared by :func:`train` and the data-parallel trainer.

    ``step(batch, n_total, epoch, b)`` does one optimiser step on the global minibatch
    ``batch`` and returns ``(sum of the per-sample loss over the batch, nonconverged count)``;
    ``writer`` says whether this process writes checkpoints; ``barrier`` synchronises after a
    checkpoint is written (a no-op in one process). ``cache`` (a
    :class:`runtime.latent_cache.LatentCache` or ``None``) holds every row's warm start; it is
    checkpointed and restored with the rest; ``rows`` are the data rows of the current batch.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: Tensor,
        cfg: TrainConfig,
        step: Callable[[Tensor, int, int, int], tuple[float, int]],
        writer: bool = True,
        barrier: Callable[[], None] = lambda: None,
        run_info: dict[str, Any] | None = None,
        cache: warm.LatentCache | None = None,
    ) -> None:
        self.model, self.optimizer, self.data, self.cfg = model, optimizer, data, cfg
        self.cache, self.rows = cache, torch.zeros(0, dtype=torch.long)
        #: settings of the run (family, lam, data digest ...) stored in each checkpoint and
        #: compared on resume, so a checkpoint never continues under other settings
        self.run_info = run_info
        self.step, self.writer, self.barrier = step, writer, barrier
        self.ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir else None
        self.last_saved: str = "none (no checkpoint_dir was set)"

    def diverged(self, what: str, epoch: int, b: int) -> TrainingDiverged:
        return TrainingDiverged(
            f"training stopped at epoch {epoch}, batch {b}: {what}. No checkpoint was written for "
            f"this step; last good checkpoint: {self.last_saved}. Lower lr (or init_scale), "
            "check the data, or resume from the checkpoint.",
            epoch,
            b,
            self.ckpt if self.ckpt is not None and self.ckpt.exists() else None,
        )

    def save(self, state: dict[str, Any]) -> None:
        if self.ckpt is None:
            return
        if self.writer:
            save_checkpoint(self.ckpt, state)
        self.barrier()
        where = "end" if state["batch"] is None else f"batch {state['batch']}"
        self.last_saved = f"{self.ckpt} (epoch {state['epoch']}, {where})"

    def run(self, resume: str | Path | None) -> History:
        cfg, data, model = self.cfg, self.data, self.model
        n = data.shape[0]
        n_batches = math.ceil(n / cfg.batch_size)
        shuffler = torch.Generator().manual_seed(cfg.seed)
        history, start, start_batch, partial = History(), 0, 0, (0.0, 0, 0.0)
        if resume is not None:
            path = Path(resume)
            state = load_checkpoint(path)
            _check_resumable(state, cfg, n, path)
            shape = None if self.cache is None else tuple(self.cache.z.shape)
            validate_resume_state(
                state, model, self.optimizer, n, cfg.batch_size, path, self.run_info, shape
            )
            model.load_state_dict(state["model"])
            if self.cache is not None and warm.CHECKPOINT_KEY in state:
                self.cache.load(state[warm.CHECKPOINT_KEY])
            self.optimizer.load_state_dict(state["optimizer"])
            history = History(**state["history"])
            # lr may be lowered after a divergence; plateau decays already taken still apply
            self._set_lr(cfg.lr * cfg.lr_decay**history.decays)
            if state.get("batch") is None:  # an end-of-epoch checkpoint
                shuffler.set_state(state["shuffler"])
                start = int(state["epoch"]) + 1
            else:  # mid-epoch: replay the epoch's shuffle, skip the batches done
                shuffler.set_state(state["epoch_shuffler"])
                start, start_batch = int(state["epoch"]), int(state["batch"])
                p = state["partial"]
                partial = (float(p["loss_sum"]), int(p["failed"]), float(p["seconds"]))
            self.last_saved = f"{path} (epoch {state['epoch']}, resumed from)"
        base: dict[str, Any] = {"config": asdict(cfg), "n_samples": n}
        if self.run_info is not None:
            base["run"] = self.run_info
        if history.stop_reason == CONVERGED:  # resumed from a converged run: nothing to do
            return history
        history.stop_reason = history.stop_message = ""  # e.g. max_epochs raised on resume
        bar = tqdm(
            range(start, cfg.epochs),
            desc="training",
            unit="epoch",
            disable=not cfg.progress,
            initial=start,
            total=cfg.epochs,
        )
        for epoch in bar:
            t0 = time.perf_counter()
            epoch_shuffler = shuffler.get_state()
            order = torch.randperm(n, generator=shuffler).to(data.device)
            first = epoch == start
            b0, (total, failed, before) = (start_batch, partial) if first else (0, (0.0, 0, 0.0))
            model.train()
            for b in range(b0, n_batches):
                self.rows = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                batch = data[self.rows]
                loss_sum, nfail = self.step(batch, n, epoch, b)
                total += loss_sum
                failed += nfail
                done = b + 1
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < n_batches:
                    self.save(
                        {
                            **base,
                            **self._states(shuffler),
                            "epoch": epoch,
                            "batch": done,
                            "epoch_shuffler": epoch_shuffler,
                            "partial": {
                                "loss_sum": total,
                                "failed": failed,
                                "seconds": before + time.perf_counter() - t0,
                            },
                            "history": history.to_dict(),
                        }
                    )
            history.loss.append(total / n)
            history.seconds.append(before + time.perf_counter() - t0)
            history.nonconverged.append(failed)
            history.lr.append(self.optimizer.param_groups[0]["lr"])
            bar.set_postfix(loss=f"{history.loss[-1]:.5g}", failed=failed)
            stop = self._stop_or_decay(history)
            self.save(
                {
                    **base,
                    **self._states(shuffler),
                    "epoch": epoch,
                    "batch": None,
                    "history": history.to_dict(),
                }
            )
            if stop:
                break
        bar.close()
        if not history.stop_reason:  # no epoch ran (epochs = 0, or resumed at the maximum)
            self._stop_or_decay(history)
        return history

    def _stop_or_decay(self, history: History) -> bool:
        """Apply the convergence test after an epoch: lower the learning rate on a plateau,
        or record why the run stops (then return True)."""
        cfg = self.cfg
        d = decide(cfg.stopping, history.loss, history.lr, history.decays, cfg.epochs)
        if d.action == "decay":
            history.decays += 1
            self._set_lr(cfg.lr * cfg.lr_decay**history.decays)
            return False
        if d.action == "stop":
            history.stop_reason, history.stop_message = d.reason or "", d.message
            return True
        return False

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _states(self, shuffler: torch.Generator) -> dict[str, Any]:
        states = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "shuffler": shuffler.get_state(),
        }
        if self.cache is not None:
            states[warm.CHECKPOINT_KEY] = self.cache.state()
        return states


def _prepare(data: Any, cfg: TrainConfig) -> Tensor:
    if not isinstance(data, Tensor):
        raise DataError(f"training data must be a torch tensor, got {type(data).__name__}")
    if data.ndim < 1 or data.shape[0] == 0:
        raise DataError("training data is empty")
    return data.to(torch.device(cfg.device))


def train(
    model: nn.Module,
    data: Tensor,
    config: TrainConfig | dict | None = None,
    *,
    loss_fn: LossFn = default_loss,
    resume: str | Path | None = None,
    run_info: dict[str, Any] | None = None,
) -> History:
    """Minimise ``loss_fn`` over minibatches of ``data`` (rows are samples) with Adam.

    With ``resume`` (a checkpoint path), the model, optimiser, shuffling order, position in
    the epoch and history are restored and training continues up to ``config.epochs``; the
    result equals that of an uninterrupted run. ``batch_size`` and ``seed`` must match the
    checkpoint's; ``lr`` may differ (it replaces the saved one, e.g. after a divergence).

    Raises :class:`TrainingDiverged` on a non-finite loss or gradient or invalid parameters
    (the last good checkpoint is left intact), :class:`CheckpointError` for a corrupted or
    mismatched checkpoint, :class:`DataError` for empty or non-tensor data.

    ``run_info`` (plain data: the family digest, lam, data digest, ...) is stored in every
    checkpoint; resuming with different ``run_info`` is a :class:`CheckpointError` naming the
    first differing setting.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    data = _prepare(data, cfg)
    model.to(torch.device(cfg.device))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    cache = warm.make_cache(model, loss_fn, data.shape[0], cfg.warm_start)

    def step(batch: Tensor, n_total: int, epoch: int, b: int) -> tuple[float, int]:
        optimizer.zero_grad(set_to_none=True)
        if cache is None:
            loss = loss_fn(model, batch, n_total)
        else:  # warm start from the rows' last latents; remember the new ones
            warm.forget_latents(model)
            loss = loss_fn(model, batch, n_total, z0=cache.starts(loop.rows))
            solved = warm.solved_latents(model, batch.shape[0])
            if solved is not None:
                cache.store(loop.rows, solved)
        if not bool(torch.isfinite(loss)):
            raise loop.diverged(f"the loss is {float(loss.detach())}", epoch, b)
        loss.backward()
        bad = first_nonfinite_gradient(model)
        if bad is not None:
            raise loop.diverged(f"non-finite gradient at {bad}", epoch, b)
        optimizer.step()
        problem = check_parameters(model)
        if problem is not None:
            raise loop.diverged(f"after the optimiser step, {problem}", epoch, b)
        return float(loss.detach()) * batch.shape[0], _nonconverged(model)

    loop = _Loop(model, optimizer, data, cfg, step, run_info=run_info, cache=cache)
    return loop.run(resume)


__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "History",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingError",
    "check_parameters",
    "default_loss",
    "first_nonfinite_gradient",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
