"""Newton and Newton-CG on the inner problem of Theorem 1: the dense ``NewtonProblem``.

For a canonical link the observed and expected information coincide, so this is also Fisher
scoring. Since ``J_s`` is ``lam``-strongly convex the damped iteration converges globally, and
quadratically near ``z*`` where the full step is accepted. Their ``residual`` statistic is the
gradient norm ``|F(z)|_2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .cg import batched_cg
from .config import SolverConfig, as_config
from .inner import InnerProblem
from .newton import Linearisation, newton_solve
from .result import Solution, row_norm


class DenseNewtonProblem:
    """``NewtonProblem`` view of an ``InnerProblem``: the Newton system ``H d = -g`` is solved
    by a batched Cholesky factorisation (``use_cholesky``) or by conjugate gradients on
    Hessian-vector products (no ``l x l`` matrix is formed). ``inner`` may be any object with
    the ``InnerProblem`` methods used here (``runtime.block_inner`` subclasses this for the
    block Hessian and overrides :meth:`hvp_operator`)."""

    def __init__(self, inner: InnerProblem, use_cholesky: bool, cfg: SolverConfig) -> None:
        self.inner, self.use_cholesky, self.cfg = inner, use_cholesky, cfg
        self.name = "newton" if use_cholesky else "cg_newton"
        self.cg_max = cfg.cg_max_iter or 2 * inner.W.shape[1] + 20

    def check_start(self, z: Tensor) -> None:
        self.inner.check_feasible_start(z)

    def linearise(self, z: Tensor) -> Linearisation:
        eta = self.inner.eta(z)
        grad, _, scale = self.inner.gradient(z, eta)
        return Linearisation(z, grad, row_norm(grad)[None], scale[None], cache=eta)

    def direction(self, lin: Linearisation, active: Tensor) -> Tensor:
        """``-H^{-1} g`` (Cholesky, or CG to the inexact-Newton forcing tolerance)."""
        eta, grad = lin.cache, lin.grad
        if self.use_cholesky:
            return cholesky_direction(self.inner.hessian(eta), grad)
        # Inexact Newton forcing term min(0.5, sqrt|g|) |g| gives superlinear convergence;
        # cg_rtol caps it so the final steps are accurate.
        gnorm = lin.residual[0]
        forcing = torch.clamp(torch.sqrt(gnorm), max=0.5).clamp_min(self.cfg.cg_rtol)
        sol, _, _ = batched_cg(self.hvp_operator(eta), grad, forcing, self.cg_max)
        return -sol

    def hvp_operator(self, eta: Tensor) -> Callable[[Tensor], Tensor]:
        """``v -> H v = lam v + W^T (sigma'(eta) * (W v))`` (the CG operator at ``eta``)."""
        sp = self.inner.family.activation_grad(eta)
        return lambda v: self.inner.hvp(v, sp)

    def trial_values(
        self, lin: Linearisation, direction: Tensor, steps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``J`` along the trials, with ``eta`` updated incrementally (``eta + t W d``)."""
        z, eta = lin.z, lin.cache
        d_eta = direction @ self.inner.W.T
        z_trial = z[None] + steps[..., None] * direction[None]
        eta_trial = eta[None] + steps[..., None] * d_eta[None]
        j_trial, _ = self.inner.value(z_trial, eta_trial)
        j0, scale0 = self.inner.value(z, eta)
        return j_trial, j0, scale0

    def factor(self, lin: Linearisation) -> tuple[Tensor | None, Tensor | None]:
        """Cholesky factor of ``H(z*)``. ``H = lam I + W^T diag(sigma') W`` is positive definite
        unless sigma' overflowed: such a sample has no usable factor for the implicit backward,
        so it must not count as converged (the caller's policy then reports it)."""
        if not self.use_cholesky:
            return None, None
        return cholesky_factor(self.inner.hessian(lin.cache))


def cholesky_direction(H: Tensor, grad: Tensor) -> Tensor:
    """The Newton direction ``-H^{-1} g`` per sample by a batched Cholesky factorisation.

    A failed factorisation (only possible with a non-finite Hessian) falls back to steepest
    descent ``-g``, which the line search still makes globally convergent."""
    chol, info = torch.linalg.cholesky_ex(H)
    newton_dir = -torch.cholesky_solve(grad[..., None], chol)[..., 0]
    return torch.where((info == 0)[:, None], newton_dir, -grad)


def cholesky_factor(H: Tensor) -> tuple[Tensor, Tensor]:
    """``(L, failed)``: the batched Cholesky factor ``H = L L^T`` and where it failed."""
    chol, info = torch.linalg.cholesky_ex(H)
    return chol, info != 0


def _objective_solve(
    family: Any,
    W: Tensor,
    B: Tensor,
    T: Tensor,
    lam: float,
    z0: Tensor | None,
    config: SolverConfig | dict[str, Any] | None,
    use_cholesky: bool,
) -> Solution:
    cfg = as_config(config)
    inner = InnerProblem(family, W, B, T, lam)
    n, l = T.shape[0], W.shape[1]
    z = torch.zeros(n, l, dtype=W.dtype, device=W.device) if z0 is None else z0
    return newton_solve(DenseNewtonProblem(inner, use_cholesky, cfg), z, cfg)


def newton(
    family: Any,
    W: Tensor,
    B: Tensor,
    T: Tensor,
    lam: float,
    z0: Tensor | None = None,
    config: SolverConfig | dict[str, Any] | None = None,
) -> Solution:
    """Newton / Fisher scoring on ``J_s`` (Theorem 1 (6)) for every sample, batched.

    Iterates ``z <- z + t d`` with ``d = -H(z)^{-1} grad J(z)``, ``H = lam I + W^T diag(sigma')
    W`` factored by a batched ``cholesky_ex``, and ``t`` from a per-sample backtracking Armijo
    search on ``J`` that also keeps ``W z + B`` strictly inside the family's domain. ``T`` is
    ``T(Y)`` (shape ``(N, d)``); ``z0`` defaults to 0 and must put ``eta = W z0 + B`` inside the
    domain.

    Returns a ``Solution``: ``z`` (= ``value``), its stats (``residual`` = ``|grad J(z)|_2``)
    and the Cholesky factor ``L`` of ``H(z*) = L L^T`` (``factor`` = ``cholesky``) for the
    implicit backward and the Laplace approximation.
    """
    return _objective_solve(family, W, B, T, lam, z0, config, use_cholesky=True)


def cg_newton(
    family: Any,
    W: Tensor,
    B: Tensor,
    T: Tensor,
    lam: float,
    z0: Tensor | None = None,
    config: SolverConfig | dict[str, Any] | None = None,
) -> Solution:
    """Inexact Newton (Newton-CG) on ``J_s``: like ``newton`` but the Newton system is solved
    by conjugate gradients on Hessian-vector products ``lam v + W^T (sigma' * (W v))``, so no
    ``l x l`` matrix is formed (for large latent dimension). ``cholesky`` is ``None``. The CG
    inner loop consults the host once every 8 CG iterations (in addition to the one convergence
    test per Newton iteration).
    """
    return _objective_solve(family, W, B, T, lam, z0, config, use_cholesky=False)
