"""``ExponentialFamilyPCA``: exponential-family PCA as a scikit-learn transformer.

The model is the ExpFamPCA of Theorem 1: rows ``x`` with latents ``z ~ N(0, lam^-1 I)`` and
``x_j | z ~ family(eta_j)``, ``eta = W z + B``. ``fit`` minimises the joint MAP objective by
the second-order alternation of ``runtime.fitting.fit_newton`` with ``deqfam fit``'s
defaults; ``transform`` gives the MAP latents ``z* = argmin_z J(z)`` of new rows (the
layer's Newton solve, ``ExpFamPCA.forward``, which ``deqfam transform`` runs too);
``inverse_transform`` the means ``sigma(W z + B) = E[T(x) | z]``; ``score`` the mean
log-likelihood ``log p(x | z*)`` per row.

scikit-learn is an optional dependency (the ``sklearn`` extra): this module imports it at
the top, and ``deqfam`` imports this module only when ``deqfam.ExponentialFamilyPCA`` is
first asked for, so ``import deqfam`` works without scikit-learn, and asking for the
estimator without it raises an ImportError that says what to install.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.validation import check_array, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "deqfam.ExponentialFamilyPCA needs scikit-learn >= 1.6: pip install 'deqfam[sklearn]'"
    ) from exc

from deqfam.runtime.columns import ColumnFamilies
from deqfam.runtime.fitting import NewtonFitConfig, fit_newton
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.threads import batched_hessian_work, choose_threads, thread_scope
from deqfam.runtime.validation import validate_observations
from deqfam.runtime.vector_family import VectorTorchFamily


def resolve_family(family: Any, allow_inadmissible: bool = False) -> Any:
    """The runtime family of ``family``: a built-in name, a spec path, a derived ``Family``,
    a generated module or a ``TorchFamily`` (``deqfam.api.torch_family``, which applies
    ``deqfam check``'s verdict); a list of those, one per column, gives their
    ``ColumnFamilies`` (columns given the same built-in name or object share one family)."""
    from deqfam.column_specs import column_family
    from deqfam.runtime.columns import ColumnFamilies, as_any_family

    if isinstance(family, list | tuple):  # one family per column (runtime/columns.py)
        return ColumnFamilies([resolve_family(f, allow_inadmissible) for f in family])
    if isinstance(family, str | Path):
        return column_family(family, allow_inadmissible)  # scalar or vector SPEC
    try:
        return as_any_family(family)  # a TorchFamily, VectorTorchFamily or generated module
    except TypeError:
        return column_family(family, allow_inadmissible)  # a derived Family


def _as_rows(X: np.ndarray) -> torch.Tensor:
    """A float64 torch copy of a validated numpy matrix (sklearn may pass read-only views)."""
    return torch.from_numpy(np.array(X, dtype=np.float64, order="C", copy=True))


class ExponentialFamilyPCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Exponential-family PCA (Theorem 1) fitted by second-order alternation.

    Args:
        family: a built-in family name (``deqfam list``), a path to a YAML spec, a derived
            ``deqfam.Family``, a generated module or a ``TorchFamily``; or a list with one of
            those per column (mixed columns, ``runtime/columns.py``); a vector family (e.g.
            ``"gamma_shape"``) applies to every column. All are fitted by the second-order
            alternation (per column group for mixed or vector columns).
        n_components: latent dimension ``l`` (1 <= l <= n_features).
        lam: prior precision of the latents, ``z ~ N(0, lam^-1 I)`` (``deqfam fit --lam``).
        weight_decay: precision of the Gaussian prior on ``(W, B)``; ``None`` takes
            ``deqfam fit``'s per-sample rule (``runtime.fitting.prior``: 0.125 per row).
        max_iter: most outer (loadings) iterations of the fit.
        tol: relative change of the objective below which the fit may stop (``rtol`` of
            ``NewtonFitConfig``; it also needs the loadings gradient below ``gtol``).
        gtol: bound on the loadings gradient norm relative to ``max(1, |F|)``.
        random_state: seed of the initial ``W`` of the model. The second-order fit starts
            from the SVD of the Pearson residuals, which is deterministic, so fits do not
            depend on it; it is kept for the scikit-learn interface.
        threads: torch intra-op threads for the fit and the solves, or ``"auto"`` (the
            library's policy, ``runtime/threads.py``).
        allow_inadmissible: use a family that ``deqfam check`` rejects (with a warning).
        verbose: show the fit's progress bar.

    Attributes (after ``fit``):
        components_: ``W^T``, shape ``(n_components, D)`` (scikit-learn's layout; row ``k``
            holds the loadings of latent ``k``); ``D`` is the number of natural parameters,
            ``n_features`` for scalar families, ``sum_j k_j`` with vector families.
        offsets_: ``B``, shape ``(D,)``, the natural-parameter offsets (where the latent is
            0); not column means, so not called ``mean_``.
        n_features_in_, feature_names_in_ (for DataFrames), n_iter_ (loadings steps taken),
        converged_ (the fit's convergence test held), stop_reason_, objective_ (the final
        joint objective), model_ (the fitted ``runtime.models.ExpFamPCA``).
    """

    def __init__(
        self,
        family: Any = "poisson",
        n_components: int = 2,
        *,
        lam: float = 0.1,
        weight_decay: float | None = None,
        max_iter: int = 500,
        tol: float = 1e-5,
        gtol: float = 1e-3,
        random_state: int | None = None,
        threads: int | str = "auto",
        allow_inadmissible: bool = False,
        verbose: bool = False,
    ) -> None:
        self.family = family
        self.n_components = n_components
        self.lam = lam
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.tol = tol
        self.gtol = gtol
        self.random_state = random_state
        self.threads = threads
        self.allow_inadmissible = allow_inadmissible
        self.verbose = verbose

    # ---------------------------------------------------------------- helpers
    def _check_hyperparameters(self, n_features: int) -> None:
        """ValueError for an out-of-range hyperparameter (scikit-learn checks at fit)."""
        l = self.n_components
        if not isinstance(l, int | np.integer) or isinstance(l, bool) or not 1 <= l <= n_features:
            raise ValueError(
                f"n_components={l!r} must be an integer between 1 and n_features={n_features}"
            )
        if not (isinstance(self.lam, int | float) and self.lam > 0):
            raise ValueError(f"lam must be > 0, got {self.lam!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0 or None, got {self.weight_decay!r}")

    def _checked_rows(self, X: Any, fam: Any, reset: bool = False) -> torch.Tensor:
        """``X`` validated as scikit-learn expects (finite, 2-D, feature count when not
        ``reset``) and against the support of ``fam`` (a ValueError naming row and column)."""
        Y = _as_rows(validate_data(self, X, reset=reset, dtype=np.float64))
        if hasattr(fam, "groups"):  # ColumnFamilies: each column against its own family
            if Y.shape[1] != fam.data_dim:
                raise ValueError(
                    f"X has {Y.shape[1]} features but family lists {fam.data_dim} column families"
                )
            fam.validate_observations(Y, what="X")
            return Y
        return validate_observations(
            Y, fam.support, what="X", support_max=getattr(fam, "support_max", None)
        )

    def _thread_choice(self, n_rows: int) -> Any:
        work = batched_hessian_work(min(n_rows, 500), self.n_features_in_, self.n_components)
        return choose_threads(self.threads, work)

    # ---------------------------------------------------------------- scikit-learn API
    def fit(self, X: Any, y: Any = None) -> ExponentialFamilyPCA:
        """Fit ``W`` and ``B`` to the rows of ``X`` (``y`` is ignored): the joint MAP
        objective ``F = sum_s [1^T A(W z_s + B) - T(x_s)^T (W z_s + B) + lam/2 |z_s|^2]
        + weight_decay/2 (|W|^2 + |B|^2)``, minimised by ``runtime.fitting.fit_newton``."""
        from deqfam.runtime.fitting.prior import default_weight_decay

        family = resolve_family(self.family, self.allow_inadmissible)
        Y = self._checked_rows(X, family, reset=True)
        self._check_hyperparameters(Y.shape[1])
        # None: ``deqfam fit``'s per-sample default prior, resolved for these rows
        decay = (
            default_weight_decay(Y.shape[0])
            if self.weight_decay is None
            else float(self.weight_decay)
        )
        seed = 0 if self.random_state is None else int(self.random_state)
        if isinstance(family, VectorTorchFamily):  # a vector family for every column
            family = ColumnFamilies.repeat(family, Y.shape[1])
        if hasattr(family, "groups"):
            return self._fit_columns(Y, family, decay, seed)
        model = ExpFamPCA(
            family,
            Y.shape[1],
            int(self.n_components),
            lam=float(self.lam),
            weight_decay=decay,
            generator=torch.Generator().manual_seed(seed),
            dtype=torch.float64,
        )
        cfg = NewtonFitConfig(
            max_iter=int(self.max_iter), rtol=self.tol, gtol=self.gtol, progress=self.verbose
        )
        with thread_scope(self._thread_choice(Y.shape[0])):
            history = fit_newton(model, Y, cfg)
        return self._store(model, history, history.iterations)

    def _fit_columns(self, Y: torch.Tensor, columns: Any, decay: float, seed: int) -> Any:
        """One family per column (or vector columns): the per-column ExpFamPCA fitted by the
        same second-order alternation per column group (``deqfam.mixed_fit``)."""
        from deqfam.mixed_fit import fit_mixed

        cfg = NewtonFitConfig(max_iter=int(self.max_iter), rtol=self.tol, gtol=self.gtol)
        res = fit_mixed(
            Y,
            list(columns.families),
            int(self.n_components),
            lam=float(self.lam),
            seed=seed,
            weight_decay=decay,
            progress=self.verbose,
            threads=self.threads,
            newton_config=cfg,
        )
        return self._store(res.model, res.history, res.history.iterations)

    def _store(self, model: Any, history: Any, n_iter: int) -> ExponentialFamilyPCA:
        """The fitted attributes of ``model`` and its fit's ``history``."""
        self.model_ = model
        self.components_ = model.W.detach().numpy().T.copy()
        self.offsets_ = model.B.detach().numpy().copy()
        self.n_iter_ = n_iter
        self.stop_reason_ = history.stop_reason
        self.converged_ = history.stop_reason == "converged"
        self.objective_ = history.loss[-1]
        self._n_features_out = int(self.n_components)
        if not self.converged_:
            warnings.warn(
                f"ExponentialFamilyPCA: {history.stop_message}; raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def transform(self, X: Any) -> np.ndarray:
        """MAP latents ``z* = argmin_z lam/2 |z|^2 - z^T W^T T(x) + 1^T A(W z + B)`` of each
        row (shape ``(n_samples, n_components)``), by the model's Newton solve."""
        check_is_fitted(self)
        Y = self._checked_rows(X, self.model_.family)
        with thread_scope(self._thread_choice(Y.shape[0])), torch.no_grad():
            return self.model_(Y).numpy()

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The means ``E[T(x) | z] = sigma(W z + B)`` of the latents ``X`` (rows are ``z``),
        shape ``(n_samples, n_features)``; ``T(x) = x`` for the built-in scalar families."""
        check_is_fitted(self)
        Z = check_array(X, dtype=np.float64)
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} columns but ExponentialFamilyPCA has "
                f"n_components={self.n_components}"
            )
        with torch.no_grad():
            return self.model_.reconstruct(_as_rows(Z)).numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """``log p(x | z*) = sum_j [log h(x_j) + eta_j T(x_j) - A(eta_j)]`` per row, at the
        row's MAP latent ``z*`` (``eta = W z* + B``). A family whose spec gives no base
        measure ``h`` has no normalised likelihood: ValueError."""
        check_is_fitted(self)
        fam = self.model_.family
        if hasattr(fam, "groups"):  # one family per column: its log h_j per column
            Y = self._checked_rows(X, fam)
            with thread_scope(self._thread_choice(Y.shape[0])), torch.no_grad():
                return self.model_.log_likelihood(Y, self.model_(Y)).sum(-1).numpy()
        if fam.log_base_measure is None:
            raise ValueError(
                f"family {fam.name!r} has no base measure h(y) (its spec gives no "
                "base_measure), so its log-likelihood is defined only up to a constant"
            )
        Y = self._checked_rows(X, self.model_.family)
        with thread_scope(self._thread_choice(Y.shape[0])), torch.no_grad():
            eta = self.model_.natural_parameters(self.model_(Y))
            loglik = fam.log_base_measure(Y) + eta * fam.sufficient_statistic(Y)
            return (loglik - fam.log_partition(eta)).sum(-1).numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """The mean over rows of :meth:`score_samples` (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


__all__ = ["ExponentialFamilyPCA", "resolve_family"]
