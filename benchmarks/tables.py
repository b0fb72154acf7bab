"""One renderer per BENCHMARKS.md table: a benchmark's recorded figures -> Markdown text.

``TABLES[name](figures)`` returns the text that ``benchmarks/render.py`` puts between
``<!-- table:name -->`` and ``<!-- /table:name -->``. The renderers read plain JSON values
(no torch), and the scripts whose console output *is* the table (full-scale training,
Figure 3) print it with the same functions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Figures = dict[str, Any]


# ------------------------------------------------------------------------------ formatting


def sci(x: float, digits: int = 2) -> str:
    """``x`` in scientific notation with a bare exponent: 1.9e8 -> ``1.90e8``."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def short_ms(x: float) -> str:
    """Milliseconds at two significant figures as the solver table shows them: 4.1, 12."""
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def markdown(header: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` (left) or ``r`` (right)."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    body = ["| " + " | ".join(cells) + " |" for cells in [header, *rows]]
    return "\n".join([body[0], rule, *body[1:]])


def code_block(lines: Sequence[str]) -> str:
    """Console output as a fenced block."""
    return "\n".join(["```", *lines, "```"])


def orders_label(orders: Sequence[float]) -> str:
    """The orders a row covers: ``0.5``; ``-2, -1, 0``; ``-1 ... 4.5 (8 orders)``."""
    if len(orders) <= 3:
        return ", ".join(f"{o:g}" for o in orders)
    label = f"{orders[0]:g} ... {orders[-1]:g}"
    return label + (f" ({len(orders)} orders)" if len(orders) > 5 else "")


def mean_sd(pair: Sequence[float] | None, fmt: str) -> str:
    """``mean ± sd`` (just ``mean`` when sd is 0; ``-`` when there is no value)."""
    if pair is None:
        return "-"
    mean, sd = pair
    return f"{mean:{fmt}}" if sd == 0 else f"{mean:{fmt}} ± {sd:{fmt}}"


# ------------------------------------------------------------------------------ tables


def special_accuracy(fig: Figures) -> str:
    """Max relative error against mpmath per function, order(s) and x range."""
    rows = []
    for r in fig["rows"]:
        many = len(r["orders"]) > 1
        bound = "<= " if many else ""
        label = orders_label(r["orders"])
        if r.get("param", "s") != "s":
            label = f"{r['param']} = {label}"
        rows.append(
            [
                r["function"],
                label,
                r["x_range"],
                bound + f"{r['float64']:.2e}",
                bound + f"{r['float32']:.2e}",
            ]
        )
    return markdown(["function", "s", "x range", "float64", "float32"], "lrlrr", rows)


def check_time(fig: Figures) -> str:
    """Verdict and median check time per built-in family."""
    rows = [[r["family"], r["verdict"], r["strength"], f"{r['median_s']:.3f}"] for r in fig["rows"]]
    return markdown(["family", "verdict", "strength", "median s"], "lllr", rows)


def codegen(fig: Figures) -> str:
    """Generation time and elementwise throughput of the three code paths."""
    rows = [
        [
            r["family"],
            f"{r['generate_s']:.2f}",
            sci(r["eager_el_s"]),
            sci(r["compiled_el_s"]),
            sci(r["cpp_el_s"]),
            f"{r['cpp_over_eager']:.2f}x",
        ]
        for r in fig["rows"]
    ]
    header = ["family", "generate s", "eager el/s", "compiled el/s", "C++ el/s", "C++ / eager"]
    return markdown(header, "lrrrrr", rows)


def solver_label(solver: str) -> str:
    """``ours/newton`` -> ``newton``; ``torchdeq/fixed_point_iter`` -> ``torchdeq fixed_point``."""
    owner, name = solver.split("/")
    name = name.removesuffix("_iter")
    return name if owner == "ours" else f"{owner} {name}"


def solver_cell(r: dict[str, Any]) -> str:
    """``fwd / fwd+bwd ms, converged%``; times only where every sample converged (a time of a
    failed solve compares nothing); ``crashed (why)`` for a solver that raised."""
    if "error" in r:
        return f"crashed ({r['error']})" if r["error"] else "crashed"
    share = f"{100 * r['converged']:.0f}%"
    if r.get("forward_ms") is None or r["converged"] < 1:
        return share
    return f"{short_ms(r['forward_ms'])} / {short_ms(r['fwd_bwd_ms'])}, {share}"


def solvers(fig: Figures) -> str:
    """One row per (family, W scale), one column per solver."""
    columns = list(dict.fromkeys(r["solver"] for r in fig["rows"]))
    cells: dict[tuple[str, float], dict[str, str]] = {}
    for r in fig["rows"]:
        cells.setdefault((r["family"], r["scale"]), {})[r["solver"]] = solver_cell(r)
    rows = [
        [f"{family} {scale:.3g}", *(by[c] for c in columns)]
        for (family, scale), by in cells.items()
    ]
    header = ["family, W scale", *map(solver_label, columns)]
    table = markdown(header, "l" * len(header), rows)
    if not fig.get("fused"):
        return table
    return f"{table}\n\n{fused_speedups(fig)}"


def ratio_cell(x: float | None) -> str:
    """A speed-up ``12x``; ``-`` where the other solver did not converge on every sample (NaN,
    recorded as null)."""
    return "-" if x is None or x != x else f"{x:.1f}x"


def fused_speedups(fig: Figures) -> str:
    """The fused layer's forward+backward time, its speed-ups over torch Newton and torchdeq's
    anderson (same run), and its forward time per sample-iteration against the flop estimate
    (``benchmarks.fused_figures``)."""
    rows = [
        [
            f"{e['family']} {e['scale']:.3g}",
            f"{e['fused_fwd_bwd_ms']:.2f}",
            ratio_cell(e["vs_newton"]),
            ratio_cell(e["vs_anderson"]),
            f"{e['ns_per_sample_iteration']:.0f}",
            f"{e['gflops']:.1f}",
        ]
        for e in fig["fused"]
    ]
    header = [
        "family, W scale",
        "fused fwd+bwd ms",
        "x torch newton",
        "x torchdeq anderson",
        "ns / sample-iteration",
        "GFLOP/s (estimate)",
    ]
    return markdown(header, "lrrrrr", rows)


def full_scale_lines(fig: Figures) -> list[str]:
    """The three lines ``full_scale`` prints for one training run."""
    return [
        f"{fig['family']}: {fig['n']} x {fig['d']} {fig['dtype']}, {fig['epochs']} epochs, "
        f"batch {fig['batch']}, torch {fig['torch']}, {fig['threads']} threads",
        f"data {fig['data_s']:.1f} s; training {fig['train_s']:.1f} s "
        f"({fig['train_s'] / fig['epochs']:.2f} s/epoch); non-converged solves in last epoch: "
        f"{fig['nonconverged_last']}",
        f"final loss {fig['final_loss']:.6g}; Procrustes error DEQ {fig['procrustes_deq']:.4f}, "
        f"PCA {fig['procrustes_pca']:.4f}",
    ]


FULL_SCALE_HEADER = (
    "family",
    "rows x cols",
    "optimizer (weight decay)",
    "solver",
    "iter.",
    "stop",
    "fit s",
    "Procrustes DEQ",
    "Procrustes PCA",
)


def full_scale_cells(row: Figures) -> list[str]:
    """One family's full-scale fit as table cells (``FULL_SCALE_HEADER``)."""
    return [
        row["family"],
        f"{row['n']} x {row['d']}",
        f"{row['optimizer']} ({row['weight_decay']:g})",
        str(row.get("solver") or "newton"),
        str(row["iterations"]),
        str(row["stop_reason"]),
        f"{row['fit_s']:.1f}",
        f"{row['procrustes_deq']:.4f}",
        f"{row['procrustes_pca']:.4f}",
    ]


def full_scale_row(row: Figures) -> str:
    """The line ``full_scale`` prints for one family (the table's cells)."""
    return "  ".join(
        f"{h}: {c}" for h, c in zip(FULL_SCALE_HEADER, full_scale_cells(row), strict=True)
    )


def full_scale(fig: Figures) -> str:
    """The full-scale fits, one row per family (an earlier single Adam run as console text)."""
    if "cases" not in fig:
        return code_block(full_scale_lines(fig))
    return markdown(
        FULL_SCALE_HEADER,
        "llllrlrrr",
        [full_scale_cells(r) for r in fig["cases"]],
    )


SCHEME_TITLES = {
    "random": "random init",
    "naive": "naive kGLM init",
    "informed": "informed kGLM init",
}


def kglm_sequence(fig: Figures) -> str:
    """Test MSE (mean ± sd over seeds) per initialisation scheme at selected epochs."""
    schemes = list(SCHEME_TITLES)
    rows = [[str(m["epoch"]), *(mean_sd(m[s], ".3f") for s in schemes)] for m in fig["marks"]]
    header = ["epoch", *(SCHEME_TITLES[s] for s in schemes)]
    return markdown(header, "rlll", rows)


MODEL_TITLES = {"pcdeq": "pcDEQ", "deq": "unconstrained DEQ", "mlp": "explicit MLP"}


def pcdeq_digits(fig: Figures) -> str:
    """Accuracy, solver iterations and failed solves (mean ± sd over seeds) per model."""
    rows = []
    for s in fig["summary"]:
        if s["forward_iterations"] is None:
            iters = fails = "-"
        else:
            iters = f"{s['forward_iterations']:.1f} / {s['backward_iterations']:.1f}"
            fails = f"{mean_sd(s['forward_failures'], '.0f')} / "
            fails += mean_sd(s["backward_failures"], ".0f")
        rows.append([MODEL_TITLES[s["model"]], mean_sd(s["test_accuracy"], ".3f"), iters, fails])
    header = [
        "model",
        "test accuracy",
        "forward / backward iterations",
        "failed solves (fwd / bwd)",
    ]
    return markdown(header, "llll", rows)


def ck_ntk(fig: Figures) -> str:
    """Relative spectral errors of the deterministic equivalents, one row per phi, the sizes
    p joined in each cell."""
    by_phi: dict[str, list[dict[str, Any]]] = {}
    for r in fig["table1"]:
        by_phi.setdefault(r["phi"], []).append(r)
    ps = [r["p"] for r in next(iter(by_phi.values()))]

    def cell(rs: list[dict[str, Any]], key: str, fmt: str) -> str:
        values = [r.get(key) for r in rs]
        return "-" if all(v is None for v in values) else " / ".join(f"{v:{fmt}}" for v in values)

    rows = [
        [phi, cell(rs, "ck", ".3f"), cell(rs, "K", ".4f"), cell(rs, "ntk", ".4f")]
        for phi, rs in by_phi.items()
    ]
    header = ["phi", f"p = {' / '.join(map(str, ps))}: CK", "pre-activation K", "NTK"]
    return markdown(header, "llll", rows)


def paper_fig3_lines(fig: Figures) -> list[str]:
    """Win counts (lowest test MSE of the trial), DEQ-vs-PCA pairwise wins with the paper's
    DEQ count, median test MSEs and Procrustes disparities per family, as ``paper_fig3``
    prints them (older records lack the pairwise, paper and Procrustes fields: "-")."""

    def cell(d: dict, key: str, fmt: str) -> str:
        return format(d[key], fmt) if key in d else "-"

    lines = [
        f"{'family':10s} {'trials':>6s} {'points':>6s} {'wins PCA':>8s} {'wins UMAP':>9s} "
        f"{'wins DEQ':>8s} {'paper DEQ':>9s} {'DEQ<PCA':>7s} {'MSE PCA':>8s} {'MSE UMAP':>8s} "
        f"{'MSE DEQ':>8s} {'Procr PCA':>9s} {'Procr UMAP':>10s} {'Procr DEQ':>9s} "
        f"{'DEQ s/trial':>11s}"
    ]
    for r in fig["rows"]:
        wins, med, pro = r["wins"], r["median_mse"], r.get("median_procrustes", {})
        lines.append(
            f"{r['family']:10s} {cell(r, 'n_trials', 'd'):>6s} {cell(r, 'n_points', 'd'):>6s} "
            f"{wins['pca']:8d} {cell(wins, 'umap', 'd'):>9s} {wins['deq']:8d} "
            f"{cell(r, 'paper_deq_wins', 'd'):>9s} {cell(r, 'deq_beats_pca', 'd'):>7s} "
            f"{med['pca']:8.4f} {cell(med, 'umap', '.4f'):>8s} {med['deq']:8.4f} "
            f"{cell(pro, 'pca', '.4f'):>9s} {cell(pro, 'umap', '.4f'):>10s} "
            f"{cell(pro, 'deq', '.4f'):>9s} {r['deq_seconds']:11.1f}"
        )
    return lines


def paper_fig3(fig: Figures) -> str:
    """The Figure 3 experiment's summary block."""
    return code_block(paper_fig3_lines(fig))


def glmpca_compare(fig: Figures) -> str:
    """Time (whole process, in process) and train / held-out deviance per image, deqfam's
    default fit against glmpca, per (family, latent dimension); the held-out half deviance
    where the record has it."""
    half = "deq_half_deviance" in fig["cases"][0]
    rows = []
    for c in fig["cases"]:
        t = c["seconds"]
        rows.append(
            [
                f"{c['family']} {c['shape'][0]}x{c['shape'][1]}, l={c['latent_dim']}"
                + (f", w={c['weight_decay']:g}" if "weight_decay" in c else ""),
                f"{t['deq_proc']:.1f} / {t['deq_inproc']:.1f}"
                + (" (fused)" if "fused" in str(c.get("deq_solver")) else ""),
                f"{t['glm_proc']:.1f} / {t['glm_inner']:.1f}",
                f"{c['deq_train_deviance']:.2f}",
                f"{c['glm_train_deviance']:.2f}",
                f"{c['deq_heldout_deviance']:.2f}",
                f"{c['glm_heldout_deviance']:.2f}",
                *_half_cells(c, half, "deq_half_deviance", "glm_half_deviance"),
                f"{c['deq_iterations']} ({c['deq_stop_reason']}) / {c['glm_iterations']}",
            ]
        )
    header = [
        "data",
        "deqfam s (process / in)",
        "glmpca s (process / in)",
        "deqfam train dev",
        "glmpca train dev",
        "deqfam held-out dev",
        "glmpca held-out dev",
        *(("deqfam held-out half dev", "glmpca held-out half dev") if half else ()),
        "iterations deqfam / glmpca",
    ]
    return markdown(header, "lrrrrrr" + "rr" * half + "l", rows)


def _half_cells(record: dict, present: bool, *keys: str) -> list[str]:
    """The held-out half deviances of ``record`` (``glmpca_compare.heldout_half_deviance``;
    a Poisson prediction from a weak prior can reach 1e23, hence the general format), or no
    cells for records made before it was measured."""
    return [f"{record[k]:.4g}" for k in keys] if present else []


def digits_expfam(fig: Figures) -> str:
    """Fit time, held-out deviance (PCA: squared error) and 5-fold logistic-regression
    accuracy from the latents, per method and latent dimension, on the digits."""
    rows = []
    for c in fig["cases"]:
        dev = c.get("heldout_deviance")
        held = f"{dev:.1f}" if dev is not None else f"({c['heldout_squared_error']:.1f} sq. err.)"
        its = c.get("iterations")
        stop = f" ({c['stop_reason']})" if c.get("stop_reason") else ""
        rows.append(
            [
                c["method"],
                str(c["latent_dim"]),
                f"{c['seconds']:.2f}",
                held,
                f"{c['cv_accuracy']:.3f}",
                f"{its}{stop}" if its is not None else "",
            ]
        )
    header = ["method", "l", "fit s", "held-out deviance", "5-fold LR accuracy", "iterations"]
    return markdown(header, "lrrrrl", rows)


def prior_sweep(fig: Figures) -> str:
    """One row per (data set, family, weight decay): time, iterations and stop, then the
    deviances (digits) or the Procrustes errors (the paper's data)."""
    digits = "train_deviance" in fig["rows"][0]
    half = "heldout_half_deviance" in fig["rows"][0]
    tail = ("train dev", "held-out dev") if digits else ("Procrustes DEQ", "Procrustes PCA")
    header = ("data", "family", "weight decay", "fit s", "iter. (stop)", *tail)
    header += ("held-out half dev",) * half
    keys = (
        ("train_deviance", "heldout_deviance") if digits else ("procrustes_deq", "procrustes_pca")
    )
    fmt = ".2f" if digits else ".4f"
    rows = [
        [
            r["data"],
            r["family"],
            f"{r['weight_decay']:g}" + (" (auto)" if r.get("requested") == "auto" else ""),
            f"{r['seconds']:.1f}",
            f"{r['iterations']} ({r['stop_reason']})",
            *(format(r[k], fmt) for k in keys),
            *_half_cells(r, half, "heldout_half_deviance"),
        ]
        for r in fig["rows"]
    ]
    return markdown(header, "llrrlrr" + "r" * half, rows)


TABLES: dict[str, Callable[[Figures], str]] = {
    "special_accuracy": special_accuracy,
    "check_time": check_time,
    "codegen": codegen,
    "solvers": solvers,
    "full_scale": full_scale,
    "kglm_sequence": kglm_sequence,
    "pcdeq_digits": pcdeq_digits,
    "ck_ntk": ck_ntk,
    "paper_fig3": paper_fig3,
    "glmpca_compare": glmpca_compare,
    "glmpca_compare_w1": glmpca_compare,
    "digits_expfam": digits_expfam,
    "prior_sweep_digits": prior_sweep,
    "prior_sweep_paper": prior_sweep,
    "prior_sweep_digits_auto": prior_sweep,
    "prior_sweep_paper_auto": prior_sweep,
}
