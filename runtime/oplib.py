"""Registration of generated activations as ``torch.library`` operators.

A generated family module calls :func:`define_activation_op` once at import; the op
``torch.ops.deqfam_gen.<op_name>`` computes sigma = A' and its registered backward is
grad * A''(eta) from the generated ``activation_grad`` (not autograd through the forward's
stable form). The ops are opaque to ``torch.compile`` (no graph break, thanks to the fake
registration) and callable from TorchScript.

They are defined with the low-level ``torch.library.Library`` API (schema, a
``CompositeExplicitAutograd`` kernel, ``register_fake``, ``register_autograd``) rather than
``torch.library.custom_op``: the latter wraps its kernel in a dynamo guard that imports
``torch._dynamo`` (and with it SymPy, about a second) on the first call, which every
``deqfam fit`` process would pay for nothing (measured: BENCHMARKS.md, "Whole-process cost").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Elementwise = Callable[[torch.Tensor], torch.Tensor]
NAMESPACE = "deqfam_gen"
#: one fragment library for every activation op (kept alive: dropping it deregisters them)
_LIBRARY: torch.library.Library | None = None
_DEFINED: dict[str, object] = {}


def _library() -> torch.library.Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = torch.library.Library(NAMESPACE, "FRAGMENT")
    return _LIBRARY


def define_activation_op(op_name: str, forward: Elementwise, grad: Elementwise) -> object:
    """Define ``deqfam_gen::<op_name>`` (idempotent per name) and return the op object
    (``torch.ops.deqfam_gen.<op_name>``).

    ``op_name`` carries a digest of the spec, so one name always means one function.
    """
    if op_name in _DEFINED:
        return _DEFINED[op_name]
    lib = _library()
    qualname = f"{NAMESPACE}::{op_name}"
    lib.define(f"{op_name}(Tensor eta) -> Tensor")

    def kernel(eta: torch.Tensor) -> torch.Tensor:
        out = forward(eta)
        # the schema promises a new tensor: never hand back the input itself
        return out.clone() if out is eta else out

    lib.impl(op_name, kernel, "CompositeExplicitAutograd")

    def fake(eta: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(eta)

    torch.library.register_fake(qualname, fake, lib=lib)

    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (eta,) = ctx.saved_tensors
        return grad_out * grad(eta)

    torch.library.register_autograd(qualname, backward, setup_context=setup_context, lib=lib)
    op = getattr(getattr(torch.ops, NAMESPACE), op_name)
    _DEFINED[op_name] = op
    return op
