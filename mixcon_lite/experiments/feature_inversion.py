r"""Feature inversion on LeNet-5 / Fashion-MNIST at every cut: white-box rMLE and a black-box decoder.

The client's LeNet-5 is trained on Fashion-MNIST training images. The attacker's own images are the
first half of the test split (the decoder's training set, and a few of them to tune the white-box
attacks); the victims are class-balanced images from the second half, so victims never meet the
attacker's images. For each cut the attacker recovers the victims' images with

* ``sgd_paper``: white-box rMLE as the paper's App. C.2 states it: SGD, learning rate 10, on the
  sum objective :math:`\lVert f(x)-h\rVert_2^2 + \lambda_{TV}\mathrm{TV}(x)`;
* ``adam``: the same objective divided by :math:`|h|` (the mean squared feature error), Adam at
  learning rate 0.05 (our choice);
* ``decoder``: a black-box MLP decoder trained on the representations of the attacker's images
  (:func:`~mixcon_lite.attacks.features.train_decoder`; our architecture and settings).

:math:`\lambda_{TV}` is grid-searched for each white-box attack and cut on the attacker's own
tuning images (never on the victims); it is expressed per entry of :math:`h` (the weight beside the
*mean* feature error), so for the sum objective the attack uses :math:`|h|\,\lambda_{TV}`: both
white-box attacks then minimise the same function up to a constant factor, and differ only in
the optimiser and its step. The paper's grid and chosen value are not available to us; ours
are ours.

A label-only baseline sits beside every score: the mean of the attacker's images of the victim's
class. Scores: SSIM raw in [-1, 1] and normalised :math:`(\mathrm{SSIM}+1)/2` in [0, 1] (the
paper's scale), each as mean, std and best (the best-recovered victim, the paper's "worst case");
the relative feature residual :math:`\lVert f(\hat x)-h\rVert/\lVert h\rVert` (did the optimiser
match the representation?); LPIPS only where its pretrained backbone is available.

Full mode trains two clients, with the fast recipe and with the paper's, and attacks both with the
same attack settings and victims, so the effect of training is not confounded with the attack's::

    python -m mixcon_lite.experiments.feature_inversion --mode full
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..attacks.features import invert, train_decoder
from ..config import get_mode, get_seed, resolve_seed
from ..data import load_dataset, subset
from ..metrics import lpips_available, lpips_distance, ssim
from ..models import LeNet5
from ..train import evaluate, train
from ..utils import progress_bar

ATTACKS = ("sgd_paper", "adam", "decoder")
LABELS = {"sgd_paper": "white-box SGD lr 10, sum (paper)", "adam": "white-box Adam (ours)",
          "decoder": "decoder, black-box (ours)"}
WHITE_BOX = {"sgd_paper": {"optimizer": "sgd", "lr": 10.0, "reduction": "sum"},
             "adam": {"optimizer": "adam", "lr": 0.05, "reduction": "mean"}}
BASELINE = "class mean (label only)"
TV_GRID = (0.0, 0.01, 0.1, 1.0, 10.0)
# Training recipes. "paper": the paper's §4.3 (plain SGD, learning rate 0.01, 20 epochs; the batch
# size is ours). "fast": ours, to fit a notebook's CPU budget.
RECIPES = {"fast": {"n_per_class": 1000, "epochs": 3, "lr": 0.05, "momentum": 0.9, "batch_size": 64},
           "paper": {"n_per_class": None, "epochs": 20, "lr": 0.01, "momentum": 0.0, "batch_size": 64}}
# Table 5 of the paper (App. D.2): VGG16 on CIFAR-10, a GAN-style decoder with a supervised term,
# vanilla training, SSIM normalised to [0, 1]; PSIM is a perceptual similarity. "best" is the
# paper's "worst case" (the best-recovered image).
PAPER_TABLE5 = {"dataset": "CIFAR-10", "model": "VGG16", "cut": "second convolutional block",
                "vanilla": {"nssim": 0.53, "nssim_std": 0.15, "nssim_max": 0.9418,
                            "psim": 0.92, "psim_std": 0.02, "psim_max": 0.98}}


def get_settings(mode: str | None = None) -> dict:
    """Everything the experiment's size depends on, resolved once from ``mode`` (see
    :func:`mixcon_lite.get_mode`); pass the dict down instead of the mode."""
    mode = get_mode(mode)
    fast = mode == "fast"
    return {"mode": mode,
            "recipes": ["fast"] if fast else ["fast", "paper"],
            "victims_per_class": 3 if fast else 10,
            "aux_images": 5000,
            "tune_per_class": 1 if fast else 2,
            "tv_grid": list(TV_GRID),
            "white_box_steps": 300 if fast else 500,
            "white_box": {a: dict(kw) for a, kw in WHITE_BOX.items()},
            "decoder_epochs": 5 if fast else 20,
            "seed": get_seed()}


def prepare_data(settings: dict) -> dict:
    """The three disjoint image sets: client training images (``x_train``, ``y_train``), the
    attacker's own images (``x_aux``, ``y_aux``; ``x_tune`` a class-balanced few of them) and the
    victims (``x_victims``, ``y_victims``)."""
    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    x_te, y_te = load_dataset("fashion-mnist", "test")
    half, seed = len(x_te) // 2, settings["seed"]
    x_v, y_v = subset(x_te[half:], y_te[half:], settings["victims_per_class"], seed=seed)
    n_aux = min(settings["aux_images"], half)
    x_aux, y_aux = x_te[:n_aux], y_te[:n_aux]
    x_tune, _ = subset(x_aux, y_aux, settings["tune_per_class"], seed=seed + 1)
    return {"x_train": x_tr, "y_train": y_tr, "x_aux": x_aux, "y_aux": y_aux, "x_tune": x_tune,
            "x_victims": x_v, "y_victims": y_v, "x_test": x_te, "y_test": y_te}


def train_client(recipe: str, data: dict, settings: dict, progress: bool | None = None):
    """Train the client's LeNet-5 with ``RECIPES[recipe]``; returns ``(model, test_accuracy)``."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; expected one of {tuple(RECIPES)}.")
    r, seed = RECIPES[recipe], settings["seed"]
    x, y = data["x_train"], data["y_train"]
    if r["n_per_class"] is not None:
        x, y = subset(x, y, r["n_per_class"], seed=seed)
    torch.manual_seed(seed)
    model = LeNet5()
    train(model, (x, y), epochs=r["epochs"], lr=r["lr"], momentum=r["momentum"],
          batch_size=r["batch_size"], seed=seed, progress=progress)
    return model.eval(), evaluate(model, data["x_test"], data["y_test"])["accuracy"]


def white_box(model, cut: str, h: torch.Tensor, attack: str, tv: float | torch.Tensor,
              settings: dict) -> torch.Tensor:
    """Run white-box ``attack`` (a key of ``settings["white_box"]``) on ``h``. ``tv`` is
    :math:`\\lambda_{TV}` per entry of ``h`` (scaled by :math:`|h|` for the sum objective)."""
    if attack not in settings["white_box"]:
        raise ValueError(f"Unknown white-box attack {attack!r}; expected one of "
                         f"{tuple(settings['white_box'])}.")
    kw = settings["white_box"][attack]
    scale = h[0].numel() if kw["reduction"] == "sum" else 1.0
    return invert(model, cut, h, steps=settings["white_box_steps"], tv_weight=tv * scale,
                  seed=settings["seed"], progress=False, **kw)


def tune_tv(model, cut: str, x_tune: torch.Tensor, settings: dict) -> dict:
    """Grid-search :math:`\\lambda_{TV}` (``settings["tv_grid"]``) for each white-box attack at
    ``cut`` on the attacker's own images ``x_tune``, all weights in one batch. Returns
    ``{attack: {"grid": [...], "ssim": [mean SSIM per weight], "best": weight}}``."""
    grid = [float(w) for w in settings["tv_grid"]]
    with torch.no_grad():
        h = model.forward_to(x_tune, cut)
    n = len(x_tune)
    weights = torch.tensor(grid).repeat_interleave(n)
    out = {}
    for attack in settings["white_box"]:
        rec = white_box(model, cut, h.repeat(len(grid), *[1] * (h.ndim - 1)), attack, weights,
                        settings)
        s = ssim(x_tune.repeat(len(grid), 1, 1, 1), rec).reshape(len(grid), n).mean(1)
        out[attack] = {"grid": grid, "ssim": [float(v) for v in s], "best": grid[int(np.argmax(s))]}
    return out


def attack_cut(model, cut: str, data: dict, tv: dict, settings: dict) -> dict:
    """Run the three attacks on the victims' representations after ``cut``; ``tv``:
    ``{white-box attack: weight}``. Returns ``{attack: recovered images [N, 1, 28, 28]}``."""
    victims = data["x_victims"]
    with torch.no_grad():
        h = model.forward_to(victims, cut)
    out = {a: white_box(model, cut, h, a, tv[a], settings) for a in settings["white_box"]}
    decoder = train_decoder(model, cut, data["x_aux"], epochs=settings["decoder_epochs"],
                            seed=settings["seed"], progress=False)
    with torch.no_grad():
        out["decoder"] = decoder(h)
    return out


def class_mean_baseline(x_victims, y_victims, x_aux, y_aux) -> torch.Tensor:
    """What an attacker gets from the label alone: for each victim, the mean of the attacker's images of
    its class. Returns images ``[N, 1, 28, 28]``; their SSIM is the bar a recovery must clear to show
    more than the class."""
    means = {int(c): x_aux[y_aux == c].mean(0) for c in torch.unique(y_victims)}
    return torch.stack([means[int(c)] for c in y_victims])


def score(victims: torch.Tensor, recovered: dict, model=None, cut: str | None = None) -> dict:
    """Per attack: SSIM raw (``ssim``, ``ssim_std``, ``ssim_max`` = the best-recovered image) and
    normalised to [0, 1] (``nssim``...); with ``model`` and ``cut`` the mean relative feature
    residual ``feature_residual`` :math:`\\lVert f(\\hat x)-h\\rVert/\\lVert h\\rVert`; LPIPS
    (mean) or the reason it was not computed."""
    if model is not None:
        with torch.no_grad():
            h = model.forward_to(victims, cut).flatten(1)
    rows = {}
    for name, rec in recovered.items():
        s = ssim(victims, rec)
        n = (s + 1) / 2
        row = {"ssim": float(s.mean()), "ssim_std": float(s.std()), "ssim_max": float(s.max()),
               "nssim": float(n.mean()), "nssim_std": float(n.std()), "nssim_max": float(n.max()),
               "ssim_per_victim": [float(v) for v in s]}
        if model is not None:
            with torch.no_grad():
                r = (model.forward_to(rec, cut).flatten(1) - h).norm(dim=1) / h.norm(dim=1)
            row["feature_residual"] = float(r.mean())
        if lpips_available("alex"):
            row["lpips"] = float(lpips_distance(victims, rec).mean())
        else:
            row["lpips"] = "not computed: no pretrained AlexNet in the local torch cache"
        rows[name] = row
    return rows


def summarise(scores: dict, baseline: dict, cuts) -> dict:
    """Comparisons read off ``scores`` (``{cut: {attack: row}}``) against the label-only
    ``baseline`` row, as plain values a chapter can quote. Where the rows carry
    ``ssim_per_victim``, "above" and "beats" mean beyond the noise: a paired comparison over the
    victims (:func:`mixcon_lite.stats.paired`) whose 95 % interval excludes zero; rows without
    them (older records) compare means.

    * ``first_below_baseline``: per attack, the first cut from which it is not above the
      baseline at any later cut (``"none"`` if it is above at the last cut);
    * ``best_attack``: per cut, the attack with the highest mean SSIM (descriptive);
    * ``decoder_beats``: per white-box attack, the cuts where the decoder beats it;
    * ``above_baseline``: per attack, the cuts where it is above the baseline.
    """
    from .. import stats

    def beats(a_row, b_row) -> bool:
        if "ssim_per_victim" in a_row and "ssim_per_victim" in b_row:
            return stats.paired(a_row["ssim_per_victim"], b_row["ssim_per_victim"]).a_better
        return a_row["ssim"] > b_row["ssim"]

    cuts = list(cuts)
    attacks = list(scores[cuts[0]])
    out = {"first_below_baseline": {}, "best_attack": {}, "decoder_beats": {}, "above_baseline": {}}
    for a in attacks:
        above = [beats(scores[c][a], baseline) for c in cuts]
        first = "none"
        for i in range(len(cuts)):
            if not any(above[i:]):
                first = cuts[i]
                break
        out["first_below_baseline"][a] = first
        out["above_baseline"][a] = [c for c, b in zip(cuts, above) if b]
    for c in cuts:
        out["best_attack"][c] = max(attacks, key=lambda a: scores[c][a]["ssim"])
    if "decoder" in attacks:
        for a in attacks:
            if a != "decoder":
                out["decoder_beats"][a] = [c for c in cuts
                                           if beats(scores[c]["decoder"], scores[c][a])]
    return out


def attack_client(model, data: dict, settings: dict, cuts=None, progress: bool | None = None):
    """Tune, attack and score every cut of one trained client. Returns ``(recovered, result)``:
    ``recovered`` ``{cut: {attack: images}}``; ``result`` ``{"tv_weights", "scores", "summary"}``
    with ``tv_weights[cut][attack]`` as from :func:`tune_tv`."""
    cuts = list(cuts) if cuts is not None else model.block_names
    recovered, scores, tv = {}, {}, {}
    for cut in progress_bar(cuts, desc="cuts", progress=progress):
        tv[cut] = tune_tv(model, cut, data["x_tune"], settings)
        best = {a: t["best"] for a, t in tv[cut].items()}
        recovered[cut] = attack_cut(model, cut, data, best, settings)
        scores[cut] = score(data["x_victims"], recovered[cut], model, cut)
    return recovered, {"tv_weights": tv, "scores": scores}


def run(mode: str | None = None, settings: dict | None = None, cuts=None,
        progress: bool | None = None, data: dict | None = None, model=None) -> dict:
    """Fast-mode entry point for the notebook: the first recipe of ``settings`` (resolved from
    ``mode`` if not given), every cut. ``data`` / ``model`` (with ``test_accuracy`` unknown) may be
    passed to reuse them. Returns ``{"settings", "model", "test_accuracy", "data", "recovered",
    "scores", "tv_weights", "baseline", "summary"}``."""
    settings = settings if settings is not None else get_settings(mode)
    data = data if data is not None else prepare_data(settings)
    acc = None
    if model is None:
        model, acc = train_client(settings["recipes"][0], data, settings, progress)
    recovered, result = attack_client(model, data, settings, cuts, progress)
    base = class_mean_baseline(data["x_victims"], data["y_victims"], data["x_aux"], data["y_aux"])
    baseline = score(data["x_victims"], {BASELINE: base})[BASELINE]
    summary = summarise(result["scores"], baseline, list(recovered))
    return {"settings": settings, "model": model, "test_accuracy": acc, "data": data,
            "recovered": recovered, "baseline": baseline, "summary": summary, **result}


def noise_defence(model, sigma: float, images: torch.Tensor, labels: torch.Tensor,
                  cut: str = "block1", n_victims: int = 8, tv_weight: float = 0.01,
                  steps: int = 300, tv_grid=TV_GRID, seed: int | None = None, adaptive: bool = True) -> dict:
    """A naive defence: the client adds Gaussian noise of std ``sigma`` to its representation
    after ``cut``. Measures, on the first ``n_victims`` of ``images``, the white-box Adam attack
    with a fixed ``tv_weight`` (``ssim``) and with the weight re-tuned over ``tv_grid`` by an
    attacker who knows the defence (``ssim_adaptive``, ``tv_adaptive``; the best grid value for
    these victims, so an upper bound for that attacker; skipped with ``adaptive=False``), and the
    accuracy on all of ``images, labels`` with and without the noise. Noise is seeded by ``seed``."""
    seed = resolve_seed(seed)
    sigma = float(sigma)
    if not sigma >= 0 or sigma == float("inf"):
        raise ValueError(f"sigma is a standard deviation: a finite number >= 0, got {sigma!r}.")
    model.check_input(images)
    if not torch.is_tensor(labels) or labels.shape != (len(images),):
        raise ValueError(f"labels must be a tensor [{len(images)}] matching images.")
    n = min(int(n_victims), len(images))
    g = torch.Generator().manual_seed(int(seed))
    victims = images[:n]
    grid = [float(w) for w in tv_grid]
    with torch.no_grad():
        h = model.forward_to(victims, cut)
        noisy = h + sigma * torch.randn(h.shape, generator=g)
        hh = model.forward_to(images, cut)
        noisy_logits = model.forward_from(hh + sigma * torch.randn(hh.shape, generator=g), cut)
        clean_logits = model.forward_from(hh, cut)
    kw = dict(steps=steps, lr=0.05, optimizer="adam", seed=seed, progress=False)
    fixed = float(ssim(victims, invert(model, cut, noisy, tv_weight=tv_weight, **kw)).mean())
    out = {"sigma": sigma, "ssim": fixed,
           "accuracy": float((noisy_logits.argmax(1) == labels).float().mean()),
           "clean_accuracy": float((clean_logits.argmax(1) == labels).float().mean())}
    if not adaptive:
        return out
    rec = invert(model, cut, noisy.repeat(len(grid), *[1] * (h.ndim - 1)),
                 tv_weight=torch.tensor(grid).repeat_interleave(n), **kw)
    per = ssim(victims.repeat(len(grid), 1, 1, 1), rec).reshape(len(grid), n).mean(1)
    best = int(np.argmax(per))
    return {**out, "ssim_adaptive": float(per[best]), "tv_adaptive": grid[best]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    settings = get_settings(args.mode)
    data = prepare_data(settings)
    base = class_mean_baseline(data["x_victims"], data["y_victims"], data["x_aux"], data["y_aux"])
    baseline = score(data["x_victims"], {BASELINE: base})[BASELINE]
    results = {"baseline": baseline, "recipes": {}}
    for recipe in settings["recipes"]:
        model, acc = train_client(recipe, data, settings, progress=True)
        recovered, res = attack_client(model, data, settings, progress=True)
        res["summary"] = summarise(res["scores"], baseline, list(recovered))
        results["recipes"][recipe] = {"test_accuracy": acc, **res}
        print(f"recipe {recipe}: LeNet-5 test accuracy {acc:.3f}")
        for cut, rows in res["scores"].items():
            print(f"  {cut:<7}", "  ".join(f"{a}: SSIM {r['ssim']:.3f}" for a, r in rows.items()))
    print(f"label-only baseline: SSIM {baseline['ssim']:.3f}")
    results["wall_s"] = round(time.perf_counter() - start, 1)
    from . import save_record

    record_settings = {**settings, "victims": len(data["x_victims"]),
                       "tune_images": len(data["x_tune"]), "labels": LABELS,
                       "recipe_details": {r: RECIPES[r] for r in settings["recipes"]}}
    path = save_record("feature_inversion", settings["mode"], record_settings, results, args.out)
    print("wrote", path)


if __name__ == "__main__":
    main()
