"""Deterministic equivalents of the implicit kernels: ``K_bar``, the CK ``G_bar`` and the NTK
``Theta_bar`` as combinations of ``X X^T``, ``psi psi^T``, the class-block ``Q`` and ``I``
(package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .activations import NumpyFn, Phi, as_phi
from .data import as_numpy
from .scalars import ImplicitScalars, implicit_scalars


def squared_gram_blocks(
    X: np.ndarray, labels: np.ndarray, covariances: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """The class-block matrix ``Q`` equivalent to ``[(x_i^T x_j)^2]_{i != j}``:
    ``Q_ij = tr(C_a C_b)/p^2`` from population covariances, else the block average of
    ``(x_i^T x_j)^2`` over pairs ``i != j`` in classes ``(a, b)``."""
    p = X.shape[1]
    classes = np.unique(labels)
    index = np.searchsorted(classes, labels)
    k = len(classes)
    if covariances is not None:
        if len(covariances) != k:
            raise ValueError(f"got {len(covariances)} covariances for {k} classes")
        cov = [np.asarray(c, dtype=float) for c in covariances]
        block = np.array([[np.sum(ca * cb.T) / p**2 for cb in cov] for ca in cov])
    else:
        sq = (X @ X.T) ** 2
        np.fill_diagonal(sq, 0.0)
        onehot = np.eye(k)[index]
        counts = onehot.sum(0)
        pairs = np.outer(counts, counts) - np.diag(counts)
        block = onehot.T @ sq @ onehot / np.maximum(pairs, 1)
    return block[index][:, index]


@dataclass
class ImplicitKernels:
    """Output of ``implicit_kernels``.

    Attributes:
        scalars: the ``ImplicitScalars``.
        pre_activation: ``K_bar`` (``n x n``).
        ck: ``G_bar``, the deterministic equivalent of ``G* = Z* Z*^T``.
        ntk: ``Theta_bar``, the deterministic equivalent of ``K / (1 - sigma_a^2 Gdot)``.
        gram, psi, Q: ``X X^T``, ``psi_i = |x_i|^2 - tau0^2`` and the class-block ``Q``.
    """

    scalars: ImplicitScalars
    pre_activation: np.ndarray
    ck: np.ndarray
    ntk: np.ndarray
    gram: np.ndarray
    psi: np.ndarray
    Q: np.ndarray
    phi: Phi = field(repr=False)

    def assemble(self, coefficients: Sequence[float]) -> np.ndarray:
        """``c1 X X^T + c2 psi psi^T + c3 Q + c0 I`` for ``coefficients = (c1, c2, c3, c0)``."""
        c1, c2, c3, c0 = coefficients
        n = self.gram.shape[0]
        return c1 * self.gram + c2 * np.outer(self.psi, self.psi) + c3 * self.Q + c0 * np.eye(n)


def implicit_kernels(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    labels: Any = None,
    covariances: Sequence[np.ndarray] | None = None,
    dphi: NumpyFn | None = None,
    breakpoints: Sequence[float] = (0.0,),
    nodes: int = 64,
) -> ImplicitKernels:
    """The four scalars, ``G_bar`` and the NTK equivalent ``Theta_bar`` (module docstring).

    ``X`` has one sample per row (``n x p``), ``labels`` the class of each row (``None``: one
    class), ``covariances`` optional population class covariances (for ``Q``). ``phi`` is a
    name in ``NAMED_PHI`` or any numpy callable; it is centred numerically at ``tau``.
    """
    X = as_numpy(X)
    n, _ = X.shape
    labels = np.zeros(n, dtype=int) if labels is None else np.asarray(as_numpy(labels), int)
    gram = X @ X.T
    sq_norms = np.diag(gram).copy()
    tau0_sq = float(sq_norms.mean())
    f = as_phi(phi, dphi, breakpoints)
    sc = implicit_scalars(f, sigma_a, sigma_b, tau0_sq, nodes=nodes)
    psi = sq_norms - tau0_sq
    Q = squared_gram_blocks(X, labels, covariances)
    out = ImplicitKernels(sc, np.empty(0), np.empty(0), np.empty(0), gram, psi, Q, f)
    out.pre_activation = out.assemble(sc.four)
    out.ck = out.assemble(sc.ck_coefficients())
    out.ntk = out.assemble(sc.ntk_coefficients())
    return out
