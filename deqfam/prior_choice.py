"""``fit(weight_decay="auto")``: the prior on ``(W, B)`` chosen by a held-out criterion.

The default prior ``w = 0.125 N`` (``runtime.fitting.prior``) was measured on three data
sets; on a new one a user may want the data to choose. ``"auto"`` holds out a seeded tenth of
the rows, fits the rest once per weight decay per sample ``c`` in :data:`AUTO_PER_SAMPLE`
(``w = c N_fit``), scores each fit by the held-out half loss of
``runtime.fitting.heldout`` (each held-out row's latent fitted to half its columns predicts
the other half), and takes the ``c`` with the lowest loss; ``fit`` then fits all ``N`` rows
at ``w = c N``. It costs one fit per grid point on 90% of the rows. Training deviance is not
the criterion: it always prefers the weakest prior (BENCHMARKS.md, "The default prior").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import Tensor
from tqdm.auto import tqdm

from deqfam.runtime.fitting.heldout import heldout_half_loss, holdout_rows

#: the weight decays per sample that ``"auto"`` tries (the default rule's 0.125 among them;
#: the range covers the optima measured in BENCHMARKS.md, "The default prior")
AUTO_PER_SAMPLE = (0.001, 0.01, 0.125, 1.0, 10.0)
#: the fraction of rows ``"auto"`` holds out
AUTO_HOLDOUT = 0.1


@dataclass(frozen=True)
class PriorChoice:
    """What ``"auto"`` tried and chose: the weight decays per sample, their held-out half
    losses (per held-out row), the chosen per-sample value, and the row counts."""

    per_sample: tuple[float, ...]
    losses: tuple[float, ...]
    chosen_per_sample: float
    n_fitted: int
    n_heldout: int

    def weight_decay(self, n_rows: int) -> float:
        """The chosen prior for a fit of ``n_rows`` rows: ``c N``."""
        return self.chosen_per_sample * n_rows

    def to_dict(self) -> dict:
        """Plain JSON data for ``history.json`` (lists; a loss that was not finite is None)."""
        record = {"rule": "held-out half loss", **asdict(self)}
        record["per_sample"] = list(self.per_sample)
        record["losses"] = [v if math.isfinite(v) else None for v in self.losses]
        return record


def choose_weight_decay(
    data: Tensor,
    family,
    lam: float,
    fit_at: Callable[[Tensor, float], tuple[Tensor, Tensor]],
    *,
    seed: int = 0,
    per_sample: tuple[float, ...] = AUTO_PER_SAMPLE,
    holdout: float = AUTO_HOLDOUT,
    progress: bool = False,
) -> PriorChoice:
    """Fit the non-held-out rows at each ``w = c N_fit`` with ``fit_at(rows, w) -> (W, B)``
    and return the ``c`` whose fit gives the lowest held-out half loss (module docstring).
    A fit whose loss is not finite never wins; if none is finite, ``ValueError``."""
    fitted, held = holdout_rows(data.shape[0], holdout, seed)
    train, test = data[fitted], data[held]
    losses = []
    for c in tqdm(per_sample, desc="choosing the prior", disable=not progress, leave=False):
        W, B = fit_at(train, c * len(fitted))
        loss = heldout_half_loss(family, test, W.detach(), B.detach(), lam, seed)
        losses.append(loss if math.isfinite(loss) else math.inf)
    best = min(range(len(losses)), key=losses.__getitem__)
    if not math.isfinite(losses[best]):
        raise ValueError(
            "weight_decay='auto': no prior tried gave a finite held-out loss "
            f"(weight decays per sample {list(per_sample)}); pass a weight decay"
        )
    return PriorChoice(tuple(per_sample), tuple(losses), per_sample[best], len(fitted), len(held))
