"""``DeepExpFamPCA``: the module whose forward pass is the joint MAP of all latent layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..solvers import POLICIES, SolverConfig
from .functions import LayerFunctions
from .implicit import deep_equilibrium
from .laplace import GaussianPrecision, JointLaplace
from .linalg import BlockTridiagonalCholesky, assemble_dense
from .problem import StackProblem
from .stats import DeepSolverStats, check_deep_convergence


def _per_layer(value: Any, n: int, name: str) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} needs one value per layer ({n}), got {len(values)}")
    return values


class DeepExpFamPCA(nn.Module):
    """Hierarchical exponential-family PCA whose forward pass is the joint MAP of all latent
    layers, solved as one DEQ (module docstring).

    Args:
        layers: ``L`` ``LayerFunctions``; ``layers[0]`` generates the data, ``layers[l]`` the
            latent ``z_l`` (these need ``observes_latent``). Build them with
            ``deqfam.DeepExpFamPCA`` from family specs.
        widths: ``[d_0, ..., d_L]`` (data dimension first).
        lam: prior precision of the top layer, ``z_L ~ N(0, lam^{-1} I)``.
        solver_options: ``SolverConfig`` options.
        on_nonconvergence: ``"raise"``, ``"warn"`` or ``"ignore"`` (also for saddle solutions).
        init_scale: standard deviation of the Gaussian initialisation of every ``W_l``.
        weight_decay: precision ``w_l`` of the Gaussian prior ``exp(-w_l/2 (|W_l|^2 + |b_l|^2))``
            of each layer (one number for all layers or one per layer); enters ``loss``.
        generator, dtype: for the initialisation.

    Parameters ``weights[l]`` (``d_l x d_{l+1}``) and ``biases[l]`` (``d_l``), 0-based, with
    ``b`` starting at an interior point of the layer's domain.
    """

    def __init__(
        self,
        layers: Sequence[LayerFunctions],
        widths: Sequence[int],
        lam: float = 0.1,
        solver_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        init_scale: float = 0.01,
        weight_decay: float | Sequence[float] = 0.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        layers = list(layers)
        widths = list(widths)
        if not layers:
            raise ValueError("DeepExpFamPCA needs at least one layer")
        if len(widths) != len(layers) + 1:
            raise ValueError(
                f"widths must list d_0 (data) and one width per layer: {len(layers) + 1} "
                f"entries, got {widths}"
            )
        for w in widths:
            if not isinstance(w, int) or w < 1:
                raise ValueError(f"widths must be positive integers, got {widths}")
        for l, layer in enumerate(layers[1:], start=2):
            if not layer.observes_latent:
                raise ValueError(
                    f"layer {l} ({layer.name}) observes the latent z_{l - 1} and needs "
                    "log_base, score_x, d2_x and scale_x"
                )
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        if on_nonconvergence not in POLICIES:
            raise ValueError(f"on_nonconvergence must be one of {POLICIES}")
        if not init_scale >= 0:
            raise ValueError("init_scale must be >= 0")
        self.layers = layers
        self.widths = widths
        self.lam = float(lam)
        self.config = SolverConfig.from_dict(solver_options)
        self.on_nonconvergence = on_nonconvergence
        self.weight_decay = _per_layer(weight_decay, len(layers), "weight_decay")
        if any(not w >= 0 for w in self.weight_decay):
            raise ValueError("weight_decay must be >= 0")
        dtype = dtype or torch.get_default_dtype()
        self.weights = nn.ParameterList(
            nn.Parameter(
                torch.randn(widths[l], widths[l + 1], generator=generator, dtype=dtype) * init_scale
            )
            for l in range(len(layers))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.full((widths[l],), layers[l].interior_point(), dtype=dtype))
            for l in range(len(layers))
        )
        self.last_stats: DeepSolverStats | None = None

    @property
    def depth(self) -> int:
        return len(self.layers)

    def extra_repr(self) -> str:
        names = ", ".join(layer.name for layer in self.layers)
        return f"layers=[{names}], widths={self.widths}, lam={self.lam}"

    # ------------------------------------------------------------------ helpers
    def _validate_data(self, Y: Tensor) -> Tensor:
        if not isinstance(Y, Tensor) or Y.dim() != 2 or not Y.is_floating_point():
            raise ValueError("Y must be a 2-D floating tensor (samples x d_0)")
        if Y.shape[1] != self.widths[0]:
            raise ValueError(f"Y must have d_0 = {self.widths[0]} columns, got {tuple(Y.shape)}")
        if not bool(torch.isfinite(Y).all()):
            raise ValueError("Y contains non-finite values")
        return Y.to(self.weights[0].dtype)

    def _split(self, Z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        if isinstance(Z, Tensor):
            return list(torch.split(Z, self.widths[1:], dim=-1))
        Z = list(Z)
        if len(Z) != self.depth:
            raise ValueError(f"expected {self.depth} latent layers, got {len(Z)}")
        return Z

    def problem(self, Y: Tensor) -> StackProblem:
        return StackProblem(self.layers, list(self.weights), list(self.biases), self.lam, Y)

    # ------------------------------------------------------------------ the layer
    def forward(self, Y: Tensor) -> tuple[Tensor, ...]:
        """MAP latents ``(z_1*, ..., z_L*)`` (each ``N x d_l``), differentiable w.r.t. every
        ``W_l``, ``b_l`` and ``Y`` by the implicit function theorem."""
        Y = self._validate_data(Y)
        z, self.last_stats = deep_equilibrium(
            self.layers, list(self.weights), list(self.biases), Y, self.lam, self.config
        )
        check_deep_convergence(self.last_stats, self.on_nonconvergence, "DeepExpFamPCA.forward")
        return tuple(torch.split(z, self.widths[1:], dim=-1))

    def objective(self, Y: Tensor, Z: Tensor | Sequence[Tensor]) -> Tensor:
        """``J`` per sample: ``-sum_l 1^T ell_l + lam/2 |z_L|^2`` without ``log h(Y)``."""
        problem = self.problem(self._validate_data(Y))
        zs = self._split(Z)
        return problem.value(zs, problem.etas(zs))[0]

    def log_joint(self, Y: Tensor, Z: Tensor | Sequence[Tensor]) -> Tensor:
        """``log p(Y, z_1..z_L | W, b)`` per sample without the data's ``log h(Y)``:
        ``-J + (d_L/2) log(lam / 2 pi)``."""
        d_top = self.widths[-1]
        return -self.objective(Y, Z) + 0.5 * d_top * math.log(self.lam / (2 * math.pi))

    def stationarity(self, Y: Tensor, Z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """Every layer's stationarity residual ``g_l`` (``N x d_l``): zero at the MAP."""
        problem = self.problem(self._validate_data(Y))
        zs = self._split(Z)
        return problem.gradient(zs, problem.etas(zs))[0]

    def hessian_blocks(
        self, Y: Tensor, Z: Tensor | Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """``H_ll`` and ``H_l,l+1`` of ``J`` at ``Z``."""
        problem = self.problem(self._validate_data(Y))
        zs = self._split(Z)
        return problem.hessian_blocks(zs, problem.etas(zs))

    def hessian(self, Y: Tensor, Z: Tensor | Sequence[Tensor]) -> Tensor:
        """Dense Hessian of ``J`` (``N x D x D``)."""
        return assemble_dense(*self.hessian_blocks(Y, Z))

    def reconstruct(self, Z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        """Per layer the mean of ``T_l(z_{l-1})`` given ``z_l``: ``sigma_l(W_l z_l + b_l)``
        (masked layers: ``D sigma``, which is ``sigma`` for the ReLU family)."""
        zs = self._split(Z)
        return [
            layer.activation(z @ W.T + b)
            for layer, z, W, b in zip(self.layers, zs, self.weights, self.biases, strict=True)
        ]

    # ------------------------------------------------------------------ Laplace
    def _map_or(self, Y: Tensor, Z: Any) -> list[Tensor]:
        if Z is None:
            with torch.no_grad():
                Z = self.forward(Y)
        return [z.detach() for z in self._split(Z)]

    def laplace(self, Y: Tensor, Z: Tensor | Sequence[Tensor] | None = None) -> JointLaplace:
        """Joint Laplace approximation ``N(z*, H(z*)^{-1})`` of ``p(z_1..z_L | Y)``.

        Raises ``ValueError`` naming the samples whose ``H`` is not positive definite."""
        zs = self._map_or(Y, Z)
        with torch.no_grad():
            diag, off = self.hessian_blocks(Y, zs)
            fac = BlockTridiagonalCholesky.factor(diag, off)
        if not bool(fac.ok.all()):
            bad = torch.nonzero(~fac.ok).flatten().tolist()
            raise ValueError(
                f"joint Laplace precision is not positive definite for samples {bad[:10]} "
                "(a saddle of the joint objective)"
            )
        return JointLaplace(tuple(zs), diag, off, fac)

    def conditional_laplace(
        self, Y: Tensor, Z: Tensor | Sequence[Tensor] | None = None
    ) -> list[GaussianPrecision]:
        """Per layer the Laplace approximation of ``p(z_l | z_{l-1}, z_{l+1})`` (its
        neighbours fixed at ``Z``, default the MAP): ``N(z_l*, H_ll^{-1})``."""
        zs = self._map_or(Y, Z)
        with torch.no_grad():
            diag, _ = self.hessian_blocks(Y, zs)
        return [
            GaussianPrecision.from_precision(z, d, what=f"layer {l + 1} conditional")
            for l, (z, d) in enumerate(zip(zs, diag, strict=True))
        ]

    # ------------------------------------------------------------------ training
    def penalty(self) -> Tensor:
        """``-log p(W, b)`` up to a constant: ``sum_l w_l/2 (|W_l|^2 + |b_l|^2)``."""
        total = self.weights[0].new_zeros(())
        for w, W, b in zip(self.weight_decay, self.weights, self.biases, strict=True):
            if w:
                total = total + 0.5 * w * (W.square().sum() + b.square().sum())
        return total

    def loss(self, Y: Tensor, n_total: int | None = None) -> Tensor:
        """``mean_s J_s(z*_s) + penalty / N_total``: ``(1/N_total) (-log p(Y, z*, W, b))`` up to
        constants, an unbiased minibatch estimate when ``n_total`` is the dataset size."""
        Y = self._validate_data(Y)
        n_total = Y.shape[0] if n_total is None else int(n_total)
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        Z = self.forward(Y)
        return self.objective(Y, Z).mean() + self.penalty() / n_total

    def set_trainable(self, trainable: Sequence[bool]) -> None:
        """Freeze (``False``) or unfreeze each layer's ``W_l`` and ``b_l``."""
        flags = list(trainable)
        if len(flags) != self.depth:
            raise ValueError(f"need one flag per layer ({self.depth}), got {len(flags)}")
        for flag, W, b in zip(flags, self.weights, self.biases, strict=True):
            W.requires_grad_(bool(flag))
            b.requires_grad_(bool(flag))
