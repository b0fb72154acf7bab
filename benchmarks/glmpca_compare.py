"""deqfam fit (defaults: second-order) against glmpca (Townes' GLM-PCA) on scikit-learn digits.

Data: the first 1500 digits for training, the other 297 held out; Poisson: pixel counts
(0..16), Bernoulli: pixels > 7; columns constant on the training rows are dropped. Latent
dimensions 10 and 2. One thread. For each case, median over ``--repeats`` runs of:

* ``deqfam fit`` as a whole process (``python -m deqfam fit ... --quiet``), and
  ``deqfam.fitting.fit`` in this process (defaults: optimizer newton, lam 0.1, weight
  decay 0.125 x rows; ``--weight-decay W`` passes another to both);
* glmpca 0.1.0 as a whole process (``fam=poi|bern``, default penalty 1 and stopping rule,
  ``sz = 1``: no per-image size factor, so it fits the same model family as deqfam), and its
  own time inside that process.

Deviance per image: Poisson ``2 sum[y log(y/mu) - (y - mu)]``, Bernoulli
``2 sum[A(eta) - y eta]``. Two held-out figures, both on the held-out rows under the fitted
loadings and offsets (deqfam's Newton solve for the MAP latents; prior precision lam = 0.1 for
deqfam, glmpca's penalty 1 for glmpca):

* "held-out dev": each row's latent is fitted to all of that row's pixels, and the deviance of
  those same pixels is reported, so it still rewards overfitting the latents;
* "held-out half dev": the pixels of each held-out row are split in two random halves (one
  seeded split for all rows); the latent fitted to one half predicts the other half, and the
  deviance of the predicted halves (both ways round) is reported per image. No number it scores
  was seen by any fit: a predictive criterion for the prior.

    python -m benchmarks.glmpca_compare            # full run, appends results/glmpca_compare.json
    python -m benchmarks.glmpca_compare --quick    # one small case, end to end
    python -m benchmarks.glmpca_compare --cases poisson:10,bernoulli:10 --weight-decay 1
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import apply_quick, make_parser, set_threads, write_result

_GLMPCA_SCRIPT = """
import json, sys, time
import numpy as np
from glmpca.glmpca import glmpca
y = np.load(sys.argv[1]); fam = sys.argv[2]; l = int(sys.argv[3])
np.random.seed(int(sys.argv[4]))
t = time.perf_counter()
res = glmpca(y.T, l, fam=fam, sz=np.ones(y.shape[0]) if fam == "poi" else None)
seconds = time.perf_counter() - t
np.savez(sys.argv[5], W=res["loadings"], B=res["coefX"][:, 0], Z=res["factors"])
print(json.dumps({"seconds": seconds, "iterations": len(res["dev"])}))
"""


def digits(family: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) matrices of the digits as Poisson counts or Bernoulli pixels."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    if family == "bernoulli":
        x = (x > 7).astype(np.float64)
    train, test = x[:1500], x[1500:]
    keep = train.std(0) > 0
    return train[:, keep], test[:, keep]


def deviance(family: str, y: np.ndarray, eta: np.ndarray) -> float:
    """Deviance per image (module docstring)."""
    if family == "poisson":
        mu = np.exp(eta)
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)
        return float(2 * (ylogy - (y - mu)).sum() / y.shape[0])
    return float(2 * (np.logaddexp(0, eta) - y * eta).sum() / y.shape[0])


def heldout_deviance(family: str, y: np.ndarray, W: np.ndarray, B: np.ndarray, lam: float):
    """Deviance per image of held-out rows at their MAP latents under ``(W, B)``."""
    from deqfam.api import family_module, torch_family
    from deqfam.runtime.solvers import newton

    fam = torch_family(family_module(family))
    Wt, Bt, Y = (torch.as_tensor(a, dtype=torch.float64) for a in (W, B, y))
    z = newton(fam, Wt, Bt, fam.sufficient_statistic(Y), lam).value
    return deviance(family, y, (z @ Wt.T + Bt).numpy())


def heldout_half_deviance(
    family: str, y: np.ndarray, W: np.ndarray, B: np.ndarray, lam: float, seed: int = 0
) -> float:
    """Deviance per image of each held-out half of the pixels, predicted by the MAP latent of
    the other half under ``(W, B)`` (module docstring; summed over both halves; the split and
    the prediction are ``fit(weight_decay="auto")``'s, ``runtime.fitting.heldout``)."""
    from deqfam.api import family_module, torch_family
    from deqfam.runtime.fitting.heldout import predicted_halves

    fam = torch_family(family_module(family))
    Wt, Bt, Y = (torch.as_tensor(a, dtype=torch.float64) for a in (W, B, y))
    halves = predicted_halves(fam, Y, Wt, Bt, lam, seed)
    return sum(deviance(family, y[:, cols.numpy()], eta.numpy()) for cols, eta in halves)


def run_deqfam_process(
    family: str, data: Path, l: int, out: Path, weight_decay: float | None = None
) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "deqfam", "fit", str(data), "--family", family]
    cmd += ["--latent-dim", str(l), "--out", str(out), "--quiet", "--overwrite"]
    if weight_decay is not None:
        cmd += ["--weight-decay", str(weight_decay)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t
    params = torch.load(out / "params.pt", weights_only=True)
    hist = json.loads((out / "history.json").read_text())
    return seconds, {"W": params["W"].numpy(), "B": params["B"].numpy(), "history": hist}


def run_glmpca_process(family: str, data: Path, l: int, seed: int, out: Path):
    fam = "poi" if family == "poisson" else "bern"
    cmd = [sys.executable, "-c", _GLMPCA_SCRIPT, str(data), fam, str(l), str(seed), str(out)]
    t = time.perf_counter()
    proc = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    seconds = time.perf_counter() - t
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    arrays = np.load(out)
    return seconds, inner, {k: arrays[k] for k in ("W", "B", "Z")}


def one_case(
    family: str, l: int, repeats: int, seed: int, tmp: Path, weight_decay: float | None = None
) -> dict:
    """Medians over ``repeats`` of the times, and the deviances (module docstring)."""
    from deqfam.fitting import fit

    train, test = digits(family)
    data = tmp / f"{family}.npy"
    np.save(data, train)
    rows: dict[str, list] = {k: [] for k in ("deq_proc", "deq_inproc", "glm_proc", "glm_inner")}
    for r in range(repeats):
        seconds, deq = run_deqfam_process(family, data, l, tmp / "fit", weight_decay)
        rows["deq_proc"].append(seconds)
        t = time.perf_counter()
        res = fit(torch.as_tensor(train), family, l, progress=False, weight_decay=weight_decay)
        rows["deq_inproc"].append(time.perf_counter() - t)
        seconds, inner, glm = run_glmpca_process(family, data, l, seed + r, tmp / "glm.npz")
        rows["glm_proc"].append(seconds)
        rows["glm_inner"].append(inner["seconds"])
    eta_deq = res.latents @ res.model.W.detach().numpy().T + res.model.B.detach().numpy()
    eta_glm = glm["Z"] @ glm["W"].T + glm["B"]
    return {
        "family": family,
        "latent_dim": l,
        "shape": list(train.shape),
        "weight_decay": float(res.model.weight_decay),
        "seconds": {k: statistics.median(v) for k, v in rows.items()},
        "deq_iterations": deq["history"]["iterations"],
        "deq_stop_reason": deq["history"]["stop_reason"],
        "deq_solver": (deq["history"].get("backend") or {}).get("solver"),
        "glm_iterations": inner["iterations"],
        "deq_train_deviance": deviance(family, train, eta_deq),
        "glm_train_deviance": deviance(family, train, eta_glm),
        "deq_heldout_deviance": heldout_deviance(family, test, deq["W"], deq["B"], 0.1),
        "glm_heldout_deviance": heldout_deviance(family, test, glm["W"], glm["B"], 1.0),
        "deq_half_deviance": heldout_half_deviance(family, test, deq["W"], deq["B"], 0.1),
        "glm_half_deviance": heldout_half_deviance(family, test, glm["W"], glm["B"], 1.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, repeats=3)
    parser.add_argument(
        "--cases", default="poisson:10,poisson:2,bernoulli:10,bernoulli:2", help="family:l,..."
    )
    parser.add_argument("--weight-decay", type=float, default=None, help="default: fit's")
    args = apply_quick(parser.parse_args(argv), repeats=1, cases="poisson:2")
    set_threads(args.threads)
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, l in cases:
            row = one_case(family, l, args.repeats, args.seed, Path(tmp), args.weight_decay)
            print(json.dumps(row))
            results.append(row)
    write_result("glmpca_compare", args, {"cases": results}, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
