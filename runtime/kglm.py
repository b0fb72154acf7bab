"""The kGLM deep equilibrium layer of Theorem 3 (seed ``declarative-nets-kglm-deq``).

For an exponential family with log-partition ``A`` (activation ``sigma = A'``) and a log-concave
prior ``q`` on predictor values, the MAP kernelised GLM (5)

    alpha* = argmin -alpha^T K T(Y) + 1^T A(K alpha) - log q(K alpha) + lam/2 alpha^T K alpha

has ``z* = A'(K alpha*)`` as a fixed point of the DEQ (7),

    z = sigma(W1 z + W2 T(Y) + W3 rho(z) + b),      rho = (-log q)' o (A')^{-1},

and (under Assumption 1) its predictions at new coordinates are the readout (8),

    f*(X~) = V1 (z* + rho(z*)) + V2 T(Y) + c,

with ``W1 = W3 = -K/lam``, ``W2 = K/lam``, ``V1 = -k(X~, X)/lam``, ``V2 = k(X~, X)/lam`` and zero
biases (``runtime.kernels.kglm_init``). Here every one of ``W1, W2, W3, V1, V2, b, c`` is a free,
trainable parameter: the kernel values are an *initialisation* (Corollaries 5 and 6). A Gaussian
prior gives ``rho = 0`` and no ``W3``. ``ConvKGLMDEQ`` is the convolutional form of Corollary 11
(19): the matrices become (C x C x (2r+1) x (2r+1)) filters acting on C-channel images.

The forward pass solves (7) with a generic batched solver (``runtime.solvers``); the backward pass
is the implicit-function-theorem gradient of ``runtime.implicit.implicit_fixed_point``:
``g^T (I - J)^{-1} d map/d theta`` with ``J`` the Jacobian of the map at ``z*``. Proposition 4:
under Assumption 2 the map is a contraction, so the fixed point is unique and both the forward
and the adjoint iterations converge (``runtime.kernels.check_contraction`` certifies it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .family import TorchFamily, as_torch_family
from .implicit import ImplicitResult, layer_fixed_point
from .kglm_prior import TorchPrior, as_torch_prior
from .solvers import GENERIC_SOLVERS, POLICIES, SolverConfig, SolverStats, check_convergence
from .validation import check_choice

# --------------------------------------------------------------------------------------------
# The layers
# --------------------------------------------------------------------------------------------


class _KGLMBase(nn.Module):
    """Shared machinery of the dense and convolutional kGLM-DEQ layers (map (7), readout (8))."""

    family: TorchFamily
    prior: TorchPrior | None

    def _setup(
        self,
        family: Any,
        prior: Any,
        solver: str,
        solver_options: dict[str, Any] | None,
        on_nonconvergence: str,
        backward_options: dict[str, Any] | None,
    ) -> None:
        check_choice("solver", solver, tuple(GENERIC_SOLVERS))
        check_choice("on_nonconvergence policy", on_nonconvergence, POLICIES)
        self.family = as_torch_family(family)
        self.prior = as_torch_prior(prior)
        if self.prior is not None and self.prior.family not in (None, self.family.name):
            raise ValueError(
                f"prior {self.prior.name!r} was derived for family {self.prior.family!r}, "
                f"not {self.family.name!r} (rho = (-log q)' o (A')^-1 depends on A)"
            )
        self.solver = solver
        self.config = SolverConfig.from_dict(solver_options)
        self.backward_config = (
            self.config if backward_options is None else SolverConfig.from_dict(backward_options)
        )
        self.on_nonconvergence = on_nonconvergence
        self.last_z: Tensor | None = None
        self.last_stats: SolverStats | None = None
        self.last_implicit: ImplicitResult | None = None

    # linear operators, supplied by the subclasses --------------------------------------------
    def _apply_w1(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_w2(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_w3(self, r: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_readout(self, u: Tensor, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_shape(self, Y: Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate(self, Y: Tensor) -> Tensor:
        """``Y`` a finite floating tensor of the layer's input shape, in the weights' dtype."""
        if not isinstance(Y, Tensor):
            raise ValueError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
        self._check_shape(Y)
        if not Y.is_floating_point():
            raise ValueError(f"Y must have a floating dtype, got {Y.dtype}")
        if not bool(torch.isfinite(Y).all()):
            raise ValueError("Y contains non-finite values")
        return Y.to(self.W1.dtype)

    def _init_weights(
        self,
        names: tuple[str, str, str, str, str],
        hidden: tuple[int, ...],
        readout: tuple[int, ...],
        bias_sizes: tuple[int, int] | None,
        bound: float,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> None:
        """The operators (7)-(8) named ``names`` = (W1, W2, W3, V1, V2), drawn in that order
        from ``U(-bound, bound)``: the hidden three of shape ``hidden`` (W3 only with a prior),
        the readout two of shape ``readout``; biases ``b``, ``c`` of ``bias_sizes`` start at
        zero (``None``: no biases)."""
        w1, w2, w3, v1, v2 = names
        setattr(self, w1, nn.Parameter(_uniform(hidden, bound, generator, dtype)))
        setattr(self, w2, nn.Parameter(_uniform(hidden, bound, generator, dtype)))
        if self.prior is not None:
            setattr(self, w3, nn.Parameter(_uniform(hidden, bound, generator, dtype)))
        else:
            self.register_parameter(w3, None)
        setattr(self, v1, nn.Parameter(_uniform(readout, bound, generator, dtype)))
        setattr(self, v2, nn.Parameter(_uniform(readout, bound, generator, dtype)))
        if bias_sizes is not None:
            self.b = nn.Parameter(torch.zeros(bias_sizes[0], dtype=dtype))
            self.c = nn.Parameter(torch.zeros(bias_sizes[1], dtype=dtype))
        else:
            self.register_parameter("b", None)
            self.register_parameter("c", None)

    # the model --------------------------------------------------------------------------------
    def rho(self, z: Tensor) -> Tensor:
        """``rho(z) = (-log q)'((A')^{-1}(z))``; zero for the Gaussian prior."""
        return torch.zeros_like(z) if self.prior is None else self.prior.rho(z)

    def natural_parameters(self, z: Tensor, T: Tensor) -> Tensor:
        """``eta = W1 z + W2 T(Y) + W3 rho(z) + b`` (the argument of ``sigma`` in (7))."""
        eta = self._apply_w1(z) + self._apply_w2(T)
        if self.prior is not None:
            eta = eta + self._apply_w3(self.prior.rho(z))
        return eta

    def deq_map(self, T: Tensor) -> Callable[[Tensor], Tensor]:
        """The map (7) ``z -> sigma(W1 z + W2 T + W3 rho(z) + b)`` for fixed ``T = T(Y)``."""

        def f(z: Tensor) -> Tensor:
            return self.family.activation(self.natural_parameters(z, T))

        return f

    def readout(self, z: Tensor, T: Tensor) -> Tensor:
        """(8): ``f = V1 (z + rho(z)) + V2 T(Y) + c``."""
        return self._apply_readout(z + self.rho(z), T)

    def equilibrium(self, Y: Tensor) -> tuple[Tensor, Tensor]:
        """``(z*, T(Y))``: the fixed point of (7), differentiable by the IFT backward."""
        Y = self._validate(Y)
        T = self.family.sufficient_statistic(Y)
        with torch.no_grad():
            # start at sigma(W2 T + b): inside the mean range, where rho is defined
            z0 = self.family.activation(self._apply_w2(T))
        result = layer_fixed_point(self, self.deq_map(T), z0)
        self.last_stats = result.stats
        self.last_z = result.z.detach()
        check_convergence(result.stats, self.on_nonconvergence, what=f"{type(self).__name__}")
        return result.z, T

    def forward(self, Y: Tensor) -> Tensor:
        """Predictions (8) ``f*(Y) = V1 (z* + rho(z*)) + V2 T(Y) + c``; ``z*`` is kept in
        ``last_z`` and the solver statistics in ``last_stats``."""
        z, T = self.equilibrium(Y)
        return self.readout(z, T)

    def predict_mean(self, Y: Tensor) -> Tensor:
        """``sigma(f*(Y))``: the mean of ``T(y)`` at the predicted natural parameter (the
        "greyscale prediction" of Appendix G)."""
        return self.family.activation(self.forward(Y))


def _uniform(shape: tuple[int, ...], bound: float, generator, dtype) -> Tensor:
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2.0 - 1.0) * bound


class KGLMDEQ(_KGLMBase):
    """Fully connected kGLM-DEQ: ``z = sigma(W1 z + W2 T(Y) + W3 rho(z) + b)``,
    ``f = V1 (z + rho(z)) + V2 T(Y) + c`` (Theorem 3 (7)-(8)).

    Args:
        family: a ``TorchFamily`` or anything ``as_torch_family`` accepts.
        n: number of inner coordinates (rows of ``X``; the width of ``Y`` and ``z``).
        n_out: number of outer coordinates (rows of ``X~``; the width of the output).
        prior: ``None`` (Gaussian prior, ``rho = 0``, no ``W3``) or anything ``as_torch_prior``
            accepts (e.g. ``deqfam.api.torch_prior(derive_prior(family, "log(cosh(f))"))``).
        solver: ``"anderson"``, ``"broyden"`` or ``"fixed_point"`` (forward and adjoint solves).
        solver_options: ``SolverConfig`` options (unknown keys rejected).
        on_nonconvergence: ``"raise"``, ``"warn"`` or ``"ignore"`` (forward and backward).
        bias: learn the biases ``b`` (hidden) and ``c`` (readout); they start at zero.
        backward_options: ``SolverConfig`` options for the adjoint solve (default: the forward's).
        generator, dtype: for the random initialisation, PyTorch's ``nn.Linear`` rule
            ``U(-1/sqrt(n), 1/sqrt(n))`` (the paper's "random initialisation").

    ``forward(Y)`` takes ``Y`` of shape ``(N, n)`` and returns ``(N, n_out)``.
    """

    def __init__(
        self,
        family: Any,
        n: int,
        n_out: int,
        prior: Any = None,
        solver: str = "anderson",
        solver_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        *,
        bias: bool = True,
        backward_options: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for label, value in (("n", n), ("n_out", n_out)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self._setup(family, prior, solver, solver_options, on_nonconvergence, backward_options)
        self.n, self.n_out = n, n_out
        dtype = dtype or torch.get_default_dtype()
        bound = 1.0 / math.sqrt(n)
        names = ("W1", "W2", "W3", "V1", "V2")
        biases = (n, n_out) if bias else None
        self._init_weights(names, (n, n), (n_out, n), biases, bound, generator, dtype)

    def extra_repr(self) -> str:
        prior = "gaussian (rho=0)" if self.prior is None else self.prior.name
        return (
            f"family={self.family.name}, n={self.n}, n_out={self.n_out}, prior={prior}, "
            f"solver={self.solver}, bias={self.b is not None}"
        )

    def _check_shape(self, Y: Tensor) -> None:
        if Y.dim() != 2 or Y.shape[1] != self.n:
            raise ValueError(f"Y must have shape (N, {self.n}), got {tuple(Y.shape)}")

    def _apply_w1(self, z: Tensor) -> Tensor:
        return z @ self.W1.T

    def _apply_w2(self, t: Tensor) -> Tensor:
        out = t @ self.W2.T
        return out if self.b is None else out + self.b

    def _apply_w3(self, r: Tensor) -> Tensor:
        return r @ self.W3.T

    def _apply_readout(self, u: Tensor, t: Tensor) -> Tensor:
        out = u @ self.V1.T + t @ self.V2.T
        return out if self.c is None else out + self.c


class ConvKGLMDEQ(_KGLMBase):
    """Convolutional kGLM-DEQ of Corollary 11 (19) on ``C``-channel ``H x W`` images:

        z = sigma(C1 * z + C2 * T(Y) + C3 * rho(z) + b),   f = D1 * (z + rho(z)) + D2 * T(Y) + c,

    where ``*`` is the multi-channel convolution of Definition 10 with filters of shape
    ``(C, C, 2r+1, 2r+1)`` (cross-correlation as in ``torch.nn.functional.conv2d``, ``'same'``
    output size) and ``b``, ``c`` are per-channel biases. The readout is convolutional too, so the
    outer coordinates are the inner ones (``X~ = X``, e.g. denoising). With
    ``padding_mode="zeros"`` the layer equals ``KGLMDEQ`` with ``K`` the dense matrix of a
    kernel truncated at radius ``r`` on the pixel grid (Appendix E); with ``"circular"`` the pixel
    grid is a torus (a kernel stationary in the wrapped displacement), the setting in which the
    FFT spectral norm of Sedghi et al. is exact.

    ``forward(Y)`` takes ``(N, C, H, W)`` and returns ``(N, C, H, W)``.
    """

    def __init__(
        self,
        family: Any,
        channels: int,
        height: int,
        width: int,
        radius: int,
        prior: Any = None,
        solver: str = "anderson",
        solver_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        *,
        padding_mode: str = "zeros",
        bias: bool = True,
        backward_options: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for label, value in (
            ("channels", channels),
            ("height", height),
            ("width", width),
            ("radius + 1", radius + 1 if isinstance(radius, int) else radius),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        check_choice("padding_mode", padding_mode, ("zeros", "circular"))
        if padding_mode == "circular" and radius >= min(height, width):
            raise ValueError(
                f"circular padding needs radius < min(height, width), got radius={radius} for "
                f"{height}x{width} images"
            )
        self._setup(family, prior, solver, solver_options, on_nonconvergence, backward_options)
        self.channels, self.height, self.width, self.radius = channels, height, width, radius
        self.padding_mode = padding_mode
        dtype = dtype or torch.get_default_dtype()
        k = 2 * radius + 1
        shape = (channels, channels, k, k)
        bound = 1.0 / math.sqrt(channels * k * k)  # nn.Conv2d's default rule
        names = ("C1", "C2", "C3", "D1", "D2")
        biases = (channels, channels) if bias else None
        self._init_weights(names, shape, shape, biases, bound, generator, dtype)

    # the names kglm_init / check_contraction use for the hidden operators
    @property
    def W1(self) -> Tensor:
        return self.C1

    @property
    def W3(self) -> Tensor | None:
        return self.C3

    def extra_repr(self) -> str:
        prior = "gaussian (rho=0)" if self.prior is None else self.prior.name
        return (
            f"family={self.family.name}, channels={self.channels}, "
            f"image={self.height}x{self.width}, radius={self.radius}, "
            f"padding_mode={self.padding_mode}, prior={prior}, solver={self.solver}"
        )

    def _check_shape(self, Y: Tensor) -> None:
        expected = (self.channels, self.height, self.width)
        if Y.dim() != 4 or tuple(Y.shape[1:]) != expected:
            raise ValueError(
                f"Y must have shape (N, {', '.join(map(str, expected))}), got {tuple(Y.shape)}"
            )

    def conv(self, x: Tensor, weight: Tensor) -> Tensor:
        """Definition 10: ``(weight * x)`` with 'same' output size and the layer's padding."""
        r = self.radius
        if self.padding_mode == "circular":
            return F.conv2d(F.pad(x, (r, r, r, r), mode="circular"), weight)
        return F.conv2d(x, weight, padding=r)

    def _bias(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return x if bias is None else x + bias[:, None, None]

    def _apply_w1(self, z: Tensor) -> Tensor:
        return self.conv(z, self.C1)

    def _apply_w2(self, t: Tensor) -> Tensor:
        return self._bias(self.conv(t, self.C2), self.b)

    def _apply_w3(self, r: Tensor) -> Tensor:
        return self.conv(r, self.C3)

    def _apply_readout(self, u: Tensor, t: Tensor) -> Tensor:
        return self._bias(self.conv(u, self.D1) + self.conv(t, self.D2), self.c)


__all__ = [
    "KGLMDEQ",
    "ConvKGLMDEQ",
    "TorchPrior",
    "as_torch_prior",
]
