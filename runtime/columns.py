"""One exponential family per data column: the layout of mixed-type and vector columns.

Column ``j`` of the data has its own family ``p_j(y | eta_j) = h_j(y) exp(<eta_j, T_j(y)> -
A_j(eta_j))`` with ``k_j`` natural parameters (``k_j = 1`` for a scalar ``TorchFamily``, any
``k_j >= 1`` for a ``VectorTorchFamily``). The natural parameters of a row are the
concatenation ``eta = (eta_1, ..., eta_d)`` of length ``D = sum_j k_j`` (column ``j`` occupies
``offsets[j] : offsets[j] + k_j``), so the joint log-partition is ``sum_j A_j(eta_j)``, its
gradient the concatenation of the means ``mu_j = grad A_j`` and its Hessian the block
diagonal ``blockdiag(C_j)`` with ``C_j = Hess A_j`` (``k_j x k_j``; ``sigma'_j`` for a scalar
column).

Columns that share one family object form a :class:`ColumnGroup`, evaluated in one batched
call: the hot path loops over the (few) groups, never over columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .family import TorchFamily, as_torch_family
from .validation import DataError, DomainError, _support_violation
from .vector_family import VectorTorchFamily, as_vector_family

AnyFamily = TorchFamily | VectorTorchFamily


def as_any_family(obj: Any) -> AnyFamily:
    """``obj`` as a scalar ``TorchFamily`` or a ``VectorTorchFamily`` (or a module's FAMILY)."""
    try:
        return as_torch_family(obj)
    except TypeError:
        pass
    try:
        return as_vector_family(obj)
    except TypeError:
        raise TypeError(
            f"cannot use {type(obj).__name__} {getattr(obj, '__name__', obj)!r} as a column "
            "family: expected a TorchFamily, a VectorTorchFamily or a generated module"
        ) from None


def family_dim(family: AnyFamily) -> int:
    """``k``: natural parameters per coordinate (1 for a scalar family)."""
    return family.k if isinstance(family, VectorTorchFamily) else 1


@dataclass(frozen=True, eq=False)
class ColumnGroup:
    """The data columns that share one family object.

    Attributes:
        family: the shared family.
        columns: data column indices, ``(n_g,)`` long.
        index: positions of their natural parameters in ``eta``, ``(n_g, k)`` long.
    """

    family: AnyFamily
    columns: Tensor
    index: Tensor

    @property
    def k(self) -> int:
        return self.index.shape[1]

    @property
    def vector(self) -> bool:
        return isinstance(self.family, VectorTorchFamily)

    def eta(self, eta: Tensor) -> Tensor:
        """This group's natural parameters ``(..., n_g, k)`` out of ``eta`` ``(..., D)``."""
        return eta[..., self.index]

    def mean(self, eta_g: Tensor) -> Tensor:
        """``mu = grad A`` per column, ``(..., n_g, k) -> (..., n_g, k)``."""
        if self.vector:
            return self.family.mean(eta_g)
        return self.family.activation(eta_g[..., 0])[..., None]

    def covariance(self, eta_g: Tensor) -> Tensor:
        """``C = Hess A`` per column, ``(..., n_g, k) -> (..., n_g, k, k)``."""
        if self.vector:
            return self.family.covariance(eta_g)
        return self.family.activation_grad(eta_g[..., 0])[..., None, None]

    def log_partition(self, eta_g: Tensor) -> Tensor:
        """``A`` per column, ``(..., n_g, k) -> (..., n_g)``."""
        if self.vector:
            return self.family.log_partition(eta_g)
        return self.family.log_partition(eta_g[..., 0])

    def statistic(self, y: Tensor) -> Tensor:
        """``T`` per column, ``(..., n_g) -> (..., n_g, k)``."""
        t = self.family.sufficient_statistic(y)
        return t if self.vector else t[..., None]

    def in_domain(self, eta_g: Tensor) -> Tensor:
        """Per column: ``eta_j`` inside the open (product) domain, ``(..., n_g)`` bool."""
        if self.vector:
            return self.family.in_domain(eta_g)
        return self.family.in_domain(eta_g[..., 0])

    def interior(self) -> list[float]:
        """A point strictly inside the domain, as ``k`` floats."""
        point = self.family.interior_point()
        return list(point) if self.vector else [point]

    def support_max(self) -> float | None:
        return getattr(self.family, "support_max", None)


class ColumnFamilies:
    """``d`` data columns, each with its family; natural dimension ``D = sum_j k_j``.

    Build it from a list of families (one per column) or with :meth:`repeat` from one family.
    Families may be ``TorchFamily``, ``VectorTorchFamily`` or generated modules; columns whose
    families are the same object are grouped and evaluated together.
    """

    def __init__(self, families: Sequence[Any]) -> None:
        fams = [as_any_family(f) for f in families]
        if not fams:
            raise ValueError("ColumnFamilies needs at least one column")
        self.families: tuple[AnyFamily, ...] = tuple(fams)
        dims = [family_dim(f) for f in fams]
        self.dims: tuple[int, ...] = tuple(dims)
        offsets = [0]
        for k in dims:
            offsets.append(offsets[-1] + k)
        self.offsets: tuple[int, ...] = tuple(offsets[:-1])
        self.natural_dim = offsets[-1]
        # column of every natural parameter (maps per-column masks onto eta's coordinates)
        self.column_of = torch.tensor([j for j, k in enumerate(dims) for _ in range(k)])
        order: dict[int, list[int]] = {}
        for j, f in enumerate(fams):
            order.setdefault(id(f), []).append(j)
        groups = []
        for cols in order.values():
            k = dims[cols[0]]
            index = torch.tensor([[self.offsets[j] + i for i in range(k)] for j in cols])
            groups.append(ColumnGroup(fams[cols[0]], torch.tensor(cols), index))
        self.groups: tuple[ColumnGroup, ...] = tuple(groups)
        # inverse permutations: group-major concatenation -> column order
        flat_eta = torch.cat([g.index.reshape(-1) for g in groups])
        self._eta_order = torch.argsort(flat_eta)
        flat_col = torch.cat([g.columns for g in groups])
        self._col_order = torch.argsort(flat_col)

    @classmethod
    def repeat(cls, family: Any, data_dim: int) -> ColumnFamilies:
        """``data_dim`` columns that all follow ``family`` (one group)."""
        if not isinstance(data_dim, int) or data_dim < 1:
            raise ValueError(f"data_dim must be a positive integer, got {data_dim!r}")
        fam = as_any_family(family)
        return cls([fam] * data_dim)

    @property
    def data_dim(self) -> int:
        return len(self.families)

    @property
    def name(self) -> str:
        """A label for messages: the distinct family names, in column order."""
        names = list(dict.fromkeys(g.family.name for g in self.groups))
        return "+".join(names)

    def __repr__(self) -> str:
        return f"ColumnFamilies({self.name}, d={self.data_dim}, D={self.natural_dim})"

    # ------------------------------------------------------------------ assembly
    def _assemble_eta(self, parts: list[Tensor]) -> Tensor:
        """Group results ``(..., n_g, k_g)`` (one per group) -> ``(..., D)`` in eta order."""
        batch = parts[0].shape[:-2]
        flat = torch.cat([p.reshape(*batch, -1) for p in parts], dim=-1)
        return flat[..., self._eta_order.to(flat.device)]

    def _assemble_columns(self, parts: list[Tensor]) -> Tensor:
        """Group results ``(..., n_g)`` -> ``(..., d)`` in column order."""
        flat = torch.cat(parts, dim=-1)
        return flat[..., self._col_order.to(flat.device)]

    def slice(self, eta: Tensor, column: int) -> Tensor:
        """The natural parameters ``eta_j`` of data column ``j``, ``(..., k_j)``."""
        start = self.offsets[column]
        return eta[..., start : start + self.dims[column]]

    def interior_point(self, dtype: torch.dtype | None = None) -> Tensor:
        """A ``(D,)`` point strictly inside every column's domain."""
        parts = [torch.tensor([g.interior()] * len(g.columns), dtype=dtype) for g in self.groups]
        return self._assemble_eta(parts)

    # ------------------------------------------------------------------ the family maths
    def mean(self, eta: Tensor) -> Tensor:
        """``mu(eta) = grad sum_j A_j`` (the activation), ``(..., D) -> (..., D)``."""
        return self._assemble_eta([g.mean(g.eta(eta)) for g in self.groups])

    def covariance_blocks(self, eta: Tensor) -> list[Tensor]:
        """``C_j = Hess A_j(eta_j)`` per group, each ``(..., n_g, k, k)`` (scalar: ``1 x 1``)."""
        return [g.covariance(g.eta(eta)) for g in self.groups]

    def log_partition_terms(self, eta: Tensor) -> Tensor:
        """``A_j(eta_j)`` per column, ``(..., D) -> (..., d)``."""
        return self._assemble_columns([g.log_partition(g.eta(eta)) for g in self.groups])

    def log_partition(self, eta: Tensor) -> Tensor:
        """``sum_j A_j(eta_j)``, ``(..., D) -> (...)``."""
        return sum(g.log_partition(g.eta(eta)).sum(-1) for g in self.groups)

    def sufficient_statistic(self, Y: Tensor) -> Tensor:
        """``T(Y)`` with column ``j`` expanded to its ``k_j`` statistics, ``(N, d) -> (N, D)``."""
        return self._assemble_eta([g.statistic(Y[..., g.columns]) for g in self.groups])

    def log_base_measure(self, Y: Tensor) -> Tensor:
        """``log h_j(y_j)`` per entry, ``(N, d) -> (N, d)``; refused if a family has no ``h``."""
        parts = []
        for g in self.groups:
            if g.family.log_base_measure is None:
                raise ValueError(f"family {g.family.name!r} has no base measure h(y)")
            parts.append(g.family.log_base_measure(Y[..., g.columns]))
        return self._assemble_columns(parts)

    def in_domain(self, eta: Tensor) -> Tensor:
        """Per column: ``eta_j`` inside its domain, ``(..., D) -> (..., d)`` bool."""
        return self._assemble_columns([g.in_domain(g.eta(eta)) for g in self.groups])

    def log_likelihood(self, Y: Tensor, eta: Tensor) -> Tensor:
        """``log p_j(y_sj | eta_sj) = log h_j + <eta_j, T_j(y)> - A_j(eta_j)`` per entry,
        ``(N, d)``."""
        inner = (eta * self.sufficient_statistic(Y)).reshape(*eta.shape[:-1], -1)
        dot = self._column_sums(inner)
        return self.log_base_measure(Y) + dot - self.log_partition_terms(eta)

    def _column_sums(self, x: Tensor) -> Tensor:
        """Sum the ``k_j`` coordinates of every column: ``(..., D) -> (..., d)``."""
        out = torch.zeros((*x.shape[:-1], self.data_dim), dtype=x.dtype, device=x.device)
        return out.index_add(-1, self.column_of.to(x.device), x)

    # ------------------------------------------------------------------ Hessians
    def hessian(self, W: Tensor, eta: Tensor, lam: float) -> Tensor:
        """``lam I + W^T blockdiag(C_j(eta)) W`` per row of ``eta`` ``(N, D)``: ``(N, l, l)``.

        Each group adds ``sum_j W_j^T C_j W_j`` with ``W_j`` the ``k x l`` rows of column ``j``,
        as one einsum (a scalar group as one GEMM ``sigma' @ (w_j w_j^T)``); no ``D x D``
        matrix is formed.
        """
        l = W.shape[1]
        H = lam * torch.eye(l, dtype=W.dtype, device=W.device).expand(*eta.shape[:-1], l, l)
        for g in self.groups:
            C = g.covariance(g.eta(eta))
            Wg = W[g.index]  # (n_g, k, l)
            if not g.vector:
                w = Wg[:, 0, :]
                outer = (w[:, :, None] * w[:, None, :]).reshape(w.shape[0], l * l)
                H = H + (C[..., 0, 0] @ outer).reshape(*eta.shape[:-1], l, l)
            else:
                CW = torch.einsum("...gab,gbm->...gam", C, Wg)
                H = H + torch.einsum("gal,...gam->...lm", Wg, CW)
        return H

    def hvp(self, W: Tensor, blocks: list[Tensor], v: Tensor) -> Tensor:
        """``W^T blockdiag(C) W v`` for rows ``v`` ``(N, l)``, with ``blocks`` from
        :meth:`covariance_blocks` (no matrix formed)."""
        wv = v @ W.T
        pairs = zip(self.groups, blocks, strict=True)
        parts = [(C @ wv[..., g.index, None])[..., 0] for g, C in pairs]
        return self._assemble_eta(parts) @ W

    def laplace_root(self, W: Tensor, eta: Tensor) -> Tensor:
        """``M`` with ``M^T M = W^T blockdiag(C_j) W``: rows ``L_j^T W_j`` (``C_j = L_j L_j^T``),
        shape ``(N, D, l)`` in eta order."""
        parts = []
        for g in self.groups:
            L = torch.linalg.cholesky(g.covariance(g.eta(eta)))  # (N, n_g, k, k)
            parts.append(L.mT @ W[g.index])  # (N, n_g, k, l)
        batch = parts[0].shape[:-3]
        flat = torch.cat([p.reshape(*batch, -1, W.shape[1]) for p in parts], dim=-2)
        return flat[..., self._eta_order.to(flat.device), :]

    # ------------------------------------------------------------------ validation
    def validate_observations(self, Y: Tensor, what: str = "Y") -> None:
        """Raise ``DataError`` naming the first entry (row, column) outside its column's
        support (or above the family's ``support_max``)."""
        for g in self.groups:
            y = Y[:, g.columns]
            bad = _support_violation(y, str(g.family.support))
            top = g.support_max()
            if top is not None:
                bad = bad | (y > top)
            if bool(bad.any()):
                r, c = torch.nonzero(bad)[0].tolist()
                col = int(g.columns[c])
                bound = "" if top is None else f", at most {top:g}"
                raise DataError(
                    f"{what} value {float(y[r, c])!r} at row {r}, column {col} is outside the "
                    f"support of its family {g.family.name!r} ({g.family.support}{bound}); "
                    f"{int(bad.sum())} such value(s) in that family's columns"
                )

    def validate_canonical(self, eta: Tensor, what: str = "eta") -> None:
        """Raise ``DomainError`` naming the first column whose ``eta_j`` leaves its domain."""
        inside = self.in_domain(eta)
        if bool(inside.all()):
            return
        bad = ~inside.reshape(-1, self.data_dim)
        r, c = torch.nonzero(bad)[0].tolist()
        values = self.slice(eta.reshape(-1, self.natural_dim)[r], c).tolist()
        fam = self.families[c]
        where = f"{what}[{c}]" if eta.dim() == 1 else f"{what} at row {r}, column {c}"
        raise DomainError(
            f"{where} = {values} is outside the domain {fam.domain} of family {fam.name!r}, "
            f"where the log-partition is finite; {int(bad.sum())} such value(s) in all"
        )


def as_columns(families: Any, data_dim: int) -> ColumnFamilies:
    """A ``ColumnFamilies`` from itself, one family (repeated ``data_dim`` times) or a list of
    ``data_dim`` families."""
    if isinstance(families, ColumnFamilies):
        cols = families
    elif isinstance(families, (list, tuple)):
        cols = ColumnFamilies(families)
    else:
        cols = ColumnFamilies.repeat(families, data_dim)
    if cols.data_dim != data_dim:
        raise ValueError(f"{cols.data_dim} column families given for data_dim={data_dim}")
    return cols


__all__ = ["AnyFamily", "ColumnFamilies", "ColumnGroup", "as_any_family", "as_columns"]
