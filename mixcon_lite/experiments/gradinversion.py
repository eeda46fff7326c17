"""GradInversion on a BatchNorm ConvNet trained on Fashion-MNIST (chapter 07).

Two experiments:

* **Label restoration** (:func:`label_restoration`): batches drawn from test images with distinct
  labels and with labels drawn independently (so they may repeat); for each batch size, the share of
  batches whose label multiset :func:`~mixcon_lite.attacks.gradients.restore_labels` gets exactly, the
  mean multiset accuracy, the share of present classes found, and the same for iDLG's row sum.
* **Fidelity priors** (:func:`fidelity_study`): several private batches per batch size, attacked
  with each prior setting of :data:`~mixcon_lite.attacks.gradinversion.PRIORS` (none / TV + L2 /
  + BN statistics / + best of 4 seeds / + group consistency) and with the labels recovered from
  each batch's gradient (row minimum for distinct labels, count-aware beyond the number of
  classes); every reconstruction and both baselines (the
  class-mean image and a random image of the same class, from images the attacker owns) matched to
  the originals by an optimal assignment before PSNR and SSIM are computed. Two controls: the
  decoy-gradient rows (the same attack on the gradient of another batch of the same classes,
  scored against the private batch: what labels and priors give without this batch's gradient),
  and the BN row with the batch's own BN statistics (an attacker that also receives the client's
  BatchNorm buffers).
* **Repeated labels** (:func:`repeat_label_study`): batches larger than the number of classes,
  attacked with the true labels (an oracle) and with the labels the count-aware
  :func:`~mixcon_lite.attacks.gradinversion.count_labels` recovers.

The client is a :class:`~mixcon_lite.models.BNConvNet` trained briefly on Fashion-MNIST training
images; it computes its gradient in train mode on a copy of the model (its running statistics stay
on the client), and the attacker holds the model as it was before that step. The attacker's own
images are the first half of the test split, the private batches come from the second half.

    python -m mixcon_lite.experiments.gradinversion --mode full               # a GPU
    python -m mixcon_lite.experiments.gradinversion --mode full --scale cpu   # half an hour, 2 cores
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from ..attacks.labels import final_linear, restore_labels
from ..attacks.matching import shared_gradients
from ..attacks.gradinversion import (PRIORS, batch_bn_statistics, count_labels, gradinversion,
                                     label_calibration, match_batch)
from ..config import get_mode, resolve_seed
from ..data import load_dataset, subset
from ..metrics import psnr, ssim
from ..models import BNConvNet
from ..train import evaluate, train
from ..utils import progress_bar


def settings(mode: str | None = None, scale: str = "paper") -> dict:
    """Sizes for ``mode`` (resolved once here). Ours, not the paper's: every entry (the paper attacks a
    pretrained ResNet-50 on ImageNet with 20,000 steps). Full mode has two scales: ``"paper"`` (batches
    up to 48, 4,000 steps: a GPU) and ``"cpu"`` (batches up to 32, 1,000 steps: about half an hour on
    a 2-core CPU)."""
    mode = get_mode(mode)
    fast = mode == "fast"
    if scale not in ("paper", "cpu"):
        raise ValueError(f"scale must be 'paper' or 'cpu', got {scale!r}.")
    cpu = not fast and scale == "cpu"
    return {
        "mode": mode, "scale": "fast" if fast else scale,
        "train_per_class": 500 if fast else 6000,
        "epochs": 2 if fast else 5,
        "lr": 0.05, "momentum": 0.9,
        "label_batch_sizes": [1, 2, 4, 6, 8, 10],
        "label_trials": 100 if fast else 1000,
        "attack_batch_sizes": [8] if fast else ([8, 16, 32] if cpu else [8, 16, 32, 48]),
        "batches_per_size": 3 if fast else (3 if cpu else 4),
        "steps": 400 if fast else (1000 if cpu else 4000),
        "repeat_batch_size": 16, "repeat_batches": 1 if fast else 3, "repeat_prior": "TV + L2",
        "priors": {name: dict(kw) for name, kw in PRIORS.items()},
        # controls beside the prior rows: the same attack run on a decoy gradient (another batch
        # of the same classes), scored against the private batch; and the BN row again with the
        # batch's own BN statistics (an attacker that also receives the client's buffers)
        "decoy_priors": ["TV + L2", "+ group consistency"],
        "batch_bn_prior": "+ BN statistics",
    }


def prepare(s: dict, seed: int | None = None):
    """Train the client's model. Returns ``(model in train mode, test accuracy, (x_aux, y_aux),
    (x_private_pool, y_private_pool))``."""
    seed = resolve_seed(seed)
    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    x_te, y_te = load_dataset("fashion-mnist", "test")
    torch.manual_seed(seed)
    model = BNConvNet()
    xs, ys = subset(x_tr, y_tr, s["train_per_class"], seed=seed)
    train(model, (xs, ys), epochs=s["epochs"], lr=s["lr"], momentum=s["momentum"], seed=seed)
    acc = evaluate(model, x_te, y_te)["accuracy"]
    half = len(x_te) // 2
    return model.train(), acc, (x_te[:half], y_te[:half]), (x_te[half:], y_te[half:])


def draw_batch(x, y, b: int, distinct: bool, gen: torch.Generator):
    """A batch of ``b`` images: with ``distinct`` labels (one class each, classes drawn without
    replacement) or with labels drawn independently and uniformly (so they may repeat)."""
    k = int(y.max()) + 1
    classes = torch.randperm(k, generator=gen)[:b] if distinct else torch.randint(0, k, (b,), generator=gen)
    idx = []
    for c in classes.tolist():
        pool = torch.nonzero(y == c).flatten()
        idx.append(int(pool[torch.randint(0, len(pool), (1,), generator=gen)]))
    idx = torch.tensor(idx)
    return x[idx], y[idx]


def decoy_batch(x_pool, y_pool, x, y, gen: torch.Generator):
    """A decoy for the private batch ``(x, y)``: for each private image another image of the same
    class from the pool (never the private image itself), in the same order. Its gradient is what an
    attack run "on the wrong client" sees; scored against ``x`` it measures what the labels and the
    priors alone give the attack (the decoy-gradient control)."""
    idx = []
    for xi, c in zip(x, y.tolist()):
        pool = torch.nonzero(y_pool == c).flatten()
        pool = pool[[not torch.equal(x_pool[int(j)], xi) for j in pool]]
        if len(pool) == 0:
            raise ValueError(f"the pool holds no other image of class {c} for a decoy batch.")
        idx.append(int(pool[torch.randint(0, len(pool), (1,), generator=gen)]))
    return x_pool[torch.tensor(idx)], y.clone()


def client_gradients(model, x, y):
    """The client's FedSGD gradient, computed in train mode on its own copy of the model."""
    return shared_gradients(copy.deepcopy(model).train(), x, y)


def _multiset_hits(got: list, want: list) -> int:
    return sum(min(got.count(c), want.count(c)) for c in set(got))


def label_restoration(model, x, y, batch_sizes, trials: int, distinct: bool, seed: int | None = None,
                      tol: float = 1e-3, progress: bool | None = None, aux=None) -> dict:
    """For each batch size: ``exact`` (share of batches whose label multiset is recovered exactly),
    ``accuracy`` (mean multiset accuracy), ``found`` (mean share of the batch's distinct classes
    among the recovered labels), ``row_sum_exact`` (exact share with iDLG's row sum instead of the
    row minimum), ``distinct_fraction`` (mean number of distinct labels / b), ``confident`` (share
    of batches holding an image whose true-class probability is at least ``1 - tol``, whose own
    negative term in the gradient is then at most ``tol`` times its activations) and
    ``failures_confident`` (share of the batches with distinct labels that restoration gets wrong
    holding such an image; ``nan`` if there are none). With the attacker's images ``aux = (x_aux,
    y_aux)`` also ``count_exact`` and ``count_accuracy``: the same for the count-aware
    :func:`~mixcon_lite.attacks.gradinversion.count_labels`, calibrated on ``aux``, and both
    accuracies per batch (``accuracy_per_batch``, ``count_accuracy_per_batch``)."""
    seed = resolve_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    _, index = final_linear(model)
    out = {}
    for b in progress_bar(batch_sizes, desc="label restoration", progress=progress):
        rows = {"exact": [], "accuracy": [], "found": [], "row_sum_exact": [], "distinct_fraction": [],
                "confident": [], "failures_confident": []}
        calibration = None
        if aux is not None:
            calibration = label_calibration(model, *aux, b, seed=seed)
            rows.update(count_exact=[], count_accuracy=[])
        for _ in range(trials):
            xb, yb = draw_batch(x, y, b, distinct, gen)
            grads = client_gradients(model, xb, yb)
            with torch.no_grad():
                p_true = copy.deepcopy(model).train()(xb).softmax(1).gather(1, yb[:, None])
            confident = bool((p_true >= 1 - tol).any())
            got, want = restore_labels(model, grads, b).tolist(), sorted(yb.tolist())
            by_sum = sorted(torch.argsort(grads[index].sum(1))[:b].tolist())
            rows["exact"].append(got == want)
            if calibration is not None:
                counted = count_labels(model, grads, b, calibration).tolist()
                rows["count_exact"].append(counted == want)
                rows["count_accuracy"].append(_multiset_hits(counted, want) / b)
            rows["accuracy"].append(_multiset_hits(got, want) / b)
            rows["found"].append(len(set(got) & set(want)) / len(set(want)))
            rows["row_sum_exact"].append(by_sum == want)
            rows["distinct_fraction"].append(len(set(want)) / b)
            rows["confident"].append(confident)
            if got != want and len(set(want)) == b:
                rows["failures_confident"].append(confident)
        out[b] = {k: float(np.mean(v)) if v else float("nan") for k, v in rows.items()}
        if calibration is not None:                  # per batch, for paired comparisons
            out[b]["accuracy_per_batch"] = [float(v) for v in rows["accuracy"]]
            out[b]["count_accuracy_per_batch"] = [float(v) for v in rows["count_accuracy"]]
    return out


def baselines(x, y, x_aux, y_aux, gen: torch.Generator, seed: int | None = None) -> dict:
    """What knowing the labels ``y`` alone gives: per label, the mean of the attacker's images of its
    class (``class mean``) and one random attacker image of its class (``random same-class``); and
    what the attack starts from, ``initial noise`` (the U(0, 1) batch that :func:`gradinversion` draws
    for its first seed from ``seed``; ``None`` skips it). ``y`` may be recovered labels: the images are
    matched to the originals by :func:`score` either way."""
    means = {int(c): x_aux[y_aux == c].mean(0) for c in torch.unique(y)}
    rand = []
    for c in y.tolist():
        pool = torch.nonzero(y_aux == c).flatten()
        rand.append(x_aux[int(pool[torch.randint(0, len(pool), (1,), generator=gen)])])
    out = {"class mean": torch.stack([means[int(c)] for c in y]), "random same-class": torch.stack(rand)}
    if seed is not None:
        start = torch.Generator().manual_seed(int(seed))
        out["initial noise"] = torch.rand((1, *x.shape), generator=start)[0]
    return out


def score(rec, x) -> dict:
    """Match ``rec`` to ``x`` by optimal assignment, then PSNR and SSIM per image (arrays) and the
    matched reconstruction."""
    rec = rec.clamp(0, 1)
    matched = rec[match_batch(rec, x)]
    return {"psnr": psnr(matched, x), "ssim": ssim(matched, x), "matched": matched}


#: Row names of the controls :func:`fidelity` adds beside the prior rows.
BATCH_BN_ROW = "+ BN statistics (batch's own)"


def decoy_row(prior: str) -> str:
    """The row name of ``prior`` run on a decoy gradient."""
    return f"decoy gradient: {prior}"


def fidelity(model, x, y, aux, s: dict, seed: int | None = None, progress: bool | None = None,
             labels=None, priors=None, decoy=None) -> dict:
    """Attack one private batch ``(x, y)`` with every prior setting in ``priors`` (default
    ``s["priors"]``), with the labels ``labels`` (default the true ``y``, an oracle; pass the labels
    the attacker recovers). Returns ``{setting or baseline: score dict}`` (attacks also carry their
    final ``grad_distance`` and ``history``) plus ``"seconds"`` per attack setting. The label-only
    baselines use the same labels as the attack (a label-only attacker with what the attacker
    knows), and ``initial noise`` is the attack's own start.

    With the default priors two kinds of control rows are added (each differs from its prior row in
    one thing): :data:`BATCH_BN_ROW`, the ``s["batch_bn_prior"]`` setting with the BN prior pulled
    to the batch's own statistics (:func:`~mixcon_lite.attacks.gradinversion.batch_bn_statistics`)
    instead of the running ones; and, given a ``decoy`` batch (:func:`decoy_batch`),
    ``decoy_row(p)`` for each ``p`` in ``s["decoy_priors"]``: the same attack, labels and start run
    on the decoy's gradient and scored against ``x``."""
    seed = resolve_seed(seed)
    grads = client_gradients(model, x, y)
    attack_labels = y if labels is None else labels
    settings_ = s["priors"] if priors is None else priors
    runs = [(name, kw, grads) for name, kw in settings_.items()]
    if priors is None:
        if s.get("batch_bn_prior"):
            kw = dict(s["priors"][s["batch_bn_prior"]])
            kw["bn_targets"] = batch_bn_statistics(copy.deepcopy(model).train(), x)
            runs.append((BATCH_BN_ROW, kw, grads))
        if decoy is not None:
            decoy_grads = client_gradients(model, *decoy)
            runs += [(decoy_row(p), s["priors"][p], decoy_grads) for p in s.get("decoy_priors", [])]
    out, seconds = {}, {}
    for name, kw, g in runs:
        res = gradinversion(model, g, tuple(x.shape[1:]), attack_labels, steps=s["steps"], seed=seed,
                            progress=progress, **kw)
        out[name] = score(res.reconstruction, x)
        out[name]["grad_distance"] = float(res.loss[0])
        # the best seed's gradient distance at the start (step 0): how far the attack got is
        # final / start (near 1: it never matched the gradient, whatever its SSIM)
        out[name]["start_distance"] = float(res.history["grad_distance"][0])
        # and the distance of a candidate whose gradient is zero, sum_l ||t_l|| (the attack's
        # per-layer Euclidean distance to the target t): final / zero near 1 means the attack
        # matched the gradient no better than sending nothing would
        out[name]["zero_distance"] = float(sum(torch.linalg.vector_norm(t) for t in g))
        out[name]["history"] = res.history
        seconds[name] = res.seconds
    gen = torch.Generator().manual_seed(seed)
    for name, rec in baselines(x, attack_labels, *aux, gen, seed=seed).items():
        out[name] = score(rec, x)
    out["seconds"] = seconds
    return out


def fidelity_study(model, pool, aux, s: dict, seed: int | None = None, progress: bool | None = None) -> dict:
    """:func:`fidelity` on ``batches_per_size`` private batches of every size in
    ``attack_batch_sizes``, drawn from ``pool``: with distinct labels up to the number of classes,
    attacked with the labels :func:`~mixcon_lite.attacks.labels.restore_labels` recovers from each
    batch's gradient; larger batches must repeat labels and are attacked with the count-aware
    :func:`~mixcon_lite.attacks.labels.count_labels` (``labels_exact``: whether the recovered
    multiset equals the true one). Returns ``{b: {"batches": [(x, y, scores), ...],
    "ssim": {row: per-image SSIM over all batches}, "psnr": {...}, "batch_ssim": {row: [mean per
    batch]}}}``: per-image arrays pool the batches (paired across rows: the same images). Each batch
    also gets a decoy (:func:`decoy_batch`, drawn from its own generator so the private batches
    do not depend on it) for :func:`fidelity`'s decoy-gradient rows."""
    seed = resolve_seed(seed)
    out = {}
    for b in s["attack_batch_sizes"]:
        gen = torch.Generator().manual_seed(seed + 100 + b)
        decoy_gen = torch.Generator().manual_seed(seed + 300 + b)
        batches, recovered_ok = [], []
        classes = final_linear(model)[0].out_features
        calibration = None if b <= classes else label_calibration(model, *aux, b, seed=seed)
        for j in progress_bar(range(s["batches_per_size"]), desc=f"batches of {b}", progress=progress):
            x, y = draw_batch(*pool, b, distinct=b <= classes, gen=gen)
            grads = client_gradients(model, x, y)                 # what the attacker has
            recovered = (restore_labels(model, grads, b) if calibration is None
                         else count_labels(model, grads, b, calibration))
            recovered_ok.append(bool(torch.equal(recovered, torch.sort(y).values)))
            decoy = decoy_batch(*pool, x, y, decoy_gen) if s.get("decoy_priors") else None
            batches.append((x, y, fidelity(model, x, y, aux, s, seed=seed + j, progress=False, labels=recovered,
                                           decoy=decoy)))
        rows = [k for k in batches[0][2] if k != "seconds"]
        out[b] = {"batches": batches, "labels_exact": recovered_ok,
                  "ssim": {r: np.concatenate([sc[r]["ssim"] for _, _, sc in batches]) for r in rows},
                  "psnr": {r: np.concatenate([sc[r]["psnr"] for _, _, sc in batches]) for r in rows},
                  "batch_ssim": {r: [float(np.mean(sc[r]["ssim"])) for _, _, sc in batches] for r in rows},
                  "distance_ratio": {r: [sc[r]["grad_distance"] / sc[r]["start_distance"]
                                         for _, _, sc in batches]
                                     for r in rows if "start_distance" in batches[0][2][r]},
                  "distance_vs_zero": {r: [sc[r]["grad_distance"] / sc[r]["zero_distance"]
                                           for _, _, sc in batches]
                                       for r in rows if "zero_distance" in batches[0][2][r]}}
    return out


def repeat_label_study(model, pool, aux, s: dict, seed: int | None = None, progress: bool | None = None) -> dict:
    """Batches of ``repeat_batch_size`` with labels drawn independently (they repeat), attacked with
    the ``repeat_prior`` setting twice: with the true labels (an oracle the attacker lacks) and with
    the labels :func:`~mixcon_lite.attacks.gradinversion.count_labels` recovers (calibrated on the
    attacker's images). Returns the per-image SSIM of both (pooled over ``repeat_batches``), the
    label accuracy per batch, and the batches' scores."""
    seed = resolve_seed(seed)
    b = s["repeat_batch_size"]
    prior = {s["repeat_prior"]: s["priors"][s["repeat_prior"]]}
    calibration = label_calibration(model, *aux, b, seed=seed)
    gen = torch.Generator().manual_seed(seed + 200 + b)
    oracle, recovered, accuracy, batches = [], [], [], []
    for j in progress_bar(range(s["repeat_batches"]), desc=f"repeating batches of {b}", progress=progress):
        x, y = draw_batch(*pool, b, distinct=False, gen=gen)
        counted = count_labels(model, client_gradients(model, x, y), b, calibration)
        accuracy.append(_multiset_hits(counted.tolist(), sorted(y.tolist())) / b)
        with_truth = fidelity(model, x, y, aux, s, seed=seed + j, priors=prior, progress=False)
        with_counts = fidelity(model, x, y, aux, s, seed=seed + j, priors=prior, labels=counted, progress=False)
        oracle.append(with_truth[s["repeat_prior"]]["ssim"])
        recovered.append(with_counts[s["repeat_prior"]]["ssim"])
        batches.append((x, y, counted, with_truth, with_counts))
    cat = np.concatenate
    return {"b": b, "prior": s["repeat_prior"], "label_accuracy": accuracy,
            "distinct_fraction": [len(set(bb[1].tolist())) / b for bb in batches],
            "ssim_oracle_labels": cat(oracle), "ssim_recovered_labels": cat(recovered),
            # label-only baselines with the labels each attack had, and the attack's start
            "ssim_class_mean": cat([bb[3]["class mean"]["ssim"] for bb in batches]),
            "ssim_random": cat([bb[3]["random same-class"]["ssim"] for bb in batches]),
            "ssim_class_mean_recovered": cat([bb[4]["class mean"]["ssim"] for bb in batches]),
            "ssim_random_recovered": cat([bb[4]["random same-class"]["ssim"] for bb in batches]),
            "ssim_start": cat([bb[3]["initial noise"]["ssim"] for bb in batches]),
            "batches": batches}


def summary(scores: dict) -> dict:
    """Means (and the share of images whose SSIM beats their class-mean image) of :func:`fidelity`'s
    output, as plain floats."""
    base = scores["class mean"]["ssim"]
    return {name: {"psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"])),
                   "beats_class_mean": float(np.mean(v["ssim"] > base))}
            for name, v in scores.items() if name != "seconds"}


def run(mode: str | None = None, seed: int | None = None, progress: bool | None = None,
        scale: str = "paper") -> dict:
    """All experiments at the sizes of ``mode`` (and ``scale`` in full mode); a JSON-ready dict."""
    from ..stats import paired

    seed = resolve_seed(seed)
    s = settings(mode, scale)
    model, acc, aux, pool = prepare(s, seed)
    labels = {kind: label_restoration(model, *pool, s["label_batch_sizes"], s["label_trials"], distinct=(kind ==
                                      "distinct"), seed=seed, progress=progress, aux=aux)
              for kind in ("distinct", "repeating")}
    study = fidelity_study(model, pool, aux, s, seed=seed, progress=progress)
    attacks = {}
    for b, st in study.items():
        rows = list(st["ssim"])
        comparisons = {}
        for a, ref in zip(rows[1:len(s["priors"])], rows[:len(s["priors"]) - 1]):     # each row vs the one above
            c = paired(st["ssim"][a], st["ssim"][ref], names=(a, ref))
            comparisons[f"{a} vs {ref}"] = [c.difference, c.low, c.high, c.verdict]
        attack_rows = [*s["priors"], *([BATCH_BN_ROW] if s.get("batch_bn_prior") else [])]
        controls = [(BATCH_BN_ROW, s["batch_bn_prior"])] if s.get("batch_bn_prior") else []
        controls += [(p, decoy_row(p)) for p in s.get("decoy_priors", [])]
        for a in attack_rows:
            for ref in ("class mean", "random same-class", "initial noise"):
                c = paired(st["ssim"][a], st["ssim"][ref], names=(a, ref))
                comparisons[f"{a} vs {ref}"] = [c.difference, c.low, c.high, c.verdict]
        for a, ref in controls:                            # each control against its own row
            c = paired(st["ssim"][a], st["ssim"][ref], names=(a, ref))
            comparisons[f"{a} vs {ref}"] = [c.difference, c.low, c.high, c.verdict]
        beats_both = {r: int(np.sum((v > st["ssim"]["class mean"]) & (v > st["ssim"]["random same-class"])))
                      for r, v in st["ssim"].items()}
        attacks[str(b)] = {"images": int(len(st["ssim"][rows[0]])), "batches": s["batches_per_size"],
                           "labels_exact": st["labels_exact"],
                           "ssim": {r: float(np.mean(v)) for r, v in st["ssim"].items()},
                           "psnr": {r: float(np.mean(v)) for r, v in st["psnr"].items()},
                           "batch_ssim": st["batch_ssim"], "comparisons": comparisons,
                           "distance_ratio": {r: float(np.mean(v))
                                              for r, v in st["distance_ratio"].items()},
                           "distance_vs_zero": {r: float(np.mean(v))
                                                for r, v in st["distance_vs_zero"].items()},
                           "beats_both_label_guesses": beats_both}
    rep = repeat_label_study(model, pool, aux, s, seed=seed, progress=progress)
    c = paired(rep["ssim_recovered_labels"], rep["ssim_oracle_labels"], names=("recovered labels", "true labels"))
    c_start = paired(rep["ssim_oracle_labels"], rep["ssim_start"], names=("true labels", "initial noise"))
    c_rand = paired(rep["ssim_oracle_labels"], rep["ssim_random"], names=("true labels", "random same-class"))
    repeat = {"b": rep["b"], "prior": rep["prior"], "label_accuracy": rep["label_accuracy"],
              "distinct_fraction": rep["distinct_fraction"],
              **{k: float(np.mean(rep[k])) for k in ("ssim_oracle_labels", "ssim_recovered_labels",
                                                      "ssim_class_mean", "ssim_random", "ssim_class_mean_recovered",
                                                      "ssim_random_recovered", "ssim_start")},
              "recovered_minus_oracle": [c.difference, c.low, c.high, c.verdict],
              "oracle_minus_start": [c_start.difference, c_start.low, c_start.high, c_start.verdict],
              "oracle_minus_random": [c_rand.difference, c_rand.low, c_rand.high, c_rand.verdict]}
    return {"test_accuracy": acc, "labels": {k: {str(b): v for b, v in d.items()} for k, d in labels.items()},
            "attacks": attacks, "repeating": repeat}


def main(argv=None) -> int:
    from . import save_record

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default=None, choices=["fast", "full"])
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    parser.add_argument("--scale", default="paper", choices=["paper", "cpu"],
                        help="full mode only: 'paper' (batches to 48, 4,000 steps; a GPU) or 'cpu' "
                             "(batches to 32, 1,000 steps; about half an hour on 2 cores)")
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    s = settings(args.mode, args.scale)
    t0 = time.perf_counter()
    results = run(s["mode"], seed=resolve_seed(args.seed), progress=True, scale=args.scale)
    stem = "gradinversion" if s["scale"] in ("fast", "paper") else "gradinversion_cpu"
    path = save_record("gradinversion", s["mode"], s, results, args.out, seconds=time.perf_counter() - t0,
                       file_stem=stem)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
