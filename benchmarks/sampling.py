"""Time sampling the demo's dataset: make_dataset on examples/bernoulli_poisson.yaml.

The example family has no exact sampler, so every draw goes through the generic lattice
sampler (runtime/tilted.py). Target: the 4097 x 50 demo dataset (grid 100) in under 2 s on
one thread. Reports the first call (which also pays torch's one-time lazy imports behind the
generated custom ops) and the median wall and CPU time of ``--repeats`` later calls. Run with

    OMP_NUM_THREADS=1 python -m benchmarks.sampling [--n-grid 100] [--repeats 3]
"""

from __future__ import annotations

import time

from benchmarks.common import apply_quick, make_parser, median_time, set_threads, write_result

TARGET_S = 2.0


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__, repeats=3, threads=1)
    parser.add_argument("--n-grid", type=int, default=100, help="ground-truth grid side")
    parser.add_argument("--data-dim", type=int, default=50, help="observed dimension")
    args = parser.parse_args(argv)
    return apply_quick(args, n_grid=20, repeats=1)


def main(argv: list[str] | None = None) -> int:
    from deqfam.api import family_module
    from deqfam.demo import default_demo_spec
    from deqfam.runtime.datasets import make_dataset

    args = parse_args(argv)
    threads = set_threads(args.threads)
    module = family_module(str(default_demo_spec()))

    def draw():
        return make_dataset(module, n_grid=args.n_grid, data_dim=args.data_dim, seed=args.seed)

    start = time.perf_counter()
    shape = tuple(draw().Y.shape)
    first = time.perf_counter() - start
    wall = median_time(draw, args.repeats, warmup=0)
    cpu = median_time(draw, args.repeats, warmup=0, clock=time.process_time)
    figures = {
        "shape": list(shape),
        "threads": threads,
        "first_call_s": first,
        "median_wall_s": wall,
        "median_cpu_s": cpu,
        "target_s": TARGET_S,
    }
    print(
        f"sampled {shape[0]} x {shape[1]} on {threads} thread(s): first call {first:.2f} s, "
        f"median wall {wall:.2f} s, median CPU {cpu:.2f} s (target < {TARGET_S} s)"
    )
    write_result("sampling", args, figures, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
