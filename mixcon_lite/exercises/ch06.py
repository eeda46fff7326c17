"""Checkers for chapter 06 (Gradient inversion): ``check_idlg_label``, ``check_cosine_distance``,
``check_pruning_defence``."""
from __future__ import annotations

import math

import torch

from .core import CheckResult, call_student


def check_idlg_label(fn) -> CheckResult:
    """Chapter 06: ``fn(model, gradients)`` must return the label (an ``int``) of the single image
    whose gradient ``gradients`` (``model.parameters()`` order) is. Recomputed on fresh random
    networks: DLG's sigmoid LeNet and a ReLU variant, colour and grey inputs, 10 to 100 classes."""
    from ..attacks.gradients import shared_gradients
    from ..models import DLGLeNet

    g = torch.Generator().manual_seed(606)
    cases = [(3, 100, 32, "sigmoid"), (1, 10, 28, "sigmoid"), (3, 20, 16, "relu"), (1, 50, 12, "sigmoid")]
    trials = 0
    # the last cases: a network confident in a wrong class of lower index (its final bias pushed up),
    # where p_wrong = 1 - p_true in float32, so |row sums| tie and only the sign tells them apart
    confident = [(1, 10, 12, "sigmoid", 0), (3, 20, 16, "relu", 3)]
    for i, case in enumerate(cases * 3 + confident):
        c, classes, size, act = case[:4]
        model = DLGLeNet(c, classes, size, activation=act, seed=1000 + i)
        label = int(torch.randint(0, classes, (1,), generator=g))
        if len(case) == 5:
            wrong = case[4]
            label = max(label, wrong + 1)
            with torch.no_grad():
                final = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
                final.bias[wrong] += 60.0
        grads = shared_gradients(model, torch.rand(1, c, size, size, generator=g), torch.tensor([label]))
        out, fail = call_student(fn, model, [t.clone() for t in grads])
        if fail is not None:
            return fail
        try:
            got = int(out)
        except (TypeError, ValueError, RuntimeError):
            return CheckResult(False, f"Return one class index (an int), got {type(out).__name__}.")
        if got != label:
            hint = ""
            w = grads[-2].sum(1)
            if got == int(w.argmax()) and len(case) == 4:
                hint = " That is the row with the *largest* sum: which sign does the true class's row have?"
            elif got == int(w.abs().argmax()):
                hint = (" That is the row with the largest |sum|: on a network confident in a wrong class "
                        "that row's sum is as large as the true class's, with the other sign.")
            return CheckResult(False, f"On a fresh {act} LeNet ({classes} classes, {c}x{size}x{size} input) the "
                                      f"label is {label}, your function says {got}.{hint}")
        trials += 1
    return CheckResult(True, f"your rule found the label on all {trials} fresh random networks "
                             "(sigmoid and ReLU, 10 to 100 classes).")


def check_cosine_distance(fn) -> CheckResult:
    """Chapter 06: ``fn(candidate, target)`` for two lists of tensors (one per parameter) must return
    Inverting Gradients' distance ``1 - <candidate, target> / (|candidate| |target|)``, one cosine
    over *all* entries of all tensors (a float)."""
    g = torch.Generator().manual_seed(66)
    shapes = [(4, 3, 5, 5), (4,), (10, 36), (10,)]
    for scale in (1.0, 1e-3, 50.0):
        a = [scale * torch.randn(s, generator=g) for s in shapes]
        b = [torch.randn(s, generator=g) * (1 + i) for i, s in enumerate(shapes)]
        for cand, targ in ((a, b), (a, a), (a, [-t for t in a])):
            out, fail = call_student(fn, [t.clone() for t in cand], [t.clone() for t in targ])
            if fail is not None:
                return fail
            try:
                got = float(out)
            except (TypeError, ValueError, RuntimeError):
                return CheckResult(False, f"Return one number, got {type(out).__name__}.")
            fa = torch.cat([t.flatten() for t in cand]).double()
            fb = torch.cat([t.flatten() for t in targ]).double()
            want = float(1 - fa @ fb / (fa.norm() * fb.norm()))
            if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
                per_layer = float(sum(1 - (x.flatten().double() @ y.flatten().double())
                                      / (x.norm() * y.norm()) for x, y in zip(cand, targ)) / len(cand))
                hint = (" That is the mean of per-layer cosine distances; Inverting Gradients takes one cosine "
                        "over all parameters." if math.isclose(got, per_layer, rel_tol=1e-4, abs_tol=1e-6) else "")
                return CheckResult(False, f"Expected {want:.6f}, got {got:.6f}.{hint}")
    return CheckResult(True, "one cosine over all parameters: 0 for identical gradients, 2 for opposite ones, "
                             "and the same whatever the candidate's scale.")


#: The fractions the pruning exercise offers.
PRUNE_CHOICES = (0.2, 0.4, 0.6, 0.8)


def check_pruning_defence(prune_fn, fraction: float) -> CheckResult:
    """Chapter 06: ``prune_fn(gradients, fraction)`` must zero, in every tensor, the ``fraction`` of
    entries with the smallest magnitude; with the chosen ``fraction`` DLG must fail (pixel MSE above
    0.01) on a victim it recovers from the full gradient, and it must be the smallest of
    :data:`PRUNE_CHOICES` that does. The checker runs DLG on *your* pruned gradients, then reports what
    the adaptive DLG (matching only the sent entries) does to the same defence."""
    from ..attacks.gradients import dlg, prune_gradients, shared_gradients
    from ..data import skimage_crops
    from ..models import DLGLeNet

    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        return CheckResult(False, "fraction must be a number in [0, 1).")
    if not any(math.isclose(fraction, f) for f in PRUNE_CHOICES):
        return CheckResult(False, f"Choose fraction from {PRUNE_CHOICES}, got {fraction}.")
    g = torch.Generator().manual_seed(6)
    # tensors on different scales, as a network's layers are: a single global threshold fails here
    probe = [100.0 * torch.randn(7, 12, generator=g), torch.randn(40, generator=g)]   # 0.5 x size: whole
    out, fail = call_student(prune_fn, [t.clone() for t in probe], 0.5)
    if fail is not None:
        return fail
    for t, p in zip(probe, out):
        if not torch.is_tensor(p) or p.shape != t.shape:
            return CheckResult(False, "Return a list of tensors with the gradients' shapes.")
        k = round(0.5 * t.numel())
        kept = p != 0
        if int((~kept).sum()) != k or not torch.equal(p[kept], t[kept]):
            hint = ""
            flat = torch.cat([q.flatten() for q in probe]).abs()
            threshold = flat.sort().values[round(0.5 * flat.numel()) - 1]
            if torch.equal(p == 0, t.abs() <= threshold):
                hint = (" Your threshold looks global (one over all tensors together); prune each tensor "
                        "by its own magnitudes.")
            return CheckResult(False, f"With fraction 0.5 a tensor of {t.numel()} entries should have its {k} "
                                      f"smallest-magnitude entries zeroed and the rest unchanged.{hint}")
        if kept.any() and (~kept).any() and t[~kept].abs().max() > t[kept].abs().min():
            return CheckResult(False, "You zeroed entries that are larger in magnitude than some you kept: "
                                      "prune by |value|, smallest first, within each tensor.")
    picture = skimage_crops(["coffee"], size=16)
    model = DLGLeNet(3, 10, 16, seed=1234)
    grads = shared_gradients(model, picture, torch.tensor([3]))
    pruned, fail = call_student(prune_fn, [t.clone() for t in grads], fraction)
    if fail is not None:
        return fail
    kw = dict(steps=400, restarts=1, init="grey", max_step=5.0, seed=0, progress=False)

    def attack(g_pruned):
        res = dlg(model, g_pruned, (3, 16, 16), 10, **kw)
        return float(((res.reconstruction.clamp(0, 1) - picture) ** 2).mean())

    mse = attack(pruned)
    zeros = sum(int((t == 0).sum()) for t in pruned) / sum(t.numel() for t in pruned)
    if mse <= 0.01:
        return CheckResult(False, f"With {100 * zeros:.0f} % of the gradient zeroed DLG still recovers the picture "
                                  f"(MSE {mse:.4f} <= 0.01): prune more.")
    smaller = [f for f in PRUNE_CHOICES if f < fraction - 1e-9]
    if smaller:
        below = attack(prune_gradients(grads, smaller[-1]))
        if below > 0.01:
            return CheckResult(False, f"{fraction:g} stops DLG (MSE {mse:.3f}), but so does {smaller[-1]:g} "
                                      f"(MSE {below:.3f}): the question asks for the smallest fraction that does.")
    from ..attacks.matching import sent_entries

    adaptive = dlg(model, pruned, (3, 16, 16), 10, mask=sent_entries(pruned), **kw)
    adaptive_mse = float(((adaptive.reconstruction.clamp(0, 1) - picture) ** 2).mean())
    return CheckResult(True, f"with {100 * zeros:.0f} % of the gradient zeroed DLG's reconstruction has MSE "
                             f"{mse:.3f} (> 0.01), and at the next smaller choice DLG still recovers the picture: "
                             "this is the smallest fraction that stops plain DLG here. But an attacker who sees "
                             "the zeros and matches only the entries you sent (dlg(..., mask=sent_entries(g))) "
                             f"reaches MSE {adaptive_mse:.4f}: against the attack that knows it, this defence "
                             "fails. What would a pruning that survives it cost the training?")
