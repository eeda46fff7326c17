"""MixCon §5.1 on synthetic data: Tables 1 (accuracy) and 2 (inversion MSE / mean cosine similarity).

Network: ``MLP(dim, [100, 2, 100], 2)`` with L_c on the 2-unit layer ``fc2`` (the paper plots this 2-D
hidden space); "deeper" adds two 100-unit layers after the third, "wider" makes the third 2048 wide.
Training: 20 epochs of SGD (lr 0.01, batch 32) on 800 samples with 10% label flips; the attacker inverts
``fc2`` for every test sample (SGD lr 0.01 with weight decay 1e-4, 500 steps, no prior; App. C.1).

    python -m mixcon_lite.experiments.mixcon_synthetic --mode full
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ..attacks.features import invert
from ..config import get_mode, pick
from ..data import two_gaussians
from ..metrics import cosine, mse
from ..mixcon import mixcon_loss_fn
from ..models import MLP
from ..train import evaluate, show_progress, train

NETS = {"default": [100, 2, 100], "deeper": [100, 2, 100, 100, 100], "wider": [100, 2, 2048]}
SETTINGS = [("vanilla", "default", None, None),
            ("MixCon (0.1, 0.01)", "default", 0.1, 0.01), ("MixCon (0.1, 0.01)", "deeper", 0.1, 0.01),
            ("MixCon (0.1, 0.01)", "wider", 0.1, 0.01),
            ("MixCon (0.1, 0)", "default", 0.1, 0.0), ("MixCon (0.1, 0)", "deeper", 0.1, 0.0),
            ("MixCon (0.1, 0)", "wider", 0.1, 0.0)]
PAPER = {  # MixCon Tables 1 and 2: train / test accuracy (%), inversion MSE and MCS
    ("vanilla", "default"): {"train": 91.5, "test": 91.5, "mse": 1.92, "mcs": 0.169},
    ("MixCon (0.1, 0.01)", "default"): {"train": 88.9, "test": 88.0, "mse": 2.08, "mcs": 0.118},
    ("MixCon (0.1, 0.01)", "deeper"): {"train": 89.5, "test": 88.5},
    ("MixCon (0.1, 0.01)", "wider"): {"train": 91.5, "test": 90.5},
    ("MixCon (0.1, 0)", "default"): {"train": 50.0, "test": 50.0, "mse": 2.35, "mcs": 0.161},
    ("MixCon (0.1, 0)", "deeper"): {"train": 50.0, "test": 50.0},
    ("MixCon (0.1, 0)", "wider"): {"train": 50.0, "test": 50.0},
}
CUT = "fc2"


def run_setting(net: str, lam, beta, seed: int, data, eps: float = 0.05, epochs: int = 20, lr: float = 0.01,
                batch_size: int = 32, attack_steps: int = 500) -> dict:
    """Train one network (``lam=None`` = vanilla) and attack its ``fc2`` representation of the test set.

    ``data`` = ``(x_train, y_train, x_test, y_test)``. Returns accuracies, inversion MSE and MCS, the model
    and the test representations."""
    if net not in NETS:
        raise ValueError(f"Unknown net {net!r}; expected one of {tuple(NETS)}.")
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    model = MLP(x_tr.shape[1], NETS[net], 2)
    loss_fn = None if lam is None else mixcon_loss_fn(CUT, lam, beta, eps=eps)
    hist = train(model, (x_tr, y_tr), epochs=epochs, lr=lr, batch_size=batch_size, loss_fn=loss_fn, seed=seed,
                 progress=False)
    with torch.no_grad():
        h = model.forward_to(x_te, CUT)
    x_hat = invert(model, CUT, h, steps=attack_steps, lr=0.01, optimizer="sgd", weight_decay=1e-4, progress=False)
    return {"train": 100 * hist["train_accuracy"][-1], "test": 100 * evaluate(model, x_te, y_te)["accuracy"],
            "mse": float(mse(x_te, x_hat).mean()), "mcs": float(cosine(x_te, x_hat).mean()),
            "model": model, "h": h, "x_hat": x_hat}


def run(mode: str | None = None, seeds=None, eps: float = 0.05, progress: bool | None = None) -> list[dict]:
    """All settings of Tables 1-2 over ``seeds`` (fast: 3, full: 10). One row per setting with the mean
    and standard deviation over seeds of train/test accuracy (%), MSE and MCS, and the paper's values."""
    from tqdm.auto import tqdm

    mode = get_mode(mode)
    seeds = list(seeds) if seeds is not None else list(range(pick(3, 10, mode)))
    data = two_gaussians(seed=0)
    rows = []
    for name, net, lam, beta in tqdm(SETTINGS, desc="settings", disable=not show_progress(progress)):
        runs = [run_setting(net, lam, beta, s, data, eps=eps) for s in seeds]
        row = {"setting": name, "net": net, "lam": lam, "beta": beta, "seeds": len(seeds),
               "paper": PAPER.get((name, net), {})}
        for key in ("train", "test", "mse", "mcs"):
            vals = np.array([r[key] for r in runs])
            row[key], row[key + "_std"] = float(vals.mean()), float(vals.std())
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    mode = get_mode(args.mode)
    rows = run(mode, eps=args.eps, progress=True)
    from . import save_record

    path = save_record("mixcon_synthetic", mode, {"eps": args.eps, "data": "two_gaussians(seed=0)",
                                                  "nets": NETS}, rows, args.out)
    for r in rows:
        print(f"{r['setting']:<20}{r['net']:<9} train {r['train']:5.1f} test {r['test']:5.1f} "
              f"MSE {r['mse']:.3f} MCS {r['mcs']:.3f}")
    print("wrote", path)


if __name__ == "__main__":
    main()
