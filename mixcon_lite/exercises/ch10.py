"""Checkers for chapter 10 (Synthetic data from BN statistics): ``check_tv_l2``,
``check_class_statistics``, ``check_leaky_set``."""
from __future__ import annotations

import numpy as np
import torch

from .core import CheckResult, as_1d, call_student


def check_tv_l2(fn) -> CheckResult:
    """Chapter 10: ``fn(x)`` for images ``x`` ``[N, C, H, W]`` must return DeepInversion's TV-L2 prior per
    image ``[N]``: the L2 norms of the pixel differences in four directions (down, right and both
    diagonals), summed. Compared with :func:`mixcon_lite.synthesis.tv_l2` on random images."""
    from ..synthesis import tv_differences, tv_l2

    g = torch.Generator().manual_seed(0)
    for shape in ((3, 1, 6, 6), (2, 3, 5, 7)):
        x = torch.rand(shape, generator=g)
        out, fail = call_student(fn, x.clone())
        if fail is not None:
            return fail
        # DeepInversion's code: one norm per direction over the whole batch (a scalar)
        diffs = tv_differences(x)
        batch_level = float(sum(d.norm() for d in diffs))
        batch_hint = (" This is DeepInversion's batch-level form (one norm per direction over the whole "
                      "batch); here take the four norms per image and return one value per image [N].")
        try:
            flat = np.asarray(out.detach().double() if torch.is_tensor(out) else out, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            flat = None
        whole = flat is not None and flat.size and np.allclose(flat, batch_level, rtol=1e-4)
        per_n = flat is not None and flat.size and np.allclose(flat, batch_level / shape[0], rtol=1e-4)
        if whole or per_n:
            return CheckResult(False, f"Images {shape}: you returned {np.round(flat, 3)}, the whole batch's "
                                      f"TV-L2 ({batch_level:.3f}{'' if whole else ' / N'})." + batch_hint)
        val, fail = as_1d(out, shape[0], "your function")
        if fail is not None:
            return fail
        want = tv_l2(x).double().numpy()
        joint = torch.cat([d.flatten(1) for d in diffs], 1).norm(dim=1).double().numpy()
        if np.allclose(val, joint, rtol=1e-4):
            return CheckResult(False, f"Images {shape}: you took one L2 norm over the four directions' differences "
                                      "together; DeepInversion takes one norm per direction and adds the four.")
        if not np.allclose(val, want, rtol=1e-4):
            ratio = float(np.median(val / want))
            hint = (" Include the two diagonal directions too." if 0.4 < ratio < 0.6 else
                    " Take the L2 norm of each direction's differences (not their squared sum or mean)."
                    if ratio < 0.4 or ratio > 1.5 else "")
            return CheckResult(False, f"Images {shape}: expected {np.round(want, 3)}, got {np.round(val, 3)}.{hint}")
    return CheckResult(True, "your TV-L2 matches the course's per-image form of DeepInversion's prior: four "
                             "directions, one L2 norm each, per image.")


def check_class_statistics(fn) -> CheckResult:
    """Chapter 10: ``fn(h, y)`` for features ``h`` ``[N, C, H, W]`` and labels ``y`` ``[N]`` must return
    ``{class: (mean [C], variance [C])}``: per channel, over all of that class's samples *and* spatial
    positions, with the biased variance (divide by the count), as BatchNorm computes them."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(12, 4, 3, 3, generator=g) * torch.arange(1.0, 5.0)[None, :, None, None]
    y = torch.tensor([0, 1, 2] * 4)
    out, fail = call_student(fn, h.clone(), y.clone())
    if fail is not None:
        return fail
    if not isinstance(out, dict) or set(int(k) for k in out) != {0, 1, 2}:
        return CheckResult(False, f"Return a dict with one entry per class (0, 1, 2); got "
                                  f"{type(out).__name__}{'' if not isinstance(out, dict) else ' with keys ' + str(list(out))}.")
    for c in (0, 1, 2):
        try:
            mean, var = (torch.as_tensor(v, dtype=torch.float32) for v in out[c])
        except Exception:
            return CheckResult(False, f"out[{c}] should be a pair (mean, variance) of tensors [4].")
        hc = h[y == c]
        want_m, want_v = hc.mean((0, 2, 3)), hc.var((0, 2, 3), unbiased=False)
        if mean.shape != (4,) or var.shape != (4,):
            return CheckResult(False, f"Class {c}: mean and variance must have one value per channel, shape [4]; "
                                      f"got {tuple(mean.shape)} and {tuple(var.shape)}.")
        if not torch.allclose(mean, want_m, atol=1e-5):
            return CheckResult(False, f"Class {c}: channel means should be {want_m.numpy().round(3)}, got "
                                      f"{mean.numpy().round(3)}. Average over the class's samples and all "
                                      "spatial positions (dims 0, 2, 3).")
        if not torch.allclose(var, want_v, atol=1e-5):
            hint = (" Use the biased variance (unbiased=False), as BatchNorm does."
                    if torch.allclose(var, hc.var((0, 2, 3), unbiased=True), atol=1e-5) else "")
            return CheckResult(False, f"Class {c}: channel variances should be {want_v.numpy().round(3)}, got "
                                      f"{var.numpy().round(3)}.{hint}")
    return CheckResult(True, "per-class BatchNorm statistics: what the data owner records before synthesising.")


def check_leaky_set(fn, members: torch.Tensor, nonmembers: torch.Tensor) -> CheckResult:
    """Chapter 10: ``fn(members, nonmembers)`` must return at least 20 images ``[k, C, H, W]`` that the copy
    test flags (at least 90 % of them nearer a member than any non-member) although *none is a copy*: each
    is at pixel distance >= 2 from every member (real images here are about 4 to 10 apart). The point: the
    test detects images built from training images, not only exact copies. The share must also be
    beyond the copy test's permutation null (p < 0.01, 999 re-splits): noise or a flat image has one
    nearest neighbour for all its copies, so its share is 0 or 1 by luck of that one neighbour."""
    from ..synthesis import copy_test, nearest_neighbours

    out, fail = call_student(fn, members.clone(), nonmembers.clone())
    if fail is not None:
        return fail
    if not torch.is_tensor(out) or out.ndim != members.ndim or out.shape[1:] != members.shape[1:] or len(out) < 20:
        return CheckResult(False, f"Return a tensor of at least 20 images shaped like the members "
                                  f"[k, {', '.join(str(s) for s in members.shape[1:])}]; got "
                                  f"{tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}.")
    out = out.detach().float()
    _, dist = nearest_neighbours(out, members)
    if float(dist.min()) < 2.0:
        return CheckResult(False, f"Some images are (near-)copies of a member (nearest distance "
                                  f"{float(dist.min()):.2f} < 2): the exercise asks for images that are not copies.")
    ct = copy_test(out, members, nonmembers, permutations=999, seed=0)
    share = ct["closer_to_members"]
    if share < 0.9:
        return CheckResult(False, f"Only {share:.0%} of your images sit nearer a member than any non-member (need "
                                  "90 %); build them from members.")
    if ct["p_value"] >= 0.01:
        return CheckResult(False, f"{share:.0%} of your images sit nearer a member, but re-splitting members and "
                                  f"non-members at random gives a share that high just as often (permutation "
                                  f"p = {ct['p_value']:.2f}): your images share a few nearest neighbours (hubs), "
                                  "as noise or flat images do. Build each image from a different member.")
    return CheckResult(True, f"{share:.0%} of your images are flagged (permutation p = {ct['p_value']:.3f}) though "
                             "none is a copy: the test measures "
                             "closeness to the training set, so images built from members (noisy or blended) leak "
                             "although none is a near-duplicate.")
