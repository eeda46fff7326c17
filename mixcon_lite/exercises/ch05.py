"""Checkers for chapter 05 (MixCon on images): ``check_within_pairs``, ``check_sweet_spot``,
``check_break_defence``. Each recomputes what it judges: the pairs from labels, the sweet spot
from point lists, and the student's attack by scoring it, paired, against the label-only baseline
and the grey start."""
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


def _point(lam, beta, acc, scores, acc_select=None, pairs="across", form="raw"):
    """A grid point; ``scores`` maps an attack to ``(SSIM on the victims, SSIM on the pick images)``
    or to one number used for both."""
    out = {"lam": lam, "beta": beta, "accuracy": acc, "pairs": pairs, "form": form,
           "accuracy_select": acc if acc_select is None else acc_select}
    for attack, sc in scores.items():
        vic, pick = sc if isinstance(sc, tuple) else (sc, sc)
        out[attack] = {"ssim": vic, "pick_ssim": pick}
    return out


def _spot_cases():
    """Point lists where the plausible wrong rules pick differently. Accuracies and SSIMs on the
    bars are sums of powers of two, so "on the bar" is exact in floating point."""
    D = "decoder"
    W = "whitebox"
    # a: the collapsed net, a within-class and a normalised point recover least; the candidate
    #    (1, 0.1) sits exactly on both bars (0.75 - 0.0625 accuracy, SSIM 2/3 of 0.75)
    a = [_point(0, 0, 0.8125, {D: 0.75, W: 0.5}), _point(10, 0, 0.125, {D: 0.0, W: 0.0}),
         _point(1, 0.1, 0.75, {D: 0.5, W: 0.25}), _point(1, 1, 0.8125, {D: 0.625, W: 0.25}),
         _point(0.3, 0.1, 0.8125, {D: 0.25, W: 0.125}, pairs="within"),
         _point(0.3, 1, 0.8125, {D: 0.25, W: 0.125}, form="normalised")]
    # b: picked on the pick images, not on the victims: (1, 0.1) looks best on the victims
    b = [_point(0, 0, 0.8, {D: 0.6}), _point(1, 0.1, 0.8, {D: (0.1, 0.5)}),
         _point(1, 1, 0.8, {D: (0.3, 0.2)})]
    # c: selected on accuracy_select; on the test half the candidate fails (no sweet spot)
    c = [_point(0, 0, 0.8, {D: 0.6}), _point(1, 0.1, 0.7, {D: 0.1}, acc_select=0.8),
         _point(1, 1, 0.8, {D: 0.3}, acc_select=0.7)]
    # d: the strongest attack on the point is the white-box; compared with the white-box on
    #    vanilla (0.3) it has not dropped, though it is below vanilla's strongest (0.6 decoder)
    d = [_point(0, 0, 0.8, {D: 0.6, W: 0.3}), _point(1, 0.1, 0.8, {D: 0.1, W: 0.35})]
    # e: judged by the strongest attack, not by the white-box alone
    e = [_point(0, 0, 0.8, {D: 0.6, W: 0.3}), _point(1, 0.1, 0.8, {D: 0.55, W: 0.05})]
    # f: a clear sweet spot, well inside both bars
    f = [_point(0, 0, 0.9, {D: 0.6, W: 0.4}), _point(3, 0.1, 0.89, {D: 0.2, W: 0.1}),
         _point(1, 0.1, 0.9, {D: 0.5, W: 0.3})]
    # g: the candidate fails on the victims while another eligible point would clear: no sweet
    #    spot (evaluating every point and keeping one that clears is selecting on the victims)
    g = [_point(0, 0, 0.8, {D: 0.6}), _point(1, 0.1, 0.8, {D: (0.5, 0.1)}),
         _point(1, 1, 0.8, {D: (0.2, 0.3)})]
    # h: the selection step ranks by the strongest attack *on the pick images*
    h = [_point(0, 0, 0.8, {D: 0.6, W: 0.6}), _point(1, 0.1, 0.8, {D: (0.1, 0.45), W: (0.5, 0.3)}),
         _point(1, 1, 0.8, {D: (0.2, 0.4), W: (0.15, 0.1)})]
    # i: the evaluation step uses the strongest attack *on the victims*
    i = [_point(0, 0, 0.8, {D: 0.6, W: 0.6}), _point(1, 0.1, 0.8, {D: (0.2, 0.1), W: (0.5, 0.05)})]
    return [(a, 0.0625), (a, 0.03125), (b, 0.02), (c, 0.02), (d, 0.02), (e, 0.02), (f, 0.02),
            (f, 0.005), (g, 0.02), (h, 0.02), (i, 0.02)]


def check_sweet_spot(fn) -> CheckResult:
    """Chapter 05: ``fn(points, max_drop, min_drop)`` must return the sweet spot of a list of grid
    points, select then evaluate, as :func:`mixcon_lite.experiments.mixcon_images.sweet_spot`:

    1. *select* on the selection data: among the MixCon points (``pairs == "across"``,
       ``form == "raw"``, not vanilla) whose ``accuracy_select`` is at least vanilla's minus
       ``max_drop``, the one whose strongest attack scores lowest on the pick images
       (``p[a]["pick_ssim"]``, strongest = highest there);
    2. *evaluate* it on the victims: its ``accuracy`` at least vanilla's minus ``max_drop``, and
       for its strongest attack ``a`` on the victims (highest ``p[a]["ssim"]``) at most
       ``(1 - min_drop)`` times vanilla's ``v[a]["ssim"]``; return it if both hold, else ``None``.

    Compared with the package on eleven lists, two with points exactly on the bars."""
    from ..experiments.mixcon_images import MIN_DROP, sweet_spot

    for points, drop in _spot_cases():
        out, fail = call_student(fn, [dict(p) for p in points], drop, MIN_DROP)
        if fail is not None:
            return fail
        want = sweet_spot(points, drop, MIN_DROP)
        key = (lambda p: None if p is None else (p["lam"], p["beta"], p["pairs"], p["form"]))
        try:
            got_key = key(out)
        except (TypeError, KeyError, IndexError):
            return CheckResult(False, f"Return one of the points (a dict) or None, got {type(out).__name__}.")
        if got_key != key(want):
            def show(p):
                at = ", ".join(f"{a} {p[a]['ssim']:g}/{p[a]['pick_ssim']:g}" for a in
                               ("whitebox", "decoder") if a in p)
                return (f"(lam {p['lam']:g}, beta {p['beta']:g}, {p['pairs']}, {p['form']}: acc "
                        f"{p['accuracy']:g}, acc_select {p['accuracy_select']:g}; SSIM victims/pick "
                        f"{at})")
            expected = "None" if want is None else f"lam {want['lam']:g}, beta {want['beta']:g}"
            got = "None" if out is None else f"lam {out['lam']:g}, beta {out['beta']:g}"
            return CheckResult(False, f"With max_drop={drop:g}, min_drop={MIN_DROP:.3f} and points "
                                      f"{'; '.join(show(p) for p in points)}: expected {expected}, "
                                      f"got {got}. Select on accuracy_select and pick_ssim only "
                                      "(cross-class, raw form, not vanilla), then evaluate that one "
                                      "point on accuracy and the victims' SSIM of its strongest "
                                      "attack against the same attack on vanilla; both bars include "
                                      "their edge (>= and <=).")
    return CheckResult(True, "the same choice as the package on eleven grids: selection on its own "
                             "data, the strongest attack, both bars inclusive, and grids with no "
                             "sweet spot.")


#: How far (SSIM, lower end of the paired 95 % interval) an attack must clear each label-only
#: baseline in :func:`check_break_defence`.
BREAK_MARGIN = 0.02


def check_break_defence(fn, client, data: dict, cut: str = "block2") -> CheckResult:
    """Chapter 05, "break this defence": ``fn(client, cut, h, x_aux)`` is an attack. It gets the
    trained MixCon ``client`` (a LeNet-5 it may query or differentiate), the ``cut``, the
    representations ``h`` of the held-out victims and pick images of ``data`` (never the images),
    and the attacker's own images ``x_aux``; it returns recoveries ``[N, 1, 28, 28]`` in [0, 1].
    It passes if, paired over those images, its SSIM beats the white-box attack's mid-grey start
    beyond the noise and both label-only baselines by a margin: the class-mean image of each
    image's true class, and the class-mean image of the class the *client predicts* for it (the
    server sees the prediction; the attacker's images grouped by the client's predictions), each
    with the lower end of its 95 % interval above ``BREAK_MARGIN`` SSIM. A brightened or
    contrast-stretched class mean does not count as reading the representation."""
    from .. import stats
    from ..experiments import mixcon_images as mi
    from ..metrics import ssim

    x = torch.cat([data["x_victims"], data["x_pick"]])
    with torch.no_grad():
        h = client.forward_to(x, cut)
    out, fail = call_student(fn, client, cut, h.clone(), data["x_aux"])
    if fail is not None:
        return fail
    if not torch.is_tensor(out) or tuple(out.shape) != tuple(x.shape):
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        return CheckResult(False, f"Return the recovered images as a tensor {list(x.shape)} (one per "
                                  f"representation, in order), got {got}.")
    out = out.detach().float()
    if not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        return CheckResult(False, "Recovered images must be finite and in [0, 1] (clamp them, or end "
                                  "the decoder with a sigmoid).")
    base = torch.cat([mi.class_mean_baseline(data), mi.class_mean_baseline(data, "pick")])
    with torch.no_grad():
        pred_x = client(x).argmax(1)
        pred_aux = client(data["x_aux"]).argmax(1)
    fallback = data["x_aux"].mean(0)
    pred_base = torch.stack([data["x_aux"][pred_aux == c].mean(0) if (pred_aux == c).any()
                             else fallback for c in pred_x.tolist()])
    mine = ssim(x, out).tolist()
    vs_base = stats.paired(mine, ssim(x, base).tolist(), names=("your attack", "label only"))
    vs_pred = stats.paired(mine, ssim(x, pred_base).tolist(),
                           names=("your attack", "predicted-class mean"))
    vs_start = stats.paired(mine, ssim(x, torch.full_like(x, 0.5)).tolist(),
                            names=("your attack", "mid-grey start"))
    numbers = (f"mean SSIM {sum(mine) / len(mine):.3f} over {len(mine)} images; {vs_base}; "
               f"{vs_pred}; {vs_start}")
    if not vs_start.a_better:
        return CheckResult(False, f"{numbers}. Not beyond the noise of a grey image: the attack "
                                  "has not left its start.")
    for c, what in ((vs_base, "the true class's"), (vs_pred, "the predicted class's")):
        if c.low <= BREAK_MARGIN:
            return CheckResult(False, f"{numbers}. Not clear of the label-only baseline: "
                                      f"{what} mean image recovers about as much (the lower end "
                                      f"of the interval must exceed {BREAK_MARGIN} SSIM). Use "
                                      "what h still carries beyond the label: train a decoder "
                                      "on the client's answers for x_aux.")
    return CheckResult(True, f"{numbers}. The defended representation leaks more than the label.")
