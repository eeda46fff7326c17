"""Checkers for chapter 00 (A first look): ``check_total_variation``, ``check_psnr``, ``check_deeper_cut``."""
from __future__ import annotations

import math

import numpy as np
import torch

from .core import CheckResult, call_student, as_1d


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
    """Chapter 00: ``fn(x, y)`` for images in [0, 1] must return PSNR in dB per image pair, ``inf``
    for identical images."""
    from ..metrics import psnr

    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 1, 10, 10, generator=g)
    y = (x + 0.1 * torch.randn(4, 1, 10, 10, generator=g)).clamp(0, 1)
    out, fail = call_student(fn, x.clone(), y.clone())
    if fail is not None:
        return fail
    got, fail = as_1d(out, 4, "psnr")
    if fail is not None:
        return fail
    want = psnr(x, y)
    if not np.allclose(got, want, rtol=1e-4):
        return CheckResult(False, f"Expected {np.round(want, 3)} dB, got {np.round(got, 3)}. "
                                  "PSNR = 10 log10(1 / MSE) for data range 1, with the MSE of each image.")
    out, fail = call_student(fn, x[:1].clone(), x[:1].clone())
    if fail is not None:
        return fail
    same, fail = as_1d(out, 1, "psnr")
    if fail is not None:
        return fail
    if not math.isinf(same[0]) or same[0] < 0:
        return CheckResult(False, f"Identical images should give PSNR = +inf, got {same[0]}.")
    return CheckResult(True, f"PSNR matches ({np.round(got, 2)} dB) and identical images give +inf.")


def check_deeper_cut(ssim_block1: float, ssim_block2: float) -> CheckResult:
    """Chapter 00: the mean SSIMs you measured inverting after ``block1`` and after ``block2``.
    The check: both are valid SSIM values and the deeper cut leaks less."""
    try:
        s1, s2 = float(ssim_block1), float(ssim_block2)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the two mean SSIMs as numbers, e.g. float(scores.mean()).")
    if not (-1 <= s1 <= 1 and -1 <= s2 <= 1):
        return CheckResult(False, f"SSIM lies in [-1, 1]; got {s1:.3f} and {s2:.3f}. Did you pass SSIM values?")
    if abs(s1 - s2) < 1e-9:
        return CheckResult(False, "The two values are identical: did you invert the block2 representation "
                                  "with cut='block2'?")
    if s2 >= s1:
        return CheckResult(False, f"block2 gave SSIM {s2:.3f} >= block1's {s1:.3f}. With the chapter's settings "
                                  "the deeper cut should leak less; check you used the block2 features and cut.")
    return CheckResult(True, f"block1 {s1:.3f} > block2 {s2:.3f}: the 400 numbers after block2, after two "
                             "poolings, pin the image down less than the 1,176 after block1.")
