"""Checkers for chapter 03 (MixCon on synthetic data): ``check_consistency_loss``,
``check_optimal_distance``, ``check_collapse``. Each recomputes from the student's function or
models; none trusts a typed-in number."""
from __future__ import annotations

import math

import torch

from .core import CheckResult, as_number, call_student


def _loss_cases():
    """Batches that tell the plausible variants apart: two and three classes, uneven class sizes,
    image-shaped h, and pairs both nearer than sqrt(beta / lam) and farther."""
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(8, 3, generator=g), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), 0.1, 0.01, 0.05),
            (torch.randn(9, 2, generator=g), torch.tensor([0, 1, 2, 2, 1, 0, 0, 0, 1]), 0.5, 0.2, 0.1),
            (torch.randn(6, 2, 2, generator=g), torch.tensor([1, 1, 0, 0, 1, 0]), 1.0, 0.0, 0.05),
            (0.2 * torch.randn(6, 4, generator=g), torch.tensor([0, 1, 1, 0, 1, 0]), 0.3, 0.05, 0.02)]


def _variants(h, y, lam, beta, eps):
    """What plausible wrong answers return, by name (for hints)."""
    from ..mixcon import consistency_loss
    from ..separability import mixcon_pairs

    flat = h.reshape(len(h), -1)
    pairs = mixcon_pairs(y)
    d = (flat[pairs[:, 0]] - flat[pairs[:, 1]]).norm(dim=1)
    cross = torch.cdist(flat, flat)[(y[:, None] != y[None, :]).triu(1)]
    return {
        "a mean over pairs, where Eq. (1) sums them":
            consistency_loss(h, y, lam, beta, eps, reduction="mean").item(),
        "the Euclidean distance where L_c penalises the squared distance":
            (lam * d + beta / (d + eps)).sum().item(),
        "every cross-class pair, where S pairs only the k-th sample of one class with the k-th "
        "of another": (lam * cross ** 2 + beta / (cross ** 2 + eps)).sum().item(),
        "the normalised reading lam (d + beta / d), where the exercise asks for the raw one":
            consistency_loss(h, y, lam, beta, min(eps, 0.5), form="normalised").item(),
    }


def check_consistency_loss(fn) -> CheckResult:
    """Chapter 03: ``fn(h, labels, lam, beta, eps)`` must return MixCon's L_c in the raw reading:
    the sum over MixCon's pairs S (k-th sample of a class with the k-th of every other class) of
    ``lam d + beta / (d + eps)``, with ``d`` the squared Euclidean distance of the pair's
    representations (flattened). Compared with :func:`mixcon_lite.mixcon.consistency_loss` on four
    batches; the message names the plausible mistake the answer matches."""
    from ..mixcon import consistency_loss

    for h, y, lam, beta, eps in _loss_cases():
        out, fail = call_student(fn, h.clone(), y.clone(), lam, beta, eps)
        if fail is not None:
            return fail
        got, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        want = consistency_loss(h, y, lam, beta, eps).item()
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-7):
            hint = next((f" It matches {name}." for name, value in _variants(h, y, lam, beta, eps).items()
                         if math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-7)), "")
            return CheckResult(False, f"With {len(torch.unique(y))} classes, h of shape {tuple(h.shape)}, "
                                      f"lam={lam}, beta={beta}, eps={eps}: expected {want:.6f}, got "
                                      f"{got:.6f}.{hint}")
    return CheckResult(True, "L_c matches on two and three classes, uneven class sizes and image-shaped h.")


# (lam, beta, eps): lam != 1 and sqrt(beta / lam) well above eps, so the wrong formulas differ
_DSTAR_CASES = [(0.1, 0.01, 0.05), (0.5, 0.2, 0.1), (2.0, 0.5, 0.01), (0.3, 0.012, 0.02)]


def check_optimal_distance(fn) -> CheckResult:
    """Chapter 03: ``fn(lam, beta, eps)`` must return the distance ``d*`` (a squared distance, as
    the raw L_c measures it) at which one pair's penalty ``lam d + beta / (d + eps)`` is smallest.
    Checked on four ``(lam, beta, eps)`` against a brute-force minimisation of the penalty."""
    from ..mixcon import pair_penalty

    d_grid = torch.linspace(0, 3, 300001, dtype=torch.float64)
    for lam, beta, eps in _DSTAR_CASES:
        out, fail = call_student(fn, lam, beta, eps)
        if fail is not None:
            return fail
        got, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        want = d_grid[pair_penalty(d_grid, lam, beta, eps, form="raw").argmin()].item()
        if not math.isclose(got, want, rel_tol=2e-3, abs_tol=1e-4):
            hint = ""
            if math.isclose(got ** 2, want, rel_tol=2e-3):
                hint = (" It looks like the Euclidean distance sqrt(d*); d is the squared distance the "
                        "loss penalises.")
            elif math.isclose(got, (beta / lam) ** 0.5, rel_tol=2e-3):
                hint = " It looks like eps was left out: the denominator is d + eps."
            elif math.isclose(got, beta ** 0.5, rel_tol=2e-3):
                hint = " sqrt(beta) is the minimiser of the normalised reading lam (d + beta / d)."
            return CheckResult(False, f"For lam={lam}, beta={beta}, eps={eps}: the penalty is smallest at "
                                      f"d* = {want:.4f}, you returned {got:.4f}. Set the derivative to "
                                      f"zero.{hint}")
    return CheckResult(True, "d* matches the minimiser of one pair's penalty for four (lam, beta, eps): "
                             "pairs closer than d* are pushed apart, farther ones pulled in.")


def _median_cases():
    """Point sets with an odd number of pairs (so every median convention agrees), one with
    duplicate points."""
    g = torch.Generator().manual_seed(5)
    return [torch.randn(7, 2, generator=g), torch.randn(10, 3, generator=g),
            torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])]


def check_collapse(median_distance, model_vanilla, model_beta0) -> CheckResult:
    """Chapter 03: ``median_distance(h)`` must return the median Euclidean distance over the pairs
    ``i < j`` of the rows of ``h``; ``model_vanilla`` and ``model_beta0`` are the chapter's trained
    vanilla and MixCon(0.1, 0) networks (``MLP(10, [100, 2, 100], 2)``, cut ``fc2``).

    The checker tests the function on three small ``h``, then recomputes, on the chapter's test
    set, each network's accuracy and the median distance of its ``fc2`` representations: the
    vanilla net must have learnt the task and the beta = 0 net must be at chance with its
    representations collapsed (median below a tenth of vanilla's)."""
    from ..data import two_gaussians
    from ..models import SplitNet
    from ..train import evaluate

    for h in _median_cases():
        out, fail = call_student(median_distance, h.clone())
        if fail is not None:
            return fail
        got, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        n = len(h)
        dist = torch.cdist(h.double(), h.double())
        want = dist[torch.triu(torch.ones(n, n, dtype=torch.bool), 1)].median().item()
        if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7):
            hint = ""
            if math.isclose(got, dist.flatten().median().item(), rel_tol=1e-5, abs_tol=1e-7):
                hint = " It matches the median over the whole N x N matrix, zeros on the diagonal included."
            elif math.isclose(got, (dist ** 2)[torch.triu(torch.ones(n, n, dtype=torch.bool), 1)]
                              .median().item(), rel_tol=1e-5):
                hint = " It matches the median of squared distances."
            return CheckResult(False, f"median_distance on {n} points: expected {want:.5f}, got {got:.5f}."
                                      f"{hint}")
    for name, model in (("model_vanilla", model_vanilla), ("model_beta0", model_beta0)):
        if not isinstance(model, SplitNet) or "fc2" not in model.block_names:
            return CheckResult(False, f"{name} should be a trained MLP with a block 'fc2', got "
                                      f"{type(model).__name__}.")
    if model_vanilla is model_beta0:
        return CheckResult(False, "model_vanilla and model_beta0 are the same network; pass the two models.")
    _, _, x_te, y_te = two_gaussians(seed=0)
    stats = {}
    for name, model in (("vanilla", model_vanilla), ("beta0", model_beta0)):
        try:
            with torch.no_grad():
                h = model.forward_to(x_te, "fc2")
            acc = evaluate(model, x_te, y_te)["accuracy"]
        except Exception as err:  # a model of the wrong shape
            return CheckResult(False, f"Could not run the {name} model on the chapter's test set "
                                      f"([200, 10] inputs): {type(err).__name__}: {err}")
        spread, fail = as_number(median_distance(h), "median_distance")
        if fail is not None:
            return fail
        stats[name] = (acc, spread)
    (acc_v, sv), (acc_0, s0) = stats["vanilla"], stats["beta0"]
    if acc_v < 0.75:
        return CheckResult(False, f"model_vanilla has test accuracy {acc_v:.2f}: pass the trained vanilla "
                                  "network (or are the two swapped?).")
    if acc_0 > 0.6 or not s0 < 0.1 * sv:
        return CheckResult(False, f"model_beta0 has test accuracy {acc_0:.2f} and median fc2 distance "
                                  f"{s0:.3g} (vanilla: {sv:.3g}): that is not a collapsed network. Pass "
                                  "the one trained with lam = 0.1, beta = 0.")
    return CheckResult(True, f"recomputed on the test set: the median fc2 distance falls from {sv:.3g} "
                             f"(vanilla, accuracy {acc_v:.2f}) to {s0:.3g} (beta = 0, accuracy "
                             f"{acc_0:.2f}): with nothing pushing pairs apart the representations, and "
                             "the classes with them, become indistinguishable.")
