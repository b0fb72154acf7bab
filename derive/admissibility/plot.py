"""The figure of `deqfam check --plot`: what the admissibility stages computed, drawn.

Per tilt theta0 with Fourier data, a row of two panels: the characteristic function
``phi(r) = E exp(i r T(y)) = exp(A(theta0 + i r) - A(theta0))`` of the sufficient statistic
under the tilted law (left), and that tilted law of ``t = T(y)`` recovered by Fourier
inversion (right: masses on a lattice, or a Gaussian-damped density).

When no tilt gave a law (``|phi|`` overflowed, the domain failed, a stage broke down) the
figure still says something: the left panel shows what was computed instead (the bound
stage's witnesses ``log10 |phi(r)|`` against the bound ``|phi| <= 1``, or the eigenvalues
of the exponential-convexity Gram matrix), and the right panel states, in text, the
verdict and why the law could not be drawn. Works on the report alone (duck-typed: its
``curves``, ``evidence``, ``name``, ``verdict``, ``strength``, ``reason``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

from deqfam.fsutil import atomic_path

T_LABEL = "t = T(y)"


def report_figure(report: Any):
    """The check plot of ``report`` as a matplotlib Figure (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = report.curves
    rows = max(1, len(curves))
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.8 * rows + 0.6), squeeze=False)
    for (a0, a1), c in zip(axes, curves, strict=False):
        _plot_phi(a0, c)
        _plot_law(a1, c)
    if not curves:
        _plot_substitute(axes[0][0], report)
        _explain_missing_law(axes[0][1], report)
    missing = _tilts_without_law(report)
    if curves and missing:
        fig.text(0.01, 0.005, "no law drawn for " + "; ".join(missing)[:300], fontsize=6)
    strength = f" ({report.strength})" if report.strength else ""
    fig.suptitle(f"{report.name}: {report.verdict}{strength}")
    fig.tight_layout()
    return fig


def plot_report(report: Any, path: str | Path) -> Path:
    """Write :func:`report_figure` to ``path`` (format from the suffix, else PNG) through an
    exclusive random temp name and a rename; return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = report_figure(report)
    try:  # named explicitly: the temp name ends in .tmp
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format=path.suffix[1:] or "png")
    finally:
        plt.close(fig)
    return path


def _plot_phi(ax, c) -> None:
    """|phi(r)| and Re phi(r), up to where |phi| has decayed (at most 6 periods of 2 pi)."""
    live = np.flatnonzero(np.abs(c.phi) > 1e-4)
    r_hi = min(c.r[-1], max(2 * np.pi, c.r[live[-1]] if live.size else 0.0), 12 * np.pi)
    rs = c.r <= r_hi
    ax.plot(c.r[rs], np.abs(c.phi[rs]), label="|phi|")
    ax.plot(c.r[rs], c.phi.real[rs], label="Re phi", alpha=0.8)
    ax.axhline(1.0, color="k", lw=0.5, ls=":")
    ax.set_xlabel("r")
    ax.set_ylabel("phi(r) = E exp(i r T(y))")
    ax.set_title(f"characteristic function of T(y), tilt theta0 = {c.tilt:g}", fontsize=9)
    ax.legend(fontsize=8)


def _plot_law(ax, c) -> None:
    """The recovered tilted law of T(y): stems of masses on a symlog scale (tiny negative
    masses stay visible next to O(1) ones), or the damped density."""
    if c.method == "lattice":
        keep = np.abs(c.values) > max(10 * c.floor, 1e-15)
        neg = keep & (c.values < 0)
        ax.stem(c.y[keep], c.values[keep])
        ax.plot(c.y[neg], c.values[neg], "rv", label="negative mass")
        if neg.any():
            ax.legend(fontsize=8)
        ax.set_yscale("symlog", linthresh=max(100 * c.floor, 1e-15))
        ax.set_ylabel("mass P(T(y) = t) (symlog)")
    else:
        big = np.flatnonzero(np.abs(c.values) > 1e-6 * np.max(np.abs(c.values)))
        keep = slice(big[0], big[-1] + 1) if big.size else slice(None)
        ax.plot(c.y[keep], c.values[keep])
        j = int(np.argmin(c.values))
        if c.values[j] < -100 * c.floor:
            ax.plot([c.y[j]], [c.values[j]], "rv", label=f"min {c.values[j]:.2e}")
            ax.legend(fontsize=8)
        ax.set_ylabel("density of T(y) (damped)")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel(T_LABEL)
    ax.set_title(f"recovered tilted law of T(y) ({c.method}), floor {c.floor:.1e}", fontsize=9)


def _log10_abs(text: Any) -> float | None:
    """log10 |x| of a number given as text or float, even far beyond float range."""
    try:
        value = mpmath.mpf(str(text))
    except (ValueError, TypeError):
        return None
    return None if value == 0 else float(mpmath.log10(abs(value)))


def _plot_substitute(ax, report: Any) -> None:
    """What could be computed without a recovered law: the bound witnesses, else the
    exponential-convexity eigenvalues, else a text saying nothing numerical is available."""
    points = []
    for e in report.evidence:
        witness = e.details.get("witness") if e.stage == "bound" else None
        if isinstance(witness, dict) and "abs_phi" in witness:
            lg = _log10_abs(witness["abs_phi"])
            if lg is not None:
                r = (witness.get("points") or [None])[-1]  # |phi| is taken at the last point
                points.append((float(e.details.get("tilt", np.nan)), lg, r))
    if points:
        tilts, logs, _ = zip(*points, strict=True)
        ax.plot(tilts, logs, "rv", markersize=8, label="witness log10 |phi(r)|")
        for t, lg, r in points:
            if r is not None:
                ax.annotate(
                    f"r = {float(r):.3g}",
                    (t, lg),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
        ax.axhline(0.0, color="k", lw=0.8, label="bound |phi| <= 1 (log10 = 0)")
        ax.set_yscale("symlog", linthresh=1.0)
        top = max(max(logs), 1.0)
        ax.set_ylim(-1.0, top * 100)  # room above the highest witness for its label
        ax.set_xlabel("tilt theta0")
        ax.set_ylabel("log10 |phi(r)| at the witness r")
        ax.set_title("bound stage: |phi(r)| > 1 disproves positive definiteness", fontsize=9)
        ax.legend(fontsize=7)
        return
    eig = next(
        (e.details.get("eigenvalues") for e in report.evidence if e.stage == "exp_convexity"),
        None,
    )
    if eig:
        vals = np.array([float(mpmath.mpf(str(v))) for v in eig])
        ax.bar(np.arange(1, vals.size + 1), vals, color=np.where(vals < 0, "tab:red", "tab:blue"))
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("eigenvalue of exp(A((ti+tj)/2) - (A(ti)+A(tj))/2)")
        ax.set_title("exponential convexity (must be >= 0)", fontsize=9)
        return
    ax.set_axis_off()
    ax.text(0.5, 0.5, "no numerical curve was computed", ha="center", va="center")


def _tilts_without_law(report: Any) -> list[str]:
    """Summaries of the base-measure items of tilts with no recovered law (skipped, or the
    stage broke down before inverting)."""
    drawn = {c.tilt for c in report.curves}
    return [
        e.summary
        for e in report.evidence
        if e.stage == "base_measure" and e.details.get("tilt") not in drawn
    ]


def _explain_missing_law(ax, report: Any) -> None:
    """A text panel: the verdict's reason and why no tilted law of T(y) could be drawn."""
    ax.set_axis_off()
    why = _tilts_without_law(report) or ["no tilt reached the Fourier inversion stage"]
    lines = ["The tilted law of T(y) could not be drawn:"]
    lines += [textwrap.fill("- " + s, 60) for s in why]
    lines += ["", textwrap.fill(f"Verdict: {report.verdict}. Reason: {report.reason}", 60)]
    ax.text(
        0.0,
        1.0,
        "\n".join(lines),
        ha="left",
        va="top",
        fontsize=7,
        family="monospace",
        transform=ax.transAxes,
    )
