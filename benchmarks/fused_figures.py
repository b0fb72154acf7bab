"""The fused layer's figures in the solver benchmark (issue 14): its speed-ups over torch
Newton and torchdeq's anderson (forward + backward, the same run), and its cost per
sample-iteration against a flop estimate. Printed and recorded, never asserted."""

from __future__ import annotations

import math
from typing import Any

FUSED = "ours/newton_fused"


def flops_per_sample_iteration(d: int, l: int) -> float:
    """Arithmetic of one Newton iteration of one sample, counting each elementwise family
    evaluation (sigma and sigma' together, A once per objective value) as 20 flops:
    eta = W z + B (2dl), gradient and its scale (4dl + 4d), the lower half of
    H = lam I + W^T diag(sigma') W (1.5 d l (l+1)), Cholesky and two solves (l^3/3 + 2l^2),
    W d (2dl), and J at z and at one trial step (4d + 2 x 20 d), plus sigma, sigma' (20 d)."""
    return 8 * d * l + 1.5 * d * l * (l + 1) + l**3 / 3 + 2 * l**2 + 8 * d + 60 * d


def speedups(rows: list[dict[str, Any]], d: int, l: int, batch: int) -> list[dict[str, Any]]:
    """Per (family, scale): fused fwd+bwd time, the ratios torch Newton / fused and torchdeq
    anderson / fused (only where every sample of that solver converged), and the fused
    forward's time per sample-iteration (iterations + 1 linearisations) vs the estimate."""
    out = []
    keys = dict.fromkeys((r["family"], r["scale"]) for r in rows)
    for family, scale in keys:
        by = {r["solver"]: r for r in rows if (r["family"], r["scale"]) == (family, scale)}
        fused = by.get(FUSED)
        if fused is None or "error" in fused:
            continue
        entry = {"family": family, "scale": scale, "fused_fwd_bwd_ms": fused["fwd_bwd_ms"]}
        for label, key in (("ours/newton", "vs_newton"), ("torchdeq/anderson", "vs_anderson")):
            other = by.get(label)
            ok = other is not None and "error" not in other and other["converged"] >= 1
            entry[key] = other["fwd_bwd_ms"] / fused["fwd_bwd_ms"] if ok else math.nan
        sample_iters = batch * (fused["mean_iterations"] + 1)
        entry["ns_per_sample_iteration"] = 1e6 * fused["forward_ms"] / sample_iters
        flops = flops_per_sample_iteration(d, l)
        entry["gflops"] = flops / entry["ns_per_sample_iteration"]
        out.append(entry)
    return out


def print_speedups(entries: list[dict[str, Any]], d: int, l: int) -> None:
    print(
        f"\n## Fused layer: speed-up (fwd+bwd) and cost per sample-iteration "
        f"(estimate {flops_per_sample_iteration(d, l):.0f} flops)\n"
    )
    print(
        "| family | W scale | fused fwd+bwd ms | x torch Newton | x torchdeq anderson "
        "| ns / sample-iter | GFLOP/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for e in entries:
        print(
            f"| {e['family']} | {e['scale']:.3g} | {e['fused_fwd_bwd_ms']:.2f} | "
            f"{e['vs_newton']:.1f} | {e['vs_anderson']:.1f} | "
            f"{e['ns_per_sample_iteration']:.0f} | {e['gflops']:.2f} |"
        )
