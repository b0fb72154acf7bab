"""When to stop training: a convergence test on the epoch loss, with a plateau schedule.

The test looks only at the per-epoch losses ``L_1, ..., L_k`` (a pure function of the
history, so a resumed run decides exactly as an uninterrupted one). Over a window of ``w``
epochs the *relative decrease* is

    rel_k = (L_{k-w} - L_k) / (L_1 - L_k),

the fraction of the whole run's progress made in the last ``w`` epochs (<= 0 when the loss
did not fall). It is measured against the progress, not against ``|L_k|``, because the
training loss omits ``log h(y)`` and other constants: a Poisson objective of -40000 per
sample is mostly such a constant, and ``|L_k|`` would make any tolerance meaninglessly lax
(measured: it stopped a Poisson run far from its optimum). A plateau is ``rel_k < tol``.
On a plateau the learning rate is multiplied by ``lr_decay``
(at most ``max_decays`` times; a smaller step lowers the noise floor of stochastic
minibatch steps, so the embedding settles); a plateau with no decay left ends the run as
*converged*. ``max_epochs`` (the trainer's ``epochs``) bounds the run whatever happens.

The window only spans epochs trained at the current learning rate: after a decay, the next
test waits for ``w`` new epochs, so the pre-decay losses cannot mask or fake a plateau.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Stop reasons recorded in ``History.stop_reason``.
CONVERGED, MAX_EPOCHS = "converged", "max_epochs"


@dataclass(frozen=True)
class StoppingRule:
    """Options of the convergence test (see the module docstring).

    ``tol`` = 0 disables the test (the run lasts ``max_epochs``); ``lr_decay`` = 1 or
    ``max_decays`` = 0 means no schedule (the first plateau stops the run).
    """

    tol: float = 0.0
    window: int = 5
    lr_decay: float = 1.0
    max_decays: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, int | float) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be finite and >= 0, got {self.tol!r}")
        for name in ("window", "max_decays"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window!r}")
        if not (isinstance(self.lr_decay, int | float) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")

    @property
    def enabled(self) -> bool:
        return self.tol > 0


@dataclass(frozen=True)
class Decision:
    """What to do after an epoch: ``action`` is ``"continue"``, ``"decay"`` or ``"stop"``;
    ``reason`` is ``converged`` / ``max_epochs`` for a stop; ``rel`` is the relative decrease
    over the window (``None`` before a full window exists); ``message`` says it in words."""

    action: str
    reason: str | None = None
    rel: float | None = None
    message: str = ""


def relative_decrease(losses: list[float], window: int, since: int = 0) -> float | None:
    """``(L[k-w] - L[k]) / (L[0] - L[k])`` for the last index ``k`` (invariant to an added
    constant and to the loss's scale), with the window inside the epochs from index
    ``since`` on; ``None`` while the window is not full. With no progress since the first
    epoch (``L[0] <= L[k]``) it is 0 if the window did not gain either, else ``inf``."""
    k = len(losses) - 1
    if k - window < since:
        return None
    gain, total = losses[k - window] - losses[k], losses[0] - losses[k]
    if total <= 0:
        return 0.0 if gain <= 0 else math.inf
    return gain / total


def epochs_since_last_decay(lrs: list[float]) -> int:
    """Index of the first epoch trained at the current learning rate (0 with no decay)."""
    start = 0
    for i in range(1, len(lrs)):
        if lrs[i] != lrs[i - 1]:
            start = i
    return start


def decide(
    rule: StoppingRule, losses: list[float], lrs: list[float], decays: int, max_epochs: int
) -> Decision:
    """Decision after the last recorded epoch (``len(losses)`` epochs done, ``decays``
    learning-rate decays applied so far, ``lrs`` the learning rate of each epoch)."""
    done = len(losses)
    since = epochs_since_last_decay(lrs) if lrs else 0
    rel = relative_decrease(losses, rule.window, since) if rule.enabled else None
    if rel is not None and rel < rule.tol:
        if decays < rule.max_decays and rule.lr_decay < 1:
            return Decision(
                "decay",
                None,
                rel,
                f"plateau after epoch {done} (relative decrease {rel:.2e} over {rule.window} "
                f"epochs < tol {rule.tol:g}): learning rate x {rule.lr_decay:g}",
            )
        return Decision(
            "stop",
            CONVERGED,
            rel,
            f"converged after {done} epochs: relative decrease of the epoch loss over the "
            f"last {rule.window} epochs {rel:.2e} < tol {rule.tol:g}"
            + (f" (after {decays} learning-rate decays)" if decays else ""),
        )
    if done >= max_epochs:
        if not rule.enabled:
            test = "no convergence test (tol = 0)"
        elif rel is None:
            test = f"too few epochs for the {rule.window}-epoch convergence window"
        else:
            test = (
                f"relative decrease over the last {rule.window} epochs {rel:.2e} >= "
                f"tol {rule.tol:g}"
            )
        return Decision(
            "stop", MAX_EPOCHS, rel, f"stopped at the maximum of {max_epochs} epochs; {test}"
        )
    return Decision("continue", None, rel)


__all__ = [
    "CONVERGED",
    "MAX_EPOCHS",
    "Decision",
    "StoppingRule",
    "decide",
    "epochs_since_last_decay",
    "relative_decrease",
]
