"""Plot of an admissibility report: per tilt, ``phi(r)`` and the recovered tilted law."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deqfam.fsutil import atomic_path

from .report import Report


def plot_report(report: Report, path: str | Path) -> Path:
    """Write a PNG: per tilt, |phi(r)| and Re phi(r) (left) and the recovered tilted law
    (masses or damped density, right). Uses the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    curves = report.curves
    rows = max(1, len(curves))
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.8 * rows), squeeze=False)
    for ax_row, c in zip(axes, curves, strict=False):
        a0, a1 = ax_row
        # show r up to where |phi| has decayed (at most 6 periods of 2 pi when it does not)
        live = np.flatnonzero(np.abs(c.phi) > 1e-4)
        r_hi = min(c.r[-1], max(2 * np.pi, c.r[live[-1]] if live.size else 0.0), 12 * np.pi)
        rs = c.r <= r_hi
        a0.plot(c.r[rs], np.abs(c.phi[rs]), label="|phi|")
        a0.plot(c.r[rs], c.phi.real[rs], label="Re phi", alpha=0.8)
        a0.axhline(1.0, color="k", lw=0.5, ls=":")
        a0.set_xlabel("r")
        a0.set_title(f"theta0 = {c.tilt:g}")
        a0.legend(fontsize=8)
        if c.method == "lattice":
            keep = np.abs(c.values) > max(10 * c.floor, 1e-15)
            neg = keep & (c.values < 0)
            a1.stem(c.y[keep], c.values[keep])
            a1.plot(c.y[neg], c.values[neg], "rv", label="negative mass")
            if neg.any():
                a1.legend(fontsize=8)
            # symmetric log scale: tiny negative masses stay visible next to O(1) ones
            a1.set_yscale("symlog", linthresh=max(100 * c.floor, 1e-15))
            a1.set_ylabel("mass (symlog)")
        else:
            big = np.flatnonzero(np.abs(c.values) > 1e-6 * np.max(np.abs(c.values)))
            keep = slice(big[0], big[-1] + 1) if big.size else slice(None)
            a1.plot(c.y[keep], c.values[keep])
            j = int(np.argmin(c.values))
            if c.values[j] < -100 * c.floor:
                a1.plot([c.y[j]], [c.values[j]], "rv", label=f"min {c.values[j]:.2e}")
                a1.legend(fontsize=8)
            a1.set_ylabel("density (damped)")
        a1.axhline(0.0, color="k", lw=0.5)
        a1.set_xlabel("y")
        a1.set_title(f"recovered tilted law ({c.method}), floor {c.floor:.1e}")
    if not curves:
        axes[0][0].text(0.5, 0.5, "no Fourier data", ha="center")
    fig.suptitle(
        f"{report.name}: {report.verdict}" + (f" ({report.strength})" if report.strength else "")
    )
    fig.tight_layout()
    try:  # exclusive random temp name, then rename; the format is the path's (else PNG),
        with atomic_path(path) as tmp:  # named explicitly: the temp name ends in .tmp
            fig.savefig(tmp, dpi=90, format=path.suffix[1:] or "png")
    finally:
        plt.close(fig)
    return path
