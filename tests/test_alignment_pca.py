"""``deqfam.alignment.pca_embedding`` (numpy SVD) against scikit-learn's StandardScaler +
PCA, the Appendix C baseline it replaces in the demo and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from deqfam.alignment import pca_embedding


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_embedding_equals_sklearn_including_signs(seed):
    decomposition = pytest.importorskip("sklearn.decomposition")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(seed)
    y = rng.poisson(3.0, (200, 12)).astype(float)
    y[:, 3] = 1.0  # a constant column: sklearn scales it by 1, as pca_embedding does
    ref = decomposition.PCA(2).fit_transform(preprocessing.StandardScaler().fit_transform(y))
    np.testing.assert_allclose(pca_embedding(y), ref, rtol=0, atol=1e-10)
