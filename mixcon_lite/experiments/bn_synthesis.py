"""Chapter 10: synthetic training data from a trained network's BatchNorm statistics: utility
(a student trained on synthetic images only) and privacy (does the synthetic set copy training
images; does the student leak membership).

``python -m mixcon_lite.experiments.bn_synthesis --mode fast|full [--seed S] [--json] [--out DIR]``

The teacher is a LeNet-5 with BatchNorm trained on a class-mixed subset of Fashion-MNIST's training
split (the members). Synthetic images are made two ways: from the teacher's running statistics
(DeepInversion: what anyone holding the model can do) and from per-class statistics that the data
owner records from the members (the secure-synthetic-data abstract). A fresh LeNet-5 without
BatchNorm is trained on each synthetic set alone and tested on real test images, beside a student
trained on as many real member images and the teacher itself.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from .. import membership as mb
from .. import synthesis as sy
from . import membership as membership_experiment
from ..config import get_mode, resolve_seed
from ..metrics import ssim
from ..models import LeNet5
from ..train import evaluate, train

SOURCES = ("class", "running")


def settings(mode: str | None = None) -> dict:
    """All sizes of the experiment in ``mode`` (every weight and size ours, sized for a CPU; the
    abstract gives none, and DeepInversion's are for ImageNet and CIFAR-10 networks).

    fast: 2,000 members; the teacher trains 20 epochs with Adam (lr 1e-3, batch 64); 30 synthetic
    images per class, 300 Adam steps at lr 0.1 (cosine decay), BN weight 1 (first layer x10), TV-L2
    weight 0.05, jitter 2 px; students train 100 epochs with Adam (lr 1e-3, batch 32), until the
    real-data student fits its 300 images; membership on 1,000 members and 1,000 non-members.
    The copy test's permutation null has 1,000 re-splits; SSIM is taken to each image's 20
    nearest members; the positive control adds Gaussian noise of
    standard deviation 0.1 to members. full: 10,000 members, 200 images per class, 1,000 steps,
    membership and tracing on 5,000 members and 5,000 non-members (the other 5,000 members give
    the tracing control), and 20,000 held-out images (the test accuracy and the tracing
    attacker's population sample, about 2,000 per class).
    """
    mode = get_mode(mode)
    common = {"mode": mode, "dataset": "fashion-mnist", "teacher_epochs": 20, "teacher_lr": 1e-3,
              "teacher_batch_size": 64, "lr": 0.1, "bn_weight": 1.0, "first_bn_multiplier": 10.0,
              "tv_weight": 0.05, "jitter": 2, "student_epochs": 100, "student_lr": 1e-3,
              "student_batch_size": 32, "n_test": 2000, "permutations": 1000, "ssim_candidates": 20,
              "control_noise": 0.1}
    if mode == "fast":
        return {**common, "n_members": 2000, "per_class": 30, "steps": 300, "n_attack": 1000}
    return {**common, "n_members": 10_000, "per_class": 200, "steps": 1000, "n_attack": 5_000,
            "n_test": 20_000}


# The same split as chapter 09: members, as many non-members (disjoint) and a test set, drawn in a
# seeded order from Fashion-MNIST's training split.
prepare_data = membership_experiment.prepare_data


def train_teacher(data: dict, config: dict, seed: int | None = None, progress: bool | None = None):
    """LeNet-5 with BatchNorm trained on the members. Returns ``(model, history)``."""
    seed = resolve_seed(seed)
    torch.manual_seed(int(seed))
    model = LeNet5(batch_norm=True)
    history = train(model, (data["x_members"], data["y_members"]), epochs=config["teacher_epochs"],
                    lr=config["teacher_lr"], optimizer="adam", batch_size=config["teacher_batch_size"],
                    seed=seed, progress=progress)
    return model, history


def synthesize(teacher, data: dict, config: dict, source: str = "class", seed: int | None = None,
               progress: bool | None = None, **overrides):
    """``per_class`` synthetic images of every class from the teacher's statistics: ``source`` is
    ``"class"`` (per-class statistics recorded from the members) or ``"running"`` (the BatchNorm
    layers' running statistics). ``overrides`` change any keyword of
    :func:`~mixcon_lite.synthesis.bn_synthesize`. Returns its ``AttackResult``."""
    seed = resolve_seed(seed)
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; expected one of {SOURCES}.")
    labels = torch.arange(10).repeat_interleave(int(config["per_class"]))
    stats = (sy.class_bn_statistics(teacher, data["x_members"], data["y_members"]) if source == "class"
             else "running")
    kw = dict(steps=config["steps"], lr=config["lr"], bn_weight=config["bn_weight"],
              first_bn_multiplier=config["first_bn_multiplier"], tv_weight=config["tv_weight"],
              jitter=config["jitter"])
    kw.update(overrides)
    return sy.bn_synthesize(teacher, labels, stats=stats, seed=seed, progress=progress, **kw)


def train_student(x: torch.Tensor, y: torch.Tensor, config: dict, seed: int | None = None, progress: bool | None = None):
    """A fresh LeNet-5 (no BatchNorm) trained on ``(x, y)`` alone. Returns the model."""
    seed = resolve_seed(seed)
    torch.manual_seed(int(seed))
    model = LeNet5()
    train(model, (x, y), epochs=config["student_epochs"], lr=config["student_lr"], optimizer="adam",
          batch_size=config["student_batch_size"], seed=seed, progress=progress)
    return model


def real_subset(data: dict, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` members of every class: the real-data student's training set, as large
    as a synthetic set."""
    y = data["y_members"]
    idx = torch.cat([torch.nonzero(y == c)[:per_class, 0] for c in range(10)])
    return data["x_members"][idx], y[idx]


def leak_check(images: torch.Tensor, data: dict, config: dict | None = None, seed: int | None = None) -> dict:
    """How close each image is to the training set: its nearest member (pixel distance), the highest
    SSIM to any of its ``ssim_candidates`` nearest members, and
    :func:`~mixcon_lite.synthesis.copy_test` with its permutation null (``permutations``
    re-splits): the share of images nearer a member than any non-member (``closer_to_members``,
    ``closer_p_value``, ``closer_null_low``/``closer_null_high``) and the mean log distance ratio
    (``log_ratio``, ``log_ratio_p_value``, ``log_ratio_null_low``/``_high``). Returns the
    summaries and the per-image arrays."""
    config = config or settings()
    seed = resolve_seed(seed)
    ct = sy.copy_test(images, data["x_members"], data["x_nonmembers"],
                      permutations=int(config["permutations"]), seed=seed)
    s, idx = sy.max_ssim_to_members(images, data["x_members"], k=int(config["ssim_candidates"]))
    return {"closer_to_members": ct["closer_to_members"], "closer_p_value": ct["p_value"],
            "closer_null_low": ct["null_low"], "closer_null_high": ct["null_high"],
            "log_ratio": ct["log_ratio"], "log_ratio_p_value": ct["log_ratio_p_value"],
            "log_ratio_null_low": ct["log_ratio_null_low"],
            "log_ratio_null_high": ct["log_ratio_null_high"],
            "median_member_distance": float(np.median(ct["member_distance"])),
            "median_ssim_to_nearest_member": float(np.median(s)), "max_ssim_to_nearest_member": float(s.max()),
            "ssim_per_image": s, "member_index": idx, "member_distance": ct["member_distance"]}


def controls(data: dict, n: int, config: dict, seed: int | None = None, synthetic: torch.Tensor | None = None,
             fraction: float = 0.2) -> dict:
    """The copy test's controls, ``n`` images each: ``"noise"`` (uniform noise, a set that copies
    nothing; its images share one or two nearest neighbours, so its null spans 0 to 1 and it shows
    why the null is needed, not whether the test has power) and ``"noisy members"`` (the first ``n``
    members plus Gaussian noise of standard deviation ``control_noise``, clamped to [0, 1]: a set
    built from members, which the test must flag). With ``synthetic`` also ``"synthetic + noisy
    members"``: that set with a ``fraction`` of its images (chosen at random) replaced by noisy
    members, a positive control with the synthetic set's hubs, which says how much leakage the test
    can see on such a set. Returns ``{name: images}``."""
    seed = resolve_seed(seed)
    g = torch.Generator().manual_seed(int(seed) + 7)
    shape = data["x_members"].shape[1:]
    xm = data["x_members"][:n]
    out = {"noise": torch.rand((n, *shape), generator=g),
           "noisy members": (xm + float(config["control_noise"]) * torch.randn(xm.shape, generator=g)).clamp(0, 1)}
    if synthetic is not None:
        mixed = synthetic.clone()
        k = int(round(fraction * len(mixed)))
        where = torch.randperm(len(mixed), generator=g)[:k]
        mixed[where] = out["noisy members"][:k]
        out["synthetic + noisy members"] = mixed
    return out


def _candidates(data: dict, config: dict):
    k = int(config["n_attack"])
    return (data["x_members"][:k], data["y_members"][:k], data["x_nonmembers"][:k], data["y_nonmembers"][:k])


def release_attacks(teacher, data: dict, config: dict, synthetic: dict,
                    control_set: torch.Tensor | None = None) -> dict:
    """Per-record membership attacks on what the owner computes (the synthetic set, and the
    class-wise statistics and teacher it comes from), members of the teacher (the first
    ``n_attack``) against as many non-members, higher meaning member:

    * ``"tracing (class statistics)"``: :func:`~mixcon_lite.synthesis.tracing_scores` on the
      class-wise mean statistics the owner recorded from all members (an attacker holding the teacher
      and the statistics: the most the release can carry);
    * ``"tracing (class statistics, each member left out)"``: the same, each scored member against
      its class mean without itself (same size, everything but its own trace): the exact control
      for the records' own trace;
    * ``"tracing (statistics of the other members)"`` (only when some members are not scored): the
      control, the same test with means of the members *not* scored; they trained the teacher but
      are not among the scored, so what this finds is the teacher's shift of its members' features,
      not each record's trace in the statistics;
    * ``"tracing (<source> synthetic set)"``: the same test with the class means of the synthetic
      images' features (an attacker holding the teacher and the synthetic set);
    * ``"distance (<source> synthetic set)"``: minus the pixel distance to the nearest synthetic
      image (an attacker holding the synthetic images only).

    * ``"distance (noisy-members control set)"`` (with ``control_set``, e.g. the noisy members of
      :func:`controls`): the distance attack against a set built from members, its positive
      control.

    Only the mean statistics are used; the recorded variances are not.
    The population means and variances come from the held-out set ``x_test`` (drawn from the
    training split: the attacker's own data, disjoint from both groups). Returns
    ``{attack: (member scores, non-member scores)}``."""
    xm, ym, xn, yn = _candidates(data, config)
    k = int(config["n_attack"])
    f_members = sy.bn_features(teacher, data["x_members"])      # the scored members are its first k
    fm, fn = f_members[:k], sy.bn_features(teacher, xn)
    fp = sy.bn_features(teacher, data["x_test"])
    yp = data["y_test"]
    released = sy.class_means(f_members, data["y_members"])
    out = {"tracing (class statistics)": (sy.tracing_scores(fm, ym, released, fp, yp),
                                          sy.tracing_scores(fn, yn, released, fp, yp))}
    # the exact control for each record's own trace: every scored member against its class mean
    # with itself removed (a mean of the same size that holds all but its trace); non-members are
    # in no mean, so they score as above
    counts = {int(c): int((data["y_members"] == c).sum()) for c in torch.unique(data["y_members"])}
    out["tracing (class statistics, each member left out)"] = (
        sy.tracing_scores(fm, ym, released, fp, yp, leave_one_out=counts),
        out["tracing (class statistics)"][1])
    if len(data["x_members"]) > k:
        # control: statistics of the members *not* scored. The scored members still trained the
        # teacher, but none of them is in these means; what remains is the teacher's own shift
        # of members' features, not a trace of each record in the statistics
        others = sy.class_means(f_members[k:], data["y_members"][k:])
        out["tracing (statistics of the other members)"] = (sy.tracing_scores(fm, ym, others, fp, yp),
                                                            sy.tracing_scores(fn, yn, others, fp, yp))
    for source, res in synthetic.items():
        means = sy.class_means(sy.bn_features(teacher, res.reconstruction), res.labels)
        out[f"tracing ({source} synthetic set)"] = (sy.tracing_scores(fm, ym, means, fp, yp),
                                                    sy.tracing_scores(fn, yn, means, fp, yp))
        out[f"distance ({source} synthetic set)"] = (sy.distance_scores(xm, res.reconstruction),
                                                     sy.distance_scores(xn, res.reconstruction))
    if control_set is not None:
        out["distance (noisy-members control set)"] = (sy.distance_scores(xm, control_set),
                                                       sy.distance_scores(xn, control_set))
    return out


def release_comparisons(release: dict, teacher_scores: dict) -> dict:
    """The paired comparisons the chapter reads, each ``{"difference", "low", "high", "verdict"}``
    (:func:`mixcon_lite.stats.auc_difference`, over the same members and non-members):
    ``"trace_own_loo"`` (tracing with the released means minus the same means with each scored
    member left out: each record's own trace, at equal size), ``"trace_own"`` (minus the other
    members' means, which average about half as many members: an upper bound on the own trace),
    ``"trace_vs_label"`` (tracing minus the teacher's label-only baseline), ``"trace_vs_loss"``
    (minus the teacher's loss attack) and ``"syn_vs_others"`` (the class-wise synthetic set's
    means minus the other members' means). A comparison whose inputs are missing (no other
    members, no class-wise set) is left out."""
    from .. import stats

    stats_ = release.get("tracing (class statistics)")
    left_out = release.get("tracing (class statistics, each member left out)")
    pairs = {"trace_own_loo": (stats_, left_out),
             "trace_own": (stats_, release.get("tracing (statistics of the other members)")),
             "trace_vs_label": (stats_, teacher_scores.get("label_only")),
             "trace_vs_loss": (stats_, teacher_scores.get("loss")),
             "syn_vs_others": (release.get("tracing (class synthetic set)"),
                               release.get("tracing (statistics of the other members)"))}
    out = {}
    for name, (a, b) in pairs.items():
        if a is None or b is None:
            continue
        c = stats.auc_difference(*a, *b)
        out[name] = {"difference": c.difference, "low": c.low, "high": c.high,
                     "verdict": c.verdict}
    return out


def membership_aucs(model, data: dict, config: dict, seed: int | None = None,
                    return_scores: bool = False) -> dict:
    """Chapter 09's uncalibrated (global-threshold) attacks on ``model``, members of the *teacher*
    against non-members (the first ``n_attack`` of each): ``{"auc_loss", "auc_curvature",
    "auc_label_only"}``. The loss attack scores the float64 logit margin (a monotone function of
    the loss that does not saturate), the curvature attack minus the exact input-loss curvature
    (:func:`mixcon_lite.membership.curvature_scores`); the label-only baseline scores membership by
    correct classification. With ``return_scores`` also ``"scores"``: ``{attack: (member scores,
    non-member scores)}``, higher meaning member, for
    :func:`mixcon_lite.experiments.membership.attack_table`. ``seed`` is accepted for symmetry
    (every score here is deterministic)."""
    resolve_seed(seed)
    xm, ym, xn, yn = _candidates(data, config)
    scores = {"loss": (mb.margin_scores(model, xm, ym), mb.margin_scores(model, xn, yn)),
              "curvature": (-mb.curvature_scores(model, xm, ym), -mb.curvature_scores(model, xn, yn)),
              "label_only": (mb.correctness_scores(model, xm, ym), mb.correctness_scores(model, xn, yn))}
    scores = {k: tuple(np.asarray(s_, dtype=float) for s_ in v) for k, v in scores.items()}
    out = {f"auc_{k}": mb.attack_auc(*v) for k, v in scores.items()}
    if return_scores:
        out["scores"] = scores
    return out


def run(mode: str | None = None, seed: int | None = None, progress: bool | None = None, config: dict | None = None,
        sources=SOURCES) -> dict:
    """The whole experiment. Returns ``{"results", "teacher", "data", "synthetic": {source: AttackResult},
    "students": {name: model}, "config", "seconds"}``. ``results`` holds the teacher's accuracies and
    membership AUCs, and per student (``real`` and each synthetic source) its test accuracy, its
    membership AUCs and, for synthetic sets, the leak check's summary (``real`` also holds
    ``own_auc_*``: the real-data student attacked on its own training images, the students'
    positive control); ``"control: noise"``,
    ``"control: noisy members"`` and ``"control: synthetic + noisy members"`` hold the copy test's
    controls (:func:`controls`), ``"release_attacks"`` the per-record
    attacks on the released statistics and synthetic sets (:func:`release_attacks`) with AUC and
    TPR at 1 % and 0.1 % FPR and their intervals, and ``"release_comparisons"`` their paired
    differences (:func:`release_comparisons`)."""
    seed = resolve_seed(seed)
    start = time.perf_counter()
    config = dict(config or settings(mode))
    data = prepare_data(config, seed=seed)
    teacher, history = train_teacher(data, config, seed=seed, progress=progress)
    teacher_aucs = membership_aucs(teacher, data, config, seed, return_scores=True)
    teacher_scores = teacher_aucs.pop("scores")
    res = {"teacher": {"train_accuracy": history["train_accuracy"][-1],
                       "test_accuracy": evaluate(teacher, data["x_test"], data["y_test"])["accuracy"],
                       **teacher_aucs}}
    students, synthetic = {}, {}
    xr, yr = real_subset(data, int(config["per_class"]))
    students["real"] = train_student(xr, yr, config, seed=seed, progress=progress)
    own = {"x_members": xr, "y_members": yr, "x_nonmembers": data["x_nonmembers"],
           "y_nonmembers": data["y_nonmembers"]}
    res["real"] = {"test_accuracy": evaluate(students["real"], data["x_test"], data["y_test"])["accuracy"],
                   **{k: v for k, v in leak_check(data["x_test"][:len(xr)], data, config, seed).items()
                      if not isinstance(v, np.ndarray)},
                   # the students' positive control: the real-data student attacked on its own
                   # training images
                   **{f"own_{k}": v for k, v in membership_aucs(students["real"], own,
                                                                {**config, "n_attack": len(xr)},
                                                                seed).items()}}
    for source in sources:
        out = synthesize(teacher, data, config, source=source, seed=seed, progress=progress)
        synthetic[source] = out
        students[source] = train_student(out.reconstruction, out.labels, config, seed=seed, progress=progress)
        leak = leak_check(out.reconstruction, data, config, seed)
        res[source] = {"test_accuracy": evaluate(students[source], data["x_test"], data["y_test"])["accuracy"],
                       "teacher_agreement": out.extras["accuracy"], "seconds": out.seconds,
                       **membership_aucs(students[source], data, config, seed),
                       **{k: v for k, v in leak.items() if not isinstance(v, np.ndarray)}}
    n = int(config["per_class"]) * 10
    ctrl = controls(data, n, config, seed,
                    synthetic=synthetic["class"].reconstruction if "class" in synthetic else None)
    for name, images in ctrl.items():
        res[f"control: {name}"] = {k: v for k, v in leak_check(images, data, config, seed).items()
                                   if not isinstance(v, np.ndarray)}
    release = release_attacks(teacher, data, config, synthetic, control_set=ctrl["noisy members"])
    res["release_attacks"] = membership_experiment.attack_table(release)
    res["release_comparisons"] = release_comparisons(release, teacher_scores)
    return {"results": res, "teacher": teacher, "data": data, "synthetic": synthetic, "students": students,
            "config": config, "seconds": time.perf_counter() - start}


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
    if mode == "full":
        from . import save_record

        save_record("bn_synthesis", mode, {**out["config"], "seed": args.seed}, out["results"], args.out,
                    seconds=out["seconds"])
    if args.json:
        print(json.dumps(out["results"]))
    else:
        for name, row in out["results"].items():
            if name == "release_attacks":
                for attack, r in row.items():
                    print(" ", attack, {k: round(v, 3) for k, v in r.items()})
            else:
                print(name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    main()
