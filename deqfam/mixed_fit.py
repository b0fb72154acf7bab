"""``deqfam fit`` with one family per column (a CSV column map, ``deqfam/column_map.py``, or
a vector family for every column).

The model is the per-column ExpFamPCA of ``runtime/block_pca.py`` (``ExpFamPCA(families=
[...])``): ``y_sj | z_s ~ family_j(eta_sj)``, ``eta_s = W z_s + B``, ``z_s ~ N(0, lam^-1 I)``.
``optimizer="newton"`` (default) minimises the joint MAP objective by the second-order
alternation (``runtime.fitting.fit_newton``, per column group: ``block_alternating``);
``optimizer="adam"`` trains it with Adam through the implicit layer (``runtime.train``) under
``deqfam fit``'s Adam defaults and convergence test. Both write the outputs of a
single-family fit (``deqfam.fit_outputs``): the MAP latents, their Laplace covariances
``(lam I + sum_j W_j^T C_j W_j)^-1``, the parameters and the history; given the columns'
specs (``deqfam.column_specs.ColumnSpecs``) the fit also records them (``columns.json``) so
``deqfam transform`` reloads it. Checkpoints carry the run settings (families and their
digests, lam, dimensions, the data's digest), so ``--resume`` refuses another run's.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deqfam import fitting as defaults
from deqfam.column_specs import COLUMNS_NAME, ColumnSpecs, columns_digests, columns_record
from deqfam.fit_outputs import write_fit_outputs
from deqfam.fitting import FitResult, OutputExistsError
from deqfam.fsutil import atomic_write_bytes
from deqfam.runtime.fitting import NewtonFitConfig, fit_newton
from deqfam.runtime.fitting.prior import default_weight_decay
from deqfam.runtime.laplace import posterior_from_latents
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.threads import batched_hessian_work, choose_threads, thread_scope
from deqfam.runtime.train import CHECKPOINT_NAME, TrainConfig, TrainingDiverged, train
from deqfam.runtime.validation import check_choice


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
    weight_decay: float | None = defaults.DEFAULT_WEIGHT_DECAY,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | str | None = "auto",
    optimizer: str = "newton",
    newton_config: NewtonFitConfig | None = None,
) -> FitResult:
    """Fit the per-column ExpFamPCA (module docstring) to ``data`` (N x d), ``families[j]``
    the runtime family of column ``j`` (or a ``ColumnSpecs``, whose specs are then recorded),
    and with ``out_dir`` write its outputs there. ``optimizer="newton"`` runs the second-order
    fit (``newton_config``: its options; ``epochs``, ``batch_size``, ``lr``, ``tol`` do not
    apply); with ``"adam"``, ``epochs`` is the maximum and the run stops earlier by
    ``runtime.stopping``'s test."""
    check_choice("optimizer", optimizer, defaults.OPTIMIZERS)
    specs = families if isinstance(families, ColumnSpecs) else None
    families = specs.families if specs is not None else families
    data = data.to(torch.float64)
    if isinstance(weight_decay, str):
        raise ValueError(
            f"weight decay {weight_decay!r} applies to a fit of one scalar family; pass a "
            "number for mixed or vector columns"
        )
    if weight_decay is None:  # the per-sample rule of ``deqfam fit``
        weight_decay = default_weight_decay(data.shape[0])
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
    run_info = {
        **mixed_run_settings(families, data, latent_dim, lam, weight_decay),
        "optimizer": optimizer,
    }
    cfg: TrainConfig | NewtonFitConfig = TrainConfig(
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
        if optimizer == "newton":
            cfg = replace(
                newton_config or NewtonFitConfig(),
                progress=progress,
                checkpoint_path=str(ckpt) if ckpt is not None else None,
            )
            history = fit_newton(model, data, cfg, resume=previous, run_info=run_info)
        else:
            history = train(model, data, cfg, resume=previous, run_info=run_info)
        with torch.no_grad():
            z = model(data, z0=model.last_z if optimizer == "newton" else None)
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
        if specs is not None and all(spec is not None for spec in specs.specs):
            atomic_write_bytes(out / COLUMNS_NAME, columns_record(specs))
    return result


def mixed_run_settings(
    families: list[Any], data: torch.Tensor, latent_dim: int, lam: float, weight_decay: float
) -> dict[str, Any]:
    """The settings a per-column fit's checkpoint must match to be resumed: the family name
    and spec digest of every column, lam, latent dimension, weight decay, and the data's
    shape and SHA-256 (of its float64 bytes)."""
    array = np.ascontiguousarray(data.detach().cpu().numpy(), dtype=np.float64)
    return {
        "families": [f.name for f in families],
        "family_sha256": columns_digests(ColumnSpecs([None] * len(families), list(families))),
        "lam": float(lam),
        "latent_dim": int(latent_dim),
        "weight_decay": float(weight_decay),
        "data_shape": [int(v) for v in array.shape],
        "data_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }


__all__ = ["fit_mixed", "mixed_run_settings"]
