"""Comparing embeddings with a ground truth: the orthogonal basis of Figure 3, orthogonal
Procrustes alignment, and the StandardScaler + PCA baseline of Appendix C."""

from __future__ import annotations

import numpy as np


def orthogonal_basis(z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latents in an orthogonal basis (as in Figure 3): W = Q R, so W z = Q (R z).

    Returns (z R^T, R): the transformed latents and R (to map covariances: R C R^T).
    """
    _, r = np.linalg.qr(w)
    return z @ r.T, r


def align_to(truth: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Orthogonal Procrustes alignment of ``emb`` to ``truth`` (translation, rotation, scale).

    Returns the aligned embedding, the disparity of ``scipy.spatial.procrustes`` (the sum of
    squared differences after both are centred and scaled to unit norm), the rotation and the
    scale applied to the centred embedding.
    """
    from scipy.linalg import orthogonal_procrustes  # SciPy: only where an embedding is aligned
    from scipy.spatial import procrustes

    _, _, disparity = procrustes(truth, emb)
    t0, e0 = truth - truth.mean(0), emb - emb.mean(0)
    rot, _ = orthogonal_procrustes(e0, t0)
    scale = np.trace((e0 @ rot).T @ t0) / np.trace(e0.T @ e0)
    return scale * (e0 @ rot) + truth.mean(0), float(disparity), rot, float(scale)


def pca_embedding(y: np.ndarray, k: int = 2) -> np.ndarray:
    """StandardScaler + PCA (Appendix C's baseline): the first ``k`` principal component
    scores ``U_k S_k`` of the columns standardised to mean 0 and (population) sd 1, by SVD,
    each component's sign fixed as scikit-learn's PCA does (the largest |loading| of the
    component positive). Computed in numpy: importing scikit-learn's decomposition module costs
    seconds, more than the demo's whole PCA."""
    sd = y.std(0)
    x = (y - y.mean(0)) / np.where(sd > 0, sd, 1.0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:k]
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
    return u[:, :k] * np.where(signs == 0, 1.0, signs) * s[:k]
