"""Reconstructing training images from the trained weights of a binary classifier (KKT attack).

The whole pipeline of chapter 08 (Haim et al., NeurIPS 2022): draw a small training set from the MNIST
*test* split (odd vs even digits; or a pair of Fashion-MNIST classes), train a bias-free ReLU MLP with one
output by full-batch gradient descent on the logistic loss until every training image is classified
right, then recover training images from the weights alone and score them by SSIM against a baseline.

    python -m mixcon_lite.experiments.kkt --mode fast --seed 1 --json
    python -m mixcon_lite.experiments.kkt --mode full          # paper scale; meant for a GPU

Every size below that the paper does not give is ours (see :func:`settings`).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ..attacks.weights import kkt_residual, match, reconstruct
from ..config import get_device, get_mode, resolve_seed
from ..data import load_dataset
from ..models import MLP
from ..train import train_margin
from ..utils import positive_int

RECOVERED_SSIM = 0.4
TASKS = {
    # name: (dataset, classes labelled -1, classes labelled +1)
    "mnist-odd-even": ("mnist", (0, 2, 4, 6, 8), (1, 3, 5, 7, 9)),
    "fashion-sneaker-boot": ("fashion-mnist", (7,), (9,)),
}


def settings(mode: str | None = None) -> dict:
    """All sizes of the experiment in ``mode``.

    Paper (MNIST odd vs even): 500 training images, MLP d-1000-1000-1 without biases, full-batch GD at
    learning rate 0.01 for 10^6 epochs, 2x as many candidates as training images. Fast mode (ours): 30
    training images, width 100, initial weights scaled by 0.05 (small initialisation, as the paper
    asks), 2,000 GD steps at learning rate 1.0 (zero training error is reached within a few hundred),
    60 candidates and 1,500 Adam steps. Full mode: the paper's data and network; the step counts are
    ours, sized for one GPU.
    """
    mode = get_mode(mode)
    if mode == "fast":
        return {"mode": mode, "n_train": 30, "width": 100, "init_scale": 0.05, "train_steps": 2000,
                "train_lr": 1.0, "n_candidates": 60, "attack_steps": 1500, "attack_lr": 0.01,
                "lam_min": 0.5, "relu_alpha": 20.0, "n_test": 2000}
    return {"mode": mode, "n_train": 500, "width": 1000, "init_scale": 0.05, "train_steps": 50_000,
            "train_lr": 1.0, "n_candidates": 1000, "attack_steps": 20_000, "attack_lr": 0.01,
            "lam_min": 0.5, "relu_alpha": 20.0, "n_test": 5000}


def load_task(task: str = "mnist-odd-even", n_train: int = 30, seed: int | None = None, n_test: int = 2000) -> dict:
    """Training, control and test images of a binary task, drawn by ``seed`` without overlap.

    Returns a dict: ``x_train [n, 1, 28, 28]`` in [0, 1] (half of each binary class), ``y_train``
    (±1), ``digits_train`` (the original class labels), ``x_control``/``y_control`` (as many other
    images of the same classes: the control of :func:`kkt_residual`), ``x_test``/``y_test`` (at most
    ``n_test`` and at most half of the remaining images), ``x_pool``/``digits_pool`` (the rest: images
    for the baselines) and ``mean`` (the training images' mean, which the network's inputs are
    centred by, as in the paper's code).
    """
    seed = resolve_seed(seed)
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {tuple(TASKS)}.")
    n_train = positive_int(n_train, "n_train", minimum=2)
    dataset, neg, pos = TASKS[task]
    x, labels = load_dataset(dataset, "test")
    keep = torch.isin(labels, torch.tensor(neg + pos))
    x, labels = x[keep], labels[keep]
    y = torch.where(torch.isin(labels, torch.tensor(pos)), 1.0, -1.0)
    rng = np.random.default_rng(seed)
    parts = {}
    for sign in (-1.0, 1.0):
        idx = rng.permutation(torch.nonzero(y == sign).flatten().numpy())
        half = n_train // 2 if sign < 0 else n_train - n_train // 2
        if len(idx) < 2 * half + 10:
            raise ValueError(f"Task {task!r} has too few images for n_train={n_train}.")
        parts[sign] = idx
    n_neg = n_train // 2
    n_pos = n_train - n_neg
    train_idx = np.concatenate([parts[-1.0][:n_neg], parts[1.0][:n_pos]])
    control_idx = np.concatenate([parts[-1.0][n_neg:2 * n_neg], parts[1.0][n_pos:2 * n_pos]])
    rest = np.concatenate([parts[-1.0][2 * n_neg:], parts[1.0][2 * n_pos:]])
    rest = rng.permutation(rest)
    n_test = min(int(n_test), len(rest) // 2)  # keep at least half of the rest for the baselines
    test_idx, pool_idx = rest[:n_test], rest[n_test:]
    x_train = x[train_idx]
    return {"task": task, "x_train": x_train, "y_train": y[train_idx], "digits_train": labels[train_idx],
            "x_control": x[control_idx], "y_control": y[control_idx], "x_test": x[test_idx],
            "y_test": y[test_idx], "x_pool": x[pool_idx], "digits_pool": labels[pool_idx],
            "mean": x_train.mean(0)}


def centred(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Images ``[N, 1, 28, 28]`` as the network sees them: minus the training mean, flattened."""
    return (x - mean).flatten(1)


def train_victim(data: dict, config: dict, steps: int | None = None, weight_decay: float = 0.0,
                 seed: int | None = None, progress: bool | None = None):
    """The victim: ``MLP(784, [width, width], 1, bias=False)`` with its initial weights scaled by
    ``init_scale``, trained by :func:`mixcon_lite.train.train_margin`. Returns ``(model, history)``."""
    seed = resolve_seed(seed)
    torch.manual_seed(seed)
    device = get_device()
    model = MLP(data["x_train"][0].numel(), [config["width"]] * 2, 1, bias=False).to(device)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(config["init_scale"])
    x = centred(data["x_train"], data["mean"]).to(device)
    history = train_margin(model, x, data["y_train"].to(device), steps=steps or config["train_steps"],
                           lr=config["train_lr"], weight_decay=weight_decay, log_every=20, progress=progress)
    return model.cpu(), history


@torch.no_grad()
def test_accuracy(model, data: dict) -> float:
    """Accuracy of ``sign(Phi(x))`` on the task's test images."""
    out = model(centred(data["x_test"], data["mean"]))[:, 0]
    return float(((out > 0).float() * 2 - 1 == data["y_test"]).float().mean())


@torch.no_grad()
def margins(model, data: dict) -> np.ndarray:
    """``|Phi(x_i)|`` for every training image (the paper's x-axis)."""
    return model(centred(data["x_train"], data["mean"]))[:, 0].abs().numpy()


def attack(model, data: dict, config: dict, seed: int | None = None, progress: bool | None = None, **overrides):
    """:func:`~mixcon_lite.attacks.weights.reconstruct` with ``config``'s sizes; its box is the pixel range
    [0, 1] shifted by the training mean (the attacker is given the mean, as in the paper's evaluation).
    Returns ``(AttackResult, images [m, 1, 28, 28] in [0, 1])``."""
    seed = resolve_seed(seed)
    mean = data["mean"].flatten()
    kwargs = {"n_candidates": config["n_candidates"], "steps": config["attack_steps"],
              "lr": config["attack_lr"], "lam_lr": config["attack_lr"], "lam_min": config["lam_min"],
              "relu_alpha": config["relu_alpha"], "box": (-mean, 1 - mean)}
    kwargs.update(overrides)
    result = reconstruct(model, (mean.numel(),), seed=seed, progress=progress, **kwargs)
    images = (result.reconstruction + mean).clamp(0, 1).reshape(-1, *data["x_train"].shape[1:])
    return result, images


def baselines(data: dict, n_candidates: int, seed: int | None = None) -> dict:
    """Candidates an attacker gets without the weights, ``name -> images``: the mean image of every
    original class (label knowledge only) and ``n_candidates`` random real images of the same classes
    that are not in the training set (knowledge of the data distribution)."""
    seed = resolve_seed(seed)
    pool, classes = data["x_pool"], data["digits_pool"]
    means = torch.stack([pool[classes == c].mean(0) for c in torch.unique(classes)])
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(pool), generator=g)[:n_candidates]
    return {"class means": means, "random real images": pool[pick]}


def evaluate(model, data: dict, images: torch.Tensor, config: dict, seed: int | None = None) -> dict:
    """The chapter's numbers for one attack: see :func:`run`."""
    seed = resolve_seed(seed)
    ssim_attack, best = match(images, data["x_train"])
    base = {name: match(cand, data["x_train"])[0] for name, cand in baselines(data, config["n_candidates"],
                                                                               seed).items()}
    res, _ = kkt_residual(model, centred(data["x_train"], data["mean"]), data["y_train"])
    res_c, _ = kkt_residual(model, centred(data["x_control"], data["mean"]), data["y_control"])
    return {"n_train": len(data["x_train"]), "test_accuracy": test_accuracy(model, data),
            "n_recovered": int((ssim_attack > RECOVERED_SSIM).sum()), "best_ssim": float(ssim_attack.max()),
            "baseline_best_ssim": float(base["class means"].max()),
            "baseline_n_recovered": int((base["class means"] > RECOVERED_SSIM).sum()),
            "random_real_best_ssim": float(base["random real images"].max()),
            "random_real_n_recovered": int((base["random real images"] > RECOVERED_SSIM).sum()),
            "n_beat_random_real": int((ssim_attack > base["random real images"]).sum()),
            "kkt_residual": res, "kkt_residual_control": res_c,
            "ssim_per_sample": ssim_attack.tolist(), "best_candidate": best.tolist(),
            "baseline_ssim_per_sample": base["class means"].tolist(),
            "random_real_ssim_per_sample": base["random real images"].tolist(),
            "margin_per_sample": margins(model, data).tolist()}


def run(mode: str | None = None, seed: int | None = None, task: str = "mnist-odd-even", progress: bool | None = None,
        config: dict | None = None) -> dict:
    """The whole pipeline. Returns ``{"results": numbers, "model", "data", "attack": AttackResult,
    "images": the reconstructions in pixel range, "history": training history, "config", "seconds"}``.

    ``results`` holds ``n_train``, ``test_accuracy``, ``n_recovered`` (training images whose best
    candidate has SSIM > 0.4), ``best_ssim``, ``baseline_best_ssim`` (the best SSIM a class-mean image
    reaches on the same training images) with ``baseline_n_recovered``, the same for random real images
    of the classes (``random_real_*``; ``n_beat_random_real`` counts training images whose attack SSIM
    beats that baseline's), ``kkt_residual`` (relative, with the true training set) and
    ``kkt_residual_control`` (the same fit with as many other images of the same classes), plus the
    per-sample lists.
    """
    seed = resolve_seed(seed)
    start = time.perf_counter()
    config = dict(config or settings(mode))
    data = load_task(task, config["n_train"], seed=seed, n_test=config["n_test"])
    model, history = train_victim(data, config, seed=seed, progress=progress)
    result, images = attack(model, data, config, seed=seed, progress=progress)
    numbers = evaluate(model, data, images, config, seed=seed)
    return {"results": numbers, "model": model, "data": data, "attack": result, "images": images,
            "history": history, "config": config, "seconds": time.perf_counter() - start}


SUMMARY_KEYS = ("n_train", "test_accuracy", "n_recovered", "best_ssim", "baseline_best_ssim",
                "random_real_best_ssim", "n_beat_random_real", "kkt_residual", "kkt_residual_control")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    parser.add_argument("--task", choices=list(TASKS), default="mnist-odd-even")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    parser.add_argument("--out", default=None, help="folder for the full-mode record (default book/results)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        parser.error("--seed must be >= 0")
    args.seed = resolve_seed(args.seed)
    mode = get_mode(args.mode)
    out = run(mode, seed=args.seed, task=args.task, progress=not args.json)
    summary = {k: out["results"][k] for k in SUMMARY_KEYS}
    if mode == "full":
        from . import save_record

        save_record("kkt", mode, {**out["config"], "task": args.task, "seed": args.seed}, out["results"],
                    args.out, seconds=out["seconds"])
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
