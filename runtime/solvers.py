"""Batched equilibrium solvers for exponential-family DEQ layers.

Two kinds of solver live here.

*Objective-based* (``newton``, ``cg_newton``) solve the inner problem of Theorem 1 (6),
for every sample ``s`` independently,

    J_s(z) = lam/2 |z|^2 - z^T W^T T(Y_s) + 1^T A(W z + B),                      (Theorem 1)

which is strongly convex (``A`` strictly convex, ``lam > 0``). Its gradient is the left-hand
side of (9), ``F(z) = lam z - W^T (T(Y_s) - sigma(W z + B))``, and its Hessian is the Laplace
precision of Appendix D, ``H(z) = lam I + W^T diag(sigma'(W z + B)) W``. Newton / Fisher scoring
(for a canonical link the observed and expected information coincide) with a backtracking Armijo
line search on ``J`` converges globally and quadratically near the solution. Their ``residual``
statistic is the gradient norm ``|F(z)|_2``.

*Generic* (``fixed_point``, ``anderson``, ``broyden``) find ``z = f(z)`` for any batched map
``f`` with no objective, e.g. the DEQ (10) ``z = (1/lam) W^T (T(Y) - sigma(W z + B))``. Their
``residual`` statistic is ``|f(z) - z|_2``. They converge only under conditions such as the
contraction certificate below.

All solvers work on a batch ``z`` of shape ``(N, ...)`` (one row per sample), keep a per-sample
``active`` mask so converged (or failed) samples stop being updated, and synchronise with the
host once per iteration (a single ``.any()`` on the mask). Non-convergence is never silent: the
returned ``SolverStats`` says which samples failed and ``check_convergence`` applies a policy.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from .family import TorchFamily, as_torch_family

POLICIES = ("raise", "warn", "ignore")


class ConvergenceError(RuntimeError):
    """Raised by ``check_convergence(stats, "raise")`` when some samples did not converge."""


class ConvergenceWarning(RuntimeWarning):
    """Warned by ``check_convergence(stats, "warn")`` when some samples did not converge."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolverConfig:
    """Options shared by all solvers (each solver reads the ones that concern it).

    Convergence of sample ``s`` is ``residual_s <= tol + rtol * scale_s`` where ``scale_s`` is
    the magnitude of the terms whose cancellation gives the residual (for Newton
    ``lam|z| + | |W|^T (|T(Y)| + |sigma|) |``, for the generic solvers ``|f(z)|``), so that a
    tolerance below rounding level is not demanded of large-count data.

    Attributes:
        tol: absolute tolerance on the residual.
        rtol: relative tolerance; ``None`` means ``100 * eps`` of the working dtype.
        max_iter: maximum number of (outer) iterations.
        damping: relaxation ``beta`` in ``z <- (1 - beta) z + beta f(z)`` (fixed_point, anderson)
            or the step length of the Broyden step.
        memory: history length of Anderson acceleration / rank limit of Broyden's inverse.
        anderson_reg: Tikhonov regularisation of Anderson's least squares, relative to the
            mean squared residual in the history.
        restart_growth: generic solvers restart from the best iterate (clearing their history)
            when the residual exceeds ``restart_growth`` times the best residual so far.
        divergence_factor: a sample whose residual exceeds this factor times its initial
            residual (or is not finite) under ``fixed_point`` is marked failed and frozen at its
            best iterate.
        armijo_c: sufficient-decrease constant ``c`` in ``J(z + t d) <= J(z) + c t grad^T d``.
        backtrack_factor: step shrink factor of the line search.
        line_search_steps: number of trial steps ``t_k = scale * factor^k`` evaluated at once
            (batched) per Newton iteration, so the line search costs no host synchronisation.
        min_step: a sample whose admissible step falls below this is declared stalled (failed).
        cg_rtol: relative residual tolerance of conjugate gradients in implicit backward solves
            and the final Newton-CG steps.
        cg_max_iter: maximum CG iterations per solve (``None``: ``2 * latent_dim + 20``).
    """

    tol: float = 1e-10
    rtol: float | None = None
    max_iter: int = 100
    damping: float = 1.0
    memory: int = 5
    anderson_reg: float = 1e-10
    restart_growth: float = 1e3
    divergence_factor: float = 1e10
    armijo_c: float = 1e-4
    backtrack_factor: float = 0.5
    line_search_steps: int = 3
    min_step: float = 1e-20
    cg_rtol: float = 1e-12
    cg_max_iter: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "tol",
            "anderson_reg",
            "restart_growth",
            "divergence_factor",
            "min_step",
            "cg_rtol",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"solver option {name} must be > 0, got {getattr(self, name)!r}")
        if self.rtol is not None and self.rtol < 0:
            raise ValueError(f"solver option rtol must be >= 0, got {self.rtol!r}")
        for name in ("max_iter", "memory", "line_search_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"solver option {name} must be an integer >= 1, got {value!r}")
        if self.cg_max_iter is not None and self.cg_max_iter < 1:
            raise ValueError(f"solver option cg_max_iter must be >= 1, got {self.cg_max_iter!r}")
        if not 0 < self.damping <= 2:
            raise ValueError(f"solver option damping must be in (0, 2], got {self.damping!r}")
        if not 0 < self.armijo_c < 0.5:
            raise ValueError(f"solver option armijo_c must be in (0, 0.5), got {self.armijo_c!r}")
        if not 0 < self.backtrack_factor < 1:
            raise ValueError(
                f"solver option backtrack_factor must be in (0, 1), got {self.backtrack_factor!r}"
            )

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None) -> SolverConfig:
        """Build a config, rejecting unknown keys with a 'did you mean' suggestion."""
        options = dict(options or {})
        valid = cls.option_names()
        for key in options:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.4)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown solver option {key!r}{hint} (valid options: {', '.join(valid)})"
                )
        return cls(**options)

    def resolved_rtol(self, dtype: torch.dtype) -> float:
        """``rtol`` or its dtype-dependent default ``100 * eps``."""
        if self.rtol is not None:
            return self.rtol
        return 100.0 * torch.finfo(dtype).eps


def make_config(**options: Any) -> SolverConfig:
    """``SolverConfig.from_dict(options)``: keyword form, same validation."""
    return SolverConfig.from_dict(options)


def as_config(config: SolverConfig | dict[str, Any] | None) -> SolverConfig:
    """Accept a SolverConfig, a dict of options (validated) or None (defaults)."""
    if isinstance(config, SolverConfig):
        return config
    return SolverConfig.from_dict(config)


# --------------------------------------------------------------------------------------------
# Statistics and the non-convergence policy
# --------------------------------------------------------------------------------------------


@dataclass
class SolverStats:
    """Per-sample outcome of a batched solve (all tensors have shape ``(N,)``).

    Attributes:
        solver: name of the solver.
        iterations: iterations in which the sample was updated.
        residual: final residual of the returned iterate; ``residual_kind`` says which norm.
        threshold: the tolerance ``tol + rtol * scale`` the residual was compared with.
        converged: ``residual <= threshold``.
        residual_kind: ``"grad_norm"`` (|grad J|, objective solvers) or
            ``"fixed_point_residual"`` (|f(z) - z|, generic solvers).
    """

    solver: str
    iterations: Tensor
    residual: Tensor
    threshold: Tensor
    converged: Tensor
    residual_kind: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.converged.numel())

    @property
    def n_failed(self) -> int:
        return int((~self.converged).sum())

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    @property
    def convergence_rate(self) -> float:
        return float(self.converged.double().mean()) if self.n_samples else 1.0

    def failed_indices(self) -> list[int]:
        return torch.nonzero(~self.converged).flatten().tolist()

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (counts, max residual, iteration range)."""
        it = self.iterations
        return {
            "solver": self.solver,
            "residual_kind": self.residual_kind,
            "n_samples": self.n_samples,
            "n_failed": self.n_failed,
            "max_residual": float(self.residual.max()) if self.n_samples else 0.0,
            "max_iterations": int(it.max()) if self.n_samples else 0,
            "mean_iterations": float(it.double().mean()) if self.n_samples else 0.0,
        }

    def __str__(self) -> str:
        s = self.summary()
        return (
            f"{s['solver']}: {s['n_samples'] - s['n_failed']}/{s['n_samples']} converged, "
            f"max {s['residual_kind']} {s['max_residual']:.3g}, "
            f"iterations <= {s['max_iterations']}"
        )


def check_convergence(stats: SolverStats, policy: str = "warn", what: str = "") -> None:
    """Apply a non-convergence policy: ``"raise"`` (ConvergenceError), ``"warn"``
    (ConvergenceWarning) or ``"ignore"``. The message names how many and which samples failed.
    """
    if policy not in POLICIES:
        raise ValueError(f"on_nonconvergence must be one of {POLICIES}, got {policy!r}")
    if policy == "ignore" or stats.all_converged:
        return
    failed = stats.failed_indices()
    shown = failed[:10]
    more = f" and {len(failed) - len(shown)} more" if len(failed) > len(shown) else ""
    worst = float(stats.residual[~stats.converged].max())
    prefix = f"{what}: " if what else ""
    message = (
        f"{prefix}{stats.solver} did not converge for {len(failed)} of {stats.n_samples} samples "
        f"(indices {shown}{more}); worst {stats.residual_kind} {worst:.3g} after "
        f"{int(stats.iterations.max())} iterations"
    )
    if policy == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=2)


def _row_norm(x: Tensor) -> Tensor:
    """Euclidean norm of every sample (row) of a batch."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)


# --------------------------------------------------------------------------------------------
# The inner problem of Theorem 1
# --------------------------------------------------------------------------------------------


class InnerProblem:
    """``J_s(z) = lam/2|z|^2 - z^T W^T T_s + 1^T A(W z + B)`` for a batch of samples.

    ``T`` is ``T(Y)`` of shape ``(N, d)``, ``W`` is ``(d, l)``, ``B`` is ``(d,)``; latents are rows
    of ``z`` with shape ``(N, l)`` so ``eta = z W^T + B`` has shape ``(N, d)``.
    """

    def __init__(self, family: Any, W: Tensor, B: Tensor, T: Tensor, lam: float) -> None:
        if lam <= 0:
            raise ValueError(f"lam must be > 0 (strong convexity), got {lam!r}")
        self.family: TorchFamily = as_torch_family(family)
        self.W, self.B, self.T, self.lam = W, B, T, float(lam)
        self.WtT = T @ W  # rows W^T T(Y_s), reused by every objective evaluation
        self.abs_W = W.abs()
        self.abs_T = T.abs()
        # Value substituted for out-of-domain eta before evaluating A, so no NaN is produced
        # in a branch that torch.where then discards.
        self.safe_eta = self.family.interior_point()
        self.whole_line = self.family.domain == (-math.inf, math.inf)

    def eta(self, z: Tensor) -> Tensor:
        return z @ self.W.T + self.B

    def value(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
        """``J`` (``+inf`` where ``eta`` leaves the domain) and the magnitude of its terms.

        ``z``/``eta`` may carry extra leading dimensions (batched trial steps).
        """
        if self.whole_line:
            # Domain R: no masking needed; overflow/NaN make J non-finite, which the line
            # search rejects.
            a = self.family.log_partition(eta)
            inside_all = None
        else:
            inside = self.family.in_domain(eta)
            a = self.family.log_partition(eta.masked_fill(~inside, self.safe_eta))
            inside_all = inside.all(-1)
        quad = 0.5 * self.lam * (z * z).sum(-1)
        lin = (z * self.WtT).sum(-1)
        value = quad - lin + a.sum(-1)
        if inside_all is not None:
            value = value.masked_fill(~inside_all, math.inf)
        scale = quad + lin.abs() + a.abs().sum(-1)
        return value, scale

    def gradient(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``F(z) = lam z - W^T (T - sigma(eta))`` (eq. (9)), the activation, and the magnitude
        ``lam|z| + | |W|^T (|T| + |sigma|) |`` of the terms that cancel in ``F``."""
        sigma = self.family.activation(eta)
        grad = self.lam * z - (self.T - sigma) @ self.W
        scale = self.lam * _row_norm(z) + _row_norm((self.abs_T + sigma.abs()) @ self.abs_W)
        return grad, sigma, scale

    def hessian(self, eta: Tensor) -> Tensor:
        """``H = lam I + W^T diag(sigma'(eta)) W`` (Appendix D), shape ``(N, l, l)``."""
        sp = self.family.activation_grad(eta)
        return hessian_from_slope(self.W, sp, self.lam)

    def hvp(self, v: Tensor, sp: Tensor) -> Tensor:
        """``H v = lam v + W^T (sigma' * (W v))`` without forming ``H``."""
        return self.lam * v + (sp * (v @ self.W.T)) @ self.W


def hessian_from_slope(W: Tensor, sp: Tensor, lam: float) -> Tensor:
    """``lam I + W^T diag(sp_s) W`` for every row ``sp_s`` of ``sp`` (shape ``(N, l, l)``)."""
    l = W.shape[1]
    gram = torch.einsum("nd,di,dj->nij", sp, W, W)
    return gram + lam * torch.eye(l, dtype=W.dtype, device=W.device)


def batched_cg(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    rtol: Tensor | float,
    max_iter: int,
    check_every: int = 8,
) -> tuple[Tensor, Tensor, Tensor]:
    """Conjugate gradients for ``M x = b`` row by row (``M`` symmetric positive definite).

    Stops a row when ``|b - M x| <= rtol |b|``. Returns ``(x, iterations, converged)``. The
    host is consulted every ``check_every`` iterations only.
    """
    rtol = torch.as_tensor(rtol, dtype=b.dtype, device=b.device)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(-1)
    target = (rtol * torch.sqrt(rs)) ** 2
    active = rs > target
    iterations = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    tiny = torch.finfo(b.dtype).tiny
    for k in range(max_iter):
        mp = matvec(p)
        pmp = (p * mp).sum(-1)
        alpha = torch.where(active & (pmp > 0), rs / pmp.clamp_min(tiny), torch.zeros_like(rs))
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * mp
        iterations += active.long()
        rs_new = (r * r).sum(-1)
        beta = rs_new / rs.clamp_min(tiny)
        active = active & (rs_new > target) & (pmp > 0)
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        rs = torch.where(active, rs_new, rs)
        if k % check_every == check_every - 1 and not bool(active.any()):
            break
    converged = (r * r).sum(-1) <= target
    return x, iterations, converged


@dataclass
class NewtonResult:
    """Solution of the inner problem, with the Cholesky factor of ``H(z*)`` when available."""

    z: Tensor
    stats: SolverStats
    cholesky: Tensor | None


def _line_search(
    problem: InnerProblem,
    z: Tensor,
    eta: Tensor,
    grad: Tensor,
    direction: Tensor,
    step_scale: Tensor,
    cfg: SolverConfig,
) -> tuple[Tensor, Tensor]:
    """Batched backtracking Armijo search on ``J``, every trial step at once.

    Trial steps are ``t_k = step_scale * factor^k``, ``k < line_search_steps``; a trial is
    admissible when ``W(z + t d) + B`` stays strictly inside the domain and
    ``J(z + t d) <= J(z) + c t grad^T d + slack``, where ``slack = 64 eps * |terms of J|``
    absorbs rounding so a sample at its rounding-level optimum is not reported as stalled.
    Returns the largest admissible step per sample and whether one existed.
    """
    k = torch.arange(cfg.line_search_steps, dtype=z.dtype, device=z.device)
    steps = step_scale[None, :] * cfg.backtrack_factor ** k[:, None]  # (K, N)
    d_eta = direction @ problem.W.T
    z_trial = z[None] + steps[..., None] * direction[None]
    eta_trial = eta[None] + steps[..., None] * d_eta[None]
    j_trial, _ = problem.value(z_trial, eta_trial)
    j0, scale0 = problem.value(z, eta)
    slope = (grad * direction).sum(-1)
    slack = 64 * torch.finfo(z.dtype).eps * scale0
    admissible = torch.isfinite(j_trial) & (
        j_trial <= j0[None] + cfg.armijo_c * steps * slope[None] + slack[None]
    )
    found = admissible.any(0)
    first = torch.argmax(admissible.to(torch.int8), dim=0)  # first True = largest step
    step = steps.gather(0, first[None])[0]
    return step, found


def _check_feasible_start(problem: InnerProblem, z0: Tensor) -> None:
    eta0 = problem.eta(z0)
    inside = problem.family.in_domain(eta0).all(-1)
    if not bool(inside.all()):
        bad = torch.nonzero(~inside).flatten().tolist()
        raise ValueError(
            f"the starting point puts W z0 + B outside the domain {problem.family.domain} of "
            f"family {problem.family.name!r} for {len(bad)} samples (first: {bad[:10]}); "
            f"choose B (or z0) so that eta starts strictly inside the domain"
        )


def _objective_solve(
    family: Any,
    W: Tensor,
    B: Tensor,
    T: Tensor,
    lam: float,
    z0: Tensor | None,
    config: SolverConfig | dict[str, Any] | None,
    use_cholesky: bool,
) -> NewtonResult:
    cfg = as_config(config)
    problem = InnerProblem(family, W, B, T, lam)
    n, l = T.shape[0], W.shape[1]
    z = torch.zeros(n, l, dtype=W.dtype, device=W.device) if z0 is None else z0.clone()
    _check_feasible_start(problem, z)
    rtol = cfg.resolved_rtol(z.dtype)
    cg_max = cfg.cg_max_iter or 2 * l + 20
    iterations = torch.zeros(n, dtype=torch.long, device=z.device)
    failed = torch.zeros(n, dtype=torch.bool, device=z.device)
    step_scale = torch.ones(n, dtype=z.dtype, device=z.device)
    shrink_all = cfg.backtrack_factor**cfg.line_search_steps
    for it in range(cfg.max_iter + 1):
        eta = problem.eta(z)
        grad, _, scale = problem.gradient(z, eta)
        gnorm = _row_norm(grad)
        threshold = cfg.tol + rtol * scale
        active = (gnorm > threshold) & ~failed
        if not bool(active.any()):  # the one host synchronisation per iteration
            break
        if it == cfg.max_iter:
            break
        if use_cholesky:
            hess = problem.hessian(eta)
            chol, info = torch.linalg.cholesky_ex(hess)
            newton_dir = -torch.cholesky_solve(grad[..., None], chol)[..., 0]
            # A failed factorisation (only possible with non-finite sigma') falls back to
            # steepest descent, which the line search still makes globally convergent.
            direction = torch.where((info == 0)[:, None], newton_dir, -grad)
        else:
            sp = problem.family.activation_grad(eta)
            # Inexact Newton forcing term min(0.5, sqrt|g|) |g| gives superlinear convergence;
            # cg_rtol caps it so the final steps are accurate.
            forcing = torch.clamp(torch.sqrt(gnorm), max=0.5).clamp_min(cfg.cg_rtol)
            sol, _, _ = batched_cg(lambda v, sp=sp: problem.hvp(v, sp), grad, forcing, cg_max)
            direction = -sol
        step, found = _line_search(problem, z, eta, grad, direction, step_scale, cfg)
        move = active & found
        z = torch.where(move[:, None], z + step[:, None] * direction, z)
        iterations += move.long()
        # Restart each accepted iteration from the full Newton step (quadratic convergence);
        # after a fully rejected batch of trials continue from the smallest step tried.
        step_scale = torch.where(
            move,
            torch.ones_like(step_scale),
            torch.where(active, step_scale * shrink_all, step_scale),
        )
        failed = failed | (active & (step_scale < cfg.min_step))
    converged = (gnorm <= threshold) & ~failed
    chol = None
    if use_cholesky:
        chol, info = torch.linalg.cholesky_ex(problem.hessian(eta))
        # H = lam I + W^T diag(sigma') W is positive definite unless sigma' overflowed: such a
        # sample has no usable factor for the implicit backward, so it must not count as
        # converged (the caller's on_nonconvergence policy then reports it)
        converged = converged & (info == 0)
    stats = SolverStats(
        solver="newton" if use_cholesky else "cg_newton",
        iterations=iterations,
        residual=gnorm,
        threshold=threshold,
        converged=converged,
        residual_kind="grad_norm",
        extra={"stalled": failed},
    )
    return NewtonResult(z=z, stats=stats, cholesky=chol)


def newton(
    family: Any,
    W: Tensor,
    B: Tensor,
    T: Tensor,
    lam: float,
    z0: Tensor | None = None,
    config: SolverConfig | dict[str, Any] | None = None,
) -> NewtonResult:
    """Newton / Fisher scoring on ``J_s`` (Theorem 1 (6)) for every sample, batched.

    Iterates ``z <- z + t d`` with ``d = -H(z)^{-1} grad J(z)``, ``H = lam I + W^T diag(sigma')
    W`` factored by a batched ``cholesky_ex``, and ``t`` from a per-sample backtracking Armijo
    search on ``J`` that also keeps ``W z + B`` strictly inside the family's domain. Since
    ``J_s`` is ``lam``-strongly convex this converges globally, and quadratically near ``z*``
    where the full step is accepted. ``T`` is ``T(Y)`` (shape ``(N, d)``); ``z0`` defaults to 0
    and must put ``eta = W z0 + B`` inside the domain.

    Returns the solution, its stats (``residual`` = ``|grad J(z)|_2``) and the Cholesky factor
    ``L`` of ``H(z*) = L L^T`` for the implicit backward and the Laplace approximation.
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
) -> NewtonResult:
    """Inexact Newton (Newton-CG) on ``J_s``: like ``newton`` but the Newton system is solved
    by conjugate gradients on Hessian-vector products ``lam v + W^T (sigma' * (W v))``, so no
    ``l x l`` matrix is formed (for large latent dimension). ``cholesky`` is ``None``. The CG
    inner loop consults the host once every 8 CG iterations (in addition to the one convergence
    test per Newton iteration).
    """
    return _objective_solve(family, W, B, T, lam, z0, config, use_cholesky=False)


# --------------------------------------------------------------------------------------------
# Generic fixed-point solvers
# --------------------------------------------------------------------------------------------

FixedPointMap = Callable[[Tensor], Tensor]


def _flat_map(f: FixedPointMap, shape: torch.Size) -> FixedPointMap:
    """Run ``f`` on ``shape``-shaped batches while the solver works on ``(N, D)`` rows."""

    def flat(x: Tensor) -> Tensor:
        return f(x.reshape(shape)).reshape(shape[0], -1)

    return flat


class _BestTracker:
    """Per-sample best (lowest residual) iterate, returned at the end and used for restarts."""

    def __init__(self, x: Tensor, fx: Tensor, res: Tensor) -> None:
        self.x, self.fx = x.clone(), fx.clone()
        self.res = torch.where(torch.isfinite(res), res, torch.full_like(res, math.inf))

    def update(self, x: Tensor, fx: Tensor, res: Tensor, mask: Tensor) -> None:
        better = mask & (res < self.res)
        self.x = torch.where(better[:, None], x, self.x)
        self.fx = torch.where(better[:, None], fx, self.fx)
        self.res = torch.where(better, res, self.res)


def _generic_stats(
    name: str, best: _BestTracker, thr: Tensor, iterations: Tensor, failed: Tensor
) -> SolverStats:
    return SolverStats(
        solver=name,
        iterations=iterations,
        residual=best.res,
        threshold=thr,
        converged=(best.res <= thr) & ~failed,
        residual_kind="fixed_point_residual",
    )


def _threshold(cfg: SolverConfig, fx: Tensor) -> Tensor:
    return cfg.tol + cfg.resolved_rtol(fx.dtype) * _row_norm(fx)


def fixed_point(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> tuple[Tensor, SolverStats]:
    """Damped Picard iteration ``z <- (1 - beta) z + beta f(z)`` (``beta`` = ``damping``).

    Converges when the damped map is a contraction (see ``contraction_certificate``). A sample
    whose residual ``|f(z) - z|`` becomes non-finite or exceeds ``divergence_factor`` times its
    initial residual is declared failed and frozen; every sample returns its best iterate.
    """
    cfg = as_config(config)
    shape = z0.shape
    g = _flat_map(f, shape)
    x = z0.reshape(shape[0], -1).clone()
    fx = g(x)
    res = _row_norm(fx - x)
    best = _BestTracker(x, fx, res)
    res0 = best.res.clamp_min(torch.finfo(x.dtype).tiny)
    failed = ~torch.isfinite(res)
    iterations = torch.zeros(shape[0], dtype=torch.long, device=x.device)
    beta = cfg.damping
    for _ in range(cfg.max_iter):
        thr = _threshold(cfg, best.fx)
        active = (best.res > thr) & ~failed
        if not bool(active.any()):
            break
        x = torch.where(active[:, None], (1 - beta) * x + beta * fx, x)
        fx = g(x)
        res = _row_norm(fx - x)
        iterations += active.long()
        best.update(x, fx, res, active)
        diverged = active & (~torch.isfinite(res) | (res > cfg.divergence_factor * res0))
        failed = failed | diverged
    thr = _threshold(cfg, best.fx)
    return best.x.reshape(shape), _generic_stats("fixed_point", best, thr, iterations, failed)


def _anderson_weights(xs: Tensor, fs: Tensor, valid: Tensor, reg: float) -> Tensor:
    """Anderson mixing weights: ``argmin |sum_j a_j g_j|^2 + reg`` s.t. ``sum_j a_j = 1``
    over the valid history columns, with residuals ``g_j = f_j - x_j`` (shape ``(N, m, D)``).

    Solved via the bordered (KKT) system ``[[0, 1^T], [1, G G^T + mu I]] [nu; a] = [1; 0]``;
    invalid columns get a zero border and unit diagonal so their weight is exactly 0.
    """
    n, m, _ = xs.shape
    vf = valid.to(xs.dtype)
    gmat = (fs - xs) * vf[..., None]
    gram = gmat @ gmat.transpose(1, 2)
    # Regularise relative to the residual scale so the weights are scale invariant.
    mean_sq = torch.diagonal(gram, dim1=1, dim2=2).sum(-1) / vf.sum(-1).clamp_min(1)
    mu = reg * mean_sq.clamp_min(torch.finfo(xs.dtype).tiny)
    eye = torch.eye(m, dtype=xs.dtype, device=xs.device)
    block = gram + mu[:, None, None] * eye + torch.diag_embed(1 - vf)
    kkt = torch.zeros(n, m + 1, m + 1, dtype=xs.dtype, device=xs.device)
    kkt[:, 0, 1:] = vf
    kkt[:, 1:, 0] = vf
    kkt[:, 1:, 1:] = block
    rhs = torch.zeros(n, m + 1, 1, dtype=xs.dtype, device=xs.device)
    rhs[:, 0] = 1.0
    sol, info = torch.linalg.solve_ex(kkt, rhs)
    weights = sol[:, 1:, 0]
    # A singular system (e.g. non-finite history) falls back to the newest column alone.
    return torch.where(
        (info == 0)[:, None] & torch.isfinite(weights).all(-1, keepdim=True),
        weights,
        torch.zeros_like(weights),
    )


def anderson(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> tuple[Tensor, SolverStats]:
    """Anderson acceleration (type II, Walker & Ni) with relaxation ``beta`` = ``damping``.

    ``x_{k+1} = sum_j a_j ((1 - beta) x_j + beta f(x_j))`` over the last ``memory`` iterates,
    ``a`` minimising ``|sum_j a_j (f(x_j) - x_j)|`` subject to ``sum_j a_j = 1``. Safeguard: a
    sample whose residual exceeds ``restart_growth`` times its best (or is not finite) restarts
    from its best iterate with an empty history. Returns the best iterate of every sample.
    """
    cfg = as_config(config)
    shape = z0.shape
    g = _flat_map(f, shape)
    x = z0.reshape(shape[0], -1).clone()
    n, dim = x.shape
    m = cfg.memory
    fx = g(x)
    res = _row_norm(fx - x)
    best = _BestTracker(x, fx, res)
    xs = torch.zeros(n, m, dim, dtype=x.dtype, device=x.device)
    fs = torch.zeros_like(xs)
    valid = torch.zeros(n, m, dtype=torch.bool, device=x.device)
    xs[:, 0], fs[:, 0], valid[:, 0] = x, fx, True
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    failed = ~torch.isfinite(res)
    beta = cfg.damping
    for k in range(1, cfg.max_iter + 1):
        thr = _threshold(cfg, best.fx)
        active = (best.res > thr) & ~failed
        if not bool(active.any()):
            break
        a = _anderson_weights(xs, fs, valid, cfg.anderson_reg)
        mixed = torch.einsum("nm,nmd->nd", a, (1 - beta) * xs + beta * fs)
        ok = a.abs().sum(-1) > 0  # otherwise (singular system) take a damped Picard step
        x_new = torch.where(ok[:, None], mixed, (1 - beta) * x + beta * fx)
        x_new = torch.where(active[:, None], x_new, x)
        fx_new = g(x_new)
        res = _row_norm(fx_new - x_new)
        iterations += active.long()
        best.update(x_new, fx_new, res, active)
        restart = active & (~torch.isfinite(res) | (res > cfg.restart_growth * best.res))
        x = torch.where(restart[:, None], best.x, x_new)
        fx = torch.where(restart[:, None], best.fx, fx_new)
        slot = k % m
        xs[:, slot], fs[:, slot] = x, fx
        valid[:, slot] = True
        # A restarted sample keeps only the slot that now holds its best iterate.
        only_slot = torch.zeros_like(valid)
        only_slot[:, slot] = True
        valid = torch.where(restart[:, None], only_slot, valid)
    thr = _threshold(cfg, best.fx)
    return best.x.reshape(shape), _generic_stats("anderson", best, thr, iterations, failed)


def broyden(
    f: FixedPointMap, z0: Tensor, config: SolverConfig | dict[str, Any] | None = None
) -> tuple[Tensor, SolverStats]:
    """Broyden's ("good") method on ``g(x) = f(x) - x = 0`` with a low-rank inverse Jacobian.

    ``J_inv = -I + U V^T`` (``-I`` is exact when ``f`` is constant), step
    ``x <- x - damping * J_inv g(x)``, and the Sherman-Morrison update
    ``J_inv += (dx - J_inv dg) (dx^T J_inv) / (dx^T J_inv dg)``, at most ``memory`` rank-one
    terms (the history is cleared when full). Safeguard: a sample whose residual exceeds
    ``restart_growth`` times its best goes back to its best iterate keeping the secant
    information; one whose residual is not finite also resets ``J_inv = -I``. Returns the best
    iterate of every sample.
    """
    cfg = as_config(config)
    shape = z0.shape
    g = _flat_map(f, shape)
    x = z0.reshape(shape[0], -1).clone()
    n, dim = x.shape
    m = cfg.memory
    fx = g(x)
    gx = fx - x
    res = _row_norm(gx)
    best = _BestTracker(x, fx, res)
    us = torch.zeros(n, dim, m, dtype=x.dtype, device=x.device)
    vs = torch.zeros_like(us)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    failed = ~torch.isfinite(res)
    eps = torch.finfo(x.dtype).eps

    def apply_jinv(v: Tensor) -> Tensor:  # (-I + U V^T) v
        return -v + torch.einsum("ndm,nm->nd", us, torch.einsum("ndm,nd->nm", vs, v))

    def apply_jinv_t(v: Tensor) -> Tensor:  # v^T (-I + U V^T)
        return -v + torch.einsum("ndm,nm->nd", vs, torch.einsum("ndm,nd->nm", us, v))

    slot = 0
    for _ in range(cfg.max_iter):
        thr = _threshold(cfg, best.fx)
        active = (best.res > thr) & ~failed
        if not bool(active.any()):
            break
        dx = -cfg.damping * apply_jinv(gx)
        dx = torch.where(active[:, None], dx, torch.zeros_like(dx))
        x_new = x + dx
        fx_new = g(x_new)
        g_new = fx_new - x_new
        res = _row_norm(g_new)
        iterations += active.long()
        best.update(x_new, fx_new, res, active)
        dg = g_new - gx
        jdg = apply_jinv(dg)
        vt = apply_jinv_t(dx)
        den = (dx * jdg).sum(-1)
        # Skip the update where the denominator is at rounding level (ill-posed secant).
        usable = active & (den.abs() > eps * _row_norm(dx) * _row_norm(jdg)) & (den != 0)
        u = torch.where(usable[:, None], (dx - jdg) / torch.where(usable, den, 1.0)[:, None], 0.0)
        if slot == m:  # limited memory: clear and start again from -I
            us.zero_()
            vs.zero_()
            slot = 0
        us[:, :, slot] = u
        vs[:, :, slot] = torch.where(usable[:, None], vt, 0.0)
        slot += 1
        # Back to the best iterate when the residual grew too much. The secant pair of the bad
        # step is still valid information about the Jacobian, so the low-rank memory is kept;
        # it is cleared only when the step produced non-finite values.
        blown = active & ~torch.isfinite(res)
        restart = blown | (active & (res > cfg.restart_growth * best.res))
        us = torch.where(blown[:, None, None], torch.zeros_like(us), us)
        vs = torch.where(blown[:, None, None], torch.zeros_like(vs), vs)
        x = torch.where(restart[:, None], best.x, x_new)
        fx = torch.where(restart[:, None], best.fx, fx_new)
        gx = fx - x
    thr = _threshold(cfg, best.fx)
    return best.x.reshape(shape), _generic_stats("broyden", best, thr, iterations, failed)


GENERIC_SOLVERS: dict[str, Callable[..., tuple[Tensor, SolverStats]]] = {
    "fixed_point": fixed_point,
    "anderson": anderson,
    "broyden": broyden,
}
OBJECTIVE_SOLVERS: dict[str, Callable[..., NewtonResult]] = {
    "newton": newton,
    "cg_newton": cg_newton,
}


def get_generic_solver(name: str) -> Callable[..., tuple[Tensor, SolverStats]]:
    """Look up a generic solver by name (clear error listing the valid names)."""
    try:
        return GENERIC_SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"unknown generic solver {name!r}; choose one of {sorted(GENERIC_SOLVERS)}"
        ) from None


# --------------------------------------------------------------------------------------------
# Contraction certificate for the plain DEQ map (10)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractionCertificate:
    """Global convergence facts for the DEQ map (10) ``f(z) = (1/lam) W^T (T - sigma(Wz+B))``.

    Its Jacobian ``-(1/lam) W^T diag(sigma') W`` is symmetric with eigenvalues in
    ``[-L/lam, 0]``, ``L = |W|_2^2 sup sigma'``. Hence (mean value theorem, symmetric Jacobians)

    * plain iteration ``z <- f(z)`` is a global contraction with factor ``ratio = L/lam`` when
      ``ratio < 1`` (for the Gaussian, ``sigma' = 1``, the bound is attained, so ``ratio > 1``
      gives divergence along the top singular vector);
    * damped iteration ``z <- (1 - beta) z + beta f(z) = z - (beta/lam) grad J(z)`` is gradient
      descent on ``J`` with step ``alpha = beta/lam``; its Jacobian ``I - alpha H`` has
      eigenvalues in ``[1 - alpha (lam + L), 1 - alpha lam]``, so the factor
      ``max(|1 - alpha lam|, |1 - alpha (lam + L)|)`` is minimised by
      ``alpha* = 2/(2 lam + L)``, i.e. ``beta* = 2 lam/(2 lam + L)``, with factor
      ``L/(2 lam + L) < 1``: always a contraction when ``L`` is finite.

    Attributes:
        spectral_norm_sq: ``|W|_2^2``.
        lipschitz: ``L = |W|_2^2 sup sigma'`` (``inf`` when ``sup sigma'`` is unbounded/unknown).
        ratio: ``L / lam``, the contraction factor bound of the plain map.
        plain_contracts: ``ratio < 1``.
        optimal_step: ``alpha* = 2/(2 lam + L)`` (0 when ``L`` is infinite).
        optimal_damping: ``beta* = lam alpha*`` (the ``damping`` option for ``fixed_point``).
        damped_rate: ``L/(2 lam + L)`` (1 when ``L`` is infinite: no certificate).
    """

    spectral_norm_sq: float
    lipschitz: float
    ratio: float
    plain_contracts: bool
    optimal_step: float
    optimal_damping: float
    damped_rate: float


def contraction_certificate(
    W: Tensor, lam: float, sup_sigma_prime: float | None
) -> ContractionCertificate:
    """Compute the ``ContractionCertificate`` for weights ``W`` (``d x l``), ``lam`` and
    ``sup sigma'`` (``None`` = unknown, treated as unbounded)."""
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    norm_sq = float(torch.linalg.matrix_norm(W.detach().double(), ord=2)) ** 2
    sup = math.inf if sup_sigma_prime is None else float(sup_sigma_prime)
    lip = norm_sq * sup if norm_sq > 0 else 0.0
    if math.isinf(lip):
        return ContractionCertificate(norm_sq, lip, math.inf, False, 0.0, 0.0, 1.0)
    step = 2.0 / (2.0 * lam + lip)
    return ContractionCertificate(
        spectral_norm_sq=norm_sq,
        lipschitz=lip,
        ratio=lip / lam,
        plain_contracts=lip < lam,
        optimal_step=step,
        optimal_damping=lam * step,
        damped_rate=lip / (2.0 * lam + lip),
    )


__all__ = [
    "GENERIC_SOLVERS",
    "OBJECTIVE_SOLVERS",
    "POLICIES",
    "ContractionCertificate",
    "ConvergenceError",
    "ConvergenceWarning",
    "InnerProblem",
    "NewtonResult",
    "SolverConfig",
    "SolverStats",
    "anderson",
    "as_config",
    "batched_cg",
    "broyden",
    "cg_newton",
    "check_convergence",
    "contraction_certificate",
    "fixed_point",
    "get_generic_solver",
    "hessian_from_slope",
    "make_config",
    "newton",
]
