"""Gradient inversion (chapter 06): DLG, iDLG and Inverting Gradients in DLG's setting and beyond.

The pieces the chapter runs (each takes the settings of :func:`settings` for a mode):

* :func:`recover_pictures` — DLG on DLG's sigmoid LeNet (U(-0.5, 0.5) weights, seed 1234, 100 classes)
  for 32x32 colour pictures and on a 1x28x28 LeNet for Fashion-MNIST images, with snapshots;
* :func:`restart_study` — K starts batched: each start alone vs the best by gradient distance;
* :func:`label_accuracy` — DLG's jointly optimised label vs iDLG's sign rule on fresh random networks;
* :func:`trained_network_study` — a trained ReLU LeNet-5: DLG vs Inverting Gradients (cosine vs L2,
  with and without TV, the TV weight tuned per distance on the attacker's own images), with baselines;
* :func:`architecture_study` — LeNet, ResNet-18 (ReLU and sigmoid), DenseNet-121, Inception-v3
  (torchvision, random init);
* :func:`defence_study` — gradient noise, gradient pruning and larger batches against DLG.

Section 8 (a FedAvg client's multi-step update) lives in :mod:`.fedavg`.

    python -m mixcon_lite.experiments.gradient_inversion --mode full
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..attacks.gradients import (dlg, idlg_label, invert_gradients, noisy_gradients, prune_gradients,
                                 shared_gradients)
from ..attacks.matching import sent_entries
from ..config import get_mode, get_seed, resolve_seed
from ..data import load_dataset, skimage_crops, subset
from ..metrics import mse, psnr, ssim
from ..models import DLGLeNet, LeNet5, torchvision_model
from ..utils import progress_bar

PICTURES = ("astronaut", "coffee", "chelsea", "rocket")
#: ``resnet18_sigmoid``: ResNet-18 with its ReLU modules swapped for sigmoids, as the DLG slides ran it.
ARCHITECTURES = ("lenet", "resnet18", "resnet18_sigmoid", "densenet121", "inception_v3")


def settings(mode: str | None = None) -> dict:
    """Sizes of every study in ``mode`` (``"fast"``: a 2-core CPU in about two and a half minutes;
    ``"full"``: more trials, victims and steps; every study but the architectures runs on a 2-core CPU
    in about half an hour (``--only labels restarts trained defences``); the architectures at their
    ImageNet input sizes need a GPU)."""
    fast = get_mode(mode) == "fast"
    return {
        "mode": "fast" if fast else "full",
        "pictures": list(PICTURES), "picture_size": 32, "dlg_steps": 1500, "fashion_victims": 2,
        "restarts": 8, "restart_steps": 1000 if fast else 3000, "restart_size": 24 if fast else 32,
        "label_trials": 10 if fast else 300, "label_steps": 100 if fast else 300,
        "train_images": 10000 if fast else 60000, "train_epochs": 2 if fast else 10,
        "trained_victims": 6 if fast else 10, "victims_per_class": 1 if fast else 2,
        "ig_steps": 200 if fast else 2000,
        "tv_grid": [5e-4, 5e-3, 5e-2, 5e-1, 5.0] if fast else [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0],
        "tune_images": 2 if fast else 4,
        "architecture_sizes": ({"lenet": 32, "resnet18": 32, "resnet18_sigmoid": 32, "densenet121": 32,
                                "inception_v3": 75} if fast
                               else {"lenet": 32, "resnet18": 224, "resnet18_sigmoid": 224, "densenet121": 224,
                                     "inception_v3": 299}),
        "architecture_steps": 8 if fast else 300, "architecture_classes": 100,
        "noise_sigmas": [0.0, 1e-3, 1e-2] if fast else [0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
        "prune_fractions": [0.0, 0.1, 0.2, 0.4] if fast else [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7],
        "batch_sizes": [1, 4] if fast else [1, 2, 4, 8],
        "defence_steps": 650 if fast else 3000, "defence_picture": "rocket",
        "adaptive_from": 0.2 if fast else 0.0,     # the adaptive attack on pruning from this fraction
    }


def dlg_victim(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int | None = None):
    """DLG's setting for one picture ``[C, H, W]``: a :class:`~mixcon_lite.models.DLGLeNet` with
    U(-0.5, 0.5) weights from ``seed`` (default DLG's 1234, plus the course seed) and the gradient of
    ``(picture, label)``. Returns ``(model, grads)``."""
    seed = 1234 + get_seed() if seed is None else resolve_seed(seed)
    c, size = picture.shape[0], picture.shape[-1]
    model = DLGLeNet(c, num_classes, size, seed=seed)
    return model, shared_gradients(model, picture[None], torch.tensor([int(label)]))


def steps_to(curve, goal: float = 1e-3):
    """First index where ``curve`` (e.g. MSE per step) is below ``goal``, or ``None``."""
    hits = np.nonzero(np.asarray(curve) < goal)[0]
    return int(hits[0]) if len(hits) else None


def recover_pictures(cfg: dict, progress: bool | None = None) -> dict:
    """DLG (our settings, one start) on each colour picture (labels 0, 1, 2, ...; 100 classes) and on
    ``fashion_victims`` Fashion-MNIST test images (1x28x28 LeNet, 10 classes). Returns a dict with
    ``pictures`` / ``fashion`` lists of ``{name, image, result, mse_curve}``."""
    out = {"pictures": [], "fashion": []}
    images = skimage_crops(cfg["pictures"], size=cfg["picture_size"])
    x_f, y_f = load_dataset("fashion-mnist", "test")
    xf, yf = subset(x_f, y_f, 1, classes=range(cfg["fashion_victims"]), seed=get_seed())
    jobs = [("pictures", name, images[i], i, 100) for i, name in enumerate(cfg["pictures"])]
    jobs += [("fashion", f"fashion {i}", xf[i], int(yf[i]), 10) for i in range(len(xf))]
    for group, name, image, label, classes in progress_bar(jobs, desc="pictures", progress=progress):
        model, grads = dlg_victim(image, label, classes)
        res = dlg(model, grads, tuple(image.shape), classes, steps=cfg["dlg_steps"], snapshot_every=1,
                  progress=False)
        curve = [float(((s - image) ** 2).mean()) for _, s in res.history["snapshots"]]
        out[group].append({"name": name, "image": image, "label": label, "result": res, "mse_curve": curve})
    return out


def restart_study(cfg: dict, picture: str = "chelsea", seed: int | None = None) -> dict:
    """``restarts`` starts of DLG *as published* (N(0, 1) start, no step cap) batched on one picture
    (``restart_size`` pixels a side), ``restart_steps`` steps each: each start's final gradient
    distance and pixel MSE, which one the gradient distance picks, and the mid-grey guess's MSE.
    ``seed`` draws the starts (default 5 plus the course seed)."""
    seed = 5 + get_seed() if seed is None else resolve_seed(seed)
    image = skimage_crops([picture], size=cfg.get("restart_size", cfg["picture_size"]))[0]
    model, grads = dlg_victim(image, 2)
    res = dlg(model, grads, tuple(image.shape), 100, steps=cfg["restart_steps"], restarts=cfg["restarts"],
              seed=seed, init="randn", max_step=None, tol=0, keep_all=True, progress=False)
    per = res.extras["all_reconstructions"]
    mses = ((per - image) ** 2).flatten(1).mean(1)
    return {"picture": picture, "image": image, "result": res, "restart_distance": res.extras["restart_loss"],
            "restart_mse": mses, "chosen": int(res.extras["restart_loss"].argmin()),
            "grey_mse": float(((image - 0.5) ** 2).mean())}


def label_accuracy(cfg: dict, progress: bool | None = None, seed: int | None = None) -> dict:
    """iDLG's protocol: per trial a fresh U(-0.5, 0.5) LeNet (1x28x28, 10 classes) and a random
    Fashion-MNIST test image; the label from iDLG's sign rule and from DLG as published (joint soft
    label, N(0, 1) start, ``label_steps`` steps). Returns per-trial truths and both predictions."""
    seed = resolve_seed(seed)
    x, y = load_dataset("fashion-mnist", "test")
    g = torch.Generator().manual_seed(seed)
    truth, by_idlg, by_dlg = [], [], []
    for t in progress_bar(range(cfg["label_trials"]), desc="label trials", progress=progress):
        i = int(torch.randint(0, len(x), (1,), generator=g))
        model, grads = dlg_victim(x[i], int(y[i]), 10, seed=10_000 * (seed + 1) + t)
        truth.append(int(y[i]))
        by_idlg.append(idlg_label(model, grads))
        res = dlg(model, grads, (1, 28, 28), 10, steps=cfg["label_steps"], seed=seed + t, init="randn",
                  max_step=None,
                  progress=False)
        by_dlg.append(int(res.labels[0]))
    truth = np.array(truth)
    return {"truth": truth, "idlg": np.array(by_idlg), "dlg": np.array(by_dlg),
            "idlg_accuracy": float((np.array(by_idlg) == truth).mean()),
            "dlg_accuracy": float((np.array(by_dlg) == truth).mean())}


def train_victim_network(cfg: dict, seed: int | None = None):
    """A LeNet-5 (ReLU, max-pooling) trained on Fashion-MNIST (``train_images``, ``train_epochs``,
    SGD with momentum as in chapter 00), and test victims: ``victims_per_class`` of each of the first
    ``trained_victims`` classes. Returns
    ``(model, test_accuracy, victims, victim_labels, train_mean_image, class_means)``."""
    seed = resolve_seed(seed)
    from ..train import evaluate, train

    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    x_te, y_te = load_dataset("fashion-mnist", "test")
    torch.manual_seed(seed)
    model = LeNet5()
    xs, ys = subset(x_tr, y_tr, cfg["train_images"] // 10, seed=seed)
    train(model, (xs, ys), epochs=cfg["train_epochs"], lr=0.05, momentum=0.9, seed=seed)
    model.eval()
    acc = evaluate(model, x_te, y_te)["accuracy"]
    xv, yv = subset(x_te, y_te, cfg.get("victims_per_class", 1), classes=range(cfg["trained_victims"]),
                    seed=seed + 1)
    class_means = torch.stack([xs[ys == c].mean(0) for c in range(10)])
    return model, acc, xv, yv, xs.mean(0), class_means


#: The attacks compared on the trained network: name -> (attack, keyword arguments). The two rows
#: with TV get their TV weight tuned per distance (:func:`tune_tv`).
TRAINED_ATTACKS = {
    "DLG (L2, L-BFGS)": ("dlg", {}),
    "L2 + TV, Adam": ("ig", {"distance": "l2"}),
    "cosine, Adam, no TV": ("ig", {"tv_weight": 0.0}),
    "cosine + TV, Adam (IG)": ("ig", {"distance": "cosine"}),
}


def tuning_images(cfg: dict, seed: int | None = None):
    """``tune_images`` Fashion-MNIST *training* images (distinct classes, none a victim): data of the
    victims' distribution that an attacker can hold, for choosing the TV weight without the victims."""
    seed = resolve_seed(seed)
    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    classes = range(10 - cfg["tune_images"], 10)
    return subset(x_tr, y_tr, 1, classes=classes, seed=seed + 2)


def tune_tv(cfg: dict, model, distance: str, images=None, progress: bool | None = None) -> dict:
    """The TV weight for Inverting Gradients' loop with ``distance`` (``"cosine"`` or ``"l2"``),
    chosen from ``tv_grid`` by mean SSIM on :func:`tuning_images` (the attacker's own images, whose
    gradients it computes itself). Returns ``{"best": weight, "ssim": {weight: mean SSIM}}``."""
    xt, yt = tuning_images(cfg) if images is None else images
    grid = list(cfg["tv_grid"])
    per = {w: [] for w in grid}
    for i in progress_bar(range(len(xt)), desc=f"TV weight ({distance})", progress=progress):
        grads = shared_gradients(model, xt[i:i + 1], yt[i:i + 1])
        # one batched run per image: restart k carries weight grid[k]
        res = invert_gradients(model, grads, (1, 28, 28), yt[i:i + 1], steps=cfg["ig_steps"], restarts=len(grid),
                               seed=get_seed() + 100 + i, tv_weight=grid, distance=distance, keep_all=True,
                               progress=False)
        for w, rec in zip(grid, res.extras["all_reconstructions"]):
            per[w].append(float(ssim(xt[i:i + 1], rec.clamp(0, 1))[0]))
    scores = {w: float(np.mean(v)) for w, v in per.items()}
    return {"best": max(scores, key=scores.get), "ssim": scores}


def trained_network_study(cfg: dict, prepared=None, progress: bool | None = None, tv=None) -> dict:
    """Each attack of :data:`TRAINED_ATTACKS` on each victim (batch of one; IG gets the label from
    iDLG's rule, DLG optimises it), plus baselines: the training set's mean image, the victim's class
    mean (the label alone), a uniform random image. The TV weight of each distance is tuned first
    (:func:`tune_tv`, on the attacker's own images) unless ``tv`` gives ``{"cosine": w, "l2": w}``.
    Returns reconstructions, per-image MSE / SSIM / PSNR and the tuning (``tv``)."""
    model, acc, xv, yv, mean_image, class_means = prepared if prepared is not None else train_victim_network(cfg)
    tuning = None
    if tv is None:
        tuning = {d: tune_tv(cfg, model, d, progress=progress) for d in ("cosine", "l2")}
        tv = {d: t["best"] for d, t in tuning.items()}
    recs = {name: [] for name in TRAINED_ATTACKS}
    labels_ok, s0 = [], get_seed()
    jobs = [(i, name) for i in range(len(xv)) for name in TRAINED_ATTACKS]
    grads_of = {i: shared_gradients(model, xv[i:i + 1], yv[i:i + 1]) for i in range(len(xv))}
    for i, name in progress_bar(jobs, desc="attacks", progress=progress):
        kind, kw = TRAINED_ATTACKS[name]
        grads = grads_of[i]
        if kind == "dlg":
            res = dlg(model, grads, (1, 28, 28), 10, steps=cfg["ig_steps"], seed=s0 + i, progress=False)
        else:
            label = torch.tensor([idlg_label(model, grads)])
            if name == "cosine + TV, Adam (IG)":
                labels_ok.append(int(label) == int(yv[i]))
            kw = {"tv_weight": tv[kw.get("distance", "cosine")], **kw}
            res = invert_gradients(model, grads, (1, 28, 28), label, steps=cfg["ig_steps"], seed=s0 + i,
                                   progress=False, **kw)
        recs[name].append(res.reconstruction[0].clamp(0, 1))
    recs = {k: torch.stack(v) for k, v in recs.items()}
    g = torch.Generator().manual_seed(s0)
    baselines = {"training mean image": mean_image.expand_as(xv), "class mean (label only)": class_means[yv],
                 "uniform noise": torch.rand(xv.shape, generator=g)}
    scores = {name: {"mse": mse(xv, r), "ssim": ssim(xv, r), "psnr": psnr(xv, r)}
              for name, r in {**recs, **baselines}.items()}
    return {"test_accuracy": acc, "victims": xv, "labels": yv, "reconstructions": recs, "baselines": baselines,
            "scores": scores, "idlg_labels_correct": labels_ok, "tv": tv, "tuning": tuning}


def architecture_study(cfg: dict, progress: bool | None = None, picture: str = "astronaut") -> list[dict]:
    """DLG (our settings, one start, ``architecture_steps`` steps) against each architecture at random
    initialisation and its :data:`settings` input size: seconds per step, relative gradient distance
    and pixel MSE after the steps, the parameter count; and the *exact* recovery of the penultimate
    features from the last layer's gradient (``a = dL/dW_i / dL/db_i`` for any row ``i``)."""
    rows = []
    for arch in progress_bar(ARCHITECTURES, desc="architectures", progress=progress):
        size = cfg["architecture_sizes"][arch]
        classes = cfg["architecture_classes"]
        image = skimage_crops([picture], size=size)[0]
        t0 = time.perf_counter()
        if arch == "lenet":
            model = DLGLeNet(3, classes, size, seed=1234 + get_seed())
        elif arch.endswith("_sigmoid"):
            model = torchvision_model(arch[:-len("_sigmoid")], num_classes=classes, activation="sigmoid",
                                      seed=get_seed())
        else:
            model = torchvision_model(arch, num_classes=classes, seed=get_seed())
        build = time.perf_counter() - t0
        grads = shared_gradients(model, image[None], torch.tensor([7]))
        res = dlg(model, grads, tuple(image.shape), classes, steps=cfg["architecture_steps"], tol=0,
                  progress=False)
        feats = _penultimate(model, image[None])
        w, b = grads[-2], grads[-1]
        i = int(b.abs().argmax())
        recovered = w[i] / b[i]
        rows.append({"architecture": arch, "input_size": size, "parameters": sum(p.numel() for p in model.parameters()),
                     "seconds_per_step": res.seconds / res.extras["steps"], "build_seconds": build,
                     "steps": res.extras["steps"], "relative_distance": res.extras["relative_loss"],
                     "distance_curve": res.history["loss"],
                     "mse": float(((res.reconstruction[0].clamp(0, 1) - image) ** 2).mean()),
                     "grey_mse": float(((image - 0.5) ** 2).mean()),
                     "feature_error": float((recovered - feats).abs().max() / feats.abs().max())})
    return rows


def _penultimate(model, x):
    """The input of the model's last ``nn.Linear`` for ``x`` (one forward with a hook)."""
    from ..attacks.gradients import final_linear

    layer, _ = final_linear(model)
    seen = []
    handle = layer.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0][0]


def matched_mse(truth: torch.Tensor, rec: torch.Tensor) -> float:
    """Mean pixel MSE after pairing reconstructions with originals one to one (the gradient of a batch
    does not say which image came first): optimal assignment by MSE."""
    from scipy.optimize import linear_sum_assignment

    cost = ((truth[:, None] - rec[None]) ** 2).flatten(2).mean(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def defence_study(cfg: dict, progress: bool | None = None) -> dict:
    """DLG (our settings, one start, ``defence_steps`` steps) against three defences on DLG's LeNet:
    Gaussian noise of std ``sigma`` on every gradient entry, pruning of the smallest fraction of each
    tensor, and batches of several pictures (distinct labels; scored after optimal matching). Against
    pruning also the adaptive DLG that matches only the entries the client sent
    (``pruning_adaptive``). Returns ``{defence: [(strength, mse), ...]}`` plus the picture's mid-grey
    baseline MSE."""
    pictures = skimage_crops(list(PICTURES), size=cfg["picture_size"])
    k = list(PICTURES).index(cfg["defence_picture"])
    image = pictures[k]
    model, grads = dlg_victim(image, k)
    scale = float(torch.cat([g.flatten() for g in grads]).abs().mean())
    out = {"noise": [], "pruning": [], "pruning_adaptive": [], "batch": [], "gradient_mean_abs": scale,
           "grey_mse": float(((image - 0.5) ** 2).mean())}
    jobs = ([("noise", s) for s in cfg["noise_sigmas"]] + [("pruning", f) for f in cfg["prune_fractions"]]
            + [("batch", b) for b in cfg["batch_sizes"]])
    undefended = None                 # sigma 0, fraction 0 and b = 1 are the same run
    for kind, strength in progress_bar(jobs, desc="defences", progress=progress):
        steps = cfg["defence_steps"]
        if (kind == "batch" and strength == 1) or (kind != "batch" and strength == 0):
            if undefended is None:
                res = dlg(model, grads, tuple(image.shape), 100, steps=steps, progress=False)
                undefended = float(((res.reconstruction[0].clamp(0, 1) - image) ** 2).mean())
            out[kind].append((strength, undefended))
            if kind == "pruning":
                out["pruning_adaptive"].append((strength, undefended))
            continue
        if kind == "batch":
            order = [k] + [j for j in range(len(PICTURES)) if j != k]
            xb = pictures[order[:strength]]
            yb = torch.tensor(order[:strength])
            g = shared_gradients(model, xb, yb)
            res = dlg(model, g, tuple(image.shape), 100, n=strength, steps=steps, progress=False)
            out[kind].append((strength, matched_mse(xb, res.reconstruction.clamp(0, 1))))
            continue
        g = noisy_gradients(grads, strength, seed=get_seed(1)) if kind == "noise" else prune_gradients(grads, strength)
        res = dlg(model, g, tuple(image.shape), 100, steps=steps, progress=False)
        out[kind].append((strength, float(((res.reconstruction[0].clamp(0, 1) - image) ** 2).mean())))
        if kind == "pruning" and strength >= cfg.get("adaptive_from", 0.0):   # knows the defence: sent entries only
            res = dlg(model, g, tuple(image.shape), 100, steps=steps, mask=sent_entries(g), progress=False)
            out["pruning_adaptive"].append((strength, float(((res.reconstruction[0].clamp(0, 1) - image) ** 2).mean())))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="studies to run: labels, restarts, trained, architectures, defences (default: all; "
                             "the architectures at full size need a GPU)")
    args = parser.parse_args(argv)
    mode = get_mode(args.mode)
    cfg = settings(mode)
    only = set(args.only or ["labels", "restarts", "trained", "architectures", "defences"])
    t0 = time.perf_counter()
    results = {}
    if "labels" in only:
        lab = label_accuracy(cfg, progress=True)
        results["labels"] = {"trials": len(lab["truth"]), "idlg_accuracy": lab["idlg_accuracy"],
                             "dlg_accuracy": lab["dlg_accuracy"]}
    if "restarts" in only:
        rs = restart_study(cfg)
        gsq = float(rs["result"].loss[0]) / max(rs["result"].extras["relative_loss"], 1e-300)
        results["restarts"] = {"picture": rs["picture"], "size": cfg["restart_size"], "steps": cfg["restart_steps"],
                               "relative_distance": (rs["restart_distance"] / gsq).tolist(),
                               "mse": rs["restart_mse"].tolist(), "chosen": rs["chosen"], "grey_mse": rs["grey_mse"]}
    if "trained" in only:
        from ..stats import paired

        tr = trained_network_study(cfg, progress=True)
        ig = tr["scores"]["cosine + TV, Adam (IG)"]["ssim"]
        comparisons = {}
        for k, v in tr["scores"].items():
            if k != "cosine + TV, Adam (IG)":
                c = paired(ig, v["ssim"], names=("IG", k))
                comparisons[k] = {"difference": c.difference, "low": c.low, "high": c.high, "verdict": c.verdict}
        results["trained"] = {
            "test_accuracy": tr["test_accuracy"], "victims": len(tr["victims"]), "labels": tr["labels"].tolist(),
            "idlg_labels_correct": tr["idlg_labels_correct"], "tv": tr["tv"],
            "tuning": {d: {"best": t["best"], "ssim": {str(w): v for w, v in t["ssim"].items()}}
                       for d, t in tr["tuning"].items()},
            "attacks": [{"attack": k, "mse": float(np.mean(v["mse"])), "ssim": float(np.mean(v["ssim"])),
                         "ssim_per_victim": [float(x) for x in v["ssim"]]} for k, v in tr["scores"].items()],
            "ig_minus": comparisons}
    if "architectures" in only:
        results["architectures"] = [{k: v for k, v in r.items() if k != "distance_curve"}
                                    for r in architecture_study(cfg, progress=True)]
    if "defences" in only:
        d = defence_study(cfg, progress=True)
        results["defences"] = {k: ([{"strength": s, "mse": m} for s, m in v] if isinstance(v, list) else v)
                               for k, v in d.items()}
    from . import save_record

    path = save_record("gradient_inversion", mode, cfg, results, args.out, seconds=time.perf_counter() - t0)
    print(json_summary(results))
    print("wrote", path)


def json_summary(results: dict) -> str:
    import json

    return json.dumps(results, indent=1, default=float)


if __name__ == "__main__":
    main()
