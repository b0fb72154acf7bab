"""Exponential-family PCA with one family per column: vector families and mixed-type columns.

``ExpFamPCA(families, data_dim, latent_dim, ...)`` builds this model when ``families`` is a
list (one family per column), a :class:`~deqfam.runtime.columns.ColumnFamilies` or a
``VectorTorchFamily``; one scalar family keeps the original ``ExpFamPCA`` (its fast path is
untouched). The generative model is ``y_sj | z_s ~ h_j(y) exp(<eta_sj, T_j(y)> -
A_j(eta_sj))`` with ``eta_s = W z_s + B`` (``W``: ``D x l``, ``B``: ``D``, ``D = sum_j k_j``)
and ``z_s ~ N(0, lam^{-1} I)``; the layer returns the MAP latents
``Z*_s = argmin J_s(z)``, ``J_s(z) = lam/2 |z|^2 - z^T W^T T(Y_s) + sum_j A_j(eta_sj)``
(``runtime.block_inner``), differentiable by the implicit function theorem.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .block_inner import block_equilibrium
from .columns import ColumnFamilies, as_columns
from .implicit import layer_fixed_point
from .models import ExpFamPCA
from .solvers import OBJECTIVE_SOLVERS, check_convergence
from .validation import DataError, validate_finite_parameters


class BlockExpFamPCA(ExpFamPCA):
    """``ExpFamPCA`` over :class:`ColumnFamilies` (module docstring). Same arguments as
    :class:`ExpFamPCA`; ``family`` (or ``families``) is a list of per-column families, a
    ``ColumnFamilies`` or a vector family (repeated over the ``data_dim`` columns).

    Attributes: ``columns`` (= ``family``, the ``ColumnFamilies``), ``W`` (``D x l``), ``B``
    (``D``, starting at an interior point of every column's domain), ``last_cholesky`` (the
    factor of ``H(Z*)`` from the last Newton forward).
    """

    def __init__(
        self,
        family: Any = None,
        data_dim: int = 0,
        latent_dim: int = 0,
        lam: float = 0.1,
        solver: str = "newton",
        solver_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        init_scale: float = 0.01,
        weight_decay: float = 0.0,
        backward_options: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        families: Any = None,
    ) -> None:
        family = family if families is None else families
        if family is None:
            raise TypeError("ExpFamPCA needs a family (or a list of per-column families)")
        for name, value in (("data_dim", data_dim), ("latent_dim", latent_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        columns = as_columns(family, data_dim)
        # the scalar constructor validates every option and creates W (d x l) and B (d) for a
        # stand-in family; they are then replaced by their D-dimensional versions
        super().__init__(
            _STAND_IN,
            data_dim,
            latent_dim,
            lam,
            solver,
            solver_options,
            on_nonconvergence,
            init_scale,
            weight_decay,
            backward_options,
            None,
            dtype,
        )
        self.family = columns  # type: ignore[assignment]
        self.columns = columns
        D, dtype = columns.natural_dim, self.W.dtype
        w0 = torch.randn(D, latent_dim, generator=generator, dtype=dtype) * init_scale
        self.W = nn.Parameter(w0)
        self.B = nn.Parameter(columns.interior_point(dtype=dtype))
        self.last_cholesky: Tensor | None = None

    @property
    def natural_dim(self) -> int:
        """``D = sum_j k_j``, the number of natural parameters per sample."""
        return self.columns.natural_dim

    def extra_repr(self) -> str:
        return (
            f"families={self.columns.name}, data_dim={self.data_dim}, "
            f"natural_dim={self.natural_dim}, latent_dim={self.latent_dim}, lam={self.lam}, "
            f"solver={self.solver}"
        )

    # ---------------------------------------------------------------- validation
    def _validate_data(self, Y: Tensor) -> Tensor:
        """Shape, dtype, finiteness and every column's support (DataError naming row/col)."""
        if not isinstance(Y, Tensor) or Y.dim() != 2 or not Y.is_floating_point():
            shape = tuple(Y.shape) if isinstance(Y, Tensor) else type(Y).__name__
            raise DataError(f"Y must be a 2-D floating tensor (samples x data_dim), got {shape}")
        if Y.shape[1] != self.data_dim:
            raise DataError(
                f"Y must have data_dim={self.data_dim} columns, got shape {tuple(Y.shape)}"
            )
        if not bool(torch.isfinite(Y).all()):
            bad = torch.nonzero(~torch.isfinite(Y).all(1)).flatten().tolist()
            raise DataError(f"Y contains non-finite values (rows {bad[:10]})")
        if Y.shape[0]:
            self.columns.validate_observations(Y)
        return Y.to(self.W.dtype)

    def check_parameters(self) -> None:
        """``W``, ``B`` finite and every column's ``B_j`` inside its domain (DomainError)."""
        validate_finite_parameters({"W": self.W, "B": self.B}, what="ExpFamPCA")
        self.columns.validate_canonical(self.B.detach(), what="B")

    # ---------------------------------------------------------------- the layer
    def deq_map(self, T: Tensor) -> Any:
        """``z -> (1/lam) W^T (T - mu(W z + B))`` for fixed ``T = T(Y)`` (``(N, D)``)."""

        def f(z: Tensor) -> Tensor:
            return (T - self.columns.mean(self.natural_parameters(z))) @ self.W / self.lam

        return f

    def forward(self, Y: Tensor, z0: Tensor | None = None) -> Tensor:
        """MAP latents ``Z*`` (``(N, l)``) of data ``Y`` (``(N, d)``), differentiable w.r.t.
        ``W``, ``B`` and ``Y`` (implicit function theorem; ``runtime.block_inner``)."""
        Y = self._validate_data(Y)
        self.check_parameters()
        z0 = self._warm_start(z0, Y)
        if self.solver in OBJECTIVE_SOLVERS:
            Z, stats, chol = block_equilibrium(
                self.columns, self.W, self.B, Y, self.lam, self.config, self.solver, z0
            )
            self.last_cholesky, self.last_implicit = chol, None
        else:
            T = self.columns.sufficient_statistic(Y)
            if z0 is None:
                z0 = torch.zeros(Y.shape[0], self.latent_dim, dtype=Y.dtype, device=Y.device)
            result = layer_fixed_point(self, self.deq_map(T), z0)
            Z, stats = result.z, result.stats
        self.last_stats = stats
        check_convergence(stats, self.on_nonconvergence, what="ExpFamPCA.forward")
        return Z

    def _warm_start(self, z0: Tensor | None, Y: Tensor) -> Tensor | None:
        """Rows of ``z0`` with some ``eta_j`` outside its domain restart from 0."""
        if z0 is None:
            return None
        if z0.shape != (Y.shape[0], self.latent_dim):
            raise DataError(
                f"z0 must have shape {(Y.shape[0], self.latent_dim)}, got {tuple(z0.shape)}"
            )
        z0 = z0.detach().to(self.W.dtype)
        with torch.no_grad():
            inside = self.columns.in_domain(self.natural_parameters(z0)).all(-1)
            ok = torch.isfinite(z0).all(-1) & inside
        return torch.where(ok[:, None], z0, torch.zeros_like(z0))

    def reconstruct(self, Z: Tensor) -> Tensor:
        """Means of ``T(Y)`` given latents, ``mu(W Z_s + B)`` (``(N, D)``)."""
        eta = self.natural_parameters(self._validate_latents(Z))
        self.columns.validate_canonical(eta.detach())
        return self.columns.mean(eta)

    def objective_terms(self, Y: Tensor, Z: Tensor) -> Tensor:
        """``sum_j [A_j(eta_sj) - <T_j(y_sj), eta_sj>]`` per sample (the negative
        log-likelihood without ``log h``)."""
        eta = self.natural_parameters(Z)
        self.columns.validate_canonical(eta.detach())
        T = self.columns.sufficient_statistic(Y)
        return self.columns.log_partition(eta) - (T * eta).sum(-1)

    def log_joint(self, Y: Tensor, Z: Tensor) -> Tensor:
        """``log p(Y_s | Z_s) + log p(Z_s)`` per sample, up to ``sum_j log h_j(y_sj)``."""
        Y, Z = self._validate_data(Y), self._validate_latents(Z)
        logprior = -0.5 * self.lam * (Z * Z).sum(-1) + 0.5 * self.latent_dim * math.log(
            self.lam / (2 * math.pi)
        )
        return -self.objective_terms(Y, Z) + logprior

    def log_likelihood(self, Y: Tensor, Z: Tensor) -> Tensor:
        """``log p(y_sj | z_s)`` per entry (``(N, d)``), with every column's ``log h``."""
        Y, Z = self._validate_data(Y), self._validate_latents(Z)
        return self.columns.log_likelihood(Y, self.natural_parameters(Z))

    def loss(self, Y: Tensor, n_total: int | None = None, z0: Tensor | None = None) -> Tensor:
        """``mean_s [sum_j (A_j(eta*_sj) - <T_j, eta*_sj>) + lam/2 |Z*_s|^2] +
        weight_decay/(2 N_total) (|W|^2 + |B|^2)``, as :meth:`ExpFamPCA.loss`."""
        Y = self._validate_data(Y)
        n_total = Y.shape[0] if n_total is None else int(n_total)
        if n_total < 1:
            raise ValueError(f"n_total must be >= 1, got {n_total}")
        Z = self.forward(Y, z0=z0)
        self.last_z = Z.detach()
        per_sample = self.objective_terms(Y, Z) + 0.5 * self.lam * (Z * Z).sum(-1)
        return per_sample.mean() + self.penalty() / n_total


def _stand_in_family() -> Any:
    """A scalar family used only so the scalar constructor can validate the shared options."""
    from .family import TorchFamily

    return TorchFamily(
        "stand_in",
        (-math.inf, math.inf),
        lambda e: 0.5 * e * e,
        lambda e: e,
        torch.ones_like,
        lambda y: y,
    )


_STAND_IN = _stand_in_family()


def is_block_family(family: Any) -> bool:
    """Whether ``family`` asks for the per-column model: a list/tuple of families, a
    ``ColumnFamilies`` or a vector family (a ``VectorTorchFamily`` or a module holding one)."""
    from .vector_family import VectorTorchFamily

    if isinstance(family, (list, tuple, ColumnFamilies)):
        return True
    return isinstance(family, VectorTorchFamily) or isinstance(
        getattr(family, "FAMILY", None), VectorTorchFamily
    )


__all__ = ["BlockExpFamPCA", "is_block_family"]
