"""Helpers shared by every benchmark: options, threads, timing, the paper's data, results.

* :func:`make_parser` gives each script the common options (``--seed``, ``--repeats``,
  ``--threads``, ``--json-out``, ``--quick``) on top of its own;
* :func:`median_time` is the one timing rule: ``warmup`` untimed calls, then the median of
  ``repeats`` timed calls;
* :func:`paper_dataset` / :func:`paper_batch` draw the seed paper's synthetic data (Appendix C)
  through the library's ``deqfam.runtime.datasets.make_dataset`` and the generated built-in
  family, never a copy of it;
* :func:`write_result` appends one record (command line, date, machine, figures) to the
  benchmark's JSON file, which ``benchmarks/render.py`` turns into BENCHMARKS.md's tables.

torch is imported inside the functions that need it, so that ``benchmarks.render`` (which
reads records only) stays light.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------ options


def common_parser(*, repeats: int = 5, threads: int = 1, seed: int = 0) -> argparse.ArgumentParser:
    """The options every benchmark takes, as an argparse parent (``parents=[...]``)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("common benchmark options")
    group.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    group.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help=f"timed runs per measurement; the median is reported (default {repeats})",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=threads,
        help=f"torch intra-op threads, 0: torch's default (default {threads})",
    )
    group.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="results file the record is appended to (default benchmarks/results/NAME.json)",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="a small configuration that checks the script end to end; its record is marked "
        "quick and never rendered into BENCHMARKS.md",
    )
    return parent


def make_parser(doc: str | None, **defaults: int) -> argparse.ArgumentParser:
    """A script's parser: its module docstring as the description plus the common options
    (``defaults`` override ``repeats``, ``threads``, ``seed``)."""
    return argparse.ArgumentParser(
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser(**defaults)],
    )


def apply_quick(args: argparse.Namespace, **small: Any) -> argparse.Namespace:
    """With ``--quick``, replace the named options by the small values (in place)."""
    if args.quick:
        for key, value in small.items():
            setattr(args, key, value)
    return args


def set_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n`` (0 keeps torch's default); return the count in
    use. Small batched linear algebra is often slower on several threads, so scripts default
    to 1."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


# ------------------------------------------------------------------------------ timing


def time_runs(
    fn: Callable[[], Any],
    repeats: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Wall times (in seconds of ``clock``) of ``repeats`` calls of ``fn()``, after ``warmup``
    untimed calls (compilation, caches, allocations)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def median_time(
    fn: Callable[[], Any],
    repeats: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """The benchmarks' one timing rule: the median of :func:`time_runs`."""
    return statistics.median(time_runs(fn, repeats, warmup=warmup, clock=clock))


# ------------------------------------------------------------------------------ data


def paper_dataset(family: str, *, n_grid: int, data_dim: int = 50, seed: int = 0):
    """The paper's synthetic data set (Appendix C) for the built-in ``family``: the Figure 2
    latents on an ``n_grid`` x ``n_grid`` grid, ``W_ij ~ N(0, 1/2)``, ``Y ~ family(W z + B)``
    (``deqfam.runtime.datasets.make_dataset`` on the generated module)."""
    from deqfam.api import builtin_module
    from deqfam.runtime.datasets import make_dataset

    return make_dataset(builtin_module(family), n_grid=n_grid, data_dim=data_dim, seed=seed)


def grid_for(n: int) -> int:
    """The smallest grid side whose Figure 2 latents number at least ``n`` (the three shapes
    cover about 41.6% of [-5, 5]^2, so start just below sqrt(n / 0.416))."""
    from deqfam.runtime.datasets import ground_truth_latents

    side = max(2, math.isqrt(int(n / 0.42)))
    while ground_truth_latents(side).shape[0] < n:
        side += 1
    return side


def paper_batch(family: str, n: int, *, data_dim: int = 50, seed: int = 0):
    """``n`` rows of the paper's data drawn without replacement (seeded) from the smallest grid
    that has ``n`` latents: the dataset with ``Y``, ``Z``, ``labels`` restricted to them."""
    import torch

    ds = paper_dataset(family, n_grid=grid_for(n), data_dim=data_dim, seed=seed)
    rows = torch.randperm(ds.Y.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return type(ds)(Y=ds.Y[rows], Z=ds.Z[rows], W=ds.W, B=ds.B, labels=ds.labels[rows])


# ------------------------------------------------------------------------------ results


def machine_facts() -> dict[str, Any]:
    """Cores, platform, Python and torch versions, torch threads, 1-minute load average."""
    import torch

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def command_line(name: str, argv: list[str] | None = None) -> str:
    """The command that reproduces this run: ``python -m benchmarks.NAME ARGS``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", f"benchmarks.{name}", *args])


def results_path(name: str, json_out: Path | None = None) -> Path:
    """Where a benchmark's records live (``--json-out`` or ``benchmarks/results/NAME.json``)."""
    return json_out if json_out is not None else RESULTS_DIR / f"{name}.json"


def load_records(path: Path) -> list[dict[str, Any]]:
    """The list of records in ``path`` (empty if the file does not exist)."""
    if not path.exists():
        return []
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return records


def jsonable(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (strict JSON has no NaN or
    infinity; a solver that diverged records ``null``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def write_result(
    name: str, args: argparse.Namespace, figures: Any, *, argv: list[str] | None = None
) -> Path:
    """Append ``{benchmark, command, date, quick, machine, figures}`` to the results file and
    return its path. The file is replaced atomically, so an interrupted run never leaves it
    half-written."""
    path = results_path(name, getattr(args, "json_out", None))
    record = {
        "benchmark": name,
        "command": command_line(name, argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": bool(getattr(args, "quick", False)),
        "machine": machine_facts(),
        "figures": jsonable(figures),
    }
    records = [*load_records(path), record]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(records, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    print(f"results appended to {path}")
    return path
