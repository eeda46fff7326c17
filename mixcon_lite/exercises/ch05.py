"""Checkers for chapter 05 (MixCon on images): ``check_within_pairs``, ``check_sweet_spot``,
``check_mnist_sweet_spot``. Each recomputes what it judges: the pairs from labels, the sweet spot
from point lists, and the MNIST claim by training and attacking the student's setting."""
from __future__ import annotations

import torch

from .core import CheckResult, call_student


def _pair_set(value, what: str):
    """``value`` as a set of index pairs, or a failing verdict."""
    if torch.is_tensor(value):
        value = value.tolist()
    try:
        pairs = [tuple(int(v) for v in p) for p in value]
    except (TypeError, ValueError):
        return None, CheckResult(False, f"{what} should return index pairs (a tensor [P, 2] or a list "
                                        f"of (i, j)), got {type(value).__name__}.")
    if any(len(p) != 2 for p in pairs):
        return None, CheckResult(False, f"{what} should return pairs (i, j): two indices each.")
    return pairs, None


def _label_cases():
    g = torch.Generator().manual_seed(5)
    return [torch.tensor([0, 1, 0, 1, 0]), torch.tensor([2, 2, 2, 0, 1, 1]),
            torch.randint(0, 4, (12,), generator=g)]


def check_within_pairs(fn) -> CheckResult:
    """Chapter 05: ``fn(labels)`` must return every pair ``(i, j)``, ``i < j``, of samples with the same
    label, each once (a ``[P, 2]`` tensor or a list; the order of the pairs does not matter):
    the pair set of the paper's App. D.1 alternative."""
    from ..separability import mixcon_pairs, within_class_pairs

    for y in _label_cases():
        out, fail = call_student(fn, y.clone())
        if fail is not None:
            return fail
        got, fail = _pair_set(out, "your function")
        if fail is not None:
            return fail
        want = {tuple(p) for p in within_class_pairs(y).tolist()}
        labels = y.tolist()
        if any(i == j for i, j in got):
            return CheckResult(False, f"For labels {labels}: a pair (i, i) pairs a sample with itself; "
                                      "its distance is always 0. Use i < j.")
        if len(set(got)) != len(got) or any(i > j for i, j in got):
            return CheckResult(False, f"For labels {labels}: each pair must appear once, as (i, j) with "
                                      "i < j; yours has reversed or repeated pairs, which count a "
                                      "distance twice.")
        if any(labels[i] != labels[j] for i, j in got):
            across = {tuple(p) for p in mixcon_pairs(y).tolist()}
            hint = " These are MixCon's cross-class pairs S." if set(got) == across else ""
            return CheckResult(False, f"For labels {labels}: some of your pairs join different classes; "
                                      f"the within-class penalty only pairs equal labels.{hint}")
        if set(got) != want:
            missing = sorted(want - set(got))[:3]
            return CheckResult(False, f"For labels {labels}: expected {len(want)} pairs, got {len(got)}; "
                                      f"missing for example {missing}.")
    return CheckResult(True, "every same-class pair once, on three label vectors (uneven classes, a "
                             "class seen once).")


def _point(lam, beta, acc, s, pairs="across"):
    return {"lam": lam, "beta": beta, "accuracy": acc, "pairs": pairs, "whitebox": {"ssim": s}}


def _spot_cases():
    """Point lists where the plausible wrong rules pick differently."""
    a = [_point(0, 0, 0.80, 0.25), _point(10, 0, 0.10, 0.00), _point(1, 0.01, 0.79, 0.12),
         _point(0.1, 0.01, 0.805, 0.20), _point(1, 0.1, 0.775, 0.05)]
    b = [_point(0.1, 0, 0.90, 0.40), _point(0, 0, 0.91, 0.30), _point(1, 0, 0.895, 0.35),
         _point(1, 0.01, 0.5, 0.05)]
    c = [_point(0, 0, 0.70, 0.30), _point(3, 0.1, 0.69, 0.10, pairs="within"),
         _point(3, 0.0, 0.685, 0.22), _point(10, 0.0, 0.60, 0.01)]
    return [(a, 0.02), (a, 0.03), (b, 0.02), (c, 0.02), (c, 0.005)]


def check_sweet_spot(fn) -> CheckResult:
    """Chapter 05: ``fn(points, max_drop)`` must return the sweet spot of a list of grid points (dicts
    with ``lam``, ``beta``, ``accuracy``, ``pairs`` and ``whitebox["ssim"]``, one of them vanilla with
    ``lam = beta = 0``): among the MixCon points (``pairs == "across"``, not vanilla) whose accuracy
    is at most ``max_drop`` (a fraction) below vanilla's and whose white-box SSIM is below vanilla's,
    the one with the lowest SSIM; ``None`` when there is none. Compared with
    :func:`mixcon_lite.experiments.mixcon_images.sweet_spot` on five lists."""
    from ..experiments.mixcon_images import sweet_spot

    for points, drop in _spot_cases():
        out, fail = call_student(fn, [dict(p) for p in points], drop)
        if fail is not None:
            return fail
        want = sweet_spot(points, drop)
        key = (lambda p: None if p is None else (p["lam"], p["beta"], p["pairs"]))
        try:
            got_key = key(out)
        except (TypeError, KeyError, IndexError):
            return CheckResult(False, f"Return one of the points (a dict) or None, got {type(out).__name__}.")
        if got_key != key(want):
            rows = ", ".join(f"(lam {p['lam']}, beta {p['beta']}, {p['pairs']}: acc {p['accuracy']}, "
                             f"SSIM {p['whitebox']['ssim']})" for p in points)
            expected = "None" if want is None else f"lam {want['lam']}, beta {want['beta']}"
            got = "None" if out is None else f"lam {out['lam']}, beta {out['beta']}"
            return CheckResult(False, f"With max_drop={drop} and points {rows}: expected {expected}, "
                                      f"got {got}. "
                                      "Keep only MixCon points (not vanilla, not within-class) no more "
                                      "than max_drop below vanilla's accuracy that recover less than "
                                      "vanilla; then take the lowest SSIM.")
    return CheckResult(True, "the same choice as the package on five grids, including ones with no "
                             "sweet spot.")


def check_mnist_sweet_spot(lam, beta, min_gain: float = 0.05, max_drop: float = 0.03,
                           seed: int = 0) -> CheckResult:
    """Chapter 05: train LeNet-5 on the MNIST split of :mod:`mixcon_lite.experiments.mixcon_images`
    (fast mode) vanilla and with ``L_c(lam, beta)``, attack both with the white-box attack (no
    decoder), and pass if the accuracy is at most ``max_drop`` below vanilla's while the mean raw SSIM
    is at least ``min_gain`` lower. Takes about 15 s on two CPU cores; the numbers, with the
    label-only baseline's SSIM beside them, are in the message."""
    from ..experiments import mixcon_images as mi
    from ..mixcon import check_weights

    try:
        check_weights(lam, beta)
    except ValueError as err:
        return CheckResult(False, str(err))
    if lam == 0 and beta == 0:
        return CheckResult(False, "lam = beta = 0 is vanilla training; choose a MixCon setting.")
    cfg = mi.settings("fast", "mnist", seed)
    cfg.update(victims_per_class=2)
    data = mi.prepare_data(cfg)
    v = mi.run_point(0.0, 0.0, data, cfg, decoder=False)
    p = mi.run_point(float(lam), float(beta), data, cfg, decoder=False)
    drop = v["accuracy"] - p["accuracy"]
    gain = v["whitebox"]["ssim"] - p["whitebox"]["ssim"]
    base = mi.ssim_summary(data["x_victims"], mi.class_mean_baseline(data))["ssim"]
    numbers = (f"vanilla: accuracy {v['accuracy']:.3f}, raw SSIM {v['whitebox']['ssim']:.3f}; "
               f"lam {lam:g}, beta {beta:g}: accuracy {p['accuracy']:.3f}, "
               f"SSIM {p['whitebox']['ssim']:.3f} (label-only baseline {base:.3f})")
    if drop > max_drop:
        return CheckResult(False, f"{numbers}. Accuracy fell {100 * drop:.1f} points (at most "
                                  f"{100 * max_drop:.0f} allowed): pull less hard (smaller lam) or keep "
                                  "a larger gap (larger beta).")
    if gain < min_gain:
        return CheckResult(False, f"{numbers}. SSIM fell by {gain:.3f}; a sweet spot needs at least "
                                  f"{min_gain}: pull harder (larger lam) or allow closer pairs "
                                  "(smaller beta).")
    change = f"{100 * drop:.1f} accuracy points lost" if drop > 0 else \
        f"accuracy up {100 * -drop:.1f} points"
    return CheckResult(True, f"{numbers}: {change}, SSIM down {gain:.3f}.")
