"""The paper's Figure 3 experiment (seed scoring-deq-expfam-pca, section 3, Appendix C).

For each family (Gaussian, Bernoulli, Poisson) and each of T random datasets (W_ij ~
N(0, 1/2), Y ~ family(W Z) with the Figure 2 latents): pretrain the ExpFamPCA DEQ
unsupervised (lam = 0.1, Adam, batch 500, the Gaussian prior on W, B as an L2 term),
then fine-tune backbone + head Linear(2,100)-ReLU-Linear(100,1) on g(z) = z1 + z2 with an
80/20 split. Baselines: StandardScaler + PCA (fixed backbone) and, if installed, UMAP,
each with the same head. Prints the win counts (lowest test MSE) and per-method MSEs.

    python -m benchmarks.paper_fig3 --trials 10 --n-grid 60 --epochs 30 --head-epochs 60

The figures are recorded in ``benchmarks/results/paper_fig3.json``.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from benchmarks.common import apply_quick, make_parser, paper_dataset, set_threads, write_result
from benchmarks.tables import paper_fig3_lines
from deqfam.alignment import pca_embedding
from deqfam.api import builtin_module
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.train import train

FAMILIES = ("gaussian", "bernoulli", "poisson")


def head(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 1)).double()


def fit_head(
    backbone, net: nn.Module, x_tr, y_tr, x_te, y_te, epochs: int, batch: int, seed: int
) -> float:
    """Train backbone (if it has parameters) and head on MSE; return the test MSE."""
    params = list(net.parameters()) + (
        list(backbone.parameters()) if isinstance(backbone, nn.Module) else []
    )
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    n = x_tr.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(0, n, batch):
            idx = order[b : b + batch]
            feats = backbone(x_tr[idx])
            loss = ((net(feats).squeeze(-1) - y_tr[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((net(backbone(x_te)).squeeze(-1) - y_te) ** 2).mean())


class Fixed:
    """A fixed (non-trainable) embedding looked up by row index."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx.long()]


def run_trial(name: str, trial: int, args) -> dict[str, float]:
    module = builtin_module(name)
    ds = paper_dataset(name, n_grid=args.n_grid, seed=1000 * trial + 7)
    y, z = ds.Y, ds.Z
    target = z[:, 0] + z[:, 1]
    gen = torch.Generator().manual_seed(trial)
    perm = torch.randperm(y.shape[0], generator=gen)
    n_tr = int(0.8 * y.shape[0])
    tr, te = perm[:n_tr], perm[n_tr:]
    out: dict[str, float] = {}

    t = time.perf_counter()
    model = ExpFamPCA(
        module,
        y.shape[1],
        2,
        lam=0.1,
        weight_decay=args.weight_decay,
        generator=torch.Generator().manual_seed(trial),
        dtype=torch.float64,
        on_nonconvergence="ignore",
    )
    train(
        model,
        y[tr],
        {"epochs": args.epochs, "batch_size": 500, "lr": args.lr, "seed": trial, "progress": False},
    )
    out["deq"] = fit_head(
        model, head(trial), y[tr], target[tr], y[te], target[te], args.head_epochs, 500, trial
    )
    out["deq_seconds"] = time.perf_counter() - t

    idx = torch.arange(y.shape[0], dtype=torch.float64)

    def fixed_mse(embedding: torch.Tensor) -> float:
        """Test MSE of the head on a fixed embedding (the backbone is a table lookup)."""
        return fit_head(
            Fixed(embedding),
            head(trial),
            idx[tr],
            target[tr],
            idx[te],
            target[te],
            args.head_epochs,
            500,
            trial,
        )

    out["pca"] = fixed_mse(torch.as_tensor(pca_embedding(y.numpy())))
    try:
        import umap

        emb = umap.UMAP(random_state=trial).fit_transform(y.numpy())
        out["umap"] = fixed_mse(torch.as_tensor(emb, dtype=torch.float64))
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> None:
    ap = make_parser(__doc__, repeats=1, threads=1)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--n-grid", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--head-epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = apply_quick(ap.parse_args(argv), trials=1, n_grid=20, epochs=1, head_epochs=1)
    set_threads(args.threads)
    print(
        f"trials {args.trials}, n_grid {args.n_grid}, pretrain epochs {args.epochs}, head "
        f"epochs {args.head_epochs}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    for name in args.families.split(","):
        results = [run_trial(name, t, args) for t in range(args.trials)]
        methods = [m for m in ("pca", "umap", "deq") if m in results[0]]
        wins = dict.fromkeys(methods, 0)
        for r in results:
            wins[min(methods, key=lambda m: r[m])] += 1
        rows.append(
            {
                "family": name,
                "wins": wins,
                "median_mse": {m: statistics.median(r[m] for r in results) for m in methods},
                "deq_seconds": statistics.median(r["deq_seconds"] for r in results),
                "trials": results,
            }
        )
    print()
    print("\n".join(paper_fig3_lines({"rows": rows})))
    config = {k: getattr(args, k) for k in ("trials", "n_grid", "epochs", "head_epochs", "lr")}
    write_result("paper_fig3", args, {"config": config, "rows": rows})


if __name__ == "__main__":
    main()
