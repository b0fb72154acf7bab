"""Registration of generated activations as ``torch.library`` custom ops.

A generated family module calls :func:`define_activation_op` once at import; the op
``torch.ops.deqfam_gen.<op_name>`` computes sigma = A' and its registered backward is
grad * A''(eta) from the generated ``activation_grad`` (not autograd through the forward's
stable form). Custom ops are opaque to ``torch.compile`` (no graph break, thanks to the
fake registration) and callable from TorchScript.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Elementwise = Callable[[torch.Tensor], torch.Tensor]
_DEFINED: dict[str, object] = {}


def define_activation_op(op_name: str, forward: Elementwise, grad: Elementwise) -> object:
    """Define ``deqfam_gen::<op_name>`` (idempotent per name) and return the op object.

    ``op_name`` carries a digest of the spec, so one name always means one function.
    """
    if op_name in _DEFINED:
        return _DEFINED[op_name]

    @torch.library.custom_op(f"deqfam_gen::{op_name}", mutates_args=())
    def op(eta: torch.Tensor) -> torch.Tensor:
        return forward(eta)

    @op.register_fake
    def _(eta: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(eta)

    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (eta,) = ctx.saved_tensors
        return grad_out * grad(eta)

    op.register_autograd(backward, setup_context=setup_context)
    _DEFINED[op_name] = op
    return op
