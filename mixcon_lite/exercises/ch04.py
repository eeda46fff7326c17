"""Checkers for chapter 04 (Inverting features): ``check_rmle_objective``, ``check_safest_cut``,
``check_noise_defence``. Each recomputes what it judges from the student's function, model or
recovered images."""
from __future__ import annotations

import numpy as np
import torch

from .core import CheckResult, as_1d, call_student

CUTS = ("block1", "block2", "fc1", "fc2", "logits")
NOISE_SSIM_BAR = 0.3        # below the label-only baseline of chapter 04
NOISE_ACCURACY_DROP = 0.2   # the accuracy floor: at most this much below the clean accuracy


def check_rmle_objective(fn) -> CheckResult:
    """Chapter 04: ``fn(model, cut, x, h, tv_weight)`` must return the paper's per-image rMLE
    objective ``||f(x) - h||^2 + tv_weight * TV(x)`` (the squared error *summed* over the
    representation), shape ``[N]``, differentiable in ``x`` (gradient descent needs it), without
    changing ``x``."""
    from ..attacks.features import rmle_objective
    from ..models import LeNet5

    torch.manual_seed(0)
    model = LeNet5().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 1, 28, 28, generator=g)
    for cut, tv in (("block1", 0.0), ("block2", 0.05), ("fc1", 1.0)):
        with torch.no_grad():
            h = model.forward_to(torch.rand(3, 1, 28, 28, generator=g), cut)
        x_in = x.clone().requires_grad_(True)
        out, fail = call_student(fn, model, cut, x_in, h, tv)
        if fail is not None:
            return fail
        got, fail = as_1d(out, 3, "your objective")
        if fail is not None:
            return fail
        if not torch.equal(x_in.detach(), x):
            return CheckResult(False, "Your function changed x; compute the objective without "
                                      "modifying the image (no in-place operations on x).")
        x_ref = x.clone().requires_grad_(True)
        want_t = rmle_objective(model, cut, x_ref, h, tv, reduction="sum")
        want = want_t.detach().double().numpy()
        if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
            size = h[0].numel()
            as_mean = rmle_objective(model, cut, x, h, tv, reduction="mean").detach().double()
            hint = "Sum the squared feature error over each image's representation, then add " \
                   "tv_weight * TV(x)."
            if np.allclose(got, as_mean.numpy(), rtol=1e-4, atol=1e-7):
                hint = (f"Your values are the paper's divided by |h| = {size}: you averaged the "
                        "squared error; the paper's objective sums it.")
            return CheckResult(False, f"At cut {cut!r} with tv_weight={tv}: expected "
                                      f"{np.round(want, 4)}, got {np.round(got, 4)}. {hint}")
        if not torch.is_tensor(out) or not out.requires_grad:
            return CheckResult(False, "The values are right, but the result carries no gradient: "
                                      "return a torch tensor computed from x (no .detach(), "
                                      "NumPy or torch.no_grad()), so gradient descent can use it.")
        grad, = torch.autograd.grad(out.sum(), x_in)
        grad_ref, = torch.autograd.grad(want_t.sum(), x_ref)
        if not torch.allclose(grad, grad_ref, rtol=1e-3, atol=1e-6):
            return CheckResult(False, f"At cut {cut!r} the values match but the gradient with "
                                      "respect to x does not: is part of the objective detached?")
    return CheckResult(True, "the paper's objective (summed feature error + tv_weight * TV) and its "
                             "gradient match at block1, block2 and fc1, with and without the TV "
                             "prior.")


def check_safest_cut(ssim_by_cut: dict, safest_cut: str, victims: torch.Tensor,
                     recovered: dict) -> CheckResult:
    """Chapter 04: ``ssim_by_cut`` ``{cut: mean raw SSIM of the strongest attack at that cut}``
    (the attack with the highest mean SSIM, the worst case for privacy) and ``safest_cut`` the cut
    where that is lowest, both recomputed from ``recovered`` ``{cut: {attack: images}}`` and the
    private ``victims``."""
    from ..metrics import ssim

    if not isinstance(recovered, dict) or sorted(recovered) != sorted(CUTS):
        return CheckResult(False, f"Pass the recovered images as a dict with the keys {list(CUTS)} "
                                  "(`recovered` from the chapter's run).")
    if not isinstance(ssim_by_cut, dict) or sorted(ssim_by_cut) != sorted(CUTS):
        return CheckResult(False, f"ssim_by_cut must be a dict with exactly the keys {list(CUTS)}.")
    try:
        vals = {k: float(v) for k, v in ssim_by_cut.items()}
    except (TypeError, ValueError):
        return CheckResult(False, "Every value of ssim_by_cut must be a number (a mean SSIM).")
    try:
        means = {cut: {a: float(ssim(victims, rec).mean()) for a, rec in recovered[cut].items()}
                 for cut in CUTS}
    except (ValueError, AttributeError, TypeError) as err:
        return CheckResult(False, f"Could not score the recovered images against the victims: {err}")
    truth = {cut: max(m.values()) for cut, m in means.items()}
    for cut in CUTS:
        if abs(vals[cut] - truth[cut]) > 1e-3:
            hint = "take, at each cut, the highest *mean* raw SSIM over the attacks"
            if abs(vals[cut] - (truth[cut] + 1) / 2) < 1e-3:
                hint = "that is the normalised SSIM (SSIM + 1) / 2; use the raw SSIM"
            elif any(abs(vals[cut] - v) < 1e-3 for v in means[cut].values()):
                hint = "that is one attack's SSIM but not the strongest attack's at this cut"
            return CheckResult(False, f"At {cut!r} you have {vals[cut]:.3f}, the recovered images "
                                      f"give {truth[cut]:.3f}: {hint}.")
    want = min(truth, key=truth.get)
    if safest_cut != want:
        return CheckResult(False, f"safest_cut is {safest_cut!r}, but the lowest worst-case SSIM "
                                  f"is at {want!r} ({truth[want]:.3f}).")
    strongest = max(means[want], key=means[want].get)
    return CheckResult(True, f"the safest cut is {want}: its strongest attack ({strongest}) still "
                             f"reaches a mean SSIM of {truth[want]:.2f}. Compare that with the "
                             "label-only baseline.")


def check_noise_defence(model, sigma: float, images: torch.Tensor, labels: torch.Tensor,
                        cut: str = "block1") -> CheckResult:
    """Chapter 04: adding Gaussian noise of std ``sigma`` to the representation after ``cut`` must
    push the chapter's white-box Adam attack (TV weight 0.01) below a mean SSIM of 0.3 on the first
    8 ``images`` **and** keep the accuracy on ``(images, labels)`` within 0.2 of the noise-free
    accuracy. Everything is recomputed from ``model``; the message also reports an attacker who
    re-tunes the TV weight knowing the defence."""
    from ..experiments.feature_inversion import noise_defence

    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        return CheckResult(False, "sigma must be a number.")
    if not 0 <= sigma < float("inf"):
        return CheckResult(False, "sigma is a standard deviation: a finite number >= 0.")
    try:
        r = noise_defence(model, sigma, images, labels, cut)
    except ValueError as err:
        return CheckResult(False, str(err))
    floor = r["clean_accuracy"] - NOISE_ACCURACY_DROP
    if r["ssim"] >= NOISE_SSIM_BAR:
        return CheckResult(False, f"With sigma = {sigma:g} the attack still reaches SSIM "
                                  f"{r['ssim']:.2f} (>= {NOISE_SSIM_BAR}); add more noise.")
    if r["accuracy"] < floor:
        return CheckResult(False, f"sigma = {sigma:g} stops the attack (SSIM {r['ssim']:.2f}) but "
                                  f"accuracy falls to {r['accuracy']:.3f}, below the floor "
                                  f"{floor:.3f} (noise-free {r['clean_accuracy']:.3f} minus "
                                  f"{NOISE_ACCURACY_DROP}); find a smaller sigma.")
    return CheckResult(True, f"sigma = {sigma:g}: attack SSIM {r['ssim']:.2f} < {NOISE_SSIM_BAR} at "
                             f"accuracy {r['accuracy']:.3f} (noise-free {r['clean_accuracy']:.3f}). "
                             f"But an attacker who re-tunes the TV weight (to "
                             f"{r['tv_adaptive']:g}) gets SSIM {r['ssim_adaptive']:.2f}.")
