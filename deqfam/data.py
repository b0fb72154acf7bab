"""Reading a data matrix (rows = samples) for ``deqfam fit``: ``.npy`` or ``.csv``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from deqfam.runtime.validation import DataError


def load_data(path: str | Path) -> torch.Tensor:
    """Read a data matrix (rows = samples) from ``.npy`` or ``.csv`` (header row allowed).

    Every failure (unreadable file, pickled or non-numeric ``.npy``, a non-numeric CSV cell,
    ragged rows) is a :class:`DataError` naming the file (and numpy's row/column).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix in (".csv", ".txt"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                # utf-8-sig drops a byte-order mark: left in, it spoils the first cell, and
                # the header fallback below would then silently drop the first data row
                read = dict(delimiter=",", ndmin=2, encoding="utf-8-sig")
                try:
                    arr = np.loadtxt(path, **read)
                except ValueError as first:  # a header row? else report the first error,
                    try:  # whose row numbers refer to the whole file
                        arr = np.loadtxt(path, skiprows=1, **read)
                    except ValueError:
                        raise first from None
        else:
            raise DataError(f"unsupported data format {path.suffix!r}: use .npy or .csv")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise DataError(f"{path}: data must be numeric, got dtype {getattr(arr, 'dtype', arr)}")
    return torch.as_tensor(np.asarray(arr, dtype=np.float64))
