"""Plots a person would rather look at than read: embeddings with Laplace ellipses,
training curves. Matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from deqfam.fsutil import atomic_path

SHAPE_COLOURS = np.array(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"])


def covariance_ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float = 2.0, **kw) -> Ellipse:
    """The n_std-sigma ellipse of N(mean, cov) in 2-D (eigen-decomposition of cov)."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    width, height = 2 * n_std * np.sqrt(vals[1]), 2 * n_std * np.sqrt(vals[0])
    return Ellipse(xy=mean, width=width, height=height, angle=angle, **kw)


def plot_embedding(
    ax,
    z: np.ndarray,
    labels: np.ndarray | None = None,
    covariances: np.ndarray | None = None,
    ellipse_idx=(),
    title: str = "",
    n_std: float = 2.0,
) -> None:
    """Scatter a 2-D embedding (coloured by label) with Laplace ellipses at ``ellipse_idx``."""
    colours = SHAPE_COLOURS[(labels % len(SHAPE_COLOURS))] if labels is not None else "tab:blue"
    ax.scatter(z[:, 0], z[:, 1], s=2, c=colours, alpha=0.5, linewidths=0)
    if covariances is not None:
        for i in ellipse_idx:
            ax.add_patch(
                covariance_ellipse(
                    z[i], covariances[i], n_std=n_std, fill=False, edgecolor="black", linewidth=0.8
                )
            )
            ax.plot(*z[i], "k+", markersize=5)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")


def save_embedding_png(
    path: str | Path, z: np.ndarray, labels=None, covariances=None, ellipse_idx=(), title: str = ""
) -> Path:
    """One-panel PNG of an embedding; written to a temporary file, then renamed."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    plot_embedding(ax, z, labels, covariances, ellipse_idx, title)
    if covariances is not None and len(ellipse_idx):
        ax.text(
            0.01,
            0.01,
            "ellipses: 2-sigma Laplace posterior N(z*, H(z*)^-1)",
            transform=ax.transAxes,
            fontsize=7,
        )
    return _save(fig, path)


def save_history_png(path: str | Path, losses: list[float], title: str = "training loss") -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return _save(fig, path)


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
