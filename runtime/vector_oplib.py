"""Registration of a generated vector family's mean and covariance as ``torch.library``
custom ops (the vector counterpart of :mod:`deqfam.runtime.oplib`).

A generated vector module calls :func:`define_vector_ops` once at import; it defines

* ``deqfam_gen::<op_name>_mean(eta)``: ``mu = grad A(eta)``, ``(..., k) -> (..., k)``, whose
  registered backward is the covariance-vector product ``grad_eta = C(eta) g`` (C = Hess A
  is symmetric), computed with the covariance op so that it is differentiable again;
* ``deqfam_gen::<op_name>_covariance(eta)``: ``C(eta)``, ``(..., k) -> (..., k, k)``, whose
  backward is autograd through the plain torch expressions of ``C`` (third derivatives of
  A), on the graph when a higher derivative is asked for (``create_graph``).

Both have fake (meta) kernels, so ``torch.compile`` and ``torch.export`` trace them without
running them, TorchScript calls them as ``torch.ops.deqfam_gen.<name>``, and ``torch.vmap``
maps them (a vmapped dimension is one more leading batch dimension).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VectorFn = Callable[[Tensor], Tensor]
_DEFINED: dict[str, tuple[object, object]] = {}


def _vjp(fn: VectorFn, eta: Tensor, grad_out: Tensor) -> Tensor:
    """g^T d fn(eta) / d eta by autograd: on the graph when a higher derivative is being
    built (grad mode on and eta part of a graph), else on a detached copy."""
    if torch.is_grad_enabled() and eta.requires_grad:
        return torch.autograd.grad(fn(eta), eta, grad_out, create_graph=True)[0]
    with torch.enable_grad():
        x = eta.detach().requires_grad_(True)
        return torch.autograd.grad(fn(x), x, grad_out)[0]


def _leading_batch(op):
    """vmap rule of an op that maps (..., k) row by row: move the vmapped dimension to the
    front, where the op treats it as one more leading batch dimension."""

    def rule(info, in_dims, eta: Tensor):
        (dim,) = in_dims
        if dim is None:
            return op(eta), None
        return op(eta.movedim(dim, 0)), 0

    return rule


def define_vector_ops(op_name: str, k: int, mean: VectorFn, covariance: VectorFn):
    """Define ``deqfam_gen::<op_name>_mean`` and ``_covariance`` (idempotent per name; the
    name carries a digest of the spec) and return the two op objects."""
    if op_name in _DEFINED:
        return _DEFINED[op_name]

    @torch.library.custom_op(f"deqfam_gen::{op_name}_covariance", mutates_args=())
    def cov_op(eta: Tensor) -> Tensor:
        return covariance(eta)

    @cov_op.register_fake
    def _(eta: Tensor) -> Tensor:
        return eta.new_empty((*eta.shape, k))

    @torch.library.custom_op(f"deqfam_gen::{op_name}_mean", mutates_args=())
    def mean_op(eta: Tensor) -> Tensor:
        return mean(eta)

    @mean_op.register_fake
    def _(eta: Tensor) -> Tensor:
        return torch.empty_like(eta)

    def save_input(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    def mean_backward(ctx, grad_out: Tensor) -> Tensor:
        (eta,) = ctx.saved_tensors
        return (cov_op(eta) @ grad_out.unsqueeze(-1)).squeeze(-1)

    def cov_backward(ctx, grad_out: Tensor) -> Tensor:
        (eta,) = ctx.saved_tensors
        return _vjp(covariance, eta, grad_out)

    mean_op.register_autograd(mean_backward, setup_context=save_input)
    cov_op.register_autograd(cov_backward, setup_context=save_input)
    mean_op.register_vmap(_leading_batch(mean_op))
    cov_op.register_vmap(_leading_batch(cov_op))
    _DEFINED[op_name] = (mean_op, cov_op)
    return _DEFINED[op_name]


__all__ = ["define_vector_ops"]
