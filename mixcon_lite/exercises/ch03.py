"""Checkers for chapter 03 (MixCon on synthetic data): ``check_consistency_loss``, ``check_optimal_distance``, ``check_collapse``."""
from __future__ import annotations

import math

import torch

from .core import CheckResult, call_student


def check_consistency_loss(fn) -> CheckResult:
    """Chapter 03: ``fn(h, labels, lam, beta, eps)`` must return MixCon's L_c: the sum over MixCon pairs
    (k-th sample of a class with the k-th of every other class) of ``lam d + beta / (d + eps)``, with ``d``
    the squared Euclidean distance of the pair's representations."""
    from ..mixcon import consistency_loss
    from ..separability import mixcon_pairs

    g = torch.Generator().manual_seed(3)
    cases = [(torch.randn(8, 3, generator=g), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), 0.1, 0.01, 0.05),
             (torch.randn(9, 2, generator=g), torch.tensor([0, 1, 2, 2, 1, 0, 0, 0, 1]), 0.5, 0.2, 0.1),
             (torch.randn(6, 2, 2, generator=g), torch.tensor([1, 1, 0, 0, 1, 0]), 1.0, 0.0, 0.05)]
    for h, y, lam, beta, eps in cases:
        out, fail = call_student(fn, h.clone(), y.clone(), lam, beta, eps)
        if fail is not None:
            return fail
        try:
            got = float(out)
        except (TypeError, ValueError):
            return CheckResult(False, f"Return a scalar (a 0-d tensor or float), got {type(out).__name__}.")
        want = consistency_loss(h, y, lam, beta, eps).item()
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-7):
            hint = ""
            if math.isclose(got * len(mixcon_pairs(y)), want, rel_tol=1e-4):
                hint = " It looks like a mean over pairs; Eq. (1) sums them."
            return CheckResult(False, f"With {len(torch.unique(y))} classes, lam={lam}, beta={beta}: expected "
                                      f"{want:.6f}, got {got:.6f}.{hint}")
    return CheckResult(True, "L_c matches on two and three classes, uneven class sizes and image-shaped h.")


def check_optimal_distance(lam: float, beta: float, eps: float, d) -> CheckResult:
    """Chapter 03: ``d`` should minimise one pair's penalty ``lam d + beta / (d + eps)`` over d >= 0."""
    from ..mixcon import optimal_pair_distance

    try:
        d = float(d)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass your minimiser d as a number.")
    want = optimal_pair_distance(lam, beta, eps)
    if not math.isclose(d, want, rel_tol=1e-3, abs_tol=1e-6):
        return CheckResult(False, f"Expected d* = sqrt(beta / lam) - eps = {want:.4f} (set the derivative "
                                  f"lam - beta / (d + eps)^2 to zero), got {d:.4f}.")
    return CheckResult(True, f"d* = {want:.4f}: pairs closer than this are pushed apart, farther ones pulled in.")


def check_collapse(spread_vanilla: float, spread_beta0: float) -> CheckResult:
    """Chapter 03: the median pairwise distance of the test representations at ``fc2`` for the vanilla and
    the β = 0 network (:func:`mixcon_lite.separability.pairwise_distances`)."""
    try:
        sv, s0 = float(spread_vanilla), float(spread_beta0)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the two median distances as numbers.")
    if sv < 0 or s0 < 0:
        return CheckResult(False, "A distance cannot be negative.")
    if sv == 0:
        return CheckResult(False, "The vanilla spread is 0: did you pass δ (the minimum) instead of the median?")
    if not s0 < 0.1 * sv:
        return CheckResult(False, f"β = 0 gave a median distance of {s0:.4g}, not far below vanilla's {sv:.4g}: did "
                                  "you take the fc2 representations of the β = 0 model?")
    return CheckResult(True, f"the median distance falls from {sv:.3g} (vanilla) to {s0:.3g} (β = 0): with nothing "
                             "pushing pairs apart, test samples, and the classes with them, become indistinguishable at fc2.")
