"""Trace a generated activation into core aten ops, so an exported artifact stands alone.

A generated module's ``activation`` calls its own ``torch.ops.deqfam_gen.<op>``, and the
polylog / Fermi-Dirac / continuous-Bernoulli forms call ``torch.ops.deqfam.*``: operators
that exist only while the generated module and ``deqfam.runtime.special`` are imported.
An artifact that records them fails to load in a fresh process ("failed to resolve
torch.ops.deqfam_gen..."). Here the exporters see instead:

* the family's ``activation_plain`` (the plain-torch body of the generated module's
  ``deqfam_gen`` op, part of the contract :class:`~deqfam.runtime.family.TorchFamily`), and
* while tracing, every ``deqfam::*`` call redirected to its plain-torch implementation
  (``special.OP_IMPLEMENTATIONS``) with piecewise branches merged by ``torch.where``
  (``special.where_piecewise``), which a tracer can record.

The values are the same elementwise formulas, so the artifact reproduces the eager op.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from deqfam.runtime import special
from deqfam.runtime.family import as_torch_family

#: operator namespaces that only exist while deqfam is imported
DEQFAM_NAMESPACES = ("deqfam", "deqfam_gen")
_OP_NAME = re.compile(r"\b(deqfam(?:_gen)?)::(\w+)")


class InlineDeqfamOps(TorchFunctionMode):
    """Calls of ``torch.ops.deqfam.<op>`` run the op's plain-torch implementation instead,
    so a tracer records the aten ops inside rather than one opaque custom op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        impl = special.OP_IMPLEMENTATIONS.get(_qualified_name(func))
        if impl is not None:
            return impl(*args, **kwargs)
        return func(*args, **kwargs)


def _qualified_name(func) -> str | None:
    """'ns::name' of a torch.ops overload or packet (None for anything else)."""
    schema = getattr(func, "_schema", None)
    if schema is not None:
        return schema.name
    qualified = getattr(func, "_qualified_op_name", None)
    return qualified if isinstance(qualified, str) else None


@contextlib.contextmanager
def inlined_deqfam_ops() -> Iterator[None]:
    """Trace through deqfam's custom ops (see the module docstring)."""
    with special.where_piecewise(), InlineDeqfamOps():
        yield


class StandaloneActivation(torch.nn.Module):
    """sigma(eta) = A'(eta) from the family's plain-torch forward (``activation_plain``, not
    the generated op); ``family`` is a generated module or its ``FAMILY``.

    Computes in float64 and rounds once to the input dtype, as the generated op does; the
    rounding uses ``type_as`` so that a traced graph keeps it input-dependent.
    """

    def __init__(self, family: Any) -> None:
        super().__init__()
        self.fn = as_torch_family(family).plain_activation

    def forward(self, eta: torch.Tensor) -> torch.Tensor:
        return self.fn(eta.to(torch.float64)).type_as(eta)


def custom_ops_in(graph_text: str) -> list[str]:
    """The deqfam operators ('ns::name') a printed graph still calls, sorted."""
    return sorted({f"{ns}::{name}" for ns, name in _OP_NAME.findall(graph_text)})


def program_text(program: torch.export.ExportedProgram) -> str:
    """Every call target of an exported program's graph, one per line (for custom_ops_in)."""
    return "\n".join(
        str(getattr(node.target, "_schema", node.target)).split("(")[0]
        for node in program.graph.nodes
        if node.op == "call_function"
    )
