"""The paper's Figure 3 experiment (seed scoring-deq-expfam-pca, section 3, Appendix C).

For each family (Gaussian, Bernoulli, Poisson) and each of T random datasets (W_ij ~
N(0, 1/2), Y ~ family(W Z) with the Figure 2 latents): pretrain the ExpFamPCA DEQ
unsupervised (lam = 0.1, Adam, batch 500, the Gaussian prior on W, B as an L2 term),
then fine-tune backbone + head Linear(2,100)-ReLU-Linear(100,1) on g(z) = z1 + z2 with an
80/20 split. Baselines: StandardScaler + PCA (fixed backbone) and, if installed, UMAP,
each with the same head. Prints the win counts (lowest test MSE) and per-method MSEs.

    python benchmarks/paper_fig3.py --trials 10 --n-grid 60 --epochs 30 --head-epochs 60
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import numpy as np
import torch
from torch import nn

from deqfam.pipeline import pca_embedding
from deqfam.runtime.datasets import make_dataset
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
    module = importlib.import_module(f"deqfam.generated.{name}")
    ds = make_dataset(module, n_grid=args.n_grid, seed=1000 * trial + 7)
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

    pca = torch.as_tensor(pca_embedding(y.numpy()))
    idx = torch.arange(y.shape[0], dtype=torch.float64)
    out["pca"] = fit_head(
        Fixed(pca),
        head(trial),
        idx[tr],
        target[tr],
        idx[te],
        target[te],
        args.head_epochs,
        500,
        trial,
    )
    try:
        import umap

        emb = torch.as_tensor(
            umap.UMAP(random_state=trial).fit_transform(y.numpy()), dtype=torch.float64
        )
        out["umap"] = fit_head(
            Fixed(emb),
            head(trial),
            idx[tr],
            target[tr],
            idx[te],
            target[te],
            args.head_epochs,
            500,
            trial,
        )
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--n-grid", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--head-epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()
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
        med = {m: statistics.median(r[m] for r in results) for m in methods}
        secs = statistics.median(r["deq_seconds"] for r in results)
        rows.append((name, wins, med, secs))
    print(
        f"\n{'family':10s} {'wins PCA':>9s} {'wins UMAP':>10s} {'wins DEQ':>9s} "
        f"{'median MSE PCA':>15s} {'median MSE DEQ':>15s} {'DEQ s/trial':>12s}"
    )
    for name, wins, med, secs in rows:
        umap_w = str(wins["umap"]) if "umap" in wins else "-"
        print(
            f"{name:10s} {wins['pca']:9d} {umap_w:>10s} {wins['deq']:9d} "
            f"{med['pca']:15.4f} {med['deq']:15.4f} {secs:12.1f}"
        )
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
