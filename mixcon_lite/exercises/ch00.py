"""Checkers for chapter 00 (A first look): ``check_total_variation``, ``check_psnr``,
``check_deeper_cut``."""
from __future__ import annotations

import math

import numpy as np
import torch

from .core import CheckResult, as_1d, call_student


def check_total_variation(fn) -> CheckResult:
    """Chapter 00: ``fn(x)`` for ``x`` ``[N, C, H, W]`` must return the anisotropic TV per image,
    mean |vertical differences| + mean |horizontal differences| (shape ``[N]``)."""
    from ..attacks.features import total_variation

    g = torch.Generator().manual_seed(123)
    cases = [torch.rand(3, 1, 8, 8, generator=g), torch.rand(2, 3, 5, 7, generator=g),
             torch.full((2, 1, 6, 6), 0.3)]
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # vertical stripes: horizontal differences all 1, vertical all 0
    cases.append(stripes)
    for x in cases:
        out, fail = call_student(fn, x.clone())
        if fail is not None:
            return fail
        got, fail = as_1d(out, x.shape[0], "total_variation")
        if fail is not None:
            return fail
        want = total_variation(x).double().numpy()
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            hint = ""
            if np.allclose(got, want * x[0].numel() / 2, rtol=1e-3):
                hint = " It looks like a sum; the course's TV averages each direction."
            return CheckResult(False, f"On a batch of shape {tuple(x.shape)} expected {np.round(want, 4)}, "
                                      f"got {np.round(got, 4)}.{hint}")
    return CheckResult(True, "total variation matches on random, constant and striped images "
                             "(a constant image has TV 0; 4x4 vertical stripes have TV 1).")


def check_psnr(fn) -> CheckResult:
    """Chapter 00: ``fn(x, y)`` for images in [0, 1] must return PSNR in dB per image pair
    (the MSE of each image, data range 1), ``inf`` for identical images."""
    from ..metrics import psnr

    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 1, 10, 10, generator=g)
    noise = torch.tensor([0.02, 0.05, 0.1, 0.2]).view(4, 1, 1, 1)  # a different error per image
    y = (x + noise * torch.randn(4, 1, 10, 10, generator=g)).clamp(0, 1)
    out, fail = call_student(fn, x.clone(), y.clone())
    if fail is not None:
        return fail
    got, fail = as_1d(out, 4, "psnr")
    if fail is not None:
        return fail
    want = psnr(x, y)
    if not np.allclose(got, want, rtol=1e-4):
        hint = "PSNR = 10 log10(1 / MSE) for data range 1, with the MSE of each image."
        if np.allclose(got, got[0], rtol=1e-6):
            hint += " Your values are all equal: is the MSE taken over the whole batch?"
        return CheckResult(False, f"Expected {np.round(want, 3)} dB, got {np.round(got, 3)}. {hint}")
    out, fail = call_student(fn, x[:1].clone(), x[:1].clone())
    if fail is not None:
        return fail
    same, fail = as_1d(out, 1, "psnr")
    if fail is not None:
        return fail
    if not math.isinf(same[0]) or same[0] < 0:
        return CheckResult(False, f"Identical images should give PSNR = +inf, got {same[0]}.")
    return CheckResult(True, f"PSNR matches ({np.round(got, 2)} dB for four noise levels) and "
                             "identical images give +inf.")


def _reconstruction(out, images: torch.Tensor, cut: str):
    """The student's reconstruction as a float tensor shaped like ``images``, or a failing verdict."""
    if not torch.is_tensor(out):
        return None, CheckResult(False, f"attack(model, {cut!r}, images) should return a tensor, "
                                        f"got {type(out).__name__}.")
    if tuple(out.shape) != tuple(images.shape):
        return None, CheckResult(False, f"attack(model, {cut!r}, images) should return reconstructions "
                                        f"shaped like the images {tuple(images.shape)}, got {tuple(out.shape)}.")
    out = out.detach().float().cpu()
    if not torch.isfinite(out).all() or out.min() < -1e-6 or out.max() > 1 + 1e-6:
        return None, CheckResult(False, f"The reconstructions from {cut!r} must be finite images in [0, 1] "
                                        "(invert clamps to the pixel box).")
    return out.clamp(0, 1), None


def check_deeper_cut(attack, model, images, shallow: str = "block1", deep: str = "block2") -> CheckResult:
    """Chapter 00: ``attack(model, cut, images)`` must return reconstructions ``[N, C, H, W]`` in
    [0, 1] of ``images`` recovered from their representation after block ``cut``.

    The checker runs the attack itself after ``shallow`` and after ``deep``, and measures:

    1. each reconstruction is an inversion of its own cut: its representation after that cut is
       closer to the observed one than the grey starting image's is (an attack that returns grey or
       random images fails), and the ``deep`` reconstruction does *not* match the ``shallow``
       representation as well as the ``shallow`` reconstruction does (an attack that ignores
       ``cut`` fails);
    2. the mean SSIM it computes: the deeper cut leaks less.
    """
    from ..metrics import ssim
    from ..models import SplitNet

    if not isinstance(model, SplitNet):
        return CheckResult(False, "Pass the chapter's trained LeNet-5 `model` as the second argument.")
    if not torch.is_tensor(images) or images.ndim != 4 or len(images) < 1:
        return CheckResult(False, "Pass the private images (`private`, [N, 1, 28, 28]) as the third argument.")
    try:
        if not model.cut_index(shallow) < model.cut_index(deep):
            return CheckResult(False, f"{shallow!r} must come before {deep!r} in the model.")
    except ValueError as err:
        return CheckResult(False, str(err))
    was_training = model.training
    model.eval()
    images = images.detach().float()
    recon, residual, scores = {}, {}, {}
    try:
        for cut in (shallow, deep):
            out, fail = call_student(attack, model, cut, images.clone())
            if fail is not None:
                return fail
            recon[cut], fail = _reconstruction(out, images, cut)
            if fail is not None:
                return fail
            scores[cut] = float(ssim(images, recon[cut]).mean())
        with torch.no_grad():
            def err(x, cut):
                return (model.forward_to(x, cut) - model.forward_to(images, cut)).pow(2).mean().item()
            grey = torch.full_like(images, 0.5)
            for cut in (shallow, deep):
                residual[cut] = err(recon[cut], cut)
                if not residual[cut] < 0.5 * err(grey, cut):
                    return CheckResult(False, f"Your reconstructions from {cut!r} match the {cut!r} representation "
                                              f"no better than a grey image does (feature MSE {residual[cut]:.3g}): "
                                              "does `attack` invert h = model.forward_to(images, cut)?")
            deep_at_shallow = err(recon[deep], shallow)
    finally:
        model.train(was_training)
    if deep_at_shallow <= 2 * residual[shallow]:
        return CheckResult(False, f"Your {deep!r} reconstructions match the {shallow!r} representation as well as "
                                  f"your {shallow!r} ones do (feature MSE {deep_at_shallow:.3g} vs "
                                  f"{residual[shallow]:.3g}): does `attack` use its `cut` argument for both "
                                  "the representation and invert?")
    s1, s2 = scores[shallow], scores[deep]
    if s2 >= s1:
        return CheckResult(False, f"Measured mean SSIM {s2:.3f} after {deep!r} >= {s1:.3f} after {shallow!r}. "
                                  "With the chapter's settings the deeper cut should leak less; check the "
                                  "attack's settings (steps, TV weight) are the same at both cuts.")
    size = {cut: math.prod(model.representation_shape(cut)) for cut in (shallow, deep)}
    return CheckResult(True, f"measured by running your attack: mean SSIM {s1:.3f} after {shallow!r} > "
                             f"{s2:.3f} after {deep!r}. The {size[deep]:,} numbers after {deep!r} pin the "
                             f"image down less than the {size[shallow]:,} after {shallow!r}.")
