"""Newton on the joint objective of the deep stack: ``StackNewtonProblem`` implements the
solvers' ``NewtonProblem`` protocol with the block-tridiagonal Hessian, so the iteration, the
Armijo line search and the convergence test are ``runtime.solvers.newton_solve``'s.

The step is the Newton step by the block Cholesky factor; a sample whose Hessian is not
positive definite (negative curvature: ``J`` is not convex in general) takes the
absolute-value modified Newton step, and any step that is not a finite descent direction is
replaced by steepest descent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..solvers import Linearisation, SolverStats, Status, as_config, newton_solve
from ..solvers.inner import require_inside_start
from .linalg import BlockTridiagonalCholesky, assemble_dense, modified_newton
from .problem import StackProblem, row_norm
from .stats import DeepSolverStats


@dataclass
class StackSolution:
    """The joint MAP ``z`` (``N x D``), its stats, the block factor of ``H(z*)`` and the
    Hessian blocks it was computed from, and the per-sample ``Status`` codes."""

    z: Tensor  # (N, D)
    stats: DeepSolverStats
    factor: BlockTridiagonalCholesky
    diag: list[Tensor] = field(repr=False)
    off: list[Tensor] = field(repr=False)
    status: Tensor | None = None


class StackNewtonProblem:
    """``NewtonProblem`` view of a ``StackProblem``. Counts, per sample, the iterations that met
    negative curvature and the most negative eigenvalue seen (for ``DeepSolverStats``)."""

    name = "newton (joint stack)"

    def __init__(self, problem: StackProblem, n: int, dtype: torch.dtype, device: Any) -> None:
        self.problem = problem
        self.negative_curvature = torch.zeros(n, dtype=torch.long, device=device)
        self.most_negative = torch.zeros(n, dtype=dtype, device=device)

    def check_start(self, z: Tensor) -> None:
        """Every ``eta_l`` strictly inside its layer's domain, else a ``ValueError``."""
        problem = self.problem
        for l, (layer, eta) in enumerate(
            zip(problem.layers, problem.etas(problem.split(z)), strict=True)
        ):
            require_inside_start(
                layer.in_domain(eta).all(-1),
                f"eta_{l + 1} = W_{l + 1} z_{l + 1} + b_{l + 1} outside the domain "
                f"{layer.domain} of layer {l + 1} ({layer.name})",
                "choose b (or z0) inside the domain",
            )

    def linearise(self, z: Tensor) -> Linearisation:
        """Per-layer gradients ``g_l`` (one residual block per layer)."""
        zs = self.problem.split(z)
        etas = self.problem.etas(zs)
        grads, scales = self.problem.gradient(zs, etas)
        residual = torch.stack([row_norm(g) for g in grads])  # (L, N)
        return Linearisation(
            z, torch.cat(grads, -1), residual, torch.stack(scales), cache=(zs, etas, grads)
        )

    def direction(self, lin: Linearisation, active: Tensor) -> Tensor:
        """``-H^{-1} g`` by the block factor; modified Newton where ``H`` is not positive
        definite; steepest descent where the result is not a finite descent direction."""
        zs, etas, grads = lin.cache
        grad = lin.grad
        diag, off = self.problem.hessian_blocks(zs, etas)
        fac = BlockTridiagonalCholesky.factor(diag, off)
        direction = -torch.cat(fac.solve(grads), -1)
        bad = active & ~fac.ok
        if bool(bad.any()):
            H = assemble_dense(diag, off)[bad]
            d_bad, lam_min = modified_newton(H, grad[bad])
            direction[bad] = d_bad
            indefinite = torch.zeros_like(bad)
            indefinite[bad] = lam_min < 0
            self.negative_curvature += indefinite.long()
            mn = self.most_negative.clone()
            mn[bad] = torch.minimum(self.most_negative[bad], lam_min.clamp_max(0.0))
            self.most_negative = mn
        usable = torch.isfinite(direction).all(-1) & ((grad * direction).sum(-1) < 0)
        return torch.where(usable[:, None], direction, -grad)

    def trial_values(
        self, lin: Linearisation, direction: Tensor, steps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``J`` at every trial ``z + t d`` (batched over the leading trial axis) and at ``z``."""
        problem, z = self.problem, lin.z
        zs_t = problem.split(z[None] + steps[..., None] * direction[None])
        j_trial, _ = problem.value(zs_t, problem.etas(zs_t))
        zs = problem.split(z)
        j0, scale0 = problem.value(zs, problem.etas(zs))
        return j_trial, j0, scale0

    def factor(self, lin: Linearisation) -> tuple[Any, None]:
        """Blocks and block factor of ``H(z*)``. A saddle (``H`` not positive definite) still
        counts as converged; ``DeepSolverStats.local_minimum`` reports it."""
        zs, etas, _ = lin.cache
        diag, off = self.problem.hessian_blocks(zs, etas)
        return (BlockTridiagonalCholesky.factor(diag, off), diag, off), None


def _stack_stats(
    problem: StackProblem, newton: StackNewtonProblem, joint: SolverStats, fac: Any
) -> DeepSolverStats:
    """``DeepSolverStats`` from the joint stats: per-layer stats from the residual blocks, the
    curvature counters, and the smallest eigenvalue of ``H(z*)`` at saddles."""
    (fac, diag, off) = fac
    residual, threshold = joint.extra["block_residual"], joint.extra["block_threshold"]
    failed = joint.extra["stalled"]
    layer_ok = residual <= threshold
    n = residual.shape[1]
    min_eig = torch.full((n,), math.nan, dtype=residual.dtype, device=residual.device)
    if not bool(fac.ok.all()):
        min_eig[~fac.ok] = torch.linalg.eigvalsh(assemble_dense(diag, off)[~fac.ok])[..., 0]
    layer_stats = [
        SolverStats(
            solver=f"newton (layer {l + 1}: {problem.layers[l].name})",
            iterations=joint.iterations,
            residual=residual[l],
            threshold=threshold[l],
            converged=layer_ok[l] & ~failed,
            residual_kind="grad_norm",
        )
        for l in range(problem.depth)
    ]
    joint = SolverStats(
        solver=joint.solver,
        iterations=joint.iterations,
        residual=torch.linalg.vector_norm(residual, dim=0),
        threshold=torch.linalg.vector_norm(threshold, dim=0),
        converged=joint.converged,
        residual_kind="grad_norm",
        extra={"stalled": failed},
    )
    return DeepSolverStats(
        joint=joint,
        layers=layer_stats,
        negative_curvature=newton.negative_curvature,
        most_negative_eigenvalue=newton.most_negative,
        local_minimum=fac.ok,
        min_eigenvalue=min_eig,
    )


def solve_stack(
    problem: StackProblem, z0: Tensor | None = None, config: Any = None
) -> StackSolution:
    """Newton with Armijo line search on the joint ``J`` (package docstring), batched over
    samples, through ``runtime.solvers.newton_solve``.

    Convergence of sample ``s``: ``|g_l| <= tol + rtol * scale_l`` for every layer ``l``.
    Returns the solution, the stats and the block Cholesky factor of ``H(z*)``.
    """
    cfg = as_config(config)
    n, total = problem.Y.shape[0], sum(problem.sizes)
    dtype, device = problem.Ws[0].dtype, problem.Ws[0].device
    z = torch.zeros(n, total, dtype=dtype, device=device) if z0 is None else z0
    newton = StackNewtonProblem(problem, n, dtype, device)
    solution = newton_solve(newton, z, cfg)
    stats = _stack_stats(problem, newton, solution.stats, solution.factor)
    fac, diag, off = solution.factor
    status = solution.status
    assert status is not None
    status = status.masked_fill(stats.converged & ~stats.local_minimum, int(Status.SINGULAR))
    return StackSolution(
        z=solution.value, stats=stats, factor=fac, diag=diag, off=off, status=status
    )
