"""Reuse of a fit: load ``deqfam fit``'s output folder and transform new rows.

A fit folder holds ``params.pt`` (W, B, lam, the family's name and spec digest) and
``spec.yaml`` (the spec text the family was derived from). :func:`load_fit` re-derives the
family from that text, refuses it unless its SHA-256 is the recorded digest, and rebuilds the
ExpFamPCA model; :func:`transform` gives the MAP latents z* = argmin_z J(z) of new rows (the
model's Newton solve) and their Laplace covariances H(z*)^-1, H = lam I + W^T diag(A'') W.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deqfam.runtime.laplace import posterior_from_latents
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.validation import DataError, validate_observations

COLUMNS_NAME = "columns.json"  # deqfam.column_specs.COLUMNS_NAME (no import: lazy)
PARAMS_NAME = "params.pt"
SPEC_NAME = "spec.yaml"


class FitDirError(ValueError):
    """A fit folder that is missing, incomplete, or altered since the fit wrote it."""


@dataclass
class FittedModel:
    """A fit loaded back: the model (family, W, B, lam) and where it came from."""

    model: ExpFamPCA
    directory: Path
    spec_sha256: str

    @property
    def data_dim(self) -> int:
        return self.model.data_dim


def spec_text_of(family: Any) -> str | None:
    """The spec text behind ``family`` (a built-in name, a spec path or a derived Family),
    or None for a generated module or a hand-built TorchFamily (no text to save). A name or
    a path is read as text (what ``load_family`` parses), without deriving anything."""
    from deqfam.derive.builtin_specs import builtin_names, builtin_spec_text

    if isinstance(family, str) and family in builtin_names():
        return builtin_spec_text(family)
    if isinstance(family, str | Path) and Path(family).is_file():
        return Path(family).read_text(encoding="utf-8")
    # a Family exists only if derive.family (SymPy) was imported: never import it to ask
    derived = sys.modules.get("deqfam.derive.family")
    if derived is not None and isinstance(family, derived.Family):
        return family.spec.text
    return None


def _read_params(path: Path) -> dict[str, Any]:
    """params.pt as plain tensors and numbers (``weights_only``: no code is unpickled)."""
    try:
        params = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise FitDirError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(params, dict):
        raise FitDirError(f"{path} does not hold a fit's parameters")
    return params


def _checked_weights(
    params: dict[str, Any], path: Path
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """W (d x l), B (d) and lam > 0 from params, all finite, or a FitDirError."""
    W, B, lam = params.get("W"), params.get("B"), params.get("lam")
    ok = (
        isinstance(W, torch.Tensor)
        and isinstance(B, torch.Tensor)
        and W.dim() == 2
        and B.shape == (W.shape[0],)
        and min(W.shape) >= 1
        and isinstance(lam, int | float)
        and math.isfinite(lam)
        and lam > 0
    )
    if not ok or not bool(torch.isfinite(W).all() and torch.isfinite(B).all()):
        raise FitDirError(f"{path}: W, B or lam is missing, misshapen or not finite")
    return W.to(torch.float64), B.to(torch.float64), float(lam)


def load_fit(directory: str | Path) -> FittedModel:
    """Load ``deqfam fit``'s output folder (see the module docstring); FitDirError if it is
    missing, incomplete, or its spec no longer matches the recorded digest."""
    from deqfam.api import torch_family
    from deqfam.derive.family import load_family

    folder = Path(directory)
    if not folder.is_dir():
        raise FitDirError(f"fit folder {folder} does not exist or is not a folder")
    if (folder / COLUMNS_NAME).is_file():  # one family per column (deqfam/mixed_fit.py)
        return _load_column_fit(folder)
    params_path, spec_path = folder / PARAMS_NAME, folder / SPEC_NAME
    for path in (params_path, spec_path):
        if not path.is_file():
            raise FitDirError(f"{folder} is not a complete fit folder: {path.name} is missing")
    params = _read_params(params_path)
    W, B, lam = _checked_weights(params, params_path)
    text = spec_path.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    if digest != params.get("spec_sha256"):
        raise FitDirError(
            f"{spec_path} does not match the spec digest recorded in {params_path.name}: "
            "the fit folder was altered"
        )
    family = torch_family(load_family(spec_path), allow_inadmissible=True)  # fitted already
    model = ExpFamPCA(family, W.shape[0], W.shape[1], lam=lam, dtype=torch.float64)
    with torch.no_grad():
        model.W.copy_(W)
        model.B.copy_(B)
    return FittedModel(model, folder, digest)


def _load_column_fit(folder: Path) -> FittedModel:
    """A per-column fit: ``columns.json`` (``deqfam.column_specs``) and ``params.pt``."""
    from deqfam.column_specs import load_columns

    params_path = folder / PARAMS_NAME
    if not params_path.is_file():
        raise FitDirError(f"{folder} is not a complete fit folder: {PARAMS_NAME} is missing")
    W, B, lam = _checked_weights(_read_params(params_path), params_path)
    record = folder / COLUMNS_NAME
    try:
        columns = load_columns(record)
    except ValueError as exc:
        raise FitDirError(str(exc)) from None
    if columns.natural_dim != W.shape[0]:
        raise FitDirError(
            f"{record} gives {columns.natural_dim} natural parameters, W has "
            f"{W.shape[0]} rows: the fit folder was altered"
        )
    model = ExpFamPCA(columns, columns.data_dim, W.shape[1], lam=lam, dtype=torch.float64)
    with torch.no_grad():
        model.W.copy_(W)
        model.B.copy_(B)
    digest = hashlib.sha256(record.read_bytes()).hexdigest()
    return FittedModel(model, folder, digest)


def transform(fitted: FittedModel, data: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """MAP latents (N x l) and Laplace covariances (N x l x l) of the rows of ``data``
    under the fitted W, B and lam. A DataError names a wrong column count or a value
    outside the family's support."""
    model = fitted.model
    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        raise DataError("data must be a 2-D matrix (rows are samples)")
    if data.shape[1] != model.data_dim:
        raise DataError(
            f"data has {data.shape[1]} columns but the fit in {fitted.directory} was made on "
            f"{model.data_dim}"
        )
    fam = model.family
    if hasattr(model, "columns"):  # per-column supports: the model's own validation
        data = model._validate_data(data.to(torch.float64))
    else:
        data = validate_observations(
            data.to(torch.float64), fam.support, support_max=fam.support_max
        )
    with torch.no_grad():
        z = model(data)
        cov = posterior_from_latents(fam, model.W, model.B, model.lam, z).covariance()
    return z.numpy(), cov.numpy()
