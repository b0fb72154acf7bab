"""Per-sample Laplace approximation of the latent posterior (Appendix D of the seed paper).

At the MAP latents ``Z*_s`` the negative log posterior has Hessian

    H_s = lam I_l + W^T diag(sigma'(W Z*_s + B)) W = lam I_l + M_s^T M_s,
    M_s = diag(sqrt(sigma'(W Z*_s + B))) W                       (d x l),

so ``q(z | Y_s) = N(Z*_s, H_s^{-1})``. For ``l <= d`` we factor ``H_s = L_s L_s^T`` (Cholesky,
``l x l``). For ``l > d`` everything goes through the ``d x d`` matrix
``K_s = lam I_d + M_s M_s^T = L_K L_K^T``:

* Woodbury: ``H^{-1} = (1/lam) (I - M^T K^{-1} M)``;
* determinant lemma: ``det H = lam^(l - d) det K``;
* sampling by perturbation: ``x = sqrt(lam) e1 + M^T e2`` (``e1 ~ N(0, I_l)``,
  ``e2 ~ N(0, I_d)``) has covariance ``H``, so ``Z* + H^{-1} x ~ N(Z*, H^{-1})``,

and the ``l x l`` covariance is formed only when ``covariance()`` is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

METHODS = ("auto", "cholesky", "woodbury")


@dataclass
class LaplacePosterior:
    """``N(mean_s, H_s^{-1})`` for every sample ``s``; see the module docstring.

    Attributes:
        mean: ``Z*`` (``N x l``).
        root: ``M`` (``N x d x l``) with ``H = lam I + M^T M``.
        lam: prior precision.
        chol: Cholesky factor of ``H`` (``N x l x l``) or of ``K`` (``N x d x d``, Woodbury).
        woodbury: which of the two ``chol`` is.
    """

    mean: Tensor
    root: Tensor
    lam: float
    chol: Tensor
    woodbury: bool

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[1]

    def precision(self) -> Tensor:
        """``H = lam I + M^T M`` (``N x l x l``)."""
        eye = torch.eye(self.latent_dim, dtype=self.mean.dtype, device=self.mean.device)
        return self.lam * eye + self.root.mT @ self.root

    def solve(self, x: Tensor) -> Tensor:
        """``H_s^{-1} x_s`` for ``x`` of shape ``(..., N, l)``."""
        if not self.woodbury:
            return torch.cholesky_solve(x[..., None], self.chol)[..., 0]
        mx = self.root @ x[..., None]  # (..., N, d, 1)
        kinv_mx = torch.cholesky_solve(mx, self.chol)
        return (x - (self.root.mT @ kinv_mx)[..., 0]) / self.lam

    def covariance(self) -> Tensor:
        """``H^{-1}`` (``N x l x l``): ``cholesky_inverse`` or Woodbury."""
        if not self.woodbury:
            return torch.cholesky_inverse(self.chol)
        eye = torch.eye(self.latent_dim, dtype=self.mean.dtype, device=self.mean.device)
        kinv_m = torch.cholesky_solve(self.root, self.chol)  # K^{-1} M, (N, d, l)
        return (eye - self.root.mT @ kinv_m) / self.lam

    def logdet_covariance(self) -> Tensor:
        """``log det H^{-1} = -log det H`` per sample (determinant lemma when Woodbury)."""
        logdet_chol = 2.0 * torch.log(torch.diagonal(self.chol, dim1=-2, dim2=-1)).sum(-1)
        if not self.woodbury:
            return -logdet_chol
        d = self.root.shape[1]
        return -((self.latent_dim - d) * math.log(self.lam) + logdet_chol)

    def log_prob(self, z: Tensor) -> Tensor:
        """``log N(z_s; Z*_s, H_s^{-1})`` for ``z`` of shape ``(..., N, l)``, using
        ``(z - m)^T H (z - m) = lam |z - m|^2 + |M (z - m)|^2`` (no inverse needed)."""
        delta = z - self.mean
        m_delta = (self.root @ delta[..., None])[..., 0]
        quad = self.lam * (delta * delta).sum(-1) + (m_delta * m_delta).sum(-1)
        return -0.5 * (quad + self.latent_dim * math.log(2 * math.pi) + self.logdet_covariance())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws per sample, shape ``(n, N, l)``.

        Cholesky: ``z = Z* + L^{-T} e`` with ``H = L L^T`` (``Cov = L^{-T} L^{-1} = H^{-1}``;
        ``L^{-1} e`` would have the right mean and the wrong covariance). Woodbury: the
        perturbation sampler of the module docstring.
        """
        shape = (n, *self.mean.shape)
        opts = {"dtype": self.mean.dtype, "device": self.mean.device, "generator": generator}
        if not self.woodbury:
            eps = torch.randn(shape, **opts)
            x = torch.linalg.solve_triangular(self.chol.mT, eps[..., None], upper=True)[..., 0]
            return self.mean + x
        d = self.root.shape[1]
        e1 = torch.randn(shape, **opts)
        e2 = torch.randn((n, self.mean.shape[0], d), **opts)
        x = math.sqrt(self.lam) * e1 + (self.root.mT @ e2[..., None])[..., 0]
        return self.mean + self.solve(x)


def posterior_from_latents(
    family: Any, W: Tensor, B: Tensor, lam: float, Z: Tensor, method: str = "auto"
) -> LaplacePosterior:
    """Laplace posterior at given latents ``Z`` (normally the MAP ``Z*``).

    ``method``: ``"cholesky"`` (``l x l``), ``"woodbury"`` (``d x d``) or ``"auto"`` (Woodbury
    exactly when ``l > d``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    d, l = W.shape
    root_of = getattr(family, "laplace_root", None)
    if root_of is not None:  # one family per column (runtime/columns.py): rows L_j^T W_j
        root = root_of(W, Z @ W.T + B)  # (N, D, l)
    else:
        sp = family.activation_grad(Z @ W.T + B)  # (N, d)
        root = torch.sqrt(sp)[..., None] * W  # (N, d, l)
    woodbury = (l > d) if method == "auto" else method == "woodbury"
    if woodbury:
        eye = torch.eye(d, dtype=W.dtype, device=W.device)
        mat = lam * eye + root @ root.mT
    else:
        eye = torch.eye(l, dtype=W.dtype, device=W.device)
        mat = lam * eye + root.mT @ root
    chol, info = torch.linalg.cholesky_ex(mat)
    if bool((info != 0).any()):
        bad = torch.nonzero(info != 0).flatten().tolist()
        raise ValueError(
            f"Laplace precision is not positive definite (non-finite sigma'?) "
            f"for samples {bad[:10]}"
        )
    return LaplacePosterior(mean=Z, root=root, lam=float(lam), chol=chol, woodbury=woodbury)


def laplace_posterior(model: Any, Y: Tensor, method: str = "auto") -> LaplacePosterior:
    """Laplace posterior of an ``ExpFamPCA``-like model (``family``, ``W``, ``B``, ``lam`` and a
    forward returning ``Z*``) for data ``Y``."""
    Z = model(Y)
    return posterior_from_latents(model.family, model.W, model.B, model.lam, Z, method)


def laplace_covariance(model: Any, Y: Tensor, method: str = "auto") -> Tensor:
    """``H(Z*_s)^{-1}`` for every sample (``N x l x l``)."""
    return laplace_posterior(model, Y, method).covariance()


def laplace_logdet(model: Any, Y: Tensor, method: str = "auto") -> Tensor:
    """``log det H(Z*_s)^{-1}`` (log-determinant of the Laplace covariance) per sample."""
    return laplace_posterior(model, Y, method).logdet_covariance()


def laplace_sample(
    model: Any, Y: Tensor, n: int, generator: torch.Generator | None = None, method: str = "auto"
) -> Tensor:
    """``n`` draws from ``N(Z*_s, H_s^{-1})`` for every sample, shape ``(n, N, l)``."""
    return laplace_posterior(model, Y, method).sample(n, generator)


__all__ = [
    "LaplacePosterior",
    "laplace_covariance",
    "laplace_logdet",
    "laplace_posterior",
    "laplace_sample",
    "posterior_from_latents",
]
