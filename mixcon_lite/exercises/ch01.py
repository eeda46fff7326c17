"""Checkers for chapter 01 (Data separability): ``check_delta``, ``check_linear_delta_bound``, ``check_unfittable``."""
from __future__ import annotations

import math

import torch

from .core import CheckResult, as_number, call_student


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
        got, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        want = delta(h)
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
            hint = " (0 is the distance of a row to itself: skip i == j)" if got == 0 and want > 0 else ""
            if math.isclose(got, want ** 2, rel_tol=1e-4):
                hint = " (that is the squared distance: take the square root)"
            return CheckResult(False, f"For {tuple(h.shape)} points expected δ = {want:.5f}, got {got:.5f}{hint}.")
    return CheckResult(True, "δ matches on random points, a 2-point set, duplicates (δ = 0) and a collinear set.")


def _bound_cases(weight=None, x=None):
    """(name, W, x) cases for :func:`check_linear_delta_bound`: the student's own layer, a random
    one, two where the spectral bound is attained exactly, one where δ after the layer is 0 though
    the closest inputs stay apart, and a huge-scale one."""
    g = torch.Generator().manual_seed(5)
    cases = []
    if weight is not None and x is not None:
        cases.append(("your W and x", torch.as_tensor(weight, dtype=torch.float64).detach(),
                      torch.as_tensor(x, dtype=torch.float64).detach().reshape(len(x), -1)))
    w_rand, x_rand = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(30, 4, generator=g,
                                                                                      dtype=torch.float64)
    cases.append(("a random 5x4 W", w_rand, x_rand))
    for norm in (3.0, 0.5):  # an expanding and a contracting layer
        w = torch.randn(6, 6, generator=g, dtype=torch.float64)
        w *= norm / torch.linalg.matrix_norm(w, ord=2)
        top = torch.linalg.svd(w).Vh[0]               # the direction W stretches most
        pts = torch.randn(12, 6, generator=g, dtype=torch.float64) * 10   # far apart ...
        pts[1] = pts[0] + 0.01 * top                  # ... except one pair, 0.01 apart along it
        cases.append((f"a {norm:g}-Lipschitz W where the bound is attained", w, pts))
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)     # W has a null space
    vh = torch.linalg.svd(w).Vh
    pts = torch.randn(12, 4, generator=g, dtype=torch.float64) * 10
    pts[1] = pts[0] + 0.01 * vh[0]                    # the closest inputs ...
    pts[3] = pts[2] + vh[-1]                          # ... but this pair collapses to one point
    cases.append(("a W that maps two inputs to one point", w, pts))
    cases.append(("a random W with inputs scaled by 1e6", w_rand, x_rand * 1e6))
    return cases


def check_linear_delta_bound(bound_fn, weight=None, x=None) -> CheckResult:
    r"""Chapter 01: ``bound_fn(W, x)`` must return an upper bound on δ of the rows of ``x @ W.T``
    (a linear layer; a bias cancels in differences) computed from ``W`` and ``x`` without measuring
    δ after the layer, e.g. :math:`\lVert W\rVert_2\,\delta(x)`.

    Why it holds: if :math:`(a, b)` is the closest pair of inputs, :math:`\delta_{\rm out} \le
    \lVert W(x_a - x_b)\rVert_2 \le \lVert W\rVert_2\,\delta(x)`. Any bound implied by a correct
    argument passes (also looser ones such as the Frobenius norm :math:`\lVert W\rVert_F\,\delta(x)`
    or the closest input pair's own image :math:`\lVert W(x_a-x_b)\rVert_2`); a bound that is
    violated on some case fails. The cases include ``(weight, x)`` when given (the chapter's ``fc2``
    weight and ``fc1`` representations), layers where :math:`\lVert W\rVert_2\,\delta(x)` is attained
    exactly (so δ(x) alone, the smallest singular value or :math:`\lVert W\rVert_2^2\delta(x)` fail),
    a layer that maps two inputs to one point while the closest inputs stay apart (so δ measured
    after the layer is recognised as a measurement, not a prediction) and inputs scaled by 10⁶ (so
    a fixed number fails).
    """
    from ..separability import min_pairwise_distance as delta

    try:
        cases = _bound_cases(weight, x)
    except (TypeError, ValueError, RuntimeError):
        return CheckResult(False, "Pass your function, then the weight matrix W [out, in] and the inputs x [N, in].")
    report = None
    for name, w, xs in cases:
        if xs.ndim != 2 or xs.shape[1] != w.shape[1] or len(xs) < 2:
            return CheckResult(False, f"{name}: x must be [N, {w.shape[1]}] with N >= 2 to go through W "
                                      f"{tuple(w.shape)}; got {tuple(xs.shape)}.")
        out, fail = call_student(bound_fn, w.clone(), xs.clone())
        if fail is not None:
            return fail
        b, fail = as_number(out, "delta_bound")
        if fail is not None:
            return fail
        measured = delta(xs @ w.T)
        spectral = torch.linalg.matrix_norm(w, ord=2).item() * delta(xs)
        if not math.isfinite(b):
            return CheckResult(False, f"{name}: your bound is {b}; return a finite number.")
        if b < measured * (1 - 1e-6):
            return CheckResult(False, f"{name}: your bound {b:.6g} is below the measured δ after the layer "
                                      f"{measured:.6g}, so it is not an upper bound. Which pair of inputs do you "
                                      "know is at distance δ(x), and how far can W stretch their difference?")
        d_in, (a, c) = delta(xs, return_pair=True)
        pair_image = (w @ (xs[a] - xs[c])).norm().item()
        if math.isclose(b, measured, rel_tol=1e-9) and pair_image > measured * (1 + 1e-6):
            return CheckResult(False, f"{name}: your value equals δ measured after the layer ({measured:.6g}). "
                                      "That is a measurement; predict a bound from δ(x) and W instead.")
        if report is None:
            report = (name, b, measured, spectral)
    name, b, measured, spectral = report
    looser = "" if b <= spectral * (1 + 1e-6) else (
        f" Valid but looser than ||W||_2 δ(x) = {spectral:.4g}, the best bound that uses only ||W||_2 and δ(x) "
        "(it is attained in two of the test cases).")
    return CheckResult(True, f"valid on all {len(cases)} cases. On {name}: bound {b:.4g} >= measured δ after "
                             f"the layer {measured:.4g} (ratio {b / measured:.2f}). A layer can stretch δ by at "
                             "most its Lipschitz constant ||W||_2, but it can shrink δ without limit (to 0 when "
                             f"two inputs differ along W's null space).{looser}")


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
    same = (xs[:, None, :] == xs[None, :, :]).all(-1)   # exact duplicates (cdist rounds)
    conflict = same & (ys[:, None] != ys[None, :])
    if not conflict.any():
        if same.sum() > len(xs):
            return CheckResult(False, "There are duplicate points, but they share a label, so a network can fit them.")
        return CheckResult(False, "All points are distinct (δ > 0): a wide enough network can fit any labels.")
    i, j = torch.nonzero(conflict)[0].tolist()
    return CheckResult(True, f"points {i} and {j} coincide with labels {int(ys[i])} and {int(ys[j])}: δ = 0, "
                             "so any function gives them the same output and 100% training accuracy is impossible.")
