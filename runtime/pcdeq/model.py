"""The pcDEQ equilibrium ``z* = sigma(W z* + x)`` by plain iteration with the implicit backward,
and the ``PositiveConcaveDEQ`` layer (nonnegative weights, positive input injection)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..implicit import ImplicitResult, implicit_fixed_point
from ..solvers import POLICIES, SolverConfig, as_config, check_convergence
from .activations import as_activation

DEFAULT_CONFIG = SolverConfig(tol=1e-12, max_iter=2000)


def pcdeq_map(W: Tensor, x: Tensor, activation: Any) -> Callable[[Tensor], Tensor]:
    """``z -> sigma(W z + x)`` on rows: ``z`` of shape ``(N, n)``, ``x`` of shape ``(N, n)``."""
    act = as_activation(activation)

    def T(z: Tensor) -> Tensor:
        return act.fn(z @ W.T + x)

    return T


def pcdeq_equilibrium(
    W: Tensor,
    x: Tensor,
    activation: Any,
    config: SolverConfig | dict[str, Any] | None = None,
    backward_config: SolverConfig | dict[str, Any] | None = None,
    on_nonconvergence: str = "warn",
    z0: Tensor | None = None,
) -> ImplicitResult:
    """The fixed point ``z* = sigma(W z* + x)`` by plain iteration from ``z0 = 0`` (module
    docstring: guaranteed to converge for a certified layer), differentiable in ``W`` and ``x``
    by the implicit function theorem; the adjoint ``u = J^T u + g`` is solved by plain
    iteration too (converges since ``rho(J) < 1``). ``result.z`` is ``(N, n)``; ``result.stats``
    and ``result.backward_stats`` are the runtime's ``SolverStats``."""
    cfg = as_config(DEFAULT_CONFIG if config is None else config)
    if cfg.damping != 1.0:
        raise ValueError("pcDEQ uses plain (undamped) iteration: damping must be 1")
    if z0 is None:
        z0 = torch.zeros_like(x)
    result = implicit_fixed_point(
        pcdeq_map(W, x, activation),
        z0,
        solver="fixed_point",
        config=cfg,
        backward_solver="fixed_point",
        backward_config=cfg if backward_config is None else backward_config,
        on_backward_nonconvergence=on_nonconvergence,
    )
    check_convergence(result.stats, on_nonconvergence, what="pcDEQ forward")
    return result


WEIGHT_PARAMETRISATIONS = ("softplus", "square", "project")


class PositiveConcaveDEQ(nn.Module):
    """pcDEQ layer ``z* = sigma(W z* + x(u))`` (module docstring).

    Args:
        n: hidden width (size of ``z``).
        activation: anything ``as_activation`` accepts; default ``"tanh"``.
        in_features: if given, the input map is ``x = softplus(u U^T + c) + input_floor``
            (``U``: ``n x in_features``, unconstrained); if ``None`` the input is ``x`` itself
            (it must then be ``>= 0``, ``> 0`` where ``sigma(0) = 0``).
        weight_param: ``"softplus"`` (``W = softplus(V)``), ``"square"`` (``W = V * V``) or
            ``"project"`` (``W = V``; call ``project_()`` after every optimiser step).
        gain: initial ``W`` has i.i.d. entries uniform in ``gain/n * [0.5, 1.5]``, so
            ``rho(W) ~ gain``.
        input_floor: added to the softplus injection so ``x >= input_floor > 0``.
        solver_options, backward_options: ``SolverConfig`` options of the forward plain
            iteration and of the adjoint iteration (default ``tol=1e-12, max_iter=2000``).
        on_nonconvergence: ``"raise"``, ``"warn"`` or ``"ignore"``.
        generator, dtype: initialisation RNG and parameter dtype.

    After ``forward`` the solver statistics are in ``last_result`` (``.stats``, and after a
    backward pass ``.backward_stats``).
    """

    def __init__(
        self,
        n: int,
        activation: Any = "tanh",
        in_features: int | None = None,
        *,
        weight_param: str = "softplus",
        gain: float = 0.5,
        input_floor: float = 1e-2,
        solver_options: dict[str, Any] | None = None,
        backward_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if weight_param not in WEIGHT_PARAMETRISATIONS:
            raise ValueError(
                f"weight_param must be one of {WEIGHT_PARAMETRISATIONS}, got {weight_param!r}"
            )
        if on_nonconvergence not in POLICIES:
            raise ValueError(f"on_nonconvergence must be one of {POLICIES}")
        if n < 1 or gain <= 0 or input_floor < 0:
            raise ValueError("need n >= 1, gain > 0 and input_floor >= 0")
        dtype = dtype or torch.get_default_dtype()
        self.n = int(n)
        self.in_features = in_features
        self.activation = as_activation(activation)
        self.weight_param = weight_param
        self.input_floor = float(input_floor)
        self.on_nonconvergence = on_nonconvergence
        base = dict(tol=DEFAULT_CONFIG.tol, max_iter=DEFAULT_CONFIG.max_iter)
        self.config = as_config({**base, **(solver_options or {})})
        self.backward_config = as_config({**base, **(backward_options or solver_options or {})})
        w0 = gain / n * (0.5 + torch.rand(n, n, generator=generator, dtype=dtype))
        if weight_param == "softplus":
            raw = torch.log(torch.expm1(w0))
        elif weight_param == "square":
            raw = w0.sqrt()
        else:
            raw = w0
        self.weight_raw = nn.Parameter(raw)
        if in_features is not None:
            u = torch.randn(n, in_features, generator=generator, dtype=dtype)
            self.input_weight = nn.Parameter(u / math.sqrt(in_features))
            self.input_bias = nn.Parameter(torch.zeros(n, dtype=dtype))
        else:
            self.register_parameter("input_weight", None)
            self.register_parameter("input_bias", None)
        self.last_result: ImplicitResult | None = None

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, activation={self.activation.name}, in_features={self.in_features}, "
            f"weight_param={self.weight_param}"
        )

    @property
    def weight(self) -> Tensor:
        """``W >= 0`` from the raw parameter (``softplus(V)``, ``V * V`` or ``V``)."""
        if self.weight_param == "softplus":
            return F.softplus(self.weight_raw)
        if self.weight_param == "square":
            return self.weight_raw * self.weight_raw
        return self.weight_raw

    @torch.no_grad()
    def project_(self) -> None:
        """Projection onto ``W >= 0`` (for ``weight_param="project"``; a no-op otherwise)."""
        if self.weight_param == "project":
            self.weight_raw.clamp_(min=0.0)

    def injection(self, u: Tensor) -> Tensor:
        """``x = softplus(u U^T + c) + input_floor`` (or ``x = u`` without an input map)."""
        if self.input_weight is None:
            return u
        return F.softplus(u @ self.input_weight.T + self.input_bias) + self.input_floor

    def deq_map(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """``z -> sigma(W z + x)``."""
        return pcdeq_map(self.weight, x, self.activation)

    def forward(self, u: Tensor) -> Tensor:
        """Equilibrium ``z*`` (shape ``(N, n)``) for inputs ``u`` (``(N, in_features)``, or
        ``(N, n)`` injections ``x`` when ``in_features`` is ``None``)."""
        if u.dim() == 1:
            u = u[None]
        x = self.injection(u)
        result = pcdeq_equilibrium(
            self.weight,
            x,
            self.activation,
            self.config,
            self.backward_config,
            self.on_nonconvergence,
        )
        self.last_result = result
        return result.z
