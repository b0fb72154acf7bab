"""Mixed scalar columns as one column-wise ``TorchFamily``, for the second-order fit.

The fit of ``runtime/fitting`` (latent step: dense Newton; loadings step: one GLM per column)
evaluates the family elementwise on tensors whose last axis is the data column, so mixed
*scalar* columns that share one domain (e.g. Poisson, Bernoulli, Gaussian, binomial: all on
the whole line) fit unchanged through a ``TorchFamily`` whose callables apply column ``j``'s
family to entry ``j`` of the last axis. A 0-d argument (the family's interior point, as the
offsets' shrinkage uses it) is broadcast to all columns.

Vector columns, or scalar columns with different domains, are not accepted here: fit them
with the block model's first-order training (``BlockExpFamPCA.loss`` and ``runtime.train``);
the loadings step of a vector column would be ``k_j (l + 1)`` coupled unknowns.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .columns import ColumnFamilies
from .family import TorchFamily

ColumnFn = Callable[[Tensor], Tensor]


def _columnwise(columns: ColumnFamilies, attr: str) -> ColumnFn:
    """``x -> (f_j(x_..j))_j`` with ``f_j`` the ``attr`` callable of column ``j``'s family."""
    d = columns.data_dim

    def fn(x: Tensor) -> Tensor:
        if x.dim() == 0:
            x = x.expand(d)
        if x.shape[-1] != d:
            raise ValueError(f"a column-wise family needs a last axis of {d} columns")
        parts = [getattr(g.family, attr)(x[..., g.columns]) for g in columns.groups]
        return columns._assemble_columns(parts)

    return fn


def columnwise_family(columns: ColumnFamilies) -> TorchFamily:
    """The ``TorchFamily`` over the last axis (module docstring) of all-scalar ``columns``.

    Its ``support`` is the columns' common support, or ``real`` when they differ (validate the
    data with ``columns.validate_observations`` first); ``log_base_measure`` is given when
    every column has one.

    Raises:
        ValueError: for a vector column or columns with different domains.
    """
    if any(g.vector for g in columns.groups):
        raise ValueError(
            "the second-order fit takes scalar columns only; fit vector columns with "
            "ExpFamPCA(families=...).loss and first-order training"
        )
    domains = {g.family.domain for g in columns.groups}
    if len(domains) != 1:
        raise ValueError(
            f"the second-order fit needs one domain for all columns, got {sorted(domains)}"
        )
    supports = {str(g.family.support) for g in columns.groups}
    has_h = all(g.family.log_base_measure is not None for g in columns.groups)
    return TorchFamily(
        name=columns.name,
        domain=domains.pop(),
        log_partition=_columnwise(columns, "log_partition"),
        activation=_columnwise(columns, "activation"),
        activation_grad=_columnwise(columns, "activation_grad"),
        activation_grad2=_columnwise(columns, "activation_grad2"),
        sufficient_statistic=_columnwise(columns, "sufficient_statistic"),
        support=supports.pop() if len(supports) == 1 else "real",
        log_base_measure=_columnwise(columns, "log_base_measure") if has_h else None,
    )


__all__ = ["columnwise_family"]
