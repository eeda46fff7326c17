"""Checkers for chapter 04 (Inverting features): ``check_rmle_objective``, ``check_safest_cut``, ``check_noise_defence``."""
from __future__ import annotations

import numpy as np
import torch

from .core import CheckResult, call_student, as_1d


def check_rmle_objective(fn) -> CheckResult:
    """Chapter 04: ``fn(model, cut, x, h, tv_weight)`` must return the per-image rMLE objective
    ``mean((f(x) - h)^2) + tv_weight * TV(x)``, shape ``[N]``."""
    from ..attacks.features import rmle_objective
    from ..models import LeNet5

    torch.manual_seed(0)
    model = LeNet5().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 1, 28, 28, generator=g)
    for cut, tv in (("block1", 0.0), ("block2", 0.05), ("fc1", 1.0)):
        with torch.no_grad():
            h = model.forward_to(torch.rand(3, 1, 28, 28, generator=g), cut)
        out, fail = call_student(fn, model, cut, x.clone(), h, tv)
        if fail is not None:
            return fail
        got, fail = as_1d(out, 3, "your objective")
        if fail is not None:
            return fail
        with torch.no_grad():
            want = rmle_objective(model, cut, x, h, tv).double().numpy()
        if not np.allclose(got, want, rtol=1e-4, atol=1e-7):
            return CheckResult(False, f"At cut {cut!r} with tv_weight={tv}: expected {np.round(want, 5)}, got "
                                      f"{np.round(got, 5)}. Average the squared feature error over each image's "
                                      "representation, then add tv_weight * TV.")
    return CheckResult(True, "the objective matches at block1, block2 and fc1, with and without the TV prior.")


def check_safest_cut(ssim_by_cut: dict) -> CheckResult:
    """Chapter 04: ``{cut: mean SSIM of the white-box attack}`` for LeNet-5's five cuts, as measured."""
    cuts = ["block1", "block2", "fc1", "fc2", "logits"]
    if not isinstance(ssim_by_cut, dict) or sorted(ssim_by_cut) != sorted(cuts):
        return CheckResult(False, f"Pass a dict with exactly the keys {cuts}.")
    try:
        vals = {k: float(v) for k, v in ssim_by_cut.items()}
    except (TypeError, ValueError):
        return CheckResult(False, "Every value must be a number (a mean SSIM).")
    if any(not -1 <= v <= 1 for v in vals.values()):
        return CheckResult(False, "SSIM lies in [-1, 1]; some of your values do not.")
    if max(vals, key=vals.get) != "block1":
        return CheckResult(False, f"The earliest cut should leak most, but {max(vals, key=vals.get)!r} has the "
                                  "highest SSIM: check which representation you inverted for each cut.")
    if vals["block1"] - min(vals.values()) < 0.2:
        return CheckResult(False, "The SSIMs barely differ between cuts: did the attack run long enough?")
    safest = min(vals, key=vals.get)
    return CheckResult(True, f"block1 leaks most (SSIM {vals['block1']:.2f}); {safest} least ({vals[safest]:.2f}) "
                             "against this white-box attack.")


def check_noise_defence(model, sigma: float, images: torch.Tensor, labels: torch.Tensor,
                        cut: str = "block1") -> CheckResult:
    """Chapter 04: does adding Gaussian noise of std ``sigma`` to the representation after ``cut`` push the
    white-box attack's mean SSIM below 0.3? Reports what it costs in accuracy on ``(images, labels)``."""
    from ..attacks.features import invert
    from ..metrics import ssim as ssim_fn

    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        return CheckResult(False, "sigma must be a number.")
    if sigma < 0:
        return CheckResult(False, "sigma is a standard deviation and cannot be negative.")
    g = torch.Generator().manual_seed(0)
    victims = images[:8]
    with torch.no_grad():
        h = model.forward_to(victims, cut)
        noisy = h + sigma * torch.randn(h.shape, generator=g)
    rec = invert(model, cut, noisy, steps=200, lr=0.05, tv_weight=0.01, progress=False)
    s = float(ssim_fn(victims, rec).mean())
    with torch.no_grad():
        hh = model.forward_to(images, cut)
        logits = model.forward_from(hh + sigma * torch.randn(hh.shape, generator=g), cut)
        clean = model.forward_from(hh, cut)
    acc = float((logits.argmax(1) == labels).float().mean())
    acc0 = float((clean.argmax(1) == labels).float().mean())
    if s >= 0.3:
        return CheckResult(False, f"With sigma = {sigma:g} the attack still reaches SSIM {s:.2f} (>= 0.3); add more noise.")
    return CheckResult(True, f"sigma = {sigma:g}: attack SSIM {s:.2f} < 0.3, at an accuracy of {acc:.3f} "
                             f"(without noise {acc0:.3f}). Is that a price worth paying?")
