"""Measure the thread policy (runtime/threads.py) on fit's inner step.

One training step of ExpFamPCA (Newton solve of the MAP latents, loss, implicit backward) on
a batch of the paper's Poisson data, at a few (batch, d, l) sizes, on 1 thread, on 2
threads and on the policy's choice; each on an idle machine and beside one busy process
(a numpy matmul loop in a subprocess, pinned to one BLAS thread). Median of ``--repeats``.
Run with

    python -m benchmarks.threads [--repeats 3]
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.common import apply_quick, make_parser, median_time, paper_batch, write_result

#: (batch, data_dim, latent_dim) of the measured steps
SIZES = [(500, 50, 2), (500, 50, 10), (2000, 50, 32)]
BUSY_LOOP = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).standard_normal((300, 300))\n"
    "while True:\n    a = np.tanh(a @ a)\n"
)


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__, repeats=3, threads=0)
    args = parser.parse_args(argv)
    return apply_quick(args, repeats=1)


def step_fn(batch: int, data_dim: int, latent_dim: int, seed: int):
    """A closure running one training step (forward solve, loss, backward) on fixed data."""
    import torch

    from deqfam.api import builtin_module
    from deqfam.runtime.models import ExpFamPCA

    y = paper_batch("poisson", batch, data_dim=data_dim, seed=seed).Y
    model = ExpFamPCA(
        builtin_module("poisson"),
        data_dim,
        latent_dim,
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.float64,
        on_nonconvergence="ignore",
    )

    def step():
        model.zero_grad()
        model.loss(y, n_total=batch).backward()

    return step


def time_step(step, threads: int, repeats: int) -> float:
    """Median seconds of ``step`` on ``threads`` intra-op threads (restored afterwards)."""
    from deqfam.runtime.threads import ThreadChoice, thread_scope

    with thread_scope(ThreadChoice(threads, "benchmark")):
        return median_time(step, repeats, warmup=1)


def busy_neighbour() -> subprocess.Popen:
    """One process keeping a core busy (a numpy matmul loop on one BLAS thread)."""
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=env)


def measure(args) -> list[dict]:
    from deqfam.runtime.threads import batched_hessian_work, choose_threads

    rows = []
    for batch, d, l in SIZES[:1] if args.quick else SIZES:
        step = step_fn(batch, d, l, args.seed)
        work = batched_hessian_work(batch, d, l)
        policy = choose_threads("auto", work)
        for condition in ("idle", "beside one busy process"):
            neighbour = busy_neighbour() if condition != "idle" else None
            try:
                if neighbour is not None:
                    time.sleep(1.0)  # let it start
                t1 = time_step(step, 1, args.repeats)
                t2 = time_step(step, 2, args.repeats)
                tp = time_step(step, policy.threads, args.repeats)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
            rows.append(
                {
                    "size": [batch, d, l],
                    "work": work,
                    "condition": condition,
                    "policy_threads": policy.threads,
                    "one_thread_s": t1,
                    "two_threads_s": t2,
                    "policy_s": tp,
                }
            )
            print(
                f"batch {batch} d {d} l {l} ({condition}): 1 thread {t1 * 1e3:.1f} ms, "
                f"2 threads {t2 * 1e3:.1f} ms, policy ({policy.threads}) {tp * 1e3:.1f} ms"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    # start from torch's own count so the policy is measured, not an inherited setting
    torch.set_num_threads(max(2, torch.get_num_threads()))
    rows = measure(args)
    write_result("threads", args, {"rows": rows}, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
