"""Deep exponential-family PCA: the joint MAP of a stack of latent layers as one DEQ.

Model (``derive/deep.py`` derives every elementwise function used here): ``z_0 = Y`` observed,
latents ``z_1 .. z_L``, prior ``z_L ~ N(0, lam^{-1} I)`` and, for ``l = L .. 1``,
``z_{l-1} | z_l`` with per-unit log density
``ell_l(x, eta) = lin_l(x, eta) + log h_l(x) - A_l(eta)`` at ``eta_l = W_l z_l + b_l``
(``lin = eta T(x)``, or ``max(0, eta) T(x)`` with the dropout mask).
The MAP latents minimise the negative log joint, for every sample separately,

    J(z_1..z_L) = -sum_l 1^T ell_l(z_{l-1}, W_l z_l + b_l) + lam/2 |z_L|^2          (up to log h(Y))

whose gradient and block-tridiagonal Hessian are, with ``e_l = eta_l`` and the elementwise
derivatives ``ell_e, ell_x, ell_ee, ell_xx, ell_xe`` of the layer functions,

    g_l    = -W_l^T ell_e,l(z_{l-1}, e_l) - ell_x,l+1(z_l, e_{l+1}) [l < L] + lam z_L [l = L]
    H_ll   = W_l^T diag(-ell_ee,l) W_l + diag(-ell_xx,l+1) [l < L] + lam I [l = L]
    H_l,l+1 = -diag(ell_xe,l+1) W_{l+1}.

``g = 0`` is the stacked DEQ (each layer's stationarity condition couples it to both
neighbours); for ``L = 1`` it is Theorem 1 of the seed paper. The state is the concatenation
``z = (z_1, ..., z_L)``, one row per sample.

Solver: Newton on ``J`` with a batched backtracking Armijo line search (``J = +inf`` outside a
family's domain). The Newton system is solved by a block-tridiagonal Cholesky factorisation
(``O(sum_l d_l^3)``). ``J`` is convex when every layer above the data is Gaussian (the quadratic
part is ``sum |z_{l-1} - W_l z_l - b_l|^2/2 + lam/2|z_L|^2``, strongly convex after the triangular
change of variables ``e_{l-1} = z_{l-1} - W_l z_l - b_l``), but not in general: when a pivot of the
factorisation is not positive definite the sample has met negative curvature. That is counted
(``DeepSolverStats.negative_curvature``), and the step there uses the absolute-value modified
Newton direction ``-V |Lambda|^{-1} V^T g`` (eigen-decomposition ``H = V Lambda V^T``, eigenvalues
floored at ``sqrt(eps) max|Lambda|``), which is a descent direction; a solution whose Hessian is
not positive definite (a saddle) is reported (``local_minimum`` False) and handled by the
non-convergence policy, never hidden.

Backward (implicit function theorem): with ``u = H^{-1} grad_z`` (the forward's factor), per layer

    dphi/deta_l = -(W_l u_l) * ell_ee,l - u_{l-1} * ell_xe,l [l >= 2]
    grad W_l = ell_e,l^T u_l - dphi/deta_l^T z_l,   grad b_l = -sum_s dphi/deta_l,
    grad Y   = (W_1 u_1) * ell_xe,1(Y, eta_1),

i.e. ``-u^T dg/dtheta``; no unrolling, no iteration.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .family import in_domain, interior_point
from .solvers import (
    POLICIES,
    ConvergenceError,
    ConvergenceWarning,
    SolverConfig,
    SolverStats,
    as_config,
    check_convergence,
)
from .train import History, TrainConfig, load_checkpoint, train

Fn2 = Callable[[Tensor, Tensor], Tensor]
Fn1 = Callable[[Tensor], Tensor]


class NegativeCurvatureWarning(ConvergenceWarning):
    """Some samples' solutions are stationary points whose Hessian is not positive definite."""


# --------------------------------------------------------------------------------------------
# The elementwise functions of one layer (produced by derive/deep.py, wired by deqfam.api_deep)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerFunctions:
    """Elementwise torch callables of one layer's log density ``ell(x, eta)``.

    ``x`` is the layer's observation (the data for the first layer, the latent ``z_{l-1}``
    above it) and ``eta`` its natural parameter; two-argument callables take ``(x, eta)`` of the
    same (or broadcastable) shape.

    Attributes:
        name: family name (``" (masked)"`` appended with the dropout mask).
        domain: open interval of ``eta`` where ``A`` is finite.
        core: ``lin(x, eta) - A(eta)`` (the log density without ``log h(x)``).
        score_eta: ``d ell/d eta`` (``T(x) - sigma(eta)``, masked: ``T(x) D - sigma(eta)``).
        d2_eta: ``d^2 ell/d eta^2`` (``-sigma'(eta)``).
        d2_xeta: ``d^2 ell/dx d eta`` (``T'(x)``).
        scale_eta: ``|d lin/d eta| + |sigma(eta)|``, the size of the terms cancelling in ``ell_e``.
        activation: ``eta -> sigma(eta) = A'(eta)``, the mean of ``T(x)``.
        statistic: ``x -> T(x)``.
        log_base, score_x, d2_x, scale_x: ``log h(x)``, ``d ell/dx``, ``d^2 ell/dx^2`` and
            ``|d lin/dx| + |(log h)'(x)|``; required for layers that observe a latent.
        masked: whether the dropout mask ``D = 1[eta > 0]`` is in the linear term.
    """

    name: str
    domain: tuple[float, float]
    core: Fn2
    score_eta: Fn2
    d2_eta: Fn2
    d2_xeta: Fn2
    scale_eta: Fn2
    activation: Fn1
    statistic: Fn1
    log_base: Fn1 | None = None
    score_x: Fn2 | None = None
    d2_x: Fn2 | None = None
    scale_x: Fn2 | None = None
    masked: bool = False

    @property
    def observes_latent(self) -> bool:
        return None not in (self.log_base, self.score_x, self.d2_x, self.scale_x)

    @property
    def whole_line(self) -> bool:
        return self.domain == (-math.inf, math.inf)

    def in_domain(self, eta: Tensor) -> Tensor:
        return in_domain(self.domain, eta)

    def interior_point(self) -> float:
        """A point strictly inside the domain, preferring 0."""
        return interior_point(self.domain)


def _row_norm(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


# --------------------------------------------------------------------------------------------
# The stacked objective
# --------------------------------------------------------------------------------------------


class StackProblem:
    """``J``, its gradient and its Hessian blocks (module docstring) for a batch of data ``Y``.

    ``Ws[l]`` is ``(d_l, d_{l+1})`` and ``bs[l]`` is ``(d_l,)`` in 0-based layer numbering
    (``Ws[0]`` maps ``z_1`` to the data's natural parameters). Latents are lists of per-layer
    tensors ``(..., N, d_{l+1})``; extra leading dimensions (batched line-search trials) are
    allowed in :meth:`value`.
    """

    def __init__(
        self,
        layers: Sequence[LayerFunctions],
        Ws: Sequence[Tensor],
        bs: Sequence[Tensor],
        lam: float,
        Y: Tensor,
    ) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        self.layers, self.Ws, self.bs, self.lam, self.Y = list(layers), list(Ws), list(bs), lam, Y
        self.sizes = [W.shape[1] for W in self.Ws]
        self.abs_W = [W.abs() for W in self.Ws]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def split(self, z: Tensor) -> list[Tensor]:
        return list(torch.split(z, self.sizes, dim=-1))

    def observations(self, zs: Sequence[Tensor]) -> list[Tensor]:
        """``x_l``: the data for the first layer, ``z_{l}`` for layer ``l + 1``."""
        return [self.Y, *zs[:-1]]

    def etas(self, zs: Sequence[Tensor]) -> list[Tensor]:
        return [z @ W.T + b for z, W, b in zip(zs, self.Ws, self.bs, strict=True)]

    def value(self, zs: Sequence[Tensor], etas: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``J`` (``+inf`` where some ``eta`` leaves its domain) and the magnitude of its terms."""
        top = zs[-1]
        quad = 0.5 * self.lam * (top * top).sum(-1)
        value, scale = quad, quad.clone()
        outside = torch.zeros_like(quad, dtype=torch.bool)
        for l, (layer, x, eta) in enumerate(
            zip(self.layers, self.observations(zs), etas, strict=True)
        ):
            if not layer.whole_line:
                inside = layer.in_domain(eta)
                outside = outside | ~inside.all(-1)
                eta = eta.masked_fill(~inside, layer.interior_point())
            core = layer.core(x, eta)
            value = value - core.sum(-1)
            scale = scale + core.abs().sum(-1)
            if l > 0:
                log_h = layer.log_base(x)
                value = value - log_h.sum(-1)
                scale = scale + log_h.abs().sum(-1)
        value = torch.where(torch.isfinite(value), value, math.inf)
        return value.masked_fill(outside, math.inf), scale

    def gradient(
        self, zs: Sequence[Tensor], etas: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer ``g_l`` and the magnitude of the terms that cancel in it."""
        xs = self.observations(zs)
        grads, scales = [], []
        for l, layer in enumerate(self.layers):
            W = self.Ws[l]
            g = -(layer.score_eta(xs[l], etas[l]) @ W)
            scale = _row_norm(layer.scale_eta(xs[l], etas[l]) @ self.abs_W[l])
            if l + 1 < self.depth:
                above = self.layers[l + 1]
                g = g - above.score_x(zs[l], etas[l + 1])
                scale = scale + _row_norm(above.scale_x(zs[l], etas[l + 1]))
            else:
                g = g + self.lam * zs[l]
                scale = scale + self.lam * _row_norm(zs[l])
            grads.append(g)
            scales.append(scale)
        return grads, scales

    def hessian_blocks(
        self, zs: Sequence[Tensor], etas: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Diagonal blocks ``H_ll`` (``N x d_l x d_l``) and super-diagonal ``H_l,l+1``."""
        xs = self.observations(zs)
        diag, off = [], []
        for l, layer in enumerate(self.layers):
            W = self.Ws[l]
            curv = -layer.d2_eta(xs[l], etas[l])
            block = (curv[..., None] * W).mT @ W  # W^T diag(curv) W, batched
            if l + 1 < self.depth:
                above = self.layers[l + 1]
                block = block + torch.diag_embed(-above.d2_x(zs[l], etas[l + 1]))
                cross = -above.d2_xeta(zs[l], etas[l + 1])
                off.append(cross[..., None] * self.Ws[l + 1])
            else:
                block = block + self.lam * torch.eye(W.shape[1], dtype=W.dtype, device=W.device)
            diag.append(block)
        return diag, off


def assemble_dense(diag: Sequence[Tensor], off: Sequence[Tensor]) -> Tensor:
    """The full symmetric block-tridiagonal matrix (``N x D x D``) from its blocks."""
    sizes = [d.shape[-1] for d in diag]
    starts = [sum(sizes[:l]) for l in range(len(sizes))]
    n, total = diag[0].shape[0], sum(sizes)
    H = diag[0].new_zeros(n, total, total)
    for l, block in enumerate(diag):
        s, e = starts[l], starts[l] + sizes[l]
        H[:, s:e, s:e] = block
        if l < len(off):
            s2, e2 = starts[l + 1], starts[l + 1] + sizes[l + 1]
            H[:, s:e, s2:e2] = off[l]
            H[:, s2:e2, s:e] = off[l].mT
    return H


# --------------------------------------------------------------------------------------------
# Block-tridiagonal Cholesky
# --------------------------------------------------------------------------------------------


@dataclass
class BlockTridiagonalCholesky:
    """``H = L L^T`` with ``L`` block lower bidiagonal: diagonal blocks ``lower[l]`` (lower
    triangular) and sub-diagonal blocks ``sub[l] = L_{l+1,l}``.

    Recurrence: ``L_00 L_00^T = H_00``; ``L_{l+1,l} = H_{l+1,l} L_ll^{-T}``;
    ``L_{l+1,l+1} L_{l+1,l+1}^T = H_{l+1,l+1} - L_{l+1,l} L_{l+1,l}^T`` (the Schur complement).
    ``ok[s]`` is True iff every pivot of sample ``s`` was positive definite, i.e. iff ``H_s`` is.
    """

    lower: list[Tensor]
    sub: list[Tensor]
    ok: Tensor

    @classmethod
    def factor(cls, diag: Sequence[Tensor], off: Sequence[Tensor]) -> BlockTridiagonalCholesky:
        lower, sub = [], []
        ok = torch.ones(diag[0].shape[0], dtype=torch.bool, device=diag[0].device)
        pivot = diag[0]
        for l in range(len(diag)):
            chol, info = torch.linalg.cholesky_ex(pivot)
            ok = ok & (info == 0) & torch.isfinite(chol).all(-1).all(-1)
            # keep failed samples finite (identity pivots) so the other samples are unaffected
            eye = torch.eye(chol.shape[-1], dtype=chol.dtype, device=chol.device)
            chol = torch.where(ok[:, None, None], chol, eye)
            lower.append(chol)
            if l + 1 < len(diag):
                x = torch.linalg.solve_triangular(chol, off[l], upper=False)  # L^{-1} H_l,l+1
                sub.append(x.mT)
                pivot = diag[l + 1] - x.mT @ x
        return cls(lower, sub, ok)

    def solve_lower(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``L^{-1} r`` for blocks ``r_l`` of shape ``(N, d_l, k)``."""
        out = []
        for l, chol in enumerate(self.lower):
            r = rhs[l] if l == 0 else rhs[l] - self.sub[l - 1] @ out[-1]
            out.append(torch.linalg.solve_triangular(chol, r, upper=False))
        return out

    def solve_upper(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``L^{-T} r`` for blocks ``r_l`` of shape ``(N, d_l, k)``."""
        out: list[Tensor] = [None] * len(self.lower)  # type: ignore[list-item]
        for l in range(len(self.lower) - 1, -1, -1):
            r = rhs[l] if l == len(self.lower) - 1 else rhs[l] - self.sub[l].mT @ out[l + 1]
            out[l] = torch.linalg.solve_triangular(self.lower[l].mT, r, upper=True)
        return out

    def solve(self, rhs: Sequence[Tensor]) -> list[Tensor]:
        """``H^{-1} r`` for per-layer vectors ``r_l`` of shape ``(N, d_l)``."""
        y = self.solve_lower([r[..., None] for r in rhs])
        return [x[..., 0] for x in self.solve_upper(y)]

    def logdet(self) -> Tensor:
        """``log det H = 2 sum_l sum_i log (L_ll)_ii``."""
        return sum(2.0 * torch.log(torch.diagonal(c, dim1=-2, dim2=-1)).sum(-1) for c in self.lower)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass
class DeepSolverStats:
    """Outcome of the joint solve.

    Attributes:
        joint: ``residual = |g|_2`` over the whole stack, ``threshold = sqrt(sum_l thr_l^2)``,
            ``converged`` = every layer converged.
        layers: one ``SolverStats`` per latent layer: ``residual = |g_l|_2`` (that layer's
            stationarity residual), ``threshold = tol + rtol * scale_l``.
        negative_curvature: per sample, the number of iterations at which ``H`` was not positive
            definite (modified Newton steps were taken there).
        most_negative_eigenvalue: smallest eigenvalue of ``H`` met on those iterations
            (0 where none).
        local_minimum: ``H(z*)`` positive definite (a strict local minimum of ``J``).
        min_eigenvalue: smallest eigenvalue of ``H(z*)`` where it is not positive definite,
            NaN elsewhere (not computed).
    """

    joint: SolverStats
    layers: list[SolverStats]
    negative_curvature: Tensor
    most_negative_eigenvalue: Tensor
    local_minimum: Tensor
    min_eigenvalue: Tensor

    @property
    def converged(self) -> Tensor:
        return self.joint.converged

    @property
    def all_converged(self) -> bool:
        return self.joint.all_converged

    @property
    def convergence_rate(self) -> float:
        return self.joint.convergence_rate

    @property
    def iterations(self) -> Tensor:
        return self.joint.iterations

    @property
    def n_saddles(self) -> int:
        return int((self.converged & ~self.local_minimum).sum())

    def summary(self) -> dict[str, Any]:
        out = self.joint.summary()
        out["layers"] = [s.summary() for s in self.layers]
        out["samples_with_negative_curvature"] = int((self.negative_curvature > 0).sum())
        out["saddles"] = self.n_saddles
        return out

    def __str__(self) -> str:
        per_layer = ", ".join(
            f"layer {l + 1}: max |g| {float(s.residual.max()):.3g}"
            for l, s in enumerate(self.layers)
        )
        neg = int((self.negative_curvature > 0).sum())
        return f"{self.joint}; {per_layer}; negative curvature met by {neg} samples"


def check_deep_convergence(stats: DeepSolverStats, policy: str = "warn", what: str = "") -> None:
    """``check_convergence`` on the joint stats, then the same policy for saddle solutions."""
    check_convergence(stats.joint, policy, what=what)
    saddle = stats.converged & ~stats.local_minimum
    if policy == "ignore" or not bool(saddle.any()):
        return
    idx = torch.nonzero(saddle).flatten().tolist()
    worst = float(stats.min_eigenvalue[saddle].min())
    message = (
        f"{what + ': ' if what else ''}{len(idx)} samples converged to a stationary point whose "
        f"Hessian is not positive definite (indices {idx[:10]}; smallest eigenvalue {worst:.3g}): "
        "not a local MAP"
    )
    if policy == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, NegativeCurvatureWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Newton on the joint objective
# --------------------------------------------------------------------------------------------


@dataclass
class StackSolution:
    z: Tensor  # (N, D)
    stats: DeepSolverStats
    factor: BlockTridiagonalCholesky
    diag: list[Tensor] = field(repr=False)
    off: list[Tensor] = field(repr=False)


def _modified_newton(H: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``-V |Lambda|^{-1} V^T g`` (eigenvalues floored at ``sqrt(eps) max|Lambda|``) and the
    smallest eigenvalue, for every row."""
    evals, evecs = torch.linalg.eigh(H)
    mag = evals.abs()
    floor = (math.sqrt(torch.finfo(H.dtype).eps) * mag.amax(-1, keepdim=True)).clamp_min(
        torch.finfo(H.dtype).tiny
    )
    coef = (evecs.mT @ g[..., None])[..., 0] / torch.maximum(mag, floor)
    return -(evecs @ coef[..., None])[..., 0], evals[..., 0]


def _line_search(
    problem: StackProblem,
    z: Tensor,
    grad: Tensor,
    direction: Tensor,
    step_scale: Tensor,
    cfg: SolverConfig,
) -> tuple[Tensor, Tensor]:
    """Batched backtracking Armijo search on ``J`` (all trial steps at once), as in
    ``solvers._line_search``: ``J(z + t d) <= J(z) + c t g^T d + 64 eps |terms of J|``."""
    k = torch.arange(cfg.line_search_steps, dtype=z.dtype, device=z.device)
    steps = step_scale[None, :] * cfg.backtrack_factor ** k[:, None]  # (K, N)
    trial = z[None] + steps[..., None] * direction[None]
    zs_t = problem.split(trial)
    j_trial, _ = problem.value(zs_t, problem.etas(zs_t))
    zs = problem.split(z)
    j0, scale0 = problem.value(zs, problem.etas(zs))
    slope = (grad * direction).sum(-1)
    slack = 64 * torch.finfo(z.dtype).eps * scale0
    admissible = torch.isfinite(j_trial) & (
        j_trial <= j0[None] + cfg.armijo_c * steps * slope[None] + slack[None]
    )
    found = admissible.any(0)
    first = torch.argmax(admissible.to(torch.int8), dim=0)
    return steps.gather(0, first[None])[0], found


def solve_stack(
    problem: StackProblem, z0: Tensor | None = None, config: Any = None
) -> StackSolution:
    """Newton with Armijo line search on the joint ``J`` (module docstring), batched over samples.

    Convergence of sample ``s``: ``|g_l| <= tol + rtol * scale_l`` for every layer ``l``.
    Returns the solution, the stats and the block Cholesky factor of ``H(z*)``.
    """
    cfg = as_config(config)
    Y = problem.Y
    n, total = Y.shape[0], sum(problem.sizes)
    dtype, device = problem.Ws[0].dtype, problem.Ws[0].device
    z = torch.zeros(n, total, dtype=dtype, device=device) if z0 is None else z0.clone()
    zs = problem.split(z)
    for l, (layer, eta) in enumerate(zip(problem.layers, problem.etas(zs), strict=True)):
        inside = layer.in_domain(eta).all(-1)
        if not bool(inside.all()):
            bad = torch.nonzero(~inside).flatten().tolist()
            raise ValueError(
                f"the starting point puts eta_{l + 1} = W_{l + 1} z_{l + 1} + b_{l + 1} outside "
                f"the domain {layer.domain} of layer {l + 1} ({layer.name}) for {len(bad)} "
                f"samples (first: {bad[:10]}); choose b (or z0) inside the domain"
            )
    rtol = cfg.resolved_rtol(dtype)
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    failed = torch.zeros(n, dtype=torch.bool, device=device)
    neg = torch.zeros(n, dtype=torch.long, device=device)
    most_negative = torch.zeros(n, dtype=dtype, device=device)
    step_scale = torch.ones(n, dtype=dtype, device=device)
    shrink_all = cfg.backtrack_factor**cfg.line_search_steps
    for it in range(cfg.max_iter + 1):
        zs = problem.split(z)
        etas = problem.etas(zs)
        grads, scales = problem.gradient(zs, etas)
        gnorm = torch.stack([_row_norm(g) for g in grads])  # (L, N)
        threshold = cfg.tol + rtol * torch.stack(scales)
        active = ~(gnorm <= threshold).all(0) & ~failed
        if not bool(active.any()) or it == cfg.max_iter:
            break
        grad = torch.cat(grads, -1)
        diag, off = problem.hessian_blocks(zs, etas)
        fac = BlockTridiagonalCholesky.factor(diag, off)
        direction = -torch.cat(fac.solve(grads), -1)
        bad = active & ~fac.ok
        if bool(bad.any()):
            H = assemble_dense(diag, off)[bad]
            d_bad, lam_min = _modified_newton(H, grad[bad])
            direction[bad] = d_bad
            indefinite = torch.zeros_like(bad)
            indefinite[bad] = lam_min < 0
            neg += indefinite.long()
            mn = most_negative.clone()
            mn[bad] = torch.minimum(most_negative[bad], lam_min.clamp_max(0.0))
            most_negative = mn
        usable = torch.isfinite(direction).all(-1) & ((grad * direction).sum(-1) < 0)
        direction = torch.where(usable[:, None], direction, -grad)
        step, found = _line_search(problem, z, grad, direction, step_scale, cfg)
        move = active & found
        z = torch.where(move[:, None], z + step[:, None] * direction, z)
        iterations += move.long()
        step_scale = torch.where(
            move,
            torch.ones_like(step_scale),
            torch.where(active, step_scale * shrink_all, step_scale),
        )
        failed = failed | (active & (step_scale < cfg.min_step))
    layer_ok = gnorm <= threshold
    converged = layer_ok.all(0) & ~failed
    diag, off = problem.hessian_blocks(zs, etas)
    fac = BlockTridiagonalCholesky.factor(diag, off)
    min_eig = torch.full((n,), math.nan, dtype=dtype, device=device)
    if not bool(fac.ok.all()):
        min_eig[~fac.ok] = torch.linalg.eigvalsh(assemble_dense(diag, off)[~fac.ok])[..., 0]
    layer_stats = [
        SolverStats(
            solver=f"newton (layer {l + 1}: {problem.layers[l].name})",
            iterations=iterations,
            residual=gnorm[l],
            threshold=threshold[l],
            converged=layer_ok[l] & ~failed,
            residual_kind="grad_norm",
        )
        for l in range(problem.depth)
    ]
    joint = SolverStats(
        solver="newton (joint stack)",
        iterations=iterations,
        residual=torch.linalg.vector_norm(gnorm, dim=0),
        threshold=torch.linalg.vector_norm(threshold, dim=0),
        converged=converged,
        residual_kind="grad_norm",
        extra={"stalled": failed},
    )
    stats = DeepSolverStats(
        joint=joint,
        layers=layer_stats,
        negative_curvature=neg,
        most_negative_eigenvalue=most_negative,
        local_minimum=fac.ok,
        min_eigenvalue=min_eig,
    )
    return StackSolution(z=z, stats=stats, factor=fac, diag=diag, off=off)


# --------------------------------------------------------------------------------------------
# Implicit layer
# --------------------------------------------------------------------------------------------


class _DeepRecord:
    def __init__(self, layers: Sequence[LayerFunctions], lam: float, config: SolverConfig) -> None:
        self.layers, self.lam, self.config = list(layers), float(lam), config
        self.solution: StackSolution | None = None


class DeepEquilibrium(torch.autograd.Function):
    """``z* = argmin J(z; W, b, Y)`` over the whole stack with the exact implicit backward.

    ``apply(record, Y, W_1, b_1, ..., W_L, b_L)`` returns the concatenated ``(N, D)`` state.
    """

    @staticmethod
    def forward(ctx: Any, record: _DeepRecord, Y: Tensor, *params: Tensor) -> Tensor:
        problem = StackProblem(record.layers, params[0::2], params[1::2], record.lam, Y)
        solution = solve_stack(problem, None, record.config)
        record.solution = solution
        ctx.record = record
        ctx.save_for_backward(solution.z, Y, *params)
        return solution.z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        z, Y, *params = ctx.saved_tensors
        record: _DeepRecord = ctx.record
        solution = record.solution
        problem = StackProblem(record.layers, params[0::2], params[1::2], record.lam, Y)
        u = _solve_hessian(problem, solution, grad_z)
        zs, us = problem.split(z), problem.split(u)
        etas, xs = problem.etas(zs), problem.observations(zs)
        grads: list[Tensor | None] = []
        grad_Y = None
        for l, layer in enumerate(problem.layers):
            W = problem.Ws[l]
            wu = us[l] @ W.T
            dphi = -(wu * layer.d2_eta(xs[l], etas[l]))
            if l > 0:
                dphi = dphi - us[l - 1] * layer.d2_xeta(xs[l], etas[l])
            need_W, need_b = ctx.needs_input_grad[2 + 2 * l], ctx.needs_input_grad[3 + 2 * l]
            grads.append(
                layer.score_eta(xs[l], etas[l]).T @ us[l] - dphi.T @ zs[l] if need_W else None
            )
            grads.append(-dphi.sum(0) if need_b else None)
            if l == 0 and ctx.needs_input_grad[1]:
                grad_Y = wu * layer.d2_xeta(Y, etas[0])
        return (None, grad_Y, *grads)


def deep_equilibrium(
    layers: Sequence[LayerFunctions],
    Ws: Sequence[Tensor],
    bs: Sequence[Tensor],
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
) -> tuple[Tensor, DeepSolverStats]:
    """Differentiable joint MAP ``z* = (z_1*, ..., z_L*)`` concatenated (``N x D``) and the
    solver stats; gradients w.r.t. ``Ws``, ``bs`` and ``Y`` by the implicit backward."""
    record = _DeepRecord(layers, lam, as_config(config))
    params = [p for pair in zip(Ws, bs, strict=True) for p in pair]
    z = DeepEquilibrium.apply(record, Y, *params)
    assert record.solution is not None
    return z, record.solution.stats


def _solve_hessian(problem: StackProblem, solution: StackSolution, rhs: Tensor) -> Tensor:
    """``H(z*)^{-1} rhs`` by the block Cholesky factor; LU for samples whose ``H`` is not
    positive definite (a saddle: the implicit function theorem needs only invertibility)."""
    fac = solution.factor
    u = torch.cat(fac.solve(problem.split(rhs)), -1)
    if not bool(fac.ok.all()):
        H = assemble_dense(solution.diag, solution.off)[~fac.ok]
        u[~fac.ok] = torch.linalg.solve(H, rhs[~fac.ok])
    return u


# --------------------------------------------------------------------------------------------
# Laplace approximations
# --------------------------------------------------------------------------------------------


@dataclass
class GaussianPrecision:
    """``N(mean_s, P_s^{-1})`` per sample with a dense precision ``P`` (``N x n x n``)."""

    mean: Tensor
    precision: Tensor
    chol: Tensor

    @classmethod
    def from_precision(cls, mean: Tensor, precision: Tensor, what: str = "") -> GaussianPrecision:
        chol, info = torch.linalg.cholesky_ex(precision)
        if bool((info != 0).any()):
            bad = torch.nonzero(info != 0).flatten().tolist()
            raise ValueError(f"{what} precision is not positive definite for samples {bad[:10]}")
        return cls(mean, precision, chol)

    def covariance(self) -> Tensor:
        return torch.cholesky_inverse(self.chol)

    def logdet_covariance(self) -> Tensor:
        return -2.0 * torch.log(torch.diagonal(self.chol, dim1=-2, dim2=-1)).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        """``log N(z; mean, P^{-1})`` for ``z`` of shape ``(..., N, n)``."""
        delta = z - self.mean
        quad = (delta[..., None, :] @ self.precision @ delta[..., None])[..., 0, 0]
        n = self.mean.shape[-1]
        return -0.5 * (quad + n * math.log(2 * math.pi) + self.logdet_covariance())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws per sample ``mean + L^{-T} e`` (``P = L L^T``), shape ``(n, N, d)``."""
        eps = torch.randn(
            (n, *self.mean.shape),
            dtype=self.mean.dtype,
            device=self.mean.device,
            generator=generator,
        )
        x = torch.linalg.solve_triangular(self.chol.mT, eps[..., None], upper=True)[..., 0]
        return self.mean + x


@dataclass
class JointLaplace:
    """Joint Laplace approximation ``N(z*, H(z*)^{-1})`` over the whole stack, with the
    block-tridiagonal precision ``H`` kept in factored form (``BlockTridiagonalCholesky``).

    Latents are per-layer tuples or the concatenated ``(..., N, D)`` state.
    """

    mean: tuple[Tensor, ...]
    diag: list[Tensor]
    off: list[Tensor]
    factor: BlockTridiagonalCholesky

    @property
    def sizes(self) -> list[int]:
        return [m.shape[-1] for m in self.mean]

    def precision(self) -> Tensor:
        """Dense ``H`` (``N x D x D``)."""
        return assemble_dense(self.diag, self.off)

    def covariance(self) -> Tensor:
        """Dense ``H^{-1}`` (``N x D x D``) by block solves against the identity."""
        total = sum(self.sizes)
        ref = self.mean[0]
        eye = torch.eye(total, dtype=ref.dtype, device=ref.device).expand(ref.shape[0], -1, -1)
        blocks = list(torch.split(eye, self.sizes, dim=1))
        return torch.cat(self.factor.solve_upper(self.factor.solve_lower(blocks)), 1)

    def marginal_covariance(self, layer: int) -> Tensor:
        """``Cov(z_layer)`` under the joint approximation (``layer`` 1-based)."""
        sizes = self.sizes
        s = sum(sizes[: layer - 1])
        return self.covariance()[:, s : s + sizes[layer - 1], s : s + sizes[layer - 1]]

    def logdet_covariance(self) -> Tensor:
        return -self.factor.logdet()

    def _split(self, z: Tensor | Sequence[Tensor]) -> list[Tensor]:
        if isinstance(z, Tensor):
            return list(torch.split(z, self.sizes, dim=-1))
        return list(z)

    def log_prob(self, z: Tensor | Sequence[Tensor]) -> Tensor:
        """``log N(z; z*, H^{-1})``; the quadratic form uses the blocks, no inverse."""
        deltas = [a - m for a, m in zip(self._split(z), self.mean, strict=True)]
        quad = sum(
            (d[..., None, :] @ b @ d[..., None])[..., 0, 0]
            for d, b in zip(deltas, self.diag, strict=True)
        )
        for l, o in enumerate(self.off):
            quad = quad + 2 * (deltas[l][..., None, :] @ o @ deltas[l + 1][..., None])[..., 0, 0]
        total = sum(self.sizes)
        return -0.5 * (quad + total * math.log(2 * math.pi) + self.logdet_covariance())

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        """``n`` joint draws ``z* + L^{-T} e``, per layer of shape ``(n, N, d_l)``."""
        ref = self.mean[0]
        opts = {"dtype": ref.dtype, "device": ref.device, "generator": generator}
        eps = [torch.randn((ref.shape[0], d, n), **opts) for d in self.sizes]
        xs = self.factor.solve_upper(eps)
        return tuple(m + x.permute(2, 0, 1) for m, x in zip(self.mean, xs, strict=True))


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


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


class _ScheduledLoss:
    """A ``train`` loss function that freezes layer ``l`` before epoch ``unfreeze[l]``.

    ``train`` calls the loss once per minibatch, ``ceil(n / batch_size)`` times per epoch, in
    order, so the epoch is known from the call count (offset by the resumed epoch). Frozen
    parameters get no gradient, so Adam leaves them (and their moments) untouched.
    """

    def __init__(
        self,
        model: DeepExpFamPCA,
        unfreeze: list[int],
        n_batches: int,
        start: int,
        inner: Callable[[nn.Module, Tensor, int], Tensor],
    ) -> None:
        self.model, self.unfreeze, self.n_batches = model, unfreeze, n_batches
        self.calls, self.start, self.inner = 0, start, inner

    def __call__(self, model: nn.Module, batch: Tensor, n_total: int) -> Tensor:
        epoch = self.start + self.calls // self.n_batches
        self.calls += 1
        self.model.set_trainable([epoch >= k for k in self.unfreeze])
        return self.inner(model, batch, n_total)


def _model_loss(model: nn.Module, batch: Tensor, n_total: int) -> Tensor:
    return model.loss(batch, n_total=n_total)


def train_deep(
    model: DeepExpFamPCA,
    data: Tensor,
    config: TrainConfig | dict | None = None,
    *,
    unfreeze_epochs: Sequence[int] | None = None,
    loss_fn: Callable[[nn.Module, Tensor, int], Tensor] | None = None,
    resume: Any = None,
) -> History:
    """``runtime.train.train`` with a per-layer freezing schedule: layer ``l`` (0-based list
    index) is trainable from epoch ``unfreeze_epochs[l]`` on (default: all from epoch 0).

    The objective is ``model.loss`` (with each layer's weight decay as a Gaussian prior) unless
    ``loss_fn`` is given. Every layer is trainable again when training returns.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    unfreeze = [0] * model.depth if unfreeze_epochs is None else [int(k) for k in unfreeze_epochs]
    if len(unfreeze) != model.depth or any(k < 0 for k in unfreeze):
        raise ValueError(
            f"unfreeze_epochs needs {model.depth} nonnegative integers, got {unfreeze}"
        )
    start = 0 if resume is None else int(load_checkpoint(resume)["epoch"]) + 1
    n_batches = math.ceil(data.shape[0] / cfg.batch_size)
    scheduled = _ScheduledLoss(model, unfreeze, n_batches, start, loss_fn or _model_loss)
    try:
        return train(model, data, cfg, loss_fn=scheduled, resume=resume)
    finally:
        model.set_trainable([True] * model.depth)


__all__ = [
    "BlockTridiagonalCholesky",
    "DeepEquilibrium",
    "DeepExpFamPCA",
    "DeepSolverStats",
    "GaussianPrecision",
    "JointLaplace",
    "LayerFunctions",
    "NegativeCurvatureWarning",
    "StackProblem",
    "StackSolution",
    "assemble_dense",
    "check_deep_convergence",
    "deep_equilibrium",
    "solve_stack",
    "train_deep",
]
