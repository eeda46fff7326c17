"""Federated averaging against gradient inversion (chapter 06, section 8).

A client holding one Fashion-MNIST image runs ``E`` local steps of SGD at learning rate ``tau``
on DLG's 1x28x28 sigmoid LeNet (U(-0.5, 0.5) weights, a fresh network per client) and sends the
update (:func:`~mixcon_lite.attacks.fedavg.local_update`). Two attackers, both Inverting Gradients'
loop (cosine + TV, signed Adam, the same steps and start):

* **unrolled** (:func:`~mixcon_lite.attacks.fedavg.invert_update`): simulates the ``E`` steps, as
  Inverting Gradients' ``FedAvgReconstructor`` does;
* **naive** (:func:`~mixcon_lite.attacks.gradients.invert_gradients` on the update): treats the
  update as one gradient.

Per cell ``(E, tau)`` of the grid: SSIM of each attacker's reconstruction per client, the cosine
between the update and the client's FedSGD gradient at the server's weights (1: the update *is*
a gradient, up to scale), and two baselines: the attack's own start (its N(0, 1) draw clamped to
[0, 1]) and the class-mean image of the attacker's own (training-split) images, the label-only
guess. The labels are given to both attackers (iDLG's rule reads them off the first step; with
``E`` steps that is ours to test, not done here).

    python -m mixcon_lite.experiments.fedavg --mode full      # 2-core CPU, about 25 minutes
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..attacks.fedavg import invert_update, local_update
from ..attacks.gradients import invert_gradients, shared_gradients
from ..config import get_mode, get_seed, resolve_seed
from ..data import load_dataset, subset
from ..metrics import ssim
from ..models import DLGLeNet
from ..utils import progress_bar


def settings(mode: str | None = None) -> dict:
    """Sizes for ``mode``: ``"fast"`` (3 clients, 2 cells, 200 attack steps: about 20 s on one CPU
    thread) or ``"full"`` (6 clients, local steps 1, 2, 5, 10 by learning rates 1e-3 to 1, 500
    attack steps). ``sweep_steps`` x ``sweep_lrs``: the cheap :func:`cosine_sweep` (no attack).
    ``tv_weight`` 1e-3 is ours; full mode picks it from ``tv_grid`` on the attacker's own images
    first (:func:`tune_tv`)."""
    fast = get_mode(mode) == "fast"
    cells = ([(1, 1e-2), (5, 1e-2)] if fast
             else [(e, lr) for e in (1, 2, 5, 10) for lr in (1e-3, 1e-2, 1e-1, 1.0)])
    return {"mode": "fast" if fast else "full", "clients": 3 if fast else 6, "cells": cells,
            "attack_steps": 200 if fast else 500, "tv_weight": 1e-3,
            "tv_grid": [1e-3, 1e-2, 1e-1], "sweep_steps": [1, 2, 5, 10, 20],
            "sweep_lrs": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]}


def client_images(cfg: dict, seed: int | None = None):
    """One Fashion-MNIST *test* image per client, of distinct classes ``0 .. clients - 1``."""
    seed = resolve_seed(seed)
    x, y = load_dataset("fashion-mnist", "test")
    return subset(x, y, 1, classes=range(cfg["clients"]), seed=seed + 7)


def class_means(seed: int | None = None, per_class: int = 500) -> torch.Tensor:
    """The label-only guess: each class's mean over ``per_class`` training images (the attacker's own)."""
    seed = resolve_seed(seed)
    x, y = load_dataset("fashion-mnist", "train")
    xs, ys = subset(x, y, per_class, seed=seed + 8)
    return torch.stack([xs[ys == c].mean(0) for c in range(10)])


def client_network(i: int, seed: int | None = None) -> DLGLeNet:
    """Client ``i``'s network at the server's weights: DLG's LeNet, U(-0.5, 0.5) from seed
    1234 + course seed + ``i``."""
    return DLGLeNet(1, 10, 28, seed=1234 + resolve_seed(seed) + i)


def _cosine(a, b) -> float:
    a = torch.cat([t.flatten() for t in a]).double()
    b = torch.cat([t.flatten() for t in b]).double()
    return float(a @ b / (a.norm() * b.norm()))


def cosine_sweep(cfg: dict) -> dict:
    """How far the update is from one gradient, without any attack: for every client and every
    ``(E, tau)`` of ``sweep_steps`` x ``sweep_lrs``, the cosine between the update and the client's
    FedSGD gradient at the server's weights, and the client's loss after its local steps. Returns
    ``{"steps", "lrs", "cosine": [E, tau, client], "loss_after": [E, tau, client]}`` (numpy)."""
    import torch.nn.functional as F
    from torch.func import functional_call

    xs, ys = client_images(cfg)
    E_, L_ = cfg["sweep_steps"], cfg["sweep_lrs"]
    cos = np.zeros((len(E_), len(L_), len(xs)))
    loss = np.zeros_like(cos)
    for i in range(len(xs)):
        model = client_network(i)
        x, y = xs[i:i + 1], ys[i:i + 1]
        g = shared_gradients(model, x, y)
        for a, E in enumerate(E_):
            for b, lr in enumerate(L_):
                upd = local_update(model, x, y, E, lr)
                cos[a, b, i] = _cosine(upd, g)
                theta = {n: p.detach() - u for (n, p), u in zip(model.named_parameters(), upd)}
                with torch.no_grad():
                    loss[a, b, i] = float(F.cross_entropy(functional_call(model, theta, (x,)), y))
    return {"steps": list(E_), "lrs": list(L_), "cosine": cos, "loss_after": loss}


def tune_tv(cfg: dict, images: int = 2, progress: bool | None = None) -> dict:
    """The TV weight from ``tv_grid`` by mean SSIM at E = 1 on ``images`` *training* images (the
    attacker's own, classes 9, 8, ...). Returns ``{"best": weight, "ssim": {weight: mean}}``."""
    x, y = load_dataset("fashion-mnist", "train")
    xt, yt = subset(x, y, 1, classes=range(10 - images, 10), seed=get_seed() + 9)
    per = {w: [] for w in cfg["tv_grid"]}
    jobs = [(i, w) for i in range(len(xt)) for w in cfg["tv_grid"]]
    for i, w in progress_bar(jobs, desc="TV weight", progress=progress):
        model = client_network(100 + i)
        upd = local_update(model, xt[i:i + 1], yt[i:i + 1], 1, 1e-2)
        res = invert_update(model, upd, (1, 28, 28), yt[i:i + 1], 1, 1e-2, steps=cfg["attack_steps"],
                            tv_weight=w, seed=get_seed() + i, progress=False)
        per[w].append(float(ssim(xt[i:i + 1], res.reconstruction)[0]))
    scores = {w: float(np.mean(v)) for w, v in per.items()}
    return {"best": max(scores, key=scores.get), "ssim": scores}


def fedavg_study(cfg: dict, progress: bool | None = None) -> dict:
    """Every cell of ``cells`` against every client (see the module docstring). Returns
    ``{"cells": [{local_steps, lr, unrolled, naive, cosine_to_gradient, seconds_unrolled,
    seconds_naive}, ...], "start": [...], "class_mean": [...], "images", "labels",
    "reconstructions": {(E, lr): (unrolled [n, 1, 28, 28], naive)}}``; per-client lists are SSIM."""
    xs, ys = client_images(cfg)
    means = class_means()
    s0 = get_seed()
    starts = torch.stack([torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(s0 + i)).clamp(0, 1)
                          for i in range(len(xs))])
    out = {"images": xs, "labels": ys, "cells": [], "reconstructions": {},
           "start": [float(v) for v in ssim(xs, starts)],
           "class_mean": [float(v) for v in ssim(xs, means[ys])]}
    # clients outer, cells inner: each client's network and FedSGD gradient are built once
    jobs = [(i, c) for i in range(len(xs)) for c in cfg["cells"]]
    per = {c: {"unrolled": [], "naive": [], "cos": [], "t_u": 0.0, "t_n": 0.0, "rec_u": [], "rec_n": []}
           for c in cfg["cells"]}
    client = None
    for i, (E, lr) in progress_bar(jobs, desc="FedAvg clients x cells", progress=progress):
        x, y = xs[i:i + 1], ys[i:i + 1]
        if client != i:
            client, model = i, client_network(i)
            gradient = shared_gradients(model, x, y)
        upd = local_update(model, x, y, E, lr)
        row = per[(E, lr)]
        row["cos"].append(_cosine(upd, gradient))
        common = dict(steps=cfg["attack_steps"], tv_weight=cfg["tv_weight"], seed=s0 + i, progress=False)
        ru = invert_update(model, upd, (1, 28, 28), y, E, lr, **common)
        rn = invert_gradients(model, upd, (1, 28, 28), y, **common)
        row["t_u"] += ru.seconds
        row["t_n"] += rn.seconds
        for key, res in (("unrolled", ru), ("naive", rn)):
            row[key].append(float(ssim(x, res.reconstruction)[0]))
        row["rec_u"].append(ru.reconstruction[0])
        row["rec_n"].append(rn.reconstruction[0])
    for (E, lr), row in per.items():
        out["cells"].append({"local_steps": E, "lr": lr, "unrolled": row["unrolled"], "naive": row["naive"],
                             "cosine_to_gradient": row["cos"], "seconds_unrolled": row["t_u"],
                             "seconds_naive": row["t_n"]})
        out["reconstructions"][(E, lr)] = (torch.stack(row["rec_u"]), torch.stack(row["rec_n"]))
    return out


def summary(study: dict) -> list[dict]:
    """Per cell: mean SSIM of both attackers and the paired differences (unrolled - naive, unrolled -
    class mean) with their intervals (:func:`mixcon_lite.stats.paired`, over the clients)."""
    from ..stats import paired

    rows = []
    for c in study["cells"]:
        vs_naive = paired(c["unrolled"], c["naive"], names=("unrolled", "naive"))
        vs_label = paired(c["unrolled"], study["class_mean"], names=("unrolled", "class mean"))
        vs_start = paired(c["unrolled"], study["start"], names=("unrolled", "start"))
        rows.append({"local_steps": c["local_steps"], "lr": c["lr"],
                     "unrolled": float(np.mean(c["unrolled"])), "naive": float(np.mean(c["naive"])),
                     "cosine_to_gradient": float(np.mean(c["cosine_to_gradient"])),
                     "unrolled_minus_naive": vs_naive, "unrolled_minus_class_mean": vs_label,
                     "unrolled_minus_start": vs_start})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    mode = get_mode(args.mode)
    cfg = settings(mode)
    t0 = time.perf_counter()
    tv = tune_tv(cfg, progress=True)
    cfg["tv_weight"] = tv["best"]
    study = fedavg_study(cfg, progress=True)
    sweep = cosine_sweep(cfg)

    def cmp(c):
        return {"difference": c.difference, "low": c.low, "high": c.high, "verdict": c.verdict}

    results = {"tv_tuning": {"best": tv["best"], "ssim": {str(w): v for w, v in tv["ssim"].items()}},
               "start": study["start"], "class_mean": study["class_mean"], "labels": study["labels"].tolist(),
               "cells": study["cells"],
               "cosine_sweep": {"steps": sweep["steps"], "lrs": sweep["lrs"],
                                "cosine": sweep["cosine"].tolist(), "loss_after": sweep["loss_after"].tolist()},
               "summary": [{k: (cmp(v) if hasattr(v, "difference") else v) for k, v in r.items()}
                           for r in summary(study)]}
    from . import save_record

    cfg = {**cfg, "cells": [list(c) for c in cfg["cells"]]}
    path = save_record("fedavg", mode, cfg, results, args.out, seconds=time.perf_counter() - t0)
    for r in results["summary"]:
        print(r["local_steps"], r["lr"], f"unrolled {r['unrolled']:.3f} naive {r['naive']:.3f} "
              f"cos {r['cosine_to_gradient']:.4f}", r["unrolled_minus_naive"]["verdict"])
    print("wrote", path)


if __name__ == "__main__":
    main()
