"""The thread policy: how many intra-op threads torch uses for a fit.

Small batched linear algebra (the Newton step of the latent solve: one l x l system per
sample, and the batched Hessian W^T diag(A'') W of a minibatch) is slower on several OpenMP
threads: the work per call is too small to pay for waking and synchronising the team, and
when another process holds a core the team waits for its slowest thread (measured in
BENCHMARKS.md, "Thread policy"). The rule, for a training step of ``batch`` samples, ``d``
observed and ``l`` latent coordinates, whose dominant cost is the batched Hessian
(batch * d * l^2 multiply-adds):

* ``batch * d * l**2 < SMALL_WORK``  ->  1 thread ("small batched linear algebra");
* otherwise  ->  min(physical cores, torch's current count).

What the user chose always wins, in this order: an explicit ``threads=N`` (``--threads N``);
``OMP_NUM_THREADS`` in the environment (torch's count is then left as it is); a count set
with ``torch.set_num_threads`` before the fit (one that is neither the number of physical
nor of available logical cores is taken as the user's and left as it is). :func:`thread_scope`
applies a choice and restores the previous count afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

#: below this many multiply-adds per batched Hessian (batch * d * l^2) one thread is faster.
#: Measured by benchmarks/threads.py (BENCHMARKS.md, "Thread policy"): on the 2-core machine no
#: size up to 2000 x 50 x 32^2 = 1.0e8 gained from a second thread, idle or beside a busy
#: process, so the threshold sits above every measured size.
SMALL_WORK = 250_000_000
#: the rule's names, as recorded in a fit's outputs
RULE_SMALL = "small batched linear algebra: 1 thread"
RULE_LARGE = "large batched linear algebra: min(physical cores, torch's count)"


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count chosen for a workload, the rule that chose it, and which
    user setting (if any) overrode the policy: ``"threads"``, ``"OMP_NUM_THREADS"``,
    ``"torch.set_num_threads"`` or None."""

    threads: int
    rule: str
    override: str | None = None
    work: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def physical_cores() -> int:
    """Distinct (package, core) pairs among the CPUs this process may run on, from
    /proc/cpuinfo; the number of available CPUs where that file says nothing."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    logical = len(allowed) if allowed is not None else (os.cpu_count() or 1)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return logical
    cores, cpu, package = set(), None, "0"
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            cpu = int(value)
        elif key == "physical id":
            package = value
        elif key == "core id" and (allowed is None or cpu in allowed):
            cores.add((package, value))
    return max(1, min(len(cores), logical)) if cores else logical


def _torch_defaults() -> set[int]:
    """Counts torch starts with when nobody set one: physical or available logical CPUs."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {physical_cores(), logical or os.cpu_count() or 1}


def batched_hessian_work(batch: int, data_dim: int, latent_dim: int) -> int:
    """Multiply-adds of one batched Hessian W^T diag(A'') W: batch * d * l^2."""
    return int(batch) * int(data_dim) * int(latent_dim) ** 2


def parse_threads(value: int | str | None) -> int | None:
    """``"auto"``/None -> None (the policy); a positive integer (or its decimal text) ->
    itself; anything else is a ValueError."""
    if value is None or value == "auto":
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {value!r}")
    return int(text)


def choose_threads(requested: int | str | None, work: int) -> ThreadChoice:
    """The thread count for a step of ``work`` multiply-adds (see the module docstring)."""
    n = parse_threads(requested)
    if n is not None:
        return ThreadChoice(n, "requested", "threads", work)
    current = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return ThreadChoice(current, "left as set", "OMP_NUM_THREADS", work)
    if current not in _torch_defaults():
        return ThreadChoice(current, "left as set", "torch.set_num_threads", work)
    if work < SMALL_WORK:
        return ThreadChoice(1, RULE_SMALL, None, work)
    return ThreadChoice(max(1, min(physical_cores(), current)), RULE_LARGE, None, work)


@contextmanager
def thread_scope(choice: ThreadChoice) -> Iterator[ThreadChoice]:
    """Run the block on ``choice.threads`` intra-op threads, restoring the previous count."""
    previous = torch.get_num_threads()
    if choice.threads != previous:
        torch.set_num_threads(choice.threads)
    try:
        yield choice
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
