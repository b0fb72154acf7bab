"""Exponential-family PCA as a deep equilibrium layer (Theorem 1 of the seed paper).

Generative model (eq. (3)): ``Y_s | Z_s ~ prod_i h(y_si) exp(eta_si T(y_si) - A(eta_si))`` with
``eta_s = W Z_s + B``, prior ``Z_s ~ N(0, lam^{-1} I)``. For fixed ``(W, B)`` the MAP latents
``Z*_s`` minimise the strongly convex ``J_s(z) = lam/2|z|^2 - z^T W^T T(Y_s) + 1^T A(Wz + B)``;
stationarity (9) is the DEQ (10) ``Z*_s = (1/lam) W^T (T(Y_s) - sigma(W Z*_s + B))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .family import TorchFamily, as_torch_family
from .fused import BACKENDS, fused_solve, resolve_backend
from .implicit import ImplicitResult, layer_fixed_point, newton_equilibrium
from .solvers import (
    GENERIC_SOLVERS,
    OBJECTIVE_SOLVERS,
    POLICIES,
    SolverConfig,
    SolverStats,
    check_convergence,
)
from .validation import (
    CheckMemo,
    DataError,
    check_choice,
    parameters_pass,
    validate_canonical,
    validate_finite_parameters,
    validate_observations,
)

SOLVER_NAMES = (*OBJECTIVE_SOLVERS, *GENERIC_SOLVERS)


class ExpFamPCA(nn.Module):
    """Exponential-family PCA whose forward pass is the MAP-latent DEQ of Theorem 1.

    Args:
        family: a ``TorchFamily`` or anything ``as_torch_family`` accepts (a generated module);
            a list of per-column families, a ``ColumnFamilies`` or a vector family builds the
            per-column model ``runtime.block_pca.BlockExpFamPCA`` instead (which also takes
            them as ``families=``).
        data_dim: ``d``, the number of observed coordinates.
        latent_dim: ``l``.
        lam: prior precision of the latents, ``Z ~ N(0, lam^{-1} I)``; also the strong
            convexity constant of ``J``.
        solver: ``"newton"`` / ``"cg_newton"`` (Fisher scoring with exact implicit backward by
            Cholesky / CG) or ``"anderson"`` / ``"broyden"`` / ``"fixed_point"`` (generic
            solvers on the map (10) with the generic IFT backward).
        solver_options: dict of ``SolverConfig`` options (unknown keys are rejected).
        on_nonconvergence: ``"raise"``, ``"warn"`` or ``"ignore"``.
        init_scale: standard deviation of the Gaussian initialisation of ``W``. The paper stresses
            a small one, especially for Poisson, where ``sigma = exp`` overflows otherwise.
        weight_decay: precision ``w`` of the Gaussian prior ``p(W, B) ∝ exp(-w/2 (|W|^2 +
            |B|^2))`` used by ``loss`` (a true L2 term, not decoupled AdamW decay).
        backward_options: ``SolverConfig`` options for the generic IFT backward solve (default:
            ``solver_options``).
        generator: torch generator for the initialisation of ``W``.
        dtype: parameter dtype (default: torch's default dtype).
        backend: ``"torch"``, ``"fused"`` (the generated C++/CUDA solve and backward, built
            on first use) or ``"auto"`` (fused when it applies and builds); see
            ``runtime.fused``. The fused layer runs only for ``solver="newton"``.

    Parameters ``W`` (``d x l``) and ``B`` (``d``). ``B`` starts at 0, or at an interior point of
    the domain when 0 is not inside it (negative binomial: ``eta < 0``), so the solvers start
    from a feasible point.
    """

    def __new__(cls, family: Any = None, *args: Any, **kwargs: Any) -> ExpFamPCA:
        # one family per column (a list, ColumnFamilies) or a vector family: the block model
        # of runtime/block_pca.py; one scalar family: this class, unchanged
        chosen = kwargs.get("families", family)
        if cls is ExpFamPCA and chosen is not None:
            from .block_pca import BlockExpFamPCA, is_block_family

            if is_block_family(chosen):
                return super().__new__(BlockExpFamPCA)
        return super().__new__(cls)

    def __init__(
        self,
        family: Any,
        data_dim: int,
        latent_dim: int,
        lam: float = 0.1,
        solver: str = "newton",
        solver_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        init_scale: float = 0.01,
        weight_decay: float = 0.0,
        backward_options: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("latent_dim", latent_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        if not init_scale >= 0 or not weight_decay >= 0:
            raise ValueError("init_scale and weight_decay must be >= 0")
        check_choice("solver", solver, SOLVER_NAMES)
        check_choice("on_nonconvergence policy", on_nonconvergence, POLICIES)
        check_choice("backend", backend, BACKENDS)
        self.backend = backend
        self.family: TorchFamily = as_torch_family(family)
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.lam = float(lam)
        self.solver = solver
        self.config = SolverConfig.from_dict(solver_options)
        self.backward_config = (
            self.config if backward_options is None else SolverConfig.from_dict(backward_options)
        )
        self.on_nonconvergence = on_nonconvergence
        self.weight_decay = float(weight_decay)
        dtype = dtype or torch.get_default_dtype()
        w0 = torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype) * init_scale
        b0 = torch.full((data_dim,), self.family.interior_point(), dtype=dtype)
        self.W = nn.Parameter(w0)
        self.B = nn.Parameter(b0)
        self.last_stats: SolverStats | None = None
        self.last_implicit: ImplicitResult | None = None
        self._checked_parameters = CheckMemo()

    def extra_repr(self) -> str:
        return (
            f"family={self.family.name}, data_dim={self.data_dim}, "
            f"latent_dim={self.latent_dim}, lam={self.lam}, solver={self.solver}"
        )

    # ---------------------------------------------------------------- input validation
    def _validate_data(self, Y: Tensor) -> Tensor:
        """Shape, dtype, finiteness and the family's support (DataError naming row/column)."""
        if not isinstance(Y, Tensor):
            raise DataError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
        if Y.dim() != 2:
            raise DataError(f"Y must be 2-D (samples x data_dim), got shape {tuple(Y.shape)}")
        if not Y.is_floating_point():
            raise DataError(f"Y must have a floating dtype, got {Y.dtype}")
        if Y.shape[1] != self.data_dim:
            raise DataError(
                f"Y must have data_dim={self.data_dim} columns, got shape {tuple(Y.shape)}"
            )
        if Y.shape[0]:  # finiteness included (NaN and inf fail its magnitude test)
            validate_observations(
                Y,
                self.family.support,
                self.data_dim,
                what="Y",
                support_max=getattr(self.family, "support_max", None),
            )
        return Y.to(self.W.dtype)

    def check_parameters(self) -> None:
        """Raise ``DataError`` if ``W`` or ``B`` has a non-finite entry, ``DomainError`` if a
        coordinate of ``B`` (the canonical parameter ``eta = W z + B`` at ``z = 0``, where the
        solvers start) lies outside the family's domain.

        Runs before every solve, so: nothing when ``W`` and ``B`` are the tensors that passed
        last time and unmodified since (``CheckMemo``: an in-place change, an optimizer step,
        a new tensor all count), else one fast pass (``parameters_pass``), and the exact
        checks, which name the bad entry, only where that pass fails."""
        W, B = self.W, self.B
        if self._checked_parameters.unchanged(W, B):
            return
        if not parameters_pass(W.detach(), B.detach(), self.family.domain):
            validate_finite_parameters({"W": W, "B": B}, what="ExpFamPCA")
            validate_canonical(B.detach(), self.family.domain, self.family.name, what="B")
        self._checked_parameters.remember(W, B)

    def _validate_latents(self, Z: Tensor) -> Tensor:
        if not isinstance(Z, Tensor) or Z.dim() != 2 or Z.shape[1] != self.latent_dim:
            shape = tuple(Z.shape) if isinstance(Z, Tensor) else type(Z).__name__
            raise DataError(
                f"Z must be a 2-D tensor with latent_dim={self.latent_dim} columns, got {shape}"
            )
        validate_finite_parameters({"Z": Z}, what="input")
        return Z.to(self.W.dtype)

    # ---------------------------------------------------------------- the layer
    def natural_parameters(self, Z: Tensor) -> Tensor:
        """``eta = W Z_s + B`` for every row of ``Z`` (shape ``(N, d)``)."""
        return Z @ self.W.T + self.B

    def deq_map(self, T: Tensor) -> Any:
        """The DEQ map (10) ``z -> (1/lam) W^T (T - sigma(W z + B))`` for fixed ``T = T(Y)``."""

        def f(z: Tensor) -> Tensor:
            return (T - self.family.activation(self.natural_parameters(z))) @ self.W / self.lam

        return f

    def forward(self, Y: Tensor, z0: Tensor | None = None) -> Tensor:
        """MAP latents ``Z*`` (shape ``(N, latent_dim)``) for data ``Y`` (``(N, data_dim)``),
        differentiable w.r.t. ``W``, ``B`` and ``Y`` by the implicit function theorem.

        ``z0`` optionally warm-starts the solver (e.g. last epoch's latents of the same
        samples); rows whose ``W z0 + B`` falls outside the domain restart from 0. The
        solution and its gradient do not depend on the start, only the iteration count does.
        """
        return self._equilibrium(self._validate_data(Y), z0)[0]

    def _equilibrium(self, Y: Tensor, z0: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward` on data already checked by ``_validate_data`` (``loss`` checks its
        batch once, not once more here: the check costs as much as a small solve), and, from
        the fused layer, the per-sample outer objective at ``Z*`` (else ``None``)."""
        objective = None
        self.check_parameters()
        z0 = self._warm_start(z0, Y)
        fused = resolve_backend(self.family, self.backend, self.latent_dim, self.solver)
        if fused is not None:
            Z, stats, objective = fused_solve(
                fused, self.family, self.W, self.B, Y, self.lam, self.config, z0
            )
            self.last_implicit = None
        elif self.solver in OBJECTIVE_SOLVERS:
            Z, stats = newton_equilibrium(
                self.family,
                self.W,
                self.B,
                Y,
                self.lam,
                self.config,
                self.solver,
                self.on_nonconvergence,
                z0=z0,
            )
            self.last_implicit = None
        else:
            T = self.family.sufficient_statistic(Y)
            if z0 is None:
                z0 = torch.zeros(Y.shape[0], self.latent_dim, dtype=Y.dtype, device=Y.device)
            result = layer_fixed_point(self, self.deq_map(T), z0)
            Z, stats = result.z, result.stats
        self.last_stats = stats
        check_convergence(stats, self.on_nonconvergence, what="ExpFamPCA.forward")
        return Z, objective

    def _warm_start(self, z0: Tensor | None, Y: Tensor) -> Tensor | None:
        """Validated warm start: right shape, finite, and rows with ``W z0 + B`` outside the
        domain reset to 0 (where ``B`` alone is inside, see ``check_parameters``)."""
        if z0 is None:
            return None
        if z0.shape != (Y.shape[0], self.latent_dim):
            raise DataError(
                f"z0 must have shape {(Y.shape[0], self.latent_dim)}, got {tuple(z0.shape)}"
            )
        z0 = z0.detach().to(self.W.dtype)
        with torch.no_grad():
            ok = torch.isfinite(z0).all(-1) & self.family.in_domain(
                self.natural_parameters(z0)
            ).all(-1)
        return torch.where(ok[:, None], z0, torch.zeros_like(z0))

    def reconstruct(self, Z: Tensor) -> Tensor:
        """Mean of ``T(Y)`` given latents: ``sigma(W Z_s + B)``."""
        eta = self.natural_parameters(self._validate_latents(Z))
        validate_canonical(eta.detach(), self.family.domain, self.family.name)
        return self.family.activation(eta)

    def log_joint(self, Y: Tensor, Z: Tensor) -> Tensor:
        """``log p(Y_s | Z_s, W, B) + log p(Z_s)`` per sample, up to ``sum_i log h(y_si)``:
        ``sum_i [eta_si T(y_si) - A(eta_si)] - lam/2 |Z_s|^2 + (l/2) log(lam / 2 pi)``."""
        Y, Z = self._validate_data(Y), self._validate_latents(Z)
        eta = self.natural_parameters(Z)
        validate_canonical(eta.detach(), self.family.domain, self.family.name)
        T = self.family.sufficient_statistic(Y)
        loglik = (eta * T - self.family.log_partition(eta)).sum(-1)
        logprior = -0.5 * self.lam * (Z * Z).sum(-1) + 0.5 * self.latent_dim * math.log(
            self.lam / (2 * math.pi)
        )
        return loglik + logprior

    def penalty(self) -> Tensor:
        """``-log p(W, B)`` up to a constant: ``weight_decay/2 (|W|^2 + |B|^2)``."""
        return 0.5 * self.weight_decay * (self.W.square().sum() + self.B.square().sum())

    def loss(self, Y: Tensor, n_total: int | None = None, z0: Tensor | None = None) -> Tensor:
        """Outer objective of Theorem 1 (6), scaled by ``1/N_total``:

            mean_s [1^T A(W Z*_s + B) - T(Y_s)^T (W Z*_s + B) + lam/2 |Z*_s|^2]
              + weight_decay / (2 N_total) (|W|^2 + |B|^2),

        i.e. ``(1/N_total) (-log p(Y, Z*, W, B))`` up to constants, whose minibatch estimate is
        unbiased when ``n_total`` is the dataset size (default: this batch's size). Gradients
        flow through ``Z*`` by the implicit layer (by the envelope theorem that part vanishes,
        since ``Z*`` minimises the bracket).
        """
        Y = self._validate_data(Y)
        n_total = Y.shape[0] if n_total is None else int(n_total)
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        Z, per_sample = self._equilibrium(Y, z0)
        self.last_z = Z.detach()
        if per_sample is None:  # the fused layer returns it with Z*, with its gradient
            eta = self.natural_parameters(Z)
            T = self.family.sufficient_statistic(Y)
            per_sample = (self.family.log_partition(eta) - T * eta).sum(-1) + 0.5 * self.lam * (
                Z * Z
            ).sum(-1)
        if not self.weight_decay:  # the penalty and its gradient are exactly 0: skip its graph
            return per_sample.mean()
        return per_sample.mean() + self.penalty() / n_total


__all__ = ["SOLVER_NAMES", "ExpFamPCA"]
