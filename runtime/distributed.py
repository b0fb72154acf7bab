"""Data-parallel training with ``torch.distributed`` (DistributedDataParallel, gloo on CPU).

Every process holds the whole dataset and draws the same shuffled order (same seed), so all
see the same *global* minibatch; rank ``r`` takes the ``r``-th contiguous part of it
(``batch.tensor_split(world_size)[r]``). DDP averages the gradients over the ranks, and each
rank weights its loss by ``world_size * n_local / n_batch``, so the averaged gradient is

    (1/world) sum_r world (n_r / n_batch) grad mean_r(loss) = grad mean_batch(loss),

the gradient of single-process training on the same global batch, for any split (also an
uneven last batch). Adam then takes the same step in every process: parameters stay equal
across ranks and equal to the single-process run up to rounding. This holds for losses that
are a per-sample mean plus terms that do not depend on the batch (``ExpFamPCA.loss``).

Two ways to launch:

* :func:`spawn` (``torch.multiprocessing``, 127.0.0.1, a free port) from Python, e.g.
  ``spawn(train_distributed, 2, model, data, config)``; returns rank 0's result.
* ``torchrun --nproc-per-node 2 script.py`` with ``script.py`` calling
  :func:`init_distributed` and then :func:`train_distributed`.

Checkpoints (``checkpoint_dir``) are written by rank 0 only, in the format of
``runtime.train`` (atomic, checksummed), and every rank resumes from the same file. A failure
in one rank (non-finite loss, an exception in its forward) is agreed on by all ranks through
an all-reduce before anything else happens, so they stop together instead of hanging.

Warm starts (:mod:`runtime.latent_cache`): a row lands on a different rank each epoch (the
shares are parts of a freshly shuffled global batch), so every rank keeps the cache of all
``N`` rows, warm-starts its share from it, and after each step the shares' solved latents are
summed over the ranks into one ``n_batch x l`` tensor (each rank fills only its own disjoint
slice) and stored by every rank. The caches thus stay equal on all ranks and to the
single-process run's, and rank 0's checkpoint holds the whole cache.
"""

from __future__ import annotations

import copy
import datetime
import math
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import latent_cache as warm
from .train import (
    History,
    LossFn,
    TrainConfig,
    TrainingError,
    _Loop,
    _nonconverged,
    _prepare,
    check_parameters,
    default_loss,
    first_nonfinite_gradient,
)

LOCALHOST = "127.0.0.1"
DEFAULT_TIMEOUT_S = 300.0


class _LossModule(nn.Module):
    """Wraps ``loss_fn(model, batch, n_total)`` as a module, so that the loss is computed
    inside ``DistributedDataParallel.forward`` (which prepares the gradient all-reduce)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(
        self, batch: Tensor, n_total: int, weight: float, z0: Tensor | None = None
    ) -> Tensor:
        if batch.shape[0] == 0:  # an empty share: zero loss, zero gradients, same graph
            return sum(p.sum() * 0.0 for p in self.model.parameters())
        if z0 is None:
            return weight * self.loss_fn(self.model, batch, n_total)
        return weight * self.loss_fn(self.model, batch, n_total, z0=z0)


def init_distributed(backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Initialise the default process group from the environment ``torchrun`` sets
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), unless already done."""
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def local_share(batch: Tensor, rank: int, world_size: int) -> tuple[Tensor, float]:
    """Rank ``rank``'s contiguous part of a global minibatch and its loss weight
    ``world_size * n_local / n_batch`` (see the module docstring)."""
    local = batch.tensor_split(world_size)[rank]
    return local, world_size * local.shape[0] / batch.shape[0]


def share_latents(
    cache: warm.LatentCache, model: nn.Module, rows: Tensor, rank: int, world_size: int
) -> None:
    """Store the global batch's solved latents (rows ``rows``) in every rank's ``cache``:
    each rank writes its share's latents (NaN where it has none, which ``store`` skips) into
    its own slice of an ``n_batch x l`` tensor and the slices are summed over the ranks."""
    sizes = [len(part) for part in rows.tensor_split(world_size)]
    start, n_local = sum(sizes[:rank]), sizes[rank]
    gathered = torch.zeros(len(rows), cache.z.shape[1], dtype=cache.z.dtype, device=cache.z.device)
    solved = warm.solved_latents(model, n_local) if n_local else None
    mine = gathered[start : start + n_local]
    mine.copy_(solved if solved is not None else torch.full_like(mine, math.nan))
    dist.all_reduce(gathered)
    cache.store(rows, gathered)


def train_distributed(
    model: nn.Module,
    data: Tensor,
    config: TrainConfig | dict | None = None,
    *,
    loss_fn: LossFn = default_loss,
    resume: str | Path | None = None,
    ddp_options: dict[str, Any] | None = None,
) -> History:
    """:func:`runtime.train.train`, data-parallel over the initialised default process group.

    Call it in every process with the same ``data`` and ``config``; rank 0's parameters are
    broadcast at the start (DDP), so the models may be built with different seeds. Returns
    the history (identical on every rank: losses and counts are all-reduced).
    """
    if not dist.is_initialized():
        raise RuntimeError("train_distributed needs an initialised process group (see spawn)")
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    rank, world = dist.get_rank(), dist.get_world_size()
    data = _prepare(data, cfg)
    model.to(torch.device(cfg.device))
    ddp = DistributedDataParallel(_LossModule(model, loss_fn), **(ddp_options or {}))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    dtype = torch.float64
    cache = warm.make_cache(model, loss_fn, data.shape[0], cfg.warm_start)

    def step(batch: Tensor, n_total: int, epoch: int, b: int) -> tuple[float, int]:
        local, weight = local_share(batch, rank, world)
        local_rows = loop.rows.tensor_split(world)[rank]
        z0 = None if cache is None or not len(local_rows) else cache.starts(local_rows)
        optimizer.zero_grad(set_to_none=True)
        error: BaseException | None = None
        loss = None
        if cache is not None:
            warm.forget_latents(model)
        try:
            loss = ddp(local, n_total, weight, z0)
        except Exception as exc:  # agreed on below, so no rank waits forever
            error = exc
        ok = error is None and bool(torch.isfinite(loss))
        local_sum = float(loss.detach()) / weight * local.shape[0] if ok and weight else 0.0
        flags = torch.tensor(
            [local_sum, _nonconverged(model) if ok else 0, 0.0 if ok else 1.0], dtype=dtype
        )
        dist.all_reduce(flags)
        if flags[2] > 0:
            if error is not None:
                raise loop.diverged(f"rank {rank} failed: {error}", epoch, b) from error
            what = "the loss is not finite" + (
                "" if ok else f" on rank {rank}: {float(loss.detach())}"
            )
            raise loop.diverged(what, epoch, b)
        if cache is not None:  # every rank reaches this point (all agreed the step is fine)
            share_latents(cache, model, loop.rows, rank, world)
        loss.backward()  # DDP all-reduces (averages) the gradients here
        bad = first_nonfinite_gradient(model)
        if bad is not None:
            raise loop.diverged(f"non-finite gradient at {bad}", epoch, b)
        optimizer.step()
        problem = check_parameters(model)
        if problem is not None:
            raise loop.diverged(f"after the optimiser step, {problem}", epoch, b)
        return float(flags[0]), int(flags[1])

    loop = _Loop(
        model, optimizer, data, cfg, step, writer=rank == 0, barrier=dist.barrier, cache=cache
    )
    return loop.run(resume)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def _worker(
    rank: int,
    world_size: int,
    port: int,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict[str, Any],
    result_path: str,
    timeout_s: float,
) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": LOCALHOST,
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world_size),
        }
    )
    if "GLOO_SOCKET_IFNAME" not in os.environ and os.path.exists("/sys/class/net/lo"):
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{LOCALHOST}:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    # torch.multiprocessing hands tensors over in shared memory: without a private copy every
    # rank would update the same parameters. Other arguments (the data) stay shared, read-only.
    args = tuple(copy.deepcopy(a) if isinstance(a, nn.Module) else a for a in args)
    try:
        result = fn(*args, **kwargs)
        if rank == 0:
            models = [a for a in args if isinstance(a, nn.Module)]
            state = {"result": result, "model": models[0].state_dict() if models else None}
            torch.save(state, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run ``fn(*args, **kwargs)`` in ``world_size`` processes on 127.0.0.1 with an
    initialised gloo process group (``torch.multiprocessing.spawn``), e.g.
    ``spawn(train_distributed, 2, model, data, config)``.

    ``fn`` and the arguments must be picklable (a model whose family comes from a generated
    module is). Returns ``{"result": rank 0's return value, "model": rank 0's state_dict of
    the first ``nn.Module`` argument}``. An exception in any process raises here
    (``torch.multiprocessing.ProcessRaisedException``, with the child's traceback).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory(prefix="deqfam-ddp-") as tmp:
        result_path = str(Path(tmp) / "rank0.pt")
        mp.spawn(
            _worker,
            args=(world_size, _free_port(), fn, args, kwargs, result_path, timeout_s),
            nprocs=world_size,
            join=True,
        )
        if not Path(result_path).exists():
            raise TrainingError("the distributed run ended without a result from rank 0")
        return torch.load(result_path, map_location="cpu", weights_only=False)


__all__ = ["init_distributed", "local_share", "share_latents", "spawn", "train_distributed"]
