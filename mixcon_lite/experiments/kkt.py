"""Reconstructing training images from the trained weights of a binary classifier (KKT attack).

The whole pipeline of chapter 08 (Haim et al., NeurIPS 2022): draw a small training set from the MNIST
*test* split (odd vs even digits; or a pair of Fashion-MNIST classes), train a bias-free ReLU MLP with one
output by full-batch gradient descent on the logistic loss until every training image is classified
right, then recover training images from the weights alone and score them by SSIM against a baseline.

    python -m mixcon_lite.experiments.kkt --mode fast --seed 1 --json
    python -m mixcon_lite.experiments.kkt --mode full          # paper scale; meant for a GPU
    python -m mixcon_lite.experiments.kkt --mode full --scale cpu   # 34 min on one CPU thread

Every size below that the paper does not give is ours (see :func:`settings`).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ..attacks.weights import assign, kkt_residual, match, reconstruct, ssim_matrix
from ..config import get_device, get_mode, resolve_seed
from ..data import load_dataset
from ..models import MLP
from ..train import train_margin
from ..utils import positive_int

RECOVERED_SSIM = 0.4
BEAT_MARGIN = 0.1   # ours: an image counts as beating the real-image baseline by this much SSIM
# The authors' extraction settings for MNIST (their sweep run kcf9bhbi; the lambda learning rate is
# their default, the sweep does not set it): SGD with momentum 0.9 on the weights as trained.
# Their pixel prior: weight 1 on the box [-1, 1] of the centred inputs (ours: 5 on [0, 1] - mean).
AUTHORS_MNIST = {"optimizer": "sgd", "momentum": 0.9, "lr": 0.0305, "lam_lr": 1e-4, "lam_min": 0.447,
                 "relu_alpha": 149.9, "init_scale": 0.035, "normalize": False, "prior_weight": 1.0,
                 "box": (-1.0, 1.0)}
TASKS = {
    # name: (dataset, classes labelled -1, classes labelled +1)
    "mnist-odd-even": ("mnist", (0, 2, 4, 6, 8), (1, 3, 5, 7, 9)),
    "fashion-sneaker-boot": ("fashion-mnist", (7,), (9,)),
}


def settings(mode: str | None = None, scale: str = "paper") -> dict:
    """All sizes of the experiment in ``mode``.

    Paper (MNIST odd vs even): 500 training images, MLP d-1000-1000-1 with a bias on the first layer
    only, full-batch GD at learning rate 0.01 for 10^6 epochs, 2x as many candidates as training
    images. Fast mode (ours): 30 training images, width 100, initial weights scaled by 0.05 (small
    initialisation, as the paper asks), 2,000 GD steps at learning rate 1.0 (zero training error is
    reached within a few hundred), 60 candidates and 1,500 Adam steps on the weights as trained
    (``attack_normalize=False``; scaling them to unit norm first recovered fewer images at seeds 0,
    1 and 2, a choice made by counting recoveries on those seeds). Full mode, ``scale="paper"``: the paper's data and network; the step counts are ours,
    sized for one GPU. ``scale="cpu"``: a run sized for a 2-core CPU (ours; it took 34 minutes on one thread):
    100 training images, the paper's width 1000, 20,000 training steps, 200 candidates and 6,000
    attack steps.
    """
    mode = get_mode(mode)
    if scale not in ("paper", "cpu"):
        raise ValueError(f"Unknown scale {scale!r}; expected 'paper' or 'cpu'.")
    common = {"mode": mode, "bias": "first", "init_scale": 0.05, "train_lr": 1.0, "attack_lr": 0.01,
              "lam_min": 0.5, "relu_alpha": 20.0, "attack_normalize": False, "scale": scale}
    if mode == "fast":
        return {**common, "scale": "fast", "n_train": 30, "width": 100, "train_steps": 2000,
                "n_candidates": 60, "attack_steps": 1500, "n_test": 2000}
    if scale == "cpu":
        return {**common, "n_train": 100, "width": 1000, "train_steps": 20_000, "n_candidates": 200,
                "attack_steps": 6000, "n_test": 2000}
    return {**common, "n_train": 500, "width": 1000, "train_steps": 50_000, "n_candidates": 1000,
            "attack_steps": 20_000, "n_test": 5000}


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
    """The victim: ``MLP(784, [width, width], 1, bias=config["bias"])`` (``"first"``: a bias on the
    first layer only, as the authors' network) with its initial weights scaled by ``init_scale``,
    trained by :func:`mixcon_lite.train.train_margin`, keeping 12 log-spaced snapshots of the weights
    for :func:`regime`. Returns ``(model, history)``."""
    seed = resolve_seed(seed)
    torch.manual_seed(seed)
    device = get_device()
    model = MLP(data["x_train"][0].numel(), [config["width"]] * 2, 1, bias=config.get("bias", "first")).to(device)
    steps = steps or config["train_steps"]
    snaps = sorted({int(round(t)) for t in np.geomspace(10, steps, 12)})
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(config["init_scale"])
    x = centred(data["x_train"], data["mean"]).to(device)
    history = train_margin(model, x, data["y_train"].to(device), steps=steps, lr=config["train_lr"],
                           weight_decay=weight_decay, log_every=20, progress=progress, snapshot_steps=snaps)
    history["snapshots"] = [(t, [v.cpu() for v in snap]) for t, snap in history["snapshots"]]
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
    ``overrides`` replace any of reconstruct's settings (e.g. ``**AUTHORS_MNIST``, or
    ``objective="naive"``). Returns ``(AttackResult, images [m, 1, 28, 28] in [0, 1])``."""
    seed = resolve_seed(seed)
    mean = data["mean"].flatten()
    kwargs = {"n_candidates": config["n_candidates"], "steps": config["attack_steps"],
              "lr": config["attack_lr"], "lam_lr": config["attack_lr"], "lam_min": config["lam_min"],
              "relu_alpha": config["relu_alpha"], "normalize": config.get("attack_normalize", True),
              "box": (-mean, 1 - mean)}
    kwargs.update(overrides)
    result = reconstruct(model, (mean.numel(),), seed=seed, progress=progress, **kwargs)
    images = (result.reconstruction + mean).clamp(0, 1).reshape(-1, *data["x_train"].shape[1:])
    return result, images


def start_images(data: dict, config: dict, seed: int | None = None, init_scale: float = 0.01) -> torch.Tensor:
    """Where :func:`attack` starts (``reconstruct``'s draw with the same seed, its default
    ``init_scale``): the training mean, which the attacker is given, plus a little noise, in pixel
    range. Scoring them tells what the attack knew before its first step."""
    seed = resolve_seed(seed)
    g = torch.Generator().manual_seed(int(seed))
    mean = data["mean"].flatten()
    x = init_scale * torch.randn(config["n_candidates"], mean.numel(), generator=g)
    return (x + mean).clamp(0, 1).reshape(-1, *data["x_train"].shape[1:])


def candidate_residual(model, data: dict, images: torch.Tensor) -> float:
    """The relative KKT residual of candidates, measured as for the training set (:func:`kkt_residual`:
    exact ReLU derivative, λ fitted by NNLS), with the attack's labels (first half -1). ``images`` are
    the candidates as :func:`attack` returns them, clamped to the pixel range."""
    m = len(images)
    y = torch.cat([-torch.ones(m // 2), torch.ones(m - m // 2)])
    return kkt_residual(model, centred(images, data["mean"]), y)[0]


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


def score(data: dict, images: torch.Tensor) -> dict:
    """How many training images one candidate set recovers, each candidate credited once.

    Training images and candidates are matched one to one by SSIM
    (:func:`~mixcon_lite.attacks.weights.assign`); ``n_recovered_distinct`` counts matched pairs above
    :data:`RECOVERED_SSIM`. The null: the same candidates matched one to one against as many held-out
    images of the same classes (``x_control``, never trained on); ``n_control_recovered`` counts those
    above the threshold. ``n_recovered_nearest`` is the many-to-one count (each training image's
    nearest candidate, so one blurry candidate may be counted many times), kept for comparison.
    """
    scores = ssim_matrix(images, data["x_train"])
    distinct, index = assign(scores)
    control, _ = assign(ssim_matrix(images, data["x_control"]))
    return {"n_recovered_distinct": int((distinct > RECOVERED_SSIM).sum()),
            "n_recovered_nearest": int((scores.max(1) > RECOVERED_SSIM).sum()),
            "n_control_recovered": int((control > RECOVERED_SSIM).sum()),
            "best_ssim": float(distinct.max()), "ssim_per_sample": distinct.tolist(),
            "best_candidate": index.tolist(), "control_ssim_per_sample": control.tolist()}


def evaluate(model, data: dict, images: torch.Tensor, config: dict, seed: int | None = None,
             others: dict | None = None) -> dict:
    """The chapter's numbers for the attack whose candidates are ``images``: see :func:`run`.
    ``others`` maps a prefix (e.g. ``"authors"``, ``"naive"``) to the candidates of another attack on
    the same model, scored the same way under keys ``<prefix>_<key>``; the attack's starting
    candidates (:func:`start_images`) are always scored, under ``start_*``, and
    ``candidate_residual`` is the candidates' KKT residual measured as the training set's."""
    seed = resolve_seed(seed)
    ours = score(data, images)
    base = baselines(data, config["n_candidates"], seed)
    real = score(data, base["random real images"])
    means = match(base["class means"], data["x_train"])[0]
    res, lam = kkt_residual(model, centred(data["x_train"], data["mean"]), data["y_train"])
    res_c, _ = kkt_residual(model, centred(data["x_control"], data["mean"]), data["y_control"])
    s_att, s_real = np.array(ours["ssim_per_sample"]), np.array(real["ssim_per_sample"])
    beat = (s_att > RECOVERED_SSIM) & (s_att > s_real + BEAT_MARGIN)
    # the same count on held-out images: how often candidates "beat" the baseline by chance
    c_att, c_real = np.array(ours["control_ssim_per_sample"]), np.array(real["control_ssim_per_sample"])
    beat_c = (c_att > RECOVERED_SSIM) & (c_att > c_real + BEAT_MARGIN)
    out = {"n_train": len(data["x_train"]), "test_accuracy": test_accuracy(model, data),
           "n_recovered": ours["n_recovered_distinct"], **ours,
           "baseline_best_ssim": float(means.max()),
           "baseline_n_recovered": int((means > RECOVERED_SSIM).sum()),
           "random_real_best_ssim": real["best_ssim"],
           "random_real_n_recovered": real["n_recovered_distinct"],
           "random_real_n_control_recovered": real["n_control_recovered"],
           "n_beat_random_real": int(beat.sum()), "n_control_beat_random_real": int(beat_c.sum()),
           "kkt_residual": res, "kkt_residual_control": res_c, "lam_per_sample": lam.tolist(),
           "baseline_ssim_per_sample": means.tolist(),
           "random_real_ssim_per_sample": real["ssim_per_sample"],
           "margin_per_sample": margins(model, data).tolist()}
    out["candidate_residual"] = candidate_residual(model, data, images)
    others = {"start": start_images(data, config, seed), **(others or {})}
    for prefix, cand in others.items():
        other = score(data, cand)
        s_o = np.array(other["ssim_per_sample"])
        other["n_beat_random_real"] = int(((s_o > RECOVERED_SSIM) & (s_o > s_real + BEAT_MARGIN)).sum())
        out.update({f"{prefix}_{k}": v for k, v in other.items()})
    return out


@torch.no_grad()
def regime(model, data: dict, history: dict) -> dict:
    """How far training went towards the limit the theorem describes, from the snapshots that
    :func:`train_victim` keeps: per snapshot ``step``, the normalised margin
    :math:`\\min_i y_i\\Phi(\\theta_t; x_i) / \\lVert\\theta_t\\rVert^L` (it increases towards the
    max-margin value in the limit), ``cosine`` of :math:`\\theta_t` with the final weights, and the
    relative KKT residual with the training set (``residual``) and with the control images
    (``residual_control``)."""
    import copy

    if "snapshots" not in history:
        raise ValueError("history has no snapshots; train with train_victim (it keeps them) or pass "
                         "snapshot_steps to train_margin.")
    probe = copy.deepcopy(model)
    params = list(probe.parameters())
    depth = sum(isinstance(m, torch.nn.Linear) for m in probe.modules())
    final = torch.cat([p.flatten() for p in model.parameters()])
    x, y = centred(data["x_train"], data["mean"]), data["y_train"]
    xc, yc = centred(data["x_control"], data["mean"]), data["y_control"]
    out = {"step": [], "normalised_margin": [], "cosine": [], "residual": [], "residual_control": []}
    for step, snap in history["snapshots"]:
        for p, v in zip(params, snap):
            p.copy_(v)
        flat = torch.cat([v.flatten() for v in snap])
        out["step"].append(int(step))
        out["normalised_margin"].append(float((y * probe(x)[:, 0]).min() / flat.norm() ** depth))
        out["cosine"].append(float(flat @ final / (flat.norm() * final.norm())))
        out["residual"].append(kkt_residual(probe, x, y)[0])
        out["residual_control"].append(kkt_residual(probe, xc, yc)[0])
    return out


def run(mode: str | None = None, seed: int | None = None, task: str = "mnist-odd-even", progress: bool | None = None,
        config: dict | None = None, compare: bool = True) -> dict:
    """The whole pipeline. Returns ``{"results": numbers, "model", "data", "attack": AttackResult,
    "images": the reconstructions in pixel range, "others": {"authors": ..., "naive": ...} (their
    images), "history": training history, "regime": :func:`regime`, "config", "seconds"}``.

    ``results`` holds ``n_train``, ``test_accuracy``, ``n_recovered`` (= ``n_recovered_distinct``:
    training images matched one to one to a candidate with SSIM > 0.4), ``n_recovered_nearest`` (the
    many-to-one count), ``n_control_recovered`` (the same candidates against held-out images of the
    same classes), ``best_ssim``, ``baseline_best_ssim`` (the best SSIM a class-mean image reaches on
    the same training images) with ``baseline_n_recovered``, the same for random real images of the
    classes matched one to one (``random_real_*``; ``n_beat_random_real`` counts training images
    recovered with an SSIM at least :data:`BEAT_MARGIN` above that baseline's, and
    ``n_control_beat_random_real`` the same count on the held-out images), ``kkt_residual``
    (relative, with the true training set) and ``kkt_residual_control`` (the same fit with as many
    other images of the same classes), the per-sample lists, and the same scores for the authors'
    extraction settings (``authors_*``, :data:`AUTHORS_MNIST`) and the naive margin-maximising
    attack (``naive_*``), each run with the same number of candidates and steps (``compare=False``
    skips those two).
    """
    seed = resolve_seed(seed)
    start = time.perf_counter()
    config = dict(config or settings(mode))
    data = load_task(task, config["n_train"], seed=seed, n_test=config["n_test"])
    model, history = train_victim(data, config, seed=seed, progress=progress)
    result, images = attack(model, data, config, seed=seed, progress=progress)
    others = {}
    if compare:
        others = {"authors": attack(model, data, config, seed=seed, progress=progress, **AUTHORS_MNIST)[1],
                  "naive": attack(model, data, config, seed=seed, progress=progress, objective="naive")[1]}
    numbers = evaluate(model, data, images, config, seed=seed, others=others)
    numbers["final_residual_attack"] = result.history["residual"][-1]
    reg = regime(model, data, history)
    numbers["regime"] = reg
    return {"results": numbers, "model": model, "data": data, "attack": result, "images": images,
            "others": others, "history": history, "regime": reg, "config": config,
            "seconds": time.perf_counter() - start}


SUMMARY_KEYS = ("n_train", "test_accuracy", "n_recovered", "n_recovered_distinct", "n_recovered_nearest",
                "n_control_recovered", "best_ssim", "baseline_best_ssim", "random_real_best_ssim",
                "random_real_n_recovered", "n_beat_random_real", "authors_n_recovered_distinct",
                "authors_n_control_recovered", "authors_best_ssim", "naive_n_recovered_distinct",
                "naive_n_control_recovered", "kkt_residual", "kkt_residual_control")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    parser.add_argument("--task", choices=list(TASKS), default="mnist-odd-even")
    parser.add_argument("--scale", choices=["paper", "cpu"], default="paper",
                        help="full mode's size: the paper's (for a GPU) or the largest that fits an hour "
                             "on a 2-core CPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    parser.add_argument("--out", default=None, help="folder for the full-mode record (default book/results)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        parser.error("--seed must be >= 0")
    args.seed = resolve_seed(args.seed)
    mode = get_mode(args.mode)
    out = run(mode, seed=args.seed, task=args.task, progress=not args.json,
              config=settings(mode, scale=args.scale))
    summary = {k: out["results"][k] for k in SUMMARY_KEYS}
    if mode == "full":
        from . import save_record

        save_record("kkt", mode, {**out["config"], "task": args.task, "seed": args.seed}, out["results"],
                    args.out, seconds=out["seconds"],
                    file_stem="kkt" if args.task == "mnist-odd-even" else f"kkt_{args.task.split('-')[0]}")
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
