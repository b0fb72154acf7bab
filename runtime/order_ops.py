"""One registration for deqfam's elementwise special-function operators of an order.

``polylog_exp(x, s)``, ``fermi_dirac(x, s)``, ``logexpm1x(x, k)``, ``logexpm1exp(x, k)`` and
``logli1exp(x, k)`` share a shape: an elementwise function ``f_n(x)`` of a tensor ``x`` and a
scalar order ``n`` whose derivative is the same function at the next order,

    d/dx f_n(x) = f_{n + step}(x)      (step = -1 for the polylogs in s, +1 for derivatives k).

So each is one ``torch.library`` custom operator (float64 inside, given by its plain-torch
body), a fake kernel (``empty_like``: same shape and dtype, for tracing and ``torch.compile``)
and an autograd rule ``grad_x = grad * op(x, n + step)`` (no gradient for the order). Being an
operator itself, the backward is differentiable again, to any order the body supports.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["register_order_op"]

#: the schema's name for the order argument, by its Python type
_ORDER_SCHEMA = {int: "int k", float: "float s"}


def register_order_op(
    qualname: str,
    body: Callable[[torch.Tensor, int | float], torch.Tensor],
    order_type: type[int] | type[float],
    step: int | float,
) -> torch.library.CustomOpDef:
    """Register ``qualname`` (``"deqfam::name"``) as ``op(x, n) = body(x, n)`` with the
    derivative ``d op(x, n)/dx = op(x, n + step)`` and return the operator.

    ``body`` must return a fresh tensor of ``x``'s shape and dtype (custom operators may not
    alias their inputs) and validate its arguments.
    """
    schema = f"(Tensor x, {_ORDER_SCHEMA[order_type]}) -> Tensor"
    op = torch.library.custom_op(qualname, body, mutates_args=(), schema=schema)
    op.register_fake(_same_shape)

    def setup_context(ctx, inputs, output) -> None:
        x, order = inputs
        ctx.save_for_backward(x)
        ctx.order = order

    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * op(x, ctx.order + step), None

    op.register_autograd(backward, setup_context=setup_context)
    return op


def _same_shape(x: torch.Tensor, order: int | float) -> torch.Tensor:
    """Fake kernel: an uninitialised tensor like ``x`` (all a tracer needs to know)."""
    return torch.empty_like(x)
