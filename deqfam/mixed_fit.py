"""``deqfam fit`` with one family per column (a CSV column map, ``deqfam/column_map.py``).

The model is the per-column ExpFamPCA of ``runtime/block_pca.py`` (``ExpFamPCA(families=
[...])``): ``y_sj | z_s ~ family_j(eta_sj)``, ``eta_s = W z_s + B``, ``z_s ~ N(0, lam^-1 I)``.
The second-order fit (``runtime.fitting``) works per scalar family and does not take a
column layout yet, so this fit trains the joint MAP objective with Adam through the implicit
layer (``runtime.train``), under ``deqfam fit``'s Adam defaults and convergence test, then
writes the same outputs as a single-family fit (``deqfam.fit_outputs``): the MAP latents,
their Laplace covariances ``(lam I + sum_j W_j^T C_j W_j)^-1``, the parameters and the
history. A mixed fit saves no single spec, so ``deqfam transform`` cannot reload it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from deqfam import fitting as defaults
from deqfam.fit_outputs import write_fit_outputs
from deqfam.fitting import FitResult, OutputExistsError
from deqfam.runtime.laplace import posterior_from_latents
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.threads import batched_hessian_work, choose_threads, thread_scope
from deqfam.runtime.train import CHECKPOINT_NAME, TrainConfig, TrainingDiverged, train


def fit_mixed(
    data: torch.Tensor,
    families: list[Any],
    latent_dim: int,
    *,
    lam: float = 0.1,
    epochs: int = defaults.DEFAULT_MAX_EPOCHS,
    batch_size: int = 500,
    lr: float = defaults.DEFAULT_LR,
    tol: float = defaults.DEFAULT_TOL,
    seed: int = 0,
    weight_decay: float = defaults.DEFAULT_WEIGHT_DECAY,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | str | None = "auto",
) -> FitResult:
    """Fit the per-column ExpFamPCA (module docstring) to ``data`` (N x d), ``families[j]``
    the runtime family of column ``j``, and with ``out_dir`` write its outputs there.
    ``epochs`` is the maximum; the run stops earlier by ``runtime.stopping``'s test."""
    data = data.to(torch.float64)
    model = ExpFamPCA(
        families=list(families),
        data_dim=data.shape[1],
        latent_dim=latent_dim,
        lam=lam,
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
    )
    out = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out / "checkpoints" if out is not None else None
    ckpt = ckpt_dir / CHECKPOINT_NAME if ckpt_dir is not None else None
    if ckpt is not None and ckpt.exists() and not (resume or overwrite):
        raise OutputExistsError(
            f"{out} already holds a training checkpoint ({ckpt}); pass --resume to continue "
            "that run or --overwrite to replace it"
        )
    if ckpt is not None and ckpt.exists() and overwrite and not resume:
        ckpt.unlink()
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        checkpoint_dir=str(ckpt_dir) if ckpt_dir is not None else None,
        tol=tol,
        window=defaults.DEFAULT_WINDOW,
        lr_decay=defaults.DEFAULT_LR_DECAY,
        max_decays=defaults.DEFAULT_MAX_DECAYS,
    )
    work = batched_hessian_work(min(batch_size, data.shape[0]), model.natural_dim, latent_dim)
    choice = choose_threads(threads, work)
    previous = ckpt if resume and ckpt is not None and ckpt.exists() else None
    with thread_scope(choice):
        history = train(model, data, cfg, resume=previous)
        with torch.no_grad():
            z = model(data)
            cov = posterior_from_latents(model.family, model.W, model.B, model.lam, z).covariance()
    if not bool(torch.isfinite(z).all() and torch.isfinite(cov).all()):
        raise TrainingDiverged(
            "the fitted model gives non-finite latents or covariances; nothing was written",
            epochs,
            0,
            ckpt if ckpt is not None and ckpt.exists() else None,
        )
    result = FitResult(model, z.numpy(), cov.numpy(), history, out, model.last_stats, cfg)
    result.threads = choice.to_dict()
    if out is not None:
        write_fit_outputs(result, None)
    return result


__all__ = ["fit_mixed"]
