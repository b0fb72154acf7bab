"""Plots a person would rather look at than read: embeddings with Laplace ellipses,
training curves. Matplotlib with the Agg backend (no display needed).

Each plot has a ``*_figure`` function returning the matplotlib Figure (tests inspect its
labels and legend) and a ``save_*_png`` that writes it atomically."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from deqfam.fsutil import atomic_path

from .stopping import epochs_since_last_decay, relative_decrease

SHAPE_COLOURS = np.array(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"])


def covariance_ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0, **kw) -> Ellipse:
    """The n_std-sigma ellipse of N(mean, cov) in 2-D (eigen-decomposition of cov)."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    width, height = 2 * n_std * np.sqrt(vals[1]), 2 * n_std * np.sqrt(vals[0])
    return Ellipse(xy=mean, width=width, height=height, angle=angle, **kw)


#: What ExpFamPCA's training loss is (``ExpFamPCA.loss``, Theorem 1 (6)), for axis labels.
LOSS_LABEL = "-log p(Y, Z*) / N + const [nats per sample]"
LOSS_TITLE = (
    "training objective: mean over samples of A(WZ*+B) - T(y)(WZ*+B) + lam/2 |Z*|^2\n"
    "(negative log joint without log h(y); each point averages one epoch's minibatches)"
)


def label_names_for(labels: np.ndarray, names: dict[int, str] | None = None) -> dict[int, str]:
    """Legend text for each distinct label: ``names[k]`` when given, else ``"label k"``."""
    names = names or {}
    return {int(k): names.get(int(k), f"label {int(k)}") for k in np.unique(labels)}


def plot_embedding(
    ax,
    z: np.ndarray,
    labels: np.ndarray | None = None,
    covariances: np.ndarray | None = None,
    ellipse_idx=(),
    title: str = "",
    n_std: float = 2.0,
    label_names: dict[int, str] | None = None,
    axis_labels: tuple[str, str] = ("z1", "z2"),
) -> None:
    """Scatter a 2-D embedding with Laplace ellipses at ``ellipse_idx``: one colour and one
    legend entry per label (named by ``label_names``), both axes labelled."""
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=2, c="tab:blue", alpha=0.5, linewidths=0)
    else:
        for k, name in label_names_for(labels, label_names).items():
            sel = labels == k
            colour = SHAPE_COLOURS[k % len(SHAPE_COLOURS)]
            ax.scatter(z[sel, 0], z[sel, 1], s=2, c=colour, alpha=0.5, linewidths=0, label=name)
        ax.legend(loc="best", fontsize=7, markerscale=4, title="cluster", title_fontsize=7)
    if covariances is not None:
        for i in ellipse_idx:
            ax.add_patch(
                covariance_ellipse(
                    z[i], covariances[i], n_std=n_std, fill=False, edgecolor="black", linewidth=0.8
                )
            )
            ax.plot(*z[i], "k+", markersize=5)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")


def embedding_figure(
    z: np.ndarray,
    labels=None,
    covariances=None,
    ellipse_idx=(),
    title: str = "",
    label_names: dict[int, str] | None = None,
    axis_labels: tuple[str, str] = ("z1", "z2"),
):
    """One-panel Figure of an embedding (see :func:`plot_embedding`)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    plot_embedding(ax, z, labels, covariances, ellipse_idx, title, 2.0, label_names, axis_labels)
    if covariances is not None and len(ellipse_idx):
        ax.text(
            0.01,
            0.01,
            "ellipses: 2-sigma Laplace posterior N(z*, H(z*)^-1)",
            transform=ax.transAxes,
            fontsize=7,
        )
    return fig


def save_embedding_png(
    path: str | Path,
    z: np.ndarray,
    labels=None,
    covariances=None,
    ellipse_idx=(),
    title: str = "",
    label_names: dict[int, str] | None = None,
    axis_labels: tuple[str, str] = ("z1", "z2"),
) -> Path:
    """One-panel PNG of an embedding; written to a temporary file, then renamed."""
    fig = embedding_figure(z, labels, covariances, ellipse_idx, title, label_names, axis_labels)
    return _save(fig, path)


def history_figure(
    losses: list[float],
    title: str = LOSS_TITLE,
    ylabel: str = LOSS_LABEL,
    lrs: list[float] | None = None,
    tol: float = 0.0,
    window: int = 0,
    stop_message: str = "",
):
    """The epoch loss (left) and, with a convergence test (``tol`` > 0, ``window``), its
    relative decrease over ``window`` epochs ``(L[k-w] - L[k]) / max(|L[k-w]|, |L[k]|)`` on a
    log scale against ``tol`` (right), as :mod:`runtime.stopping` computed it (the window
    restarts where the learning rate changed; those epochs are marked)."""
    epochs = np.arange(1, len(losses) + 1)
    rel = _relative_decreases(losses, window, lrs or []) if tol > 0 and window > 0 else None
    if rel is not None and not (rel > 0).any():  # no window completed with a gain: no panel
        rel = None
    ncols = 2 if rel is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.6), dpi=120, squeeze=False)
    ax = axes[0][0]
    ax.plot(epochs, losses, marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=7)
    changes = [i + 1 for i in range(1, len(lrs or [])) if lrs[i] != lrs[i - 1]]
    for e in changes:
        ax.axvline(e, color="grey", lw=0.6, ls="--")
    if rel is not None:
        r_ax = axes[0][1]
        ok = rel > 0
        r_ax.semilogy(epochs[ok], rel[ok], ".", label="relative decrease")
        r_ax.axhline(tol, color="tab:red", lw=0.8, label=f"tol {tol:g}")
        for e in changes:
            r_ax.axvline(e, color="grey", lw=0.6, ls="--")
        r_ax.set_xlabel("epoch")
        r_ax.set_ylabel(f"relative decrease over {window} epochs", fontsize=8)
        r_ax.set_title("convergence test (dashed: learning rate lowered)", fontsize=7)
        r_ax.legend(fontsize=7)
    if stop_message:
        fig.text(0.01, 0.005, stop_message, fontsize=6)
    return fig


def _relative_decreases(losses: list[float], window: int, lrs: list[float]) -> np.ndarray:
    """The convergence test's relative decrease after each epoch, as the trainer saw it
    (:func:`runtime.stopping.relative_decrease`; NaN before a full window)."""
    out = []
    for k in range(len(losses)):
        since = epochs_since_last_decay(lrs[: k + 1]) if lrs else 0
        rel = relative_decrease(losses[: k + 1], window, since)
        out.append(np.nan if rel is None else rel)
    return np.asarray(out, dtype=float)


def save_history_png(
    path: str | Path,
    losses: list[float],
    title: str = LOSS_TITLE,
    ylabel: str = LOSS_LABEL,
    **test,
) -> Path:
    """PNG of :func:`history_figure` (``test``: its ``lrs``, ``tol``, ``window``,
    ``stop_message``)."""
    return _save(history_figure(losses, title, ylabel, **test), path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    try:  # exclusive random temp name, then rename; the format is the path's (else PNG),
        with atomic_path(path) as tmp:  # named explicitly: without a suffix the temp name ends .tmp
            fig.savefig(tmp, format=path.suffix[1:] or "png")
    finally:
        plt.close(fig)
    return path
