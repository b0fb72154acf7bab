"""Code generation of the fused DEQ layer (issue 14): the whole equilibrium solve of
exponential-family PCA and its implicit backward, as C++ (``<name>_fused.cpp``) and CUDA
(``<name>_fused.cu``) sources of one ``torch.library`` namespace ``deqfam_fused_<name>``.

The per-sample solver is family-independent text (``templates/_fused_solver.h.j2``); what a
family contributes is printed here with ``derive.codegen``'s ``KernelPrinter``: ``(sigma,
sigma')`` as for the elementwise kernels, ``A(eta)`` (CSE'd) for the line search's objective,
``T(y)`` and ``T'(y)`` for the statistic and its gradient, and the domain's ends. Every
stable primitive any of them uses gets its device function from ``_primitives.h.j2``.
"""

from __future__ import annotations

import math

import sympy as sp

from .codegen import KernelPrinter, _cse_kernel, _environment, kernel_context, kernel_primitives
from .family import Family

#: Targets of the fused layer and the file suffix each is written under.
FUSED_TARGETS = {"fused_cpp": "_fused.cpp", "fused_cuda": "_fused.cu"}


def fused_namespace(name: str) -> str:
    """The ``torch.library`` namespace of a family's fused ops."""
    return f"deqfam_fused_{name}"


def _c_bound(value: sp.Expr) -> str:
    """A domain end as a C double constant (``INFINITY`` for an infinite end)."""
    if value.is_finite:
        return f"({float(sp.N(value, 30))!r})"
    return "INFINITY" if value > 0 else "(-INFINITY)"


def _family_c(family: Family, printer: KernelPrinter) -> dict:
    """C for ``A`` (CSE'd in ``x``), ``T`` and ``T'`` (in ``y``), printed with ``printer``."""
    x = sp.Symbol("x", real=True)
    temps, (a_expr,) = sp.cse(
        [family.A_stable.xreplace({family.eta: x})],
        symbols=sp.numbered_symbols("a"),
        optimizations=None,
    )
    y = sp.Symbol("y", real=True)
    t = family.T.xreplace({family.y: y})
    return {
        "a_temps": [(str(sym), printer.doprint(val)) for sym, val in temps],
        "a_c": printer.doprint(a_expr),
        "t_c": printer.doprint(t),
        "dt_c": printer.doprint(sp.diff(t, y)),
    }


def fused_context(family: Family, warning: str | None = None, verdict: str | None = None) -> dict:
    """Strings for ``templates/fused.cpp.j2`` / ``fused.cu.j2``: the elementwise kernel's
    context plus the family's A, T, T', domain and the union of primitives they need."""
    ctx = kernel_context(family, warning, verdict)
    _, _, _, printer = _cse_kernel(family)
    ctx.update(_family_c(family, printer))
    lo, hi = family.domain
    ctx.update(
        {
            "primitives": kernel_primitives(printer),
            "fused_namespace": fused_namespace(ctx["name"]),
            "domain_lo_c": _c_bound(lo),
            "domain_hi_c": _c_bound(hi),
            "whole_line_c": "true" if family.domain_floats == (-math.inf, math.inf) else "false",
        }
    )
    return ctx


def render_fused(
    family: Family, target: str, warning: str | None = None, verdict: str | None = None
) -> str:
    """The fused layer's C++ (``fused_cpp``) or CUDA (``fused_cuda``) source."""
    template = {"fused_cpp": "fused.cpp.j2", "fused_cuda": "fused.cu.j2"}[target]
    return _environment().get_template(template).render(**fused_context(family, warning, verdict))


__all__ = ["FUSED_TARGETS", "fused_context", "fused_namespace", "render_fused"]
