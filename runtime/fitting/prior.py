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

Below 4000 rows the rule keeps the paper's constant ``w = 500`` as a floor: ``w = max(500,
c N)``. Measured on the paper's Figure 3 experiment at its reduced scale (280 training rows,
``benchmarks.paper_fig3``), ``c N = 35`` loses to PCA after fine-tuning in most Bernoulli
trials while 500 wins them (test MSE 1.3-1.7 against PCA's 2.2-3.5 in trials 0-2), and the
embedding's Procrustes error is lower at 500 too. A prior that stays fixed while the data are
few is also the Bayesian reading of ``w``; only beyond the paper's size does the per-row
scaling above take over.
"""

from __future__ import annotations

#: the weight decay per sample ``c`` of the default prior ``w = max(w0, c N)`` (500 at the
#: paper's 4097-row data set, where it was measured; BENCHMARKS.md, "The default prior")
DEFAULT_WEIGHT_DECAY_PER_SAMPLE = 0.125
#: the floor ``w0``: the paper's weight decay (Appendix C), kept while the data are few
DEFAULT_WEIGHT_DECAY_FLOOR = 500.0


def default_weight_decay(
    n_samples: int,
    per_sample: float = DEFAULT_WEIGHT_DECAY_PER_SAMPLE,
    floor: float = DEFAULT_WEIGHT_DECAY_FLOOR,
) -> float:
    """``w = max(w0, c N)``: the precision of the default Gaussian prior on ``(W, B)`` for
    ``N`` rows (module docstring)."""
    if n_samples < 1:
        raise ValueError(f"the default prior needs at least one sample, got {n_samples}")
    return max(float(floor), float(per_sample) * int(n_samples))
