"""Checkers for chapter 01 (Data separability): ``check_delta``, ``check_linear_delta_bound``, ``check_unfittable``."""
from __future__ import annotations

import math

import torch

from .core import CheckResult, call_student


def check_delta(fn) -> CheckResult:
    """Chapter 01: ``fn(h)`` for ``h`` ``[N, d]`` must return δ, the smallest Euclidean distance between
    two distinct rows, as a number (0 for duplicate rows)."""
    from ..separability import min_pairwise_distance as delta

    g = torch.Generator().manual_seed(11)
    dup = torch.randn(12, 3, generator=g)
    dup[7] = dup[2]
    cases = [torch.randn(30, 4, generator=g), torch.randn(2, 5, generator=g) * 3, dup,
             torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])]
    for h in cases:
        out, fail = call_student(fn, h.clone())
        if fail is not None:
            return fail
        try:
            got = float(out)
        except (TypeError, ValueError):
            return CheckResult(False, f"Return one number (a float), got {type(out).__name__} of shape "
                                      f"{getattr(out, 'shape', '?')}.")
        want = delta(h)
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
            hint = " (0 is the distance of a row to itself: skip i == j)" if got == 0 and want > 0 else ""
            if math.isclose(got, want ** 2, rel_tol=1e-4):
                hint = " (that is the squared distance: take the square root)"
            return CheckResult(False, f"For {tuple(h.shape)} points expected δ = {want:.5f}, got {got:.5f}{hint}.")
    return CheckResult(True, "δ matches on random points, a 2-point set, duplicates (δ = 0) and a collinear set.")


def check_linear_delta_bound(weight, x, predicted) -> CheckResult:
    """Chapter 01: ``predicted`` should be the Lipschitz upper bound on δ after ``h = x @ weight.T``,
    i.e. ``||weight||_2 * δ(x)`` (largest singular value times the input's δ)."""
    from ..separability import min_pairwise_distance as delta

    try:
        w = torch.as_tensor(weight, dtype=torch.float64)
        xs = torch.as_tensor(x, dtype=torch.float64)
        p = float(predicted)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the weight matrix, the inputs and your predicted bound (a number).")
    bound = torch.linalg.matrix_norm(w, ord=2).item() * delta(xs)
    measured = delta(xs @ w.T)
    if not math.isclose(p, bound, rel_tol=1e-3):
        return CheckResult(False, f"Expected ||W||_2 * δ(x) = {bound:.4f}, got {p:.4f}. Use the largest singular "
                                  "value (torch.linalg.matrix_norm(W, ord=2)), not the Frobenius norm.")
    return CheckResult(True, f"bound {bound:.4f} >= measured δ after the layer {measured:.4f}: a layer can "
                             "shrink the gap, by at most its Lipschitz constant; it never grows it beyond that.")


def check_unfittable(x, y) -> CheckResult:
    """Chapter 01: a labelled set ``(x [N, d], y [N])`` that no network can fit: δ = 0 with the two
    identical points carrying different labels."""
    try:
        xs = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
        ys = torch.as_tensor(y).reshape(-1)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass a tensor x [N, d] and labels y [N].")
    if len(xs) != len(ys) or len(xs) < 2:
        return CheckResult(False, f"Need N >= 2 points with one label each, got {len(xs)} points and {len(ys)} labels.")
    same = torch.cdist(xs, xs) == 0
    conflict = same & (ys[:, None] != ys[None, :])
    if not conflict.any():
        if same.sum() > len(xs):
            return CheckResult(False, "There are duplicate points, but they share a label, so a network can fit them.")
        return CheckResult(False, "All points are distinct (δ > 0): a wide enough network can fit any labels.")
    i, j = torch.nonzero(conflict)[0].tolist()
    return CheckResult(True, f"points {i} and {j} coincide with labels {int(ys[i])} and {int(ys[j])}: δ = 0, "
                             "so any function gives them the same output and 100% training accuracy is impossible.")
