"""Chapter 09: membership inference from input-loss curvature, against the loss attack, with and
without DP-SGD.

``python -m mixcon_lite.experiments.membership --mode fast|full [--seed S] [--json] [--out DIR]``

The target is a LeNet-5 trained on a class-mixed subset of Fashion-MNIST's *training* split (the
members) until it fits them perfectly; the non-members are as many other images of the same split,
so members and non-members come from one distribution and differ only in whether the model saw them.
Each attack scores every member and non-member (members higher) and is judged by its ROC AUC and its
true-positive rate at 1 % false positives. DP-SGD targets (opacus) at several ε show how privacy
caps the attacks; a control trained with the same clipping and batches but no noise separates the
effect of the noise from the effect of a shorter, clipped (less overfit) training.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import time

import numpy as np
import torch

from .. import membership as mb
from ..config import get_mode, resolve_seed
from ..data import load_dataset
from ..models import LeNet5
from ..train import evaluate, train, train_dp_sgd
from ..utils import progress_bar


def settings(mode: str | None = None) -> dict:
    """All sizes of the experiment in ``mode`` (every value ours; the abstract gives none).

    fast: 500 members and 500 non-members; the target trains 100 epochs with Adam (lr 2e-3, batch 64)
    to 100 % training accuracy; 8 Hutchinson probes; DP-SGD at ε in {2, 8} (δ = 1e-5), 30 epochs,
    lr 0.5, batch 128, clipping norm 1, and the overfitting recipe (below) with noise at ε 8;
    4 reference models for the calibrated attack, which reads
    the zero-order score with 4 draws per sample (the authors' 10 cost about a minute more on two
    cores: five models' float64 loss queries). full: 5,000 and 5,000, 32 probes, ε in
    {0.5, 1, 2, 4, 8, 16} (the overfitting recipe at 2 and 8), 16 reference models, 10 draws.
    """
    mode = get_mode(mode)
    common = {"mode": mode, "dataset": "fashion-mnist", "epochs": 100, "lr": 2e-3, "batch_size": 64,
              "zo_h": 1e-3, "zo_draws": 10, "delta": 1e-5, "dp_epochs": 30, "dp_lr": 0.5, "dp_batch_size": 128,
              "max_grad_norm": 1.0, "n_test": 2000,
              # a second control: the same clipping, no noise, a recipe that overfits as the
              # target does (tuned on seed 0: train 0.996 / test 0.738 at 500 members)
              "dp_control_overfit": {"dp_epochs": 60, "dp_lr": 1.0, "dp_batch_size": 64,
                                     "dp_momentum": 0.9}}
    if mode == "fast":
        return {**common, "n_members": 500, "probes": 8, "epsilons": [2.0, 8.0],
                "overfit_epsilons": [8.0], "reference_models": 4, "calibrated_zo_draws": 4}
    return {**common, "n_members": 5000, "probes": 32, "epsilons": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
            "overfit_epsilons": [2.0, 8.0], "reference_models": 16, "calibrated_zo_draws": 10}


def prepare_data(config: dict, seed: int | None = None) -> dict:
    """Members, non-members (same split, disjoint, same size) and a test set, drawn in a seeded order
    from Fashion-MNIST's training split. Returns ``{"x_members", "y_members", "x_nonmembers",
    "y_nonmembers", "x_test", "y_test"}``."""
    seed = resolve_seed(seed)
    x, y = load_dataset(config["dataset"], "train")
    n, n_test = int(config["n_members"]), int(config["n_test"])
    if 2 * n + n_test > len(x):
        raise ValueError(f"n_members={n} and n_test={n_test} need {2 * n + n_test} images; the split has "
                         f"{len(x)}.")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))
    m, o, t = order[:n], order[n:2 * n], order[2 * n:2 * n + n_test]
    return {"x_members": x[m], "y_members": y[m], "x_nonmembers": x[o], "y_nonmembers": y[o],
            "x_test": x[t], "y_test": y[t]}


def train_target(data: dict, config: dict, seed: int | None = None, progress: bool | None = None):
    """The overfit target: LeNet-5 trained on the members alone. Returns ``(model, history)``."""
    seed = resolve_seed(seed)
    torch.manual_seed(int(seed))
    model = LeNet5()
    history = train(model, (data["x_members"], data["y_members"]), epochs=config["epochs"],
                    lr=config["lr"], optimizer="adam", batch_size=config["batch_size"], seed=seed,
                    progress=progress)
    return model, history


def train_private(data: dict, config: dict, epsilon: float | None, seed: int | None = None,
                  progress: bool | None = None, recipe: dict | None = None):
    """A DP-SGD target at privacy budget ``epsilon`` (``math.inf``: the control, the same clipping,
    batches, learning rate and epochs with no noise). ``recipe`` overrides ``dp_epochs``,
    ``dp_lr``, ``dp_batch_size`` and ``dp_momentum`` (e.g. ``config["dp_control_overfit"]``).
    Returns ``(model, history)``."""
    seed = resolve_seed(seed)
    c = {"dp_momentum": 0.0, **config, **(recipe or {})}
    torch.manual_seed(int(seed))
    model = LeNet5()
    xy = (data["x_members"], data["y_members"])
    history = train_dp_sgd(model, xy, epsilon=epsilon, delta=c["delta"], epochs=c["dp_epochs"],
                           lr=c["dp_lr"], batch_size=c["dp_batch_size"], momentum=c["dp_momentum"],
                           max_grad_norm=c["max_grad_norm"], seed=seed, progress=progress)
    return model, history


def attack_scores(model, data: dict, config: dict, seed: int | None = None, finite_difference: bool = False,
                  hutchinson: bool = True) -> dict:
    """Every uncalibrated (global-threshold) attack's scores, oriented so that members score higher:
    ``{"curvature": (members [n], non-members [n]), "curvature_hutchinson": (...), "loss": (...),
    "combined": (...), "label_only": (...)}``. ``curvature`` is the exact input-loss curvature
    (:func:`~mixcon_lite.membership.curvature_scores`, float64), ``curvature_hutchinson`` its
    Hutchinson estimate with ``config["probes"]`` probes (the chapter's teaching device; left out
    when ``hutchinson`` is false), ``loss``
    the float64 cross-entropy, ``combined`` the :func:`~mixcon_lite.membership.rank_average` of
    the exact curvature and the loss, ``label_only`` the baseline (1 if correctly classified).
    With ``finite_difference``, also ``"curvature_zo"``: the authors' black-box zero-order
    estimator (:func:`~mixcon_lite.membership.zero_order_curvature`, ``h`` = ``config["zo_h"]``,
    ``config["zo_draws"]`` draws)."""
    seed = resolve_seed(seed)
    out = {}
    xm, ym, xn, yn = data["x_members"], data["y_members"], data["x_nonmembers"], data["y_nonmembers"]
    n = len(xm)
    pairs = ((xm, ym), (xn, yn))

    def both(fn):
        a, b = (fn(x, y) for x, y in pairs)
        return (np.asarray(a, dtype=float), np.asarray(b, dtype=float))

    out["curvature"] = both(lambda x, y: -mb.curvature_scores(model, x, y).numpy())
    if hutchinson:
        out["curvature_hutchinson"] = both(lambda x, y: -mb.input_curvature(
            model, x, y, probes=config["probes"], seed=seed).numpy())
    out["loss"] = both(lambda x, y: -mb.loss_scores(model, x, y).numpy())
    comb = mb.rank_average(np.r_[out["curvature"][0], out["curvature"][1]],
                           np.r_[out["loss"][0], out["loss"][1]])
    out["combined"] = (comb[:n], comb[n:])
    out["label_only"] = both(lambda x, y: mb.correctness_scores(model, x, y).numpy())
    if finite_difference:
        out["curvature_zo"] = both(lambda x, y: -mb.zero_order_curvature(
            model, x, y, h=config["zo_h"], draws=config["zo_draws"], seed=seed).numpy())
    return out


def attack_table(scores: dict, fprs=(0.01, 0.001), n_resamples: int = 2000) -> dict:
    """Each attack in ``scores`` with its uncertainty: ``{name: {"auc", "auc_low", "auc_high",
    "tpr_<f>", "tpr_<f>_low", "tpr_<f>_high" for each f in fprs}}`` (95 % stratified bootstrap
    intervals, :func:`mixcon_lite.stats.auc_interval` and :func:`~mixcon_lite.stats.tpr_interval`;
    ``<f>`` is the rate in percent, ``"1"`` or ``"0.1"``). With ``n`` non-members a rate below
    ``1 / n`` allows no false positive: read such a column as the single highest non-member."""
    from .. import stats

    out = {}
    for name, (m, n) in scores.items():
        a, lo, hi = stats.auc_interval(m, n, n_resamples=n_resamples)
        row = {"auc": a, "auc_low": lo, "auc_high": hi}
        for f in fprs:
            key = f"tpr_{100 * f:g}"
            row[key], row[key + "_low"], row[key + "_high"] = stats.tpr_interval(
                m, n, fpr=f, n_resamples=n_resamples)
        out[name] = row
    return out


def _log_curvature(model, x, y):
    """``-log`` of the exact input-loss curvature (members higher): the log makes its heavy right
    tail roughly Gaussian, which LiRA's per-sample fit assumes (ours)."""
    return -torch.log(mb.curvature_scores(model, x, y).clamp_min(1e-300))


def _log_zero_order(model, x, y, draws: int = 10, seed: int = 0):
    """``-log`` of the authors' zero-order curvature score (members higher), with one seed for
    every model, so that every model sees the same probes for a sample (the comparison across
    models is then not blurred by probe noise)."""
    return -torch.log(mb.zero_order_curvature(model, x, y, seed=seed, draws=draws)
                      .clamp_min(1e-300))


#: The scores the calibrated attack is run on (members higher), each ``score(model, x, y)``:
#: the logit margin (LiRA's score), the authors' zero-order curvature (their attack's score, from
#: loss queries only) and the exact input-loss curvature (ours: white-box, one VJP per class).
CALIBRATED_SCORES = {"margin": mb.margin_scores, "zero-order": _log_zero_order,
                     "curvature": _log_curvature}


def calibrated_study(data: dict, config: dict, target, seed: int | None = None,
                     progress: bool | None = None) -> dict:
    """The paper's kind of attack: calibrated per sample against reference models.

    ``config["reference_models"]`` LeNet-5s are trained, stacked (:mod:`mixcon_lite.lira`), each on
    its own random half of the pool (members and non-members together, balanced so every sample is
    left out of half of them), with the target's recipe (epochs, learning rate, batch size); each
    half is as large as the target's training set. Each score of :data:`CALIBRATED_SCORES` (the
    zero-order one with ``config["calibrated_zo_draws"]`` draws) is then
    read under the target and every reference model, and turned into offline LiRA (out-models only,
    one-sided) and online LiRA (in and out) with one standard deviation pooled over the samples,
    and into the curvature authors' rule (:func:`mixcon_lite.lira.lira_authors_nll`: per-sample
    means, one per-sample spread from the in-scores).

    Returns ``{"scores": {name: (members, non-members)}, "raw": {score: (target [2n], reference
    [k, 2n])}, "mask", "reference_loss", "reference_train_accuracy", "seconds"}`` with names
    ``"<score> (offline LiRA)"``, ``"<score> (online LiRA)"``, ``"<score> (authors' NLL)"``; the
    pool in ``raw`` and ``mask`` is the members, then the non-members."""
    from .. import lira

    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    xm, ym, xn, yn = data["x_members"], data["y_members"], data["x_nonmembers"], data["y_nonmembers"]
    x_pool, y_pool = torch.cat([xm, xn]), torch.cat([ym, yn])
    n = len(xm)
    refs = lira.train_reference_models(LeNet5, x_pool, y_pool, k=config["reference_models"],
                                       epochs=config["epochs"], lr=config["lr"],
                                       batch_size=config["batch_size"], seed=seed + 1000,
                                       progress=progress)
    out, raw = {}, {}
    scores = {**CALIBRATED_SCORES,
              "zero-order": functools.partial(_log_zero_order, seed=seed,
                                              draws=int(config.get("calibrated_zo_draws", 10)))}
    rules = (("offline LiRA", lira.lira_offline), ("online LiRA", lira.lira_online),
             ("authors' NLL", lira.lira_authors_nll))
    for name, score in scores.items():
        target_s = score(target, x_pool, y_pool).double().numpy()
        ref_s = lira.reference_scores(refs, score, x_pool, y_pool, progress=False)
        raw[name] = (target_s, ref_s)
        for kind, fn in rules:
            z = fn(target_s, ref_s, refs["mask"])
            out[f"{name} ({kind})"] = (z[:n], z[n:])
    acc = [evaluate(lira.reference_model(refs, j), x_pool[refs["mask"][j]],
                    y_pool[refs["mask"][j]])["accuracy"] for j in range(refs["k"])]
    return {"scores": out, "raw": raw, "mask": refs["mask"], "reference_loss": refs["loss"],
            "reference_train_accuracy": float(np.mean(acc)),
            "seconds": time.perf_counter() - t0}


def summarise(scores: dict) -> dict:
    """``{attack: {"auc", "tpr_at_1pct_fpr"}}`` for every attack in ``scores``."""
    return {name: {"auc": mb.attack_auc(*s), "tpr_at_1pct_fpr": mb.tpr_at_fpr(*s, fpr=0.01)}
            for name, s in scores.items()}


def accuracies(model, data: dict) -> dict:
    return {"train_accuracy": evaluate(model, data["x_members"], data["y_members"])["accuracy"],
            "test_accuracy": evaluate(model, data["x_test"], data["y_test"])["accuracy"]}


def dp_study(data: dict, config: dict, seed: int | None = None, progress: bool | None = None,
             reference: tuple | None = None, return_scores: bool = False) -> list[dict]:
    """DP-SGD targets and their noise-free twins, one row each, for two recipes: ``"dp"`` (the
    ``dp_*`` settings, tuned so that a noisy model learns) at ε ∞ (the control: the same clipping
    and batches, no noise) and at every ε in ``config["epsilons"]``; and, when
    ``config["dp_control_overfit"]`` is set, ``"overfit"`` (that recipe, tuned until the noise-free
    model overfits as the target does) at ε ∞ and at every ε in ``config["overfit_epsilons"]``, so
    that noise is the only difference from its control. Each row: the ε opacus reports, its noise
    multiplier, accuracies, each uncalibrated attack's AUC and TPR at 1 % FPR, and the DP ceilings
    at that (ε, δ) on the AUC (:func:`~mixcon_lite.membership.dp_auc_bound`) and on the TPR at 1 %
    FPR (:func:`~mixcon_lite.membership.dp_roc_bound`; 1 for the controls).

    With ``reference = (margins [k, 2n], mask [k, 2n])`` (the reference models' logit margins on
    members then non-members, from :func:`calibrated_study`'s ``"raw"["margin"]``), each model is
    also met by the calibrated margin attack, offline and online LiRA (``auc_margin_offline``,
    ``tpr_1_margin_offline``, and ``_online``). Those reference models were trained without DP:
    the attacker calibrates against models like the undefended target, not against the defence.
    With ``return_scores`` each row also holds ``"scores"``: ``{attack: (members, non-members)}``
    (``"loss"``, ``"label_only"``, ... and ``"margin (offline LiRA)"`` / ``"(online LiRA)"``), for
    paired comparisons (:func:`mixcon_lite.stats.auc_difference`)."""
    from .. import lira

    seed = resolve_seed(seed)
    rows = []
    runs = [(math.inf, "dp")] + [(e, "dp") for e in config["epsilons"]]
    if config.get("dp_control_overfit"):
        runs += [(math.inf, "overfit")] + [(e, "overfit") for e in config.get("overfit_epsilons", [])]
    x_pool = torch.cat([data["x_members"], data["x_nonmembers"]])
    y_pool = torch.cat([data["y_members"], data["y_nonmembers"]])
    n = len(data["x_members"])
    for eps, recipe in progress_bar(runs, desc="DP-SGD targets", progress=progress):
        model, hist = train_private(data, config, eps, seed=seed, progress=False,
                                    recipe=config["dp_control_overfit"] if recipe == "overfit"
                                    else None)
        sc = attack_scores(model, data, config, seed=seed, hutchinson=False)
        s = summarise(sc)
        private = not math.isinf(eps)
        spent = float(hist["epsilon"])
        row = {"target_epsilon": float(eps), "recipe": recipe, "epsilon": spent,
               "noise_multiplier": float(hist.get("noise_multiplier", 0.0)), **accuracies(model, data),
               "auc_curvature": s["curvature"]["auc"], "auc_loss": s["loss"]["auc"],
               "auc_combined": s["combined"]["auc"], "auc_label_only": s["label_only"]["auc"],
               "tpr_1_curvature": s["curvature"]["tpr_at_1pct_fpr"],
               "tpr_1_loss": s["loss"]["tpr_at_1pct_fpr"],
               "auc_bound": mb.dp_auc_bound(spent, config["delta"]) if private else 1.0,
               "tpr_1_bound": (float(mb.dp_roc_bound(0.01, spent, config["delta"]))
                               if private else 1.0)}
        if reference is not None:
            target_m = mb.margin_scores(model, x_pool, y_pool).double().numpy()
            for kind, fn in (("offline", lira.lira_offline), ("online", lira.lira_online)):
                z = fn(target_m, reference[0], reference[1])
                sc[f"margin ({kind} LiRA)"] = (z[:n], z[n:])
                row[f"auc_margin_{kind}"] = mb.attack_auc(z[:n], z[n:])
                row[f"tpr_1_margin_{kind}"] = mb.tpr_at_fpr(z[:n], z[n:], fpr=0.01)
        if return_scores:
            row["scores"] = sc
        rows.append(row)
    return rows


def run(mode: str | None = None, seed: int | None = None, progress: bool | None = None, config: dict | None = None,
        dp: bool = True, calibrated: bool = True) -> dict:
    """The whole experiment. Returns ``{"results": {...}, "model", "data", "scores", "history",
    "config", "seconds"}``; ``results`` holds the target's accuracies, ``attacks`` (the uncalibrated
    attacks: AUC and TPR at 1 % FPR each), ``table`` (every attack, calibrated ones included, with
    its intervals: :func:`attack_table`), with ``calibrated`` ``calibrated`` (the same for
    :func:`calibrated_study`'s attacks) and ``reference_train_accuracy``, and with ``dp`` ``dp``
    (the rows of :func:`dp_study`)."""
    seed = resolve_seed(seed)
    start = time.perf_counter()
    config = dict(config or settings(mode))
    data = prepare_data(config, seed=seed)
    model, history = train_target(data, config, seed=seed, progress=progress)
    scores = attack_scores(model, data, config, seed=seed, finite_difference=True)
    results = {**accuracies(model, data), "attacks": summarise(scores)}
    cal = None
    if calibrated:
        cal = calibrated_study(data, config, model, seed=seed, progress=progress)
        results["calibrated"] = summarise(cal["scores"])
        results["reference_train_accuracy"] = cal["reference_train_accuracy"]
        scores = {**scores, **cal["scores"]}
    results["table"] = attack_table(scores)
    if dp:
        reference = (cal["raw"]["margin"][1], cal["mask"]) if cal is not None else None
        results["dp"] = dp_study(data, config, seed=seed, progress=progress, reference=reference)
    return {"results": results, "model": model, "data": data, "scores": scores, "history": history,
            "config": config, "seconds": time.perf_counter() - start}


def _jsonable(obj):
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: $MIXCON_LITE_SEED, else 0")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    parser.add_argument("--out", default=None, help="folder for the full-mode record (default book/results)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        parser.error("--seed must be >= 0")
    args.seed = resolve_seed(args.seed)
    mode = get_mode(args.mode)
    out = run(mode, seed=args.seed, progress=not args.json)
    results = _jsonable(out["results"])
    if mode == "full":
        from . import save_record

        save_record("membership", mode, {**out["config"], "seed": args.seed}, results, args.out,
                    seconds=out["seconds"])
    if args.json:
        print(json.dumps(results))
    else:
        print(f"target: train accuracy {results['train_accuracy']:.3f}, test {results['test_accuracy']:.3f}")
        for name, s in results["attacks"].items():
            print(f"{name:>13}: AUC {s['auc']:.3f}, TPR at 1% FPR {s['tpr_at_1pct_fpr']:.3f}")
        for row in results.get("dp", []):
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    main()
