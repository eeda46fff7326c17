"""GradInversion on a BatchNorm ConvNet trained on Fashion-MNIST (chapter 07).

Two experiments:

* **Label restoration** (:func:`label_restoration`): batches drawn from test images with distinct
  labels and with labels drawn independently (so they may repeat); for each batch size, the share of
  batches whose label multiset :func:`~mixcon_lite.attacks.gradients.restore_labels` gets exactly, the
  mean multiset accuracy, the share of present classes found, and the same for iDLG's row sum.
* **Fidelity priors** (:func:`fidelity`): one private batch per batch size, attacked with each
  prior setting of :data:`~mixcon_lite.attacks.gradinversion.PRIORS` (none / TV + L2 / + BN
  statistics / + group consistency), the labels given; every reconstruction and both baselines
  (the class-mean image and a random image of the same class, from images the attacker owns)
  matched to the originals by an optimal assignment before PSNR and SSIM are computed.

The client is a :class:`~mixcon_lite.models.BNConvNet` trained briefly on Fashion-MNIST training
images; it computes its gradient in train mode on a copy of the model (its running statistics stay
on the client), and the attacker holds the model as it was before that step. The attacker's own
images are the first half of the test split, the private batches come from the second half.

    python -m mixcon_lite.experiments.gradinversion --mode full
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from ..attacks.gradients import final_linear, restore_labels, shared_gradients
from ..attacks.gradinversion import PRIORS, gradinversion, match_batch
from ..config import get_mode, resolve_seed
from ..data import load_dataset, subset
from ..metrics import psnr, ssim
from ..models import BNConvNet
from ..train import evaluate, train
from ..utils import progress_bar


def settings(mode: str | None = None) -> dict:
    """Sizes for ``mode`` (resolved once here). Ours, not the paper's: every entry (the paper attacks a
    pretrained ResNet-50 on ImageNet with 20,000 steps)."""
    mode = get_mode(mode)
    fast = mode == "fast"
    return {
        "mode": mode,
        "train_per_class": 500 if fast else 6000,
        "epochs": 2 if fast else 5,
        "lr": 0.05, "momentum": 0.9,
        "label_batch_sizes": [1, 2, 4, 6, 8, 10],
        "label_trials": 100 if fast else 1000,
        "attack_batch_sizes": [8, 16] if fast else [8, 16, 32, 48],
        "steps": 800 if fast else 4000,
        "priors": {name: dict(kw) for name, kw in PRIORS.items()},
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


def client_gradients(model, x, y):
    """The client's FedSGD gradient, computed in train mode on its own copy of the model."""
    return shared_gradients(copy.deepcopy(model).train(), x, y)


def _multiset_hits(got: list, want: list) -> int:
    return sum(min(got.count(c), want.count(c)) for c in set(got))


def label_restoration(model, x, y, batch_sizes, trials: int, distinct: bool, seed: int | None = None,
                      tol: float = 1e-3, progress: bool | None = None) -> dict:
    """For each batch size: ``exact`` (share of batches whose label multiset is recovered exactly),
    ``accuracy`` (mean multiset accuracy), ``found`` (mean share of the batch's distinct classes
    among the recovered labels), ``row_sum_exact`` (exact share with iDLG's row sum instead of the
    row minimum), ``distinct_fraction`` (mean number of distinct labels / b), ``confident`` (share
    of batches holding an image whose true-class probability is at least ``1 - tol``, whose own
    negative term in the gradient is then at most ``tol`` times its activations) and
    ``failures_confident`` (share of the batches with distinct labels that restoration gets wrong
    holding such an image; ``nan`` if there are none)."""
    seed = resolve_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    _, index = final_linear(model)
    out = {}
    for b in progress_bar(batch_sizes, desc="label restoration", progress=progress):
        rows = {"exact": [], "accuracy": [], "found": [], "row_sum_exact": [], "distinct_fraction": [],
                "confident": [], "failures_confident": []}
        for _ in range(trials):
            xb, yb = draw_batch(x, y, b, distinct, gen)
            grads = client_gradients(model, xb, yb)
            with torch.no_grad():
                p_true = copy.deepcopy(model).train()(xb).softmax(1).gather(1, yb[:, None])
            confident = bool((p_true >= 1 - tol).any())
            got, want = restore_labels(model, grads, b).tolist(), sorted(yb.tolist())
            by_sum = sorted(torch.argsort(grads[index].sum(1))[:b].tolist())
            rows["exact"].append(got == want)
            rows["accuracy"].append(_multiset_hits(got, want) / b)
            rows["found"].append(len(set(got) & set(want)) / len(set(want)))
            rows["row_sum_exact"].append(by_sum == want)
            rows["distinct_fraction"].append(len(set(want)) / b)
            rows["confident"].append(confident)
            if got != want and len(set(want)) == b:
                rows["failures_confident"].append(confident)
        out[b] = {k: float(np.mean(v)) if v else float("nan") for k, v in rows.items()}
    return out


def baselines(x, y, x_aux, y_aux, gen: torch.Generator) -> dict:
    """What knowing the labels alone gives: per private image, the mean of the attacker's images of
    its class (``class mean``) and one random attacker image of its class (``random same-class``)."""
    means = {int(c): x_aux[y_aux == c].mean(0) for c in torch.unique(y)}
    rand = []
    for c in y.tolist():
        pool = torch.nonzero(y_aux == c).flatten()
        rand.append(x_aux[int(pool[torch.randint(0, len(pool), (1,), generator=gen)])])
    return {"class mean": torch.stack([means[int(c)] for c in y]), "random same-class": torch.stack(rand)}


def score(rec, x) -> dict:
    """Match ``rec`` to ``x`` by optimal assignment, then PSNR and SSIM per image (arrays) and the
    matched reconstruction."""
    rec = rec.clamp(0, 1)
    matched = rec[match_batch(rec, x)]
    return {"psnr": psnr(matched, x), "ssim": ssim(matched, x), "matched": matched}


def fidelity(model, x, y, aux, s: dict, seed: int | None = None, progress: bool | None = None) -> dict:
    """Attack one private batch ``(x, y)`` with every prior setting in ``s["priors"]`` (labels given).
    Returns ``{setting or baseline: score dict}`` (attacks also carry their final ``grad_distance``
    and ``history``) plus ``"seconds"`` per attack setting."""
    seed = resolve_seed(seed)
    grads = client_gradients(model, x, y)
    out, seconds = {}, {}
    for name, kw in s["priors"].items():
        res = gradinversion(model, grads, tuple(x.shape[1:]), y, steps=s["steps"], seed=seed,
                            progress=progress, **kw)
        out[name] = score(res.reconstruction, x)
        out[name]["grad_distance"] = float(res.loss[0])
        out[name]["history"] = res.history
        seconds[name] = res.seconds
    gen = torch.Generator().manual_seed(seed)
    for name, rec in baselines(x, y, *aux, gen).items():
        out[name] = score(rec, x)
    out["seconds"] = seconds
    return out


def summary(scores: dict) -> dict:
    """Means (and the share of images whose SSIM beats their class-mean image) of :func:`fidelity`'s
    output, as plain floats."""
    base = scores["class mean"]["ssim"]
    return {name: {"psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"])),
                   "beats_class_mean": float(np.mean(v["ssim"] > base))}
            for name, v in scores.items() if name != "seconds"}


def run(mode: str | None = None, seed: int | None = None, progress: bool | None = None) -> dict:
    """Both experiments at the sizes of ``mode``; returns a JSON-ready dict."""
    seed = resolve_seed(seed)
    s = settings(mode)
    model, acc, aux, pool = prepare(s, seed)
    labels = {kind: label_restoration(model, *pool, s["label_batch_sizes"], s["label_trials"], distinct=(kind ==
                                      "distinct"), seed=seed, progress=progress)
              for kind in ("distinct", "repeating")}
    gen = torch.Generator().manual_seed(seed + 1)
    attacks = {}
    for b in s["attack_batch_sizes"]:
        x, y = draw_batch(*pool, b, distinct=b <= 10, gen=gen)
        sc = fidelity(model, x, y, aux, s, seed=seed, progress=progress)
        attacks[b] = {"scores": summary(sc), "seconds": sc["seconds"]}
    return {"test_accuracy": acc, "labels": {k: {str(b): v for b, v in d.items()} for k, d in labels.items()},
            "attacks": {str(b): v for b, v in attacks.items()}}


def main(argv=None) -> int:
    from . import save_record

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default=None, choices=["fast", "full"])
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    args = parser.parse_args(argv)
    s = settings(args.mode)
    t0 = time.perf_counter()
    results = run(s["mode"], seed=resolve_seed(args.seed))
    path = save_record("gradinversion", s["mode"], s, results, seconds=time.perf_counter() - t0)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
