"""``deqfam fit``: ExpFamPCA fitted to a data matrix, with its defaults, resumable checkpoints
and the settings a checkpoint must match; the outputs are written by
:mod:`deqfam.fit_outputs`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deqfam.api import family_module, register_fused_source, torch_family
from deqfam.derive.budget import time_budget
from deqfam.fit_outputs import write_fit_outputs
from deqfam.fitted import spec_text_of
from deqfam.runtime.family import TorchFamily, as_torch_family
from deqfam.runtime.fitting import NewtonFitConfig, fit_newton
from deqfam.runtime.fitting.prior import default_weight_decay
from deqfam.runtime.fused import AUTO_BUILD_MIN_ENTRIES, BACKENDS, fit_backend
from deqfam.runtime.initialisation import bias_at_column_means
from deqfam.runtime.laplace import posterior_from_latents
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.threads import batched_hessian_work, choose_threads, thread_scope
from deqfam.runtime.train import CHECKPOINT_NAME, TrainConfig, TrainingDiverged, train
from deqfam.runtime.validation import check_choice, validate_observations

#: Defaults of ``fit`` (and ``deqfam fit``): Adam at lr 1e-2; stop when the last 5 epochs
#: made less than 1e-4 of the run's progress in the epoch loss (runtime/stopping.py),
#: dividing lr by 10 at the first two such plateaus; at most 300 epochs. How they were
#: chosen: BENCHMARKS.md, "Default training".
DEFAULT_LR = 1e-2
DEFAULT_MAX_EPOCHS = 300
DEFAULT_TOL = 1e-4
DEFAULT_WINDOW = 5
DEFAULT_LR_DECAY = 0.1
DEFAULT_MAX_DECAYS = 2
#: ``fit``'s optimizers: second-order alternation (default) or Adam through the implicit layer
OPTIMIZERS = ("newton", "adam")
#: default precision of the Gaussian prior on (W, B): None, the rule ``w = c N`` of
#: ``runtime.fitting.prior`` (c = 0.125 per sample; 500 at the paper's 4097 rows). With no
#: prior the joint objective has no minimiser (W -> c W, Z -> Z / c lowers lam/2 |Z|^2 for
#: ever). How it was chosen, and what it costs in training deviance: BENCHMARKS.md, "The
#: default prior".
DEFAULT_WEIGHT_DECAY = None


@dataclass
class FitResult:
    model: ExpFamPCA
    latents: np.ndarray
    covariances: np.ndarray
    history: Any
    out_dir: Path | None
    #: per-sample solver outcome of the final forward pass (converged, residual, iterations)
    stats: Any = None
    #: the training options used (epochs = maximum, convergence test)
    config: TrainConfig | NewtonFitConfig | None = None
    #: the thread choice the fit ran under (runtime/threads.py ThreadChoice.to_dict())
    threads: dict[str, Any] | None = None
    #: the spec text of the family (saved as spec.yaml so ``deqfam transform`` can reload it)
    spec_text: str | None = None
    #: the backend asked for and the solver that ran the final solve ("newton" on the torch
    #: path, "newton (fused)" on the fused one)
    backend: dict[str, Any] | None = None
    #: with ``weight_decay="auto"``: what was tried and chosen (``deqfam.prior_choice``)
    prior_choice: dict[str, Any] | None = None


def fit(
    data: torch.Tensor,
    family: Any,
    latent_dim: int,
    *,
    lam: float = 0.1,
    epochs: int = DEFAULT_MAX_EPOCHS,
    batch_size: int = 500,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    weight_decay: float | str | None = DEFAULT_WEIGHT_DECAY,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    labels: np.ndarray | None = None,
    label_names: dict[int, str] | None = None,
    tol: float = DEFAULT_TOL,
    window: int = DEFAULT_WINDOW,
    lr_decay: float = DEFAULT_LR_DECAY,
    max_decays: int = DEFAULT_MAX_DECAYS,
    init_bias: bool = False,
    overwrite: bool = False,
    allow_inadmissible: bool = False,
    threads: int | str | None = "auto",
    optimizer: str = "newton",
    backend: str = "auto",
) -> FitResult:
    """Fit ExpFamPCA to ``data`` and (with ``out_dir``) write latents, Laplace covariances,
    parameters, history and plots there (each file written atomically). ``labels`` (one int
    per row) colour the embedding plot, ``label_names`` name them in its legend.

    ``epochs`` is the maximum; the run stops earlier when the convergence test of
    :mod:`runtime.stopping` (``tol``, ``window``, ``lr_decay``, ``max_decays``) says so, and
    ``history.stop_reason`` / ``stop_message`` record why. ``init_bias`` starts ``B`` at the
    link of the column means, ``(A')^{-1}(mean T(y))`` (off by default: on the paper's
    Poisson data it helped one run and hurt another, BENCHMARKS.md); ``tol = 0`` gives a
    fixed epoch count.

    The run's settings (:func:`run_settings`) go into every checkpoint; ``resume`` refuses a
    checkpoint written under other settings. An ``out_dir`` holding a checkpoint is refused
    (:class:`OutputExistsError`) unless ``resume`` (continue it) or ``overwrite`` (delete it
    and start afresh). A family that ``check`` rejects is refused unless
    ``allow_inadmissible``. Training and the final solve run on the thread count of
    ``runtime/threads.py`` (``threads``: a positive integer, or ``"auto"`` for the policy),
    recorded in ``FitResult.threads`` and ``history.json``.

    ``weight_decay`` is the precision ``w`` of the Gaussian prior on ``(W, B)``; ``None``
    (default) takes ``w = 0.125 N`` for ``N`` rows (``runtime.fitting.prior``), recorded in
    the run's settings and ``FitResult.model.weight_decay``. ``"auto"`` chooses ``w = c N``
    by the held-out half loss over a grid of ``c`` (``deqfam.prior_choice``; one extra fit per
    grid point on 90% of the rows), recorded in ``FitResult.prior_choice`` and
    ``history.json``.

    ``optimizer="newton"`` (default) minimises the joint MAP objective by alternating the
    latent Newton solve with Newton / Fisher scoring per column (``runtime.fitting``) until
    its convergence test; ``epochs``, ``batch_size`` and ``lr`` then do not apply.
    ``optimizer="adam"`` trains through the implicit layer for ``epochs`` epochs.
    ``backend`` is ExpFamPCA's (``runtime.fused``): ``"fused"`` runs the second-order fit's
    latent and loadings steps (``runtime.fitting.fused_steps``), the Adam path's forward
    passes and the final solve on the generated fused solver, compiled on first use and
    cached; ``"torch"`` never does; ``"auto"`` (default) runs it when it is built already or
    the data have at least ``AUTO_BUILD_MIN_ENTRIES`` entries (``runtime.fused.fit_backend``),
    else the torch path. The outcome is recorded in ``FitResult.backend`` and ``history.json``.
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    with time_budget(None, "fit setup (loading, deriving and generating the family)"):
        module = (
            family
            if isinstance(family, TorchFamily)
            else family_module(family, allow_inadmissible=allow_inadmissible)
        )
        fam_torch = torch_family(module, allow_inadmissible=allow_inadmissible)
    check_choice("backend", backend, BACKENDS)
    if isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
        data = torch.as_tensor(data)
    if isinstance(data, torch.Tensor) and not data.is_complex():
        data = data.to(torch.float64)  # counts may come as integers
    data = validate_observations(data, fam_torch.support, support_max=fam_torch.support_max)
    requested_backend = backend
    if backend != "torch":
        # a user spec's fused source is derived (SymPy) only where it will be built
        derive = backend == "fused" or data.numel() >= AUTO_BUILD_MIN_ENTRIES
        with time_budget(None, "fit setup (generating the fused solver's source)"):
            register_fused_source(family, module, derive=derive)
        backend = fit_backend(fam_torch, backend, data.numel())
    prior_choice = None
    if isinstance(weight_decay, str):
        check_choice("weight_decay", weight_decay, ("auto",))
        kw = {  # every candidate fit trains as this one will, quietly and in memory
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "tol": tol, "window": window,
            "lr_decay": lr_decay, "max_decays": max_decays, "init_bias": init_bias,
            "allow_inadmissible": allow_inadmissible, "threads": threads,
            "optimizer": optimizer, "backend": requested_backend, "progress": False,
        }  # fmt: skip
        prior_choice = _auto_prior(data, family, fam_torch, latent_dim, lam, seed, progress, kw)
        weight_decay = prior_choice.weight_decay(data.shape[0])
    elif weight_decay is None:  # the default prior, scaled with the number of rows
        weight_decay = default_weight_decay(data.shape[0])
    run_info = {**run_settings(module, data, latent_dim, lam, weight_decay), "optimizer": optimizer}
    model = ExpFamPCA(
        fam_torch,
        data.shape[1],
        latent_dim,
        lam=lam,
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
        backend=backend,
    )
    if init_bias:
        with torch.no_grad():
            model.B.copy_(bias_at_column_means(fam_torch, data))
    out = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out / "checkpoints" if out is not None else None
    ckpt = ckpt_dir / CHECKPOINT_NAME if ckpt_dir is not None else None
    if ckpt is not None and ckpt.exists() and not resume:
        if not overwrite:
            raise OutputExistsError(
                f"{out} already holds a training checkpoint ({ckpt}); pass --resume to continue "
                "that run or --overwrite to replace it"
            )
        ckpt.unlink()  # start afresh: never resume the replaced run by accident
    previous = ckpt if resume and ckpt and ckpt.exists() else None
    work = batched_hessian_work(min(batch_size, data.shape[0]), data.shape[1], latent_dim)
    choice = choose_threads(threads, work)
    with thread_scope(choice):
        if optimizer == "newton":
            cfg = NewtonFitConfig(
                progress=progress, checkpoint_path=str(ckpt) if ckpt is not None else None
            )
            history = fit_newton(model, data, cfg, resume=previous, run_info=run_info)
        else:
            cfg = TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                progress=progress,
                checkpoint_dir=str(ckpt_dir) if ckpt_dir else None,
                tol=tol,
                window=window,
                lr_decay=lr_decay,
                max_decays=max_decays,
            )
            history = train(model, data, cfg, resume=previous, run_info=run_info)
        with torch.no_grad():
            z = model(data, z0=model.last_z if optimizer == "newton" else None)
            stats = model.last_stats
            post = posterior_from_latents(model.family, model.W, model.B, model.lam, z)
            cov = post.covariance()
    # never write silent NaNs: the solver keeps iterates finite, so this is a broken family
    for name, arr in (("latents", z), ("Laplace covariances", cov)):
        finite = torch.isfinite(arr.reshape(arr.shape[0], -1)).all(1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise TrainingDiverged(
                f"the fitted model gives non-finite {name} for samples {bad[:10]}; nothing "
                "was written",
                epochs,
                0,
                ckpt if ckpt is not None and ckpt.exists() else None,
            )
    result = FitResult(model, z.numpy(), cov.numpy(), history, out, stats, cfg, choice.to_dict())
    result.backend = {"requested": requested_backend, "solver": stats.solver}
    result.spec_text = spec_text_of(family)
    result.prior_choice = prior_choice.to_dict() if prior_choice is not None else None
    if out is not None:
        write_fit_outputs(result, labels, label_names)
    return result


def _auto_prior(data, family, fam_torch, latent_dim, lam, seed, progress, kw):
    """``weight_decay="auto"``: :func:`deqfam.prior_choice.choose_weight_decay` with one
    quiet in-memory ``fit`` per candidate, under this fit's optimizer, backend and threads."""
    from deqfam.prior_choice import choose_weight_decay

    def fit_at(rows: torch.Tensor, w: float) -> tuple[torch.Tensor, torch.Tensor]:
        res = fit(rows, family, latent_dim, lam=lam, seed=seed, weight_decay=w, **kw)
        return res.model.W, res.model.B

    return choose_weight_decay(data, fam_torch, lam, fit_at, seed=seed, progress=progress)


class OutputExistsError(ValueError):
    """An output folder holds an earlier run that would be overwritten silently."""


def run_settings(
    module: Any, data: torch.Tensor, latent_dim: int, lam: float, weight_decay: float
) -> dict[str, Any]:
    """The settings a fit's checkpoint must match to be resumed (plain data): the family's
    name and spec digest (which covers parameter overrides), lam, latent dimension, weight
    decay, and the data's shape and SHA-256 (of its float64 bytes). ``module`` is a generated
    module or its ``FAMILY``."""
    fam = as_torch_family(module)
    array = np.ascontiguousarray(data.detach().cpu().numpy(), dtype=np.float64)
    return {
        "family": fam.name,
        "family_sha256": fam.spec_sha256,
        "lam": float(lam),
        "latent_dim": int(latent_dim),
        "weight_decay": float(weight_decay),
        "data_shape": [int(v) for v in array.shape],
        "data_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }
