r"""MixCon on images (chapter 05): LeNet-5 trained with :math:`L_c` over a :math:`(\lambda,\beta)` grid.

The MixCon paper's §4.3: LeNet-5 with the consistency loss on the output of its second
convolutional block (``block2``, 400 numbers per image), trained with SGD at learning rate 0.01;
then, for each :math:`(\lambda,\beta)`, the test accuracy, the separability of the protected
representation and how well an attacker inverts it. Here :math:`L_c` is the raw form with the
*per-entry* distance averaged over pairs (:func:`mixcon_lite.mixcon.consistency_loss` with
``distance="per_entry", reduction="mean"``): its scale does not depend on the size of the
representation or the batch, so one :math:`(\lambda,\beta)` means the same at any cut. (The sum of
squared distances of chapter 03 is 400 times larger per pair at ``block2`` and sums some 220 pairs
of a batch of 64: :func:`scale_check` measures what that does.)

For every grid point:

* ``accuracy`` on held-out test images;
* ``delta``: :math:`\delta` (chapter 01), the smallest Euclidean distance between the protected
  representations of ``delta_images`` held-out images, and ``mean_distance``, their mean pairwise
  distance (the ratio is scale-free: a network can shrink a layer and grow the next);
* ``ssim_whitebox``: the white-box rMLE attack of chapter 04 (Adam, mean feature error + TV, its
  weight tuned per network on the attacker's own images) on the victims' representations;
* ``ssim_decoder``: the learned decoder of App. D.2 (the paper calls the approach white-box; ours
  only queries the client), trained on the attacker's images, adversarially in full mode.

SSIM is reported normalised to [0, 1] as the paper does, :math:`(\mathrm{SSIM}+1)/2`, as mean, std
and best-recovered victim (the paper's "worst case"); raw SSIM is kept beside it. A label-only
baseline (the class-mean image) sits beside every score.

Data. ``fashion-mnist``: the client trains on the training split (fast mode: 1,000 per class); the
attacker owns the first half of the test split; victims and accuracy come from the second half.
``mnist``: only the MNIST *test* split is available offline, so it is divided into disjoint parts:
images 0-5,999 train the client, 6,000-7,999 are the attacker's, 8,000-9,999 are held out (accuracy,
victims, :math:`\delta`).

    python -m mixcon_lite.experiments.mixcon_images --mode fast|full [--seed S] [--dataset D] [--json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ..attacks.features import invert, train_decoder
from ..config import get_mode, resolve_seed
from ..data import load_dataset, subset
from ..metrics import ssim
from ..mixcon import check_weights, mixcon_loss_fn
from ..models import LeNet5
from ..separability import min_pairwise_distance, pairwise_distances
from ..train import evaluate, train
from ..utils import progress_bar

DATASETS = ("fashion-mnist", "mnist")
CUT = "block2"
TV_GRID = (0.0, 0.001, 0.01, 0.1, 1.0)       # ours; wide, since L_c shrinks h
# (lambda, beta) grids; (0, 0) is vanilla training. Ours: the paper's grid values are not legible.
GRIDS = {"fast": {"lam": [1.0, 10.0], "beta": [0.0, 0.01, 0.1]},
         "full": {"lam": [0.1, 0.3, 1.0, 3.0, 10.0], "beta": [0.0, 0.001, 0.01, 0.1]}}
JSON_KEYS = ("lam", "beta", "accuracy", "ssim_whitebox", "ssim_decoder", "delta")
# Table 5 of the paper (App. D.2): VGG16 on CIFAR-10, normalised SSIM of the adversarial decoder.
PAPER_TABLE5 = {"dataset": "CIFAR-10", "model": "VGG16",
                "vanilla": {"accuracy": 0.9203, "nssim": 0.53, "nssim_std": 0.15, "nssim_max": 0.9418},
                "mixcon": {"accuracy": 0.9170, "nssim": 0.33, "nssim_std": 0.15, "nssim_max": 0.66}}


def settings(mode: str | None = None, dataset: str = "fashion-mnist", seed: int | None = None) -> dict:
    """Everything the experiment's size depends on, resolved once. Fast mode fits a notebook on a
    2-core CPU and trains with chapter 04's fast recipe (ours: 3 epochs of SGD with momentum at
    learning rate 0.05; at the paper's 0.01, 3 epochs leave LeNet-5 under-trained); full
    mode is the paper's training (all training images, 20 epochs, plain SGD at 0.01) with 100
    victims and 500 attack steps. Choices marked "ours" are not in the paper."""
    seed = resolve_seed(seed)
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    fast = get_mode(mode) == "fast"
    mnist = dataset == "mnist"
    return {
        "mode": "fast" if fast else "full", "dataset": dataset, "seed": int(seed), "cut": CUT,
        "grid": {k: list(v) for k, v in GRIDS["fast" if fast else "full"].items()},
        # training: full = the paper's (plain SGD, lr 0.01, 20 epochs; batch size ours); fast =
        # chapter 04's fast recipe (ours): 1,000 images per class, 3 epochs, SGD lr 0.05, momentum 0.9
        "n_per_class": None if (mnist or not fast) else 1000,
        "epochs": 3 if fast else 20, "lr": 0.05 if fast else 0.01, "momentum": 0.9 if fast else 0.0,
        "batch_size": 64,
        "loss": {"form": "raw", "distance": "per_entry", "reduction": "mean"},
        # attacks
        "victims_per_class": 3 if fast else 10, "tune_per_class": 1, "tv_grid": list(TV_GRID),
        "whitebox_steps": 300 if fast else 500, "whitebox_lr": 0.05,
        # black-box decoder: Adam 0.002 (App. D.2); full: 50 epochs with the GAN term of App. D.2
        # (weight ours); fast: 5 epochs on pixel MSE alone (ours; the GAN's critic triples the cost)
        "decoder_epochs": 5 if fast else 50, "decoder_lr": 0.002,
        "decoder_adversarial": 0.0 if fast else 0.01,
        "delta_images": 1000 if fast else 2000,
    }


def prepare_data(cfg: dict) -> dict:
    """Disjoint image sets for ``cfg["dataset"]`` (see the module docstring): the client's training
    images, the attacker's own images (``x_aux``; ``x_tune`` a class-balanced few of them), the
    held-out test images (``x_test``) and class-balanced victims drawn from them."""
    seed = cfg["seed"]
    if cfg["dataset"] == "mnist":
        x, y = load_dataset("mnist", "test")
        x_tr, y_tr = x[:6000], y[:6000]
        x_aux, y_aux = x[6000:8000], y[6000:8000]
        x_te, y_te = x[8000:], y[8000:]
    else:
        x_tr, y_tr = load_dataset("fashion-mnist", "train")
        x, y = load_dataset("fashion-mnist", "test")
        half = len(x) // 2
        x_aux, y_aux = x[:half], y[:half]
        x_te, y_te = x[half:], y[half:]
    if cfg["n_per_class"] is not None:
        x_tr, y_tr = subset(x_tr, y_tr, cfg["n_per_class"], seed=seed)
    x_v, y_v = subset(x_te, y_te, cfg["victims_per_class"], seed=seed)
    x_tune, _ = subset(x_aux, y_aux, cfg["tune_per_class"], seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x_te), generator=g)[:cfg["delta_images"]]
    return {"x_train": x_tr, "y_train": y_tr, "x_aux": x_aux, "y_aux": y_aux, "x_tune": x_tune,
            "x_test": x_te, "y_test": y_te, "x_victims": x_v, "y_victims": y_v,
            "x_delta": x_te[idx]}


def train_client(lam: float, beta: float, data: dict, cfg: dict, pairs: str = "across",
                 form: str | None = None, distance: str | None = None, reduction: str | None = None,
                 progress: bool | None = None):
    """LeNet-5 trained with cross-entropy + :math:`L_c` (``lam``, ``beta``) at ``cfg["cut"]``;
    ``lam = beta = 0`` is vanilla training. ``pairs="within"`` penalises same-class pairs instead
    (App. D.1). ``form`` / ``distance`` / ``reduction`` override ``cfg["loss"]`` (for
    :func:`scale_check`). Returns ``(model in eval mode, test accuracy)``."""
    check_weights(lam, beta)
    opts = {**cfg["loss"], **{k: v for k, v in (("form", form), ("distance", distance),
                                                  ("reduction", reduction)) if v is not None}}
    loss_fn = mixcon_loss_fn(cfg["cut"], lam, beta, pairs=pairs, **opts)
    torch.manual_seed(cfg["seed"])
    model = LeNet5()
    train(model, (data["x_train"], data["y_train"]), epochs=cfg["epochs"], lr=cfg["lr"],
          momentum=cfg["momentum"], batch_size=cfg["batch_size"], loss_fn=loss_fn,
          seed=cfg["seed"], progress=progress)
    return model.eval(), evaluate(model, data["x_test"], data["y_test"])["accuracy"]


def whitebox(model, h: torch.Tensor, tv, cfg: dict) -> torch.Tensor:
    """Chapter 04's white-box rMLE on representations ``h`` at ``cfg["cut"]``: Adam on the mean
    squared feature error + ``tv`` x TV (a float, or one weight per image)."""
    return invert(model, cfg["cut"], h, steps=cfg["whitebox_steps"], lr=cfg["whitebox_lr"],
                  optimizer="adam", reduction="mean", tv_weight=tv, seed=cfg["seed"], progress=False)


def tune_tv(model, data: dict, cfg: dict) -> float:
    """The TV weight of ``cfg["tv_grid"]`` that recovers the attacker's own tuning images best
    (mean SSIM), all weights in one batch; never looks at the victims."""
    x = data["x_tune"]
    with torch.no_grad():
        h = model.forward_to(x, cfg["cut"])
    grid = [float(w) for w in cfg["tv_grid"]]
    rec = whitebox(model, h.repeat(len(grid), 1, 1, 1), torch.tensor(grid).repeat_interleave(len(x)),
                   cfg)
    per = ssim(x.repeat(len(grid), 1, 1, 1), rec).reshape(len(grid), len(x)).mean(1)
    return grid[int(np.argmax(per))]


def ssim_summary(victims: torch.Tensor, rec: torch.Tensor) -> dict:
    """SSIM of each recovery: raw (``ssim``, ``ssim_std``, ``ssim_max``) and normalised to [0, 1]
    as the paper does (``nssim``, ``nssim_std``, ``nssim_max``; max = the best-recovered victim),
    and the raw SSIM of every victim (``ssim_per_victim``, for paired comparisons)."""
    s = ssim(victims, rec)
    n = (s + 1) / 2
    return {"ssim": float(s.mean()), "ssim_std": float(s.std()), "ssim_max": float(s.max()),
            "nssim": float(n.mean()), "nssim_std": float(n.std()), "nssim_max": float(n.max()),
            "ssim_per_victim": [float(v) for v in s]}


def class_mean_baseline(data: dict) -> torch.Tensor:
    """What the label alone gives the attacker: for each victim, the mean of the attacker's images
    of its class."""
    means = {int(c): data["x_aux"][data["y_aux"] == c].mean(0) for c in torch.unique(data["y_victims"])}
    return torch.stack([means[int(c)] for c in data["y_victims"]])


@torch.no_grad()
def separability(model, data: dict, cfg: dict) -> dict:
    """``delta`` (:math:`\\delta`, smallest pairwise distance) and ``mean_distance`` of the protected
    representations of ``data["x_delta"]``, and their ratio ``relative_delta``."""
    h = model.forward_to(data["x_delta"], cfg["cut"]).flatten(1)
    delta = float(min_pairwise_distance(h))
    d = pairwise_distances(h)
    n = len(h)
    mean = float(d.sum() / (n * (n - 1)))
    return {"delta": delta, "mean_distance": mean, "relative_delta": delta / mean if mean > 0 else 0.0}


def decoder_attack(model, data: dict, cfg: dict) -> dict:
    """The black-box decoder (App. D.2) trained on the attacker's images ``data["x_aux"]``, applied
    to the victims' representations: ``{"images": recovered, **ssim_summary}``."""
    dec = train_decoder(model, cfg["cut"], data["x_aux"], epochs=cfg["decoder_epochs"],
                        lr=cfg["decoder_lr"], adversarial=cfg["decoder_adversarial"],
                        seed=cfg["seed"], progress=False)
    with torch.no_grad():
        rec = dec(model.forward_to(data["x_victims"], cfg["cut"]))
    return {"images": rec, **ssim_summary(data["x_victims"], rec)}


def attack(model, data: dict, cfg: dict, decoder: bool = True) -> dict:
    """Both attacks on the victims of one trained client. Returns ``{"tv", "whitebox", "decoder"}``:
    the tuned TV weight and, per attack, ``{"images": recovered [N, 1, 28, 28], **ssim_summary}``;
    the white-box entry also has ``feature_residual``, the mean relative error
    :math:`\lVert f(\hat x)-h\rVert/\lVert h\rVert` (did the optimiser match the representation?)."""
    victims = data["x_victims"]
    with torch.no_grad():
        h = model.forward_to(victims, cfg["cut"])
    tv = tune_tv(model, data, cfg)
    rec = whitebox(model, h, tv, cfg)
    with torch.no_grad():
        resid = ((model.forward_to(rec, cfg["cut"]) - h).flatten(1).norm(dim=1)
                 / h.flatten(1).norm(dim=1).clamp_min(1e-12))
    out = {"tv": tv, "whitebox": {"images": rec, **ssim_summary(victims, rec),
                                  "feature_residual": float(resid.mean())}}
    if decoder:
        out["decoder"] = decoder_attack(model, data, cfg)
    return out


def run_point(lam: float, beta: float, data: dict, cfg: dict, pairs: str = "across",
              decoder: bool = True, progress: bool | None = None) -> dict:
    """Train one client and measure it: ``{"lam", "beta", "pairs", "model", "accuracy", "delta",
    "mean_distance", "relative_delta", "tv", "whitebox", "decoder", "seconds"}``."""
    t0 = time.perf_counter()
    model, acc = train_client(lam, beta, data, cfg, pairs=pairs, progress=progress)
    out = {"lam": float(lam), "beta": float(beta), "pairs": pairs, "model": model,
           "accuracy": float(acc),
           **separability(model, data, cfg), **attack(model, data, cfg, decoder=decoder)}
    out["seconds"] = time.perf_counter() - t0
    return out


def grid_points(cfg: dict) -> list[tuple[float, float]]:
    """Vanilla ``(0, 0)`` first, then every ``(lam, beta)`` of ``cfg["grid"]``."""
    return [(0.0, 0.0)] + [(lam, beta) for lam in cfg["grid"]["lam"] for beta in cfg["grid"]["beta"]]


def run_grid(cfg: dict, data: dict | None = None, decoder: bool = True,
             progress: bool | None = None) -> dict:
    """Every grid point of ``cfg`` (the decoder attack too unless ``decoder=False``). Returns
    ``{"points": [run_point results], "baseline": ssim_summary of the label-only class-mean
    images, "start": ssim_summary of the white-box attack's mid-grey starting image (what an
    attack that never moves scores), "data": data}``."""
    data = data if data is not None else prepare_data(cfg)
    points = [run_point(lam, beta, data, cfg, decoder=decoder)
              for lam, beta in progress_bar(grid_points(cfg), desc="grid", progress=progress)]
    base = class_mean_baseline(data)
    grey = torch.full_like(data["x_victims"], 0.5)        # invert's start, init="constant"
    return {"points": points, "data": data,
            "baseline": {"images": base, **ssim_summary(data["x_victims"], base)},
            "start": ssim_summary(data["x_victims"], grey)}


def vanilla(points: list[dict]) -> dict:
    """The vanilla point (``lam = beta = 0``) of ``points``."""
    for p in points:
        if p["lam"] == 0 and p["beta"] == 0:
            return p
    raise ValueError("No vanilla point (lam = beta = 0) among the points.")


def sweet_spot(points: list[dict], max_drop: float = 0.02, attack: str = "whitebox") -> dict | None:
    """The MixCon point whose ``attack`` recovers least (lowest mean SSIM) among those whose accuracy
    is at most ``max_drop`` (a fraction: 0.02 = two points) below vanilla's, provided it recovers
    less than vanilla; ``None`` if there is no such point."""
    if not 0 <= max_drop < 1:
        raise ValueError(f"max_drop is a fraction of accuracy in [0, 1), got {max_drop!r}.")
    v = vanilla(points)
    ok = [p for p in points if p is not v and p["pairs"] == "across"
          and p["accuracy"] >= v["accuracy"] - max_drop and p[attack]["ssim"] < v[attack]["ssim"]]
    return min(ok, key=lambda p: p[attack]["ssim"]) if ok else None


def within_class_comparison(spot: dict, data: dict, cfg: dict, betas=None,
                            progress: bool | None = None) -> dict:
    """App. D.1: the same penalty on *same-class* pairs at the sweet spot's :math:`\\lambda`, for
    each :math:`\\beta` of ``betas`` (default: the grid's); the one whose accuracy is closest to the
    sweet spot's is the match. Returns ``{"points": [...], "matched": point}``."""
    betas = cfg["grid"]["beta"] if betas is None else list(betas)
    points = [run_point(spot["lam"], b, data, cfg, pairs="within", decoder=False)
              for b in progress_bar(betas, desc="within-class", progress=progress)]
    matched = min(points, key=lambda p: abs(p["accuracy"] - spot["accuracy"]))
    return {"points": points, "matched": matched}


def scale_check(lam: float, data: dict, cfg: dict, beta: float = 0.0) -> dict:
    """Train with chapter 03's scale (raw form, squared distance *summed* over pairs) at ``lam``,
    ``beta``; returns ``{"lam", "beta", "accuracy", "delta", ...}`` to set beside the per-entry,
    pair-averaged loss at the same weights."""
    model, acc = train_client(lam, beta, data, cfg, form="raw", distance="squared",
                              reduction="sum")
    return {"lam": float(lam), "beta": float(beta), "accuracy": float(acc),
            **separability(model, data, cfg)}


def rows(points: list[dict]) -> list[dict]:
    """One plain row per point with :data:`JSON_KEYS` (SSIM normalised to [0, 1], means)."""
    return [{"lam": p["lam"], "beta": p["beta"], "accuracy": p["accuracy"],
             "ssim_whitebox": p["whitebox"]["nssim"],
             "ssim_decoder": p["decoder"]["nssim"] if "decoder" in p else None,
             "delta": p["delta"]} for p in points]


def plain_point(point: dict) -> dict:
    """A point without its model and image tensors (for the JSON record)."""
    out = {}
    for k, v in point.items():
        if k == "model":
            continue
        if isinstance(v, dict):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "images"}
        else:
            out[k] = v
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    parser.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    parser.add_argument("--json", action="store_true",
                        help="print the rows as a JSON list (lam, beta, accuracy, ssim_whitebox, "
                             "ssim_decoder, delta; SSIM normalised to [0, 1], means over victims)")
    parser.add_argument("--out", default=None,
                        help="folder for the JSON record (written in full mode or when given)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    cfg = settings(args.mode, args.dataset, args.seed)
    res = run_grid(cfg, progress=not args.json)
    points = res["points"]
    table = rows(points)
    spot = sweet_spot(points)
    extra = {}
    if cfg["mode"] == "full" or args.out:
        if spot is not None:
            wc = within_class_comparison(spot, res["data"], cfg, progress=not args.json)
            extra["within_class"] = {"points": [plain_point(p) for p in wc["points"]],
                                     "matched_beta": wc["matched"]["beta"]}
        extra["scale_check"] = scale_check(0.01, res["data"], cfg)
    if args.json:
        print(json.dumps(table))
    else:
        v = vanilla(points)
        print(f"{cfg['dataset']}, {cfg['mode']} mode, seed {cfg['seed']}; normalised SSIM; "
              f"label-only baseline {res['baseline']['nssim']:.3f}")
        print(f"{'lam':>6}{'beta':>7}{'acc':>7}{'white-box':>10}{'decoder':>9}{'delta':>8}")
        for r in table:
            print(f"{r['lam']:>6g}{r['beta']:>7g}{r['accuracy']:>7.3f}{r['ssim_whitebox']:>10.3f}"
                  f"{r['ssim_decoder']:>9.3f}{r['delta']:>8.3f}")
        if spot is None:
            print(f"no MixCon point within 2 points of vanilla's accuracy ({v['accuracy']:.3f}) "
                  "recovers less")
        else:
            print(f"sweet spot (<= 2 points below vanilla, lowest white-box SSIM): lam {spot['lam']:g}, "
                  f"beta {spot['beta']:g}")
    if cfg["mode"] == "full" or args.out:
        from . import save_record

        results = {"points": [plain_point(p) for p in points],
                   "baseline": {k: v for k, v in res["baseline"].items() if k != "images"},
                   "start": res["start"],
                   "sweet_spot": None if spot is None else {"lam": spot["lam"], "beta": spot["beta"]},
                   **extra, "wall_s": round(time.perf_counter() - t0, 1)}
        name = "mixcon_images" if cfg["dataset"] == "fashion-mnist" else "mixcon_images_mnist"
        path = save_record("mixcon_images", cfg["mode"], cfg, results, args.out,
                           seconds=time.perf_counter() - t0, file_stem=name)
        if not args.json:
            print("wrote", path)


if __name__ == "__main__":
    main()
