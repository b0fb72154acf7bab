"""The fused DEQ layer of exponential-family PCA: the generated ops ``solve`` and
``solve_backward`` of a family (``<name>_fused.cpp``, ``.cu``), with their fake and autograd
rules, as a drop-in for ``implicit.newton_equilibrium``.

``solve(Y, W, B, z0?, lam, tol, rtol, max_iter, armijo_c, backtrack_factor,
line_search_steps, min_step) -> (z, converged, iterations, residual, threshold, objective)``
runs, per sample, the Newton / Fisher-scoring solve of ``runtime.solvers.newton`` on

    J(z) = lam/2 |z|^2 - z^T W^T T(y) + 1^T A(W z + B)

(same line search, same stopping test, so it agrees with the torch path to rounding) and also
returns the outer objective of Theorem 1 (6) at the solution, ``objective_s = 1^T A(eta_s) -
T(y_s)^T eta_s + lam/2 |z*_s|^2`` (``ExpFamPCA.loss``'s per-sample term, so the loss needs no
torch graph of its own). ``solve_backward(grad_z, grad_objective, z, Y, W, B, lam)`` is the
implicit backward of ``runtime.implicit`` for both outputs: with ``g = lam z* - W^T (T -
sigma)`` (dobjective/dz*, the solver's residual), ``u = H(z*)^{-1} (grad_z + grad_objective
g)`` and ``q = sigma' * W u + grad_objective (T - sigma)``: ``grad_W = sum_s (T_s - sigma_s)
u_s^T - q_s z_s^T``, ``grad_B = -sum_s q_s``, ``grad_Y = T'(Y) * (W u - grad_objective eta)``.

Backends (``ExpFamPCA(backend=...)``): ``"torch"`` the torch path; ``"fused"`` the fused op
(built on first use, cached); ``"auto"`` the fused op when it applies and builds. The fused op
applies to the Cholesky Newton solver with latent dimension <= ``MAX_FUSED_LATENT``; otherwise,
or when it cannot be built, the torch path runs (with one warning when ``"fused"`` was asked).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .family import as_torch_family
from .fused_build import FusedUnavailableWarning, fused_built, load_fused
from .solvers import SolverConfig, SolverStats, as_config
from .solvers.inner import require_inside_start

BACKENDS = ("auto", "torch", "fused")
#: Largest latent dimension of the fused solver (its per-sample arrays are fixed-size).
MAX_FUSED_LATENT = 64
#: Size of data (rows x columns) from which a fit under ``"auto"`` compiles a family's fused
#: solver that is not built yet. Below it the fit runs the torch path unless the solver is
#: already built. The first build takes about 20 s on one core; the second-order fit on the
#: torch path costs about 6-12 us per entry more than the fused one (the paper's full-scale
#: fits, 42560 x 50: 13-20 s against 1.2-3.5 s, BENCHMARKS.md), so a build at 10^6 entries
#: (about 10 s of torch fitting) pays for itself from the third fit of that family on.
AUTO_BUILD_MIN_ENTRIES = 1_000_000


def _register_rules(namespace: str) -> None:
    """Fake kernels of both ops (shapes only, for torch.compile and opcheck). The autograd of
    ``solve`` (backward by ``solve_backward``) is registered by the C++ source itself: the
    Python ``torch.library.register_autograd`` wrapper cost as much per forward+backward as
    the solve of 500 samples."""

    @torch.library.register_fake(f"{namespace}::solve")
    def _(Y, W, B, z0, lam, tol, rtol, max_iter, armijo_c, backtrack, steps, min_step):
        n, l = Y.shape[0], W.shape[1]
        return (
            Y.new_empty((n, l)),
            Y.new_empty((n,), dtype=torch.bool),
            Y.new_empty((n,), dtype=torch.long),
            Y.new_empty((n,)),
            Y.new_empty((n,)),
            Y.new_empty((n,)),
        )

    @torch.library.register_fake(f"{namespace}::solve_backward")
    def _(grad_z, grad_objective, z, Y, W, B, lam):
        return W.new_empty(W.shape), B.new_empty(B.shape), Y.new_empty(Y.shape)


def fused_ops(family: Any, verbose: bool = False) -> Any:
    """``torch.ops.<namespace>`` of ``family``'s fused layer, built on first use, or ``None``
    (with one warning) when it cannot be built."""
    (namespace,) = load_fused([family], _register_rules, verbose)
    return None if namespace is None else getattr(torch.ops, namespace)


def fused_ops_many(families: list[Any], verbose: bool = False) -> list[Any]:
    """:func:`fused_ops` of several families compiled as one extension (one slow build)."""
    namespaces = load_fused(families, _register_rules, verbose)
    return [None if n is None else getattr(torch.ops, n) for n in namespaces]


def resolve_backend(family: Any, backend: str, latent_dim: int, solver: str) -> Any:
    """The fused ops to use for this layer, or ``None`` for the torch path (module docstring);
    explicitly asking for ``"fused"`` where it does not apply warns once per call."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    reason = None
    if solver != "newton":
        reason = f"solver {solver!r} (the fused layer is the Cholesky Newton solver)"
    elif latent_dim > MAX_FUSED_LATENT:
        reason = f"latent dimension {latent_dim} > {MAX_FUSED_LATENT}"
    if reason is not None:
        if backend == "fused":
            warnings.warn(
                f"deqfam: the fused solver does not apply ({reason}); using the torch path",
                FusedUnavailableWarning,
                stacklevel=3,
            )
        return None
    return fused_ops(family)


def fit_backend(family: Any, backend: str, n_entries: int) -> str:
    """The backend a fit of ``n_entries`` data entries runs: ``backend`` itself, except that
    ``"auto"`` becomes ``"torch"`` when ``family``'s fused solver is not built yet and the
    data are smaller than ``AUTO_BUILD_MIN_ENTRIES`` (a first build would cost more than it
    saves)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto" and n_entries < AUTO_BUILD_MIN_ENTRIES and not fused_built(family):
        return "torch"
    return backend


def fused_equilibrium(
    ops: Any,
    family: Any,
    W: Tensor,
    B: Tensor,
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
    z0: Tensor | None = None,
) -> tuple[Tensor, SolverStats]:
    """Differentiable MAP latents ``Z*`` and solver stats from the fused op ``ops.solve``:
    the same contract as ``implicit.newton_equilibrium(..., method="newton")``. ``z0`` (default
    0) must put ``W z0 + B`` inside the family's domain."""
    z, stats, _ = fused_solve(ops, family, W, B, Y, lam, config, z0)
    return z, stats


def fused_solve(
    ops: Any,
    family: Any,
    W: Tensor,
    B: Tensor,
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
    z0: Tensor | None = None,
) -> tuple[Tensor, SolverStats, Tensor]:
    """:func:`fused_equilibrium` and the per-sample outer objective at ``Z*`` (module
    docstring), differentiable w.r.t. ``W``, ``B`` and ``Y`` (total derivative)."""
    fam = as_torch_family(family)
    if lam <= 0:
        raise ValueError(f"lam must be > 0 (strong convexity), got {lam!r}")
    cfg = as_config(config)
    z, converged, iterations, residual, threshold, objective = ops.solve(
        Y,
        W,
        B,
        None if z0 is None else z0.detach(),
        float(lam),
        float(cfg.tol),
        float(cfg.resolved_rtol(W.dtype)),
        int(cfg.max_iter),
        float(cfg.armijo_c),
        float(cfg.backtrack_factor),
        int(cfg.line_search_steps),
        float(cfg.min_step),
    )
    # the kernel flags a start W z0 + B outside the domain with iterations = -1 and
    # converged = False (it checks every coordinate as it evaluates J there, so no torch pass
    # over (N, d) is needed here); the flags are read only when some sample did not converge
    if not bool(converged.all()):
        require_inside_start(
            iterations >= 0,
            f"W z0 + B outside the domain {fam.domain} of family {fam.name!r}",
            "choose B (or z0) so that eta starts strictly inside the domain",
        )
    stats = SolverStats(
        solver="newton (fused)",
        iterations=iterations,
        residual=residual,
        threshold=threshold,
        converged=converged,
        residual_kind="grad_norm",
    )
    return z, stats, objective


__all__ = [
    "AUTO_BUILD_MIN_ENTRIES",
    "BACKENDS",
    "MAX_FUSED_LATENT",
    "fit_backend",
    "fused_equilibrium",
    "fused_ops",
    "fused_ops_many",
    "fused_solve",
    "resolve_backend",
]
