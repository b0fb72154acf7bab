"""``deqfam fit`` and ``deqfam demo``: training ExpFamPCA on a data file, and the main job
end to end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deqfam import options as opt
from deqfam.commands.common import (
    EXIT_BAD_INPUT,
    EXIT_NEGATIVE,
    EXIT_OK,
    removed_if_failed,
    spec_family,
    spec_or_family,
)

#: ``deqfam fit`` options that :func:`deqfam.fitting.fit` takes under the same name
FIT_OPTIONS = (
    "lam",
    "epochs",
    "batch_size",
    "lr",
    "tol",
    "seed",
    "weight_decay",
    "resume",
    "overwrite",
    "allow_inadmissible",
    "threads",
    "optimizer",
    "backend",
)
#: ``deqfam demo`` options that :class:`deqfam.demo.DemoConfig` takes under the same name
DEMO_OPTIONS = ("n_grid", "epochs", "seed", "allow_inadmissible", "threads", "backend")


def same_named_options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The parsed options ``names`` as keyword arguments (an option's dest is the name of
    the parameter it sets), so each is passed on by one entry in a list, not a line each."""
    return {name: getattr(args, name) for name in names}


def fit_family(args: argparse.Namespace, data: Any) -> Any:
    """``--family``: one SPEC (with ``--param``), or a column map of a CSV file's columns
    (``deqfam/column_map.py``; ``--param`` does not apply to it)."""
    from deqfam.column_map import ColumnMapError, is_column_map, mapped_families

    if not is_column_map(args.family):
        return vector_columns(args, data) or spec_or_family(args.family, args)
    if getattr(args, "param", None):
        raise ColumnMapError("--param applies to one SPEC, not to a column map (--family A:B,...)")
    return mapped_families(args.family, args.data, data, args.allow_inadmissible)


def vector_columns(args: argparse.Namespace, data: Any) -> Any:
    """``--family VECTOR_SPEC``: that vector family for every column (a ``ColumnSpecs``),
    or None for a scalar SPEC."""
    from deqfam.column_map import ColumnMapError
    from deqfam.column_specs import is_vector_spec, resolve_column_specs

    if getattr(data, "ndim", 0) != 2 or not is_vector_spec(args.family):
        return None
    if getattr(args, "param", None):
        raise ColumnMapError("--param does not apply to a vector family")
    return resolve_column_specs([args.family] * data.shape[1], None, args.allow_inadmissible)


#: ``deqfam fit`` options that :func:`deqfam.mixed_fit.fit_mixed` takes under the same name
MIXED_FIT_OPTIONS = (
    "lam",
    "epochs",
    "batch_size",
    "lr",
    "tol",
    "seed",
    "weight_decay",
    "resume",
    "overwrite",
    "threads",
    "optimizer",
)


def fit_mixed_columns(args: argparse.Namespace, data: Any, families: Any) -> Any:
    """The per-column fit of a column map or a vector family (``deqfam/mixed_fit.py``):
    second-order by default, Adam with ``--optimizer adam``."""
    from deqfam.mixed_fit import fit_mixed

    return fit_mixed(
        data,
        families,
        args.latent_dim,
        out_dir=args.out,
        progress=not args.quiet,
        **same_named_options(args, MIXED_FIT_OPTIONS),
    )


def cmd_fit(args: argparse.Namespace) -> int:
    from deqfam.column_specs import ColumnSpecs
    from deqfam.data import load_data
    from deqfam.fitting import fit
    from deqfam.runtime.train import (
        CHECKPOINT_NAME,
        CheckpointError,
        TrainingDiverged,
        TrainingError,
    )
    from deqfam.runtime.validation import DataError

    try:
        data = load_data(args.data)
        if data.ndim == 2:
            opt.latent_dim_within(args.latent_dim, data.shape[1])
        family = fit_family(args, data)
        if args.resume and not (args.out / "checkpoints" / CHECKPOINT_NAME).exists():
            print(
                f"deqfam: --resume: no checkpoint in {args.out / 'checkpoints'}; starting afresh",
                file=sys.stderr,
            )
        with removed_if_failed(args.out, keep_on=(TrainingDiverged,)):
            if isinstance(family, ColumnSpecs):  # one family per column, or vector columns
                res = fit_mixed_columns(args, data, family)
            else:
                res = fit(
                    data,
                    family,
                    args.latent_dim,
                    out_dir=args.out,
                    progress=not args.quiet,
                    **same_named_options(args, FIT_OPTIONS),
                )
    except (DataError, CheckpointError) as exc:
        print(f"deqfam: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingError as exc:
        print(f"deqfam: training stopped: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    print(
        f"fitted {res.model.family.name} ExpFamPCA: final loss {res.history.loss[-1]:.6g}; "
        f"outputs in {args.out}"
    )
    history = res.history
    if hasattr(history, "iterations"):  # the second-order fit (runtime/fitting)
        print(f"newton fit: {history.iterations} iterations, stopped: {history.stop_reason}")
    else:
        print(f"training {history.stop_reason}: {history.stop_message}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from deqfam.demo import DemoConfig, run_demo

    spec = args.spec
    if args.param:
        from deqfam.demo import default_demo_spec

        spec = spec_family(spec if spec is not None else default_demo_spec(), args)
    with removed_if_failed(args.out):
        summary = run_demo(
            DemoConfig(
                spec=spec,
                out=args.out,
                progress=not args.quiet,
                **same_named_options(args, DEMO_OPTIONS),
            )
        )
    print(f"family {summary['family']}: {summary['verdict']} ({summary['strength']})")
    if "deq_procrustes" in summary:
        print(
            f"Procrustes error: DEQ {summary['deq_procrustes']:.5f}, "
            f"PCA {summary['pca_procrustes']:.5f}"
        )
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK  # a not_admissible family only gets here with --allow-inadmissible


def cmd_transform(args: argparse.Namespace) -> int:
    """MAP latents and Laplace covariances of new rows under a saved fit (deqfam/fitted.py)."""
    import io
    import json

    import numpy as np

    from deqfam.data import load_data
    from deqfam.fitted import load_fit, transform
    from deqfam.fsutil import atomic_write_bytes

    fitted = load_fit(args.fit_dir)
    latents, covariances = transform(fitted, load_data(args.data))
    if args.out is None:
        for z, cov in zip(latents.tolist(), covariances.tolist(), strict=True):
            print(json.dumps({"latent": z, "covariance": cov}))
        return EXIT_OK
    buffer = io.BytesIO()
    np.savez(buffer, latents=latents, covariances=covariances)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"transformed {latents.shape[0]} rows: latents and covariances in {args.out}")
    return EXIT_OK
