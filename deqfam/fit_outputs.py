"""The files of a finished fit (latents, Laplace covariances, parameters, history, solver
statistics, plots), written all-or-nothing through a staging folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from deqfam.alignment import orthogonal_basis
from deqfam.fitted import PARAMS_NAME, SPEC_NAME
from deqfam.runtime.train import TrainConfig

if TYPE_CHECKING:
    from deqfam.fitting import FitResult


def write_fit_outputs(
    res: FitResult, labels: np.ndarray | None, label_names: dict[int, str] | None = None
) -> None:
    """Write every output into a staging folder inside ``out`` first, then move the files into
    place (each ``os.replace`` is atomic): a failure while writing (a plot, a full disk)
    leaves the previous outputs, never a mix of half-written new ones."""
    from deqfam.runtime.plots import save_embedding_png, save_history_png  # matplotlib: here only

    out = res.out_dir
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fit-staging-", dir=out))
    try:
        np.save(staging / "latents.npy", res.latents)
        np.save(staging / "covariances.npy", res.covariances)
        params = {
            "W": res.model.W.detach(),
            "B": res.model.B.detach(),
            "lam": res.model.lam,
            "family": res.model.family.name,
        }
        if res.spec_text is not None:  # what deqfam transform reloads (deqfam/fitted.py)
            spec_bytes = res.spec_text.encode("utf-8")
            (staging / SPEC_NAME).write_bytes(spec_bytes)
            params["spec_sha256"] = hashlib.sha256(spec_bytes).hexdigest()
        torch.save(params, staging / PARAMS_NAME)
        record = {**res.history.to_dict(), "threads": res.threads, "backend": res.backend}
        if res.prior_choice is not None:  # fit(weight_decay="auto")
            record["prior_choice"] = res.prior_choice
        (staging / "history.json").write_text(json.dumps(record, indent=2))
        if res.stats is not None:
            summary = {**res.stats.summary(), "failed_samples": res.stats.failed_indices()}
            (staging / "solver_stats.json").write_text(json.dumps(summary, indent=2))
        if res.latents.shape[1] >= 2:  # the embedding plot needs two latent coordinates
            z, r = orthogonal_basis(res.latents[:, :2], res.model.W.detach().numpy()[:, :2])
            cov = r @ res.covariances[:, :2, :2] @ r.T
            idx = np.linspace(0, len(z) - 1, min(12, len(z))).astype(int)
            save_embedding_png(
                staging / "embedding.png",
                z,
                labels,
                cov,
                idx,
                f"{res.model.family.name}: MAP latents (orthogonal basis)",
                label_names,
                ("latent 1 (orthogonal basis W = QR)", "latent 2 (orthogonal basis W = QR)"),
            )
        adam = isinstance(res.config, TrainConfig)  # the Newton fit has no lr or window
        save_history_png(
            staging / "loss.png",
            res.history.loss,
            lrs=res.history.lr if adam else None,
            tol=res.config.tol if adam else 0.0,
            window=res.config.window if adam else 0,
            stop_message=res.history.stop_message,
        )
        for f in sorted(staging.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
