"""Code-generation benchmark: generation time per family and elementwise throughput.

For every built-in family: the time to derive + render (torch, C++, CUDA sources), and
elements/s of (sigma, sigma') on N float64 elements through three paths measured in the
same run: the generated torch functions (eager), the same under ``torch.compile`` and the
fused C++ kernel (one pass). Median of ``--repeats`` runs.

    python -m benchmarks.codegen [--n 10000000] [--repeats 5] [--families poisson,...]

The figures are recorded in ``benchmarks/results/codegen.json``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import torch

from benchmarks.common import apply_quick, make_parser, median_time, set_threads, write_result
from deqfam.derive.codegen import render
from deqfam.derive.family import builtin_names, load_family
from deqfam.runtime.extensions import load_cpp_kernels

ROOT = Path(__file__).resolve().parents[1]


def probe(module, n: int) -> torch.Tensor:
    lo, hi = module.FAMILY.domain
    lo, hi = max(lo, -30.0), min(hi, 30.0)
    if hi <= 0:
        lo, hi = max(lo, -8.0), hi - 1e-3
    return torch.linspace(lo + 1e-3, hi, n, dtype=torch.float64)


def parse_args(argv: list[str] | None = None):
    ap = make_parser(__doc__, repeats=5, threads=0)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--families", default=",".join(builtin_names()))
    return apply_quick(ap.parse_args(argv), n=100_000, repeats=2, families="poisson,bernoulli")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    names = args.families.split(",")
    mods = [importlib.import_module(f"deqfam.generated.{n}") for n in names]
    ops = load_cpp_kernels(
        [(ROOT / "generated" / f"{n}_kernels.cpp", m) for n, m in zip(names, mods, strict=True)]
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, N = {args.n:.0e} "
        f"float64 elements, median of {args.repeats}"
    )
    header = (
        f"{'family':22s} {'generate s':>10s} {'eager el/s':>12s} {'compiled el/s':>14s} "
        f"{'C++ el/s':>12s} {'C++/eager':>9s}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name, mod, op in zip(names, mods, ops, strict=True):
        t = time.perf_counter()
        fam = load_family(name)
        for target in ("torch", "cpp", "cuda"):
            render(fam, target)
        gen_s = time.perf_counter() - t
        x = probe(mod, args.n)

        def eager(mod=mod, x=x):
            return mod.activation(x), mod.activation_grad(x)

        compiled_fn = torch.compile(lambda x, mod=mod: (mod.activation(x), mod.activation_grad(x)))
        t_eager = median_time(eager, args.repeats)
        t_comp = median_time(lambda f=compiled_fn, x=x: f(x), args.repeats)
        t_cpp = median_time(lambda op=op, x=x: op(x), args.repeats)
        print(
            f"{name:22s} {gen_s:10.2f} {args.n / t_eager:12.3g} {args.n / t_comp:14.3g} "
            f"{args.n / t_cpp:12.3g} {t_eager / t_cpp:9.2f}"
        )
        rows.append(
            {
                "family": name,
                "generate_s": gen_s,
                "eager_el_s": args.n / t_eager,
                "compiled_el_s": args.n / t_comp,
                "cpp_el_s": args.n / t_cpp,
                "cpp_over_eager": t_eager / t_cpp,
            }
        )
    write_result("codegen", args, {"n": args.n, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
