"""The default prior of ``fit``: a weight decay per sample.

The joint MAP objective (``objective``) is ``F = (1/N)[sum_s (A - T eta + lam/2 |z_s|^2)
+ w/2 (|W|^2 + |B|^2)]``: only ``lam w`` matters for ``eta = Z W^T + B`` (balanced factors
give the nuclear-norm penalty ``sqrt(lam w) |eta - B|_*``). Each row's latent is shrunk
towards 0 by about ``sqrt(lam w) / (A'' s_k)`` along singular direction ``k``, and the
singular values ``s_k`` of an ``N x d`` matrix grow like ``sqrt(N)``. A constant ``w``
therefore shrinks the latents less the more rows there are, and the Bernoulli embedding of
the paper's data set, better than PCA's at 4097 rows with ``w = 500``, is worse than PCA's
at 42560 rows with the same ``w`` (BENCHMARKS.md, "The default prior"). Scaling ``w`` with
``N`` keeps the shrinkage of every row the same at every data size: ``w = c N``, a weight
decay ``c`` on the per-sample objective, which is also how the paper's Adam training applies
its weight decay (to the mean loss of a minibatch).

On small data the rule gives a weaker prior than the paper's constant 500 (35 at 280 rows).
That was measured both ways: on scikit-learn's digits (1437 rows, Poisson, 2 latents) a
constant 500 collapses the embedding onto a line (singular values of Z 136 and 15; 5-fold
logistic-regression accuracy of the labels 0.31) where ``c N = 180`` does not (111 and 86;
0.54, glmpca 0.555); on the paper's Figure 3 data at its reduced scale (280 training rows,
50 head epochs) 500 gives lower test MSE after fine-tuning in Bernoulli trials 0-2. The
default serves real data of realistic size; a floor was tried and withdrawn for the digits
collapse.
"""

from __future__ import annotations

#: the weight decay per sample ``c`` of the default prior ``w = c N`` (500 at the paper's
#: 4097-row data set, where it was measured; BENCHMARKS.md, "The default prior")
DEFAULT_WEIGHT_DECAY_PER_SAMPLE = 0.125


def default_weight_decay(n_samples: int, per_sample: float = DEFAULT_WEIGHT_DECAY_PER_SAMPLE):
    """``w = c N``: the precision of the default Gaussian prior on ``(W, B)`` for ``N`` rows."""
    if n_samples < 1:
        raise ValueError(f"the default prior needs at least one sample, got {n_samples}")
    return float(per_sample) * int(n_samples)
