"""Checkers for chapter 07 (GradInversion): ``check_restore_labels``, ``check_repeat_accuracy``,
``check_bn_loss``."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .core import CheckResult, as_number, call_student


def _relu_mlp(seed: int, d: int, hidden: int, k: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, k))


def _as_labels(value, n: int, what: str):
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value).reshape(-1)
    except (TypeError, ValueError):
        return None, CheckResult(False, f"{what} should return class indices, got {type(value).__name__}.")
    if arr.shape != (n,) or not np.all(np.equal(np.mod(arr, 1), 0)):
        return None, CheckResult(False, f"{what} should return {n} integer class indices (one per image), got "
                                        f"shape {arr.shape}.")
    return sorted(int(v) for v in arr), None


def label_cases() -> list:
    """The checker's test cases for label restoration: ``(model, gradients, true labels, note)``.

    Fresh, seeded models: small ReLU MLPs with 10 classes (batches of 3 to 10 distinct labels; in
    four of the batches of 8, iDLG's row sum picks a wrong class), one with 20 classes and 2 images,
    two sigmoid MLPs with batches of 8 (where an absent class's row is positive rather than zero, so
    ranking rows by the *absolute* minimum fails), and a BatchNorm ConvNet in train mode (the
    chapter's client)."""
    from ..attacks.gradients import shared_gradients
    from ..models import BNConvNet

    cases = []
    for seed, b, k in [(0, 3, 10), (1, 8, 10), (9, 8, 10), (13, 8, 10), (18, 8, 10), (2, 10, 10), (3, 2, 20)]:
        model = _relu_mlp(seed, 12, 32, k)
        g = torch.Generator().manual_seed(1000 + seed)
        x, y = torch.rand(b, 12, generator=g) * 3, torch.randperm(k, generator=g)[:b]
        cases.append((model, shared_gradients(model, x, y), y, f"a ReLU MLP with {k} classes, batch {b} (seed {seed})"))
    for seed in (0, 1):    # sigmoid: an absent class's row is small and positive, not exactly 0
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(12, 32), nn.Sigmoid(), nn.Linear(32, 10))
        g = torch.Generator().manual_seed(2000 + seed)
        x, y = torch.rand(8, 12, generator=g) * 3, torch.randperm(10, generator=g)[:8]
        cases.append((model, shared_gradients(model, x, y), y, f"a sigmoid MLP with 10 classes, batch 8 (seed {seed})"))
    torch.manual_seed(7)
    conv = BNConvNet(channels=8).train()
    g = torch.Generator().manual_seed(8)
    x, y = torch.rand(8, 1, 28, 28, generator=g), torch.randperm(10, generator=g)[:8]
    cases.append((conv, shared_gradients(copy.deepcopy(conv), x, y), y, "a BatchNorm ConvNet, batch 8"))
    return cases


def check_restore_labels(fn) -> CheckResult:
    """Chapter 07: ``fn(model, gradients, n)`` must return the ``n`` distinct labels of a batch from its
    shared gradients (any order). Run on fresh random models and batches, including batches where the
    per-class *sum* of the last layer's weight gradient points at the wrong classes."""
    from ..attacks.gradients import final_linear

    cases = label_cases()
    for model, grads, y, note in cases:
        n = len(y)
        out, fail = call_student(fn, model, [g.clone() for g in grads], n)
        if fail is not None:
            return fail
        got, fail = _as_labels(out, n, "your function")
        if fail is not None:
            return fail
        want = sorted(y.tolist())
        if got != want:
            _, idx = final_linear(model)
            by_sum = sorted(torch.argsort(grads[idx].sum(1))[:n].tolist())
            hint = (" That is what sorting the row *sums* gives: one image's negative term is outweighed by the "
                    "other images' positive ones. Look at each row's most negative entry instead."
                    if got == by_sum else
                    " A class in the batch has a row with a clearly negative entry; a class not in the batch "
                    "has none.")
            return CheckResult(False, f"On {note}: expected labels {want}, got {got}.{hint}")
    return CheckResult(True, f"exact labels on all {len(cases)} fresh models and batches, including those "
                             "where the row sum fails.")


def expected_distinct_fraction(b: int, k: int) -> float:
    """Expected (number of distinct labels) / b for b labels drawn uniformly with replacement from k classes."""
    return k * (1 - (1 - 1 / k) ** b) / b


def check_repeat_accuracy(fn) -> CheckResult:
    """Chapter 07: ``fn(b, k)`` predicts the expected *multiset* label accuracy of :func:`restore_labels`
    when the ``b`` labels are drawn independently and uniformly from ``k`` classes (so they may repeat),
    assuming every class present in the batch is found. The checker compares with the exact expectation
    for several ``(b, k)`` and with a simulation of restore_labels on random networks."""
    from ..attacks.gradients import restore_labels, shared_gradients

    for b, k in [(2, 10), (5, 10), (8, 10), (10, 10), (3, 4), (20, 100), (1, 5)]:
        out, fail = call_student(fn, b, k)
        if fail is not None:
            return fail
        got, fail = as_number(out, f"fn({b}, {k}) (an expected accuracy)")
        if fail is not None:
            return fail
        want = expected_distinct_fraction(b, k)
        if not abs(got - want) <= 2e-3:
            no_repeat = float(np.prod([1 - i / k for i in range(b)]))
            hint = (" That is the chance that the batch has no repeated label at all (the chance of an exact "
                    "multiset), not the expected fraction of labels recovered." if abs(got - no_repeat) < 1e-6 else
                    " Count the expected number of distinct classes in the batch: each class is missing with "
                    "probability (1 - 1/k)^b.")
            return CheckResult(False, f"For b={b}, k={k}: expected {want:.4f}, got {got:.4f}.{hint}")
    # the prediction against restore_labels itself, on fresh random networks
    gen = torch.Generator().manual_seed(0)
    b, k, trials, acc = 8, 10, 40, []
    for t in range(trials):
        model = _relu_mlp(300 + t, 12, 48, k)
        x, y = torch.rand(b, 12, generator=gen) * 3, torch.randint(0, k, (b,), generator=gen)
        got = restore_labels(model, shared_gradients(model, x, y), b).tolist()
        hits = sum(min(got.count(c), y.tolist().count(c)) for c in set(got))
        acc.append(hits / b)
    measured, predicted = float(np.mean(acc)), float(fn(b, k))
    return CheckResult(True, f"your formula matches for all (b, k); on {trials} random networks with b={b}, k={k} "
                             f"restore_labels measured {measured:.3f} against your {predicted:.3f}.")


def check_bn_loss(fn) -> CheckResult:
    """Chapter 07: ``fn(model, x)`` must return the BN-statistic prior of the batch ``x``: the sum over
    BatchNorm layers of the Euclidean norms of (batch mean - running mean) and (batch variance -
    running variance) of each layer's input, as a scalar tensor that is differentiable in ``x``, leaving
    the model's buffers unchanged. Compared with hooks on random BatchNorm networks."""
    from ..attacks.gradinversion import bn_layers, bn_statistic_loss

    for seed, train_mode in ((0, True), (1, False), (2, True)):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(3 * 3 * 3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
        for m in bn_layers(model):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
        model.train(train_mode)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(10 + seed), requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        want = bn_statistic_loss(copy.deepcopy(model), x_ref)           # in the mode the model is in
        want_grad, = torch.autograd.grad(want, x_ref)
        out, fail = call_student(fn, model, x)
        if fail is not None:
            return fail
        if not torch.is_tensor(out) or out.numel() != 1:
            return CheckResult(False, f"Return one scalar tensor, got {type(out).__name__}"
                                      f"{tuple(out.shape) if torch.is_tensor(out) else ''}.")
        try:       # before the buffers are restored below, which would invalidate the graph
            got_grad = (torch.autograd.grad(out.reshape(()), x, allow_unused=True)[0]
                        if out.requires_grad else None)
        except RuntimeError:
            got_grad = None
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        if changed:
            return CheckResult(False, f"Your function changed the model's buffers ({changed[0]}, ...): a forward pass "
                                      "in train mode updates the running statistics. Run the forward pass on a copy "
                                      "of the model (copy.deepcopy): restoring the buffers in place afterwards would "
                                      "also break the gradient with respect to x.")
        if model.training != train_mode:
            return CheckResult(False, f"Your function left the model in {'train' if model.training else 'eval'} "
                                      f"mode; it was in {'train' if train_mode else 'eval'} mode. The prior must be "
                                      "measured in the mode the client used (BatchNorm in train mode normalises with "
                                      "the batch's statistics), and the model must come out unchanged: run a copy.")
        model.load_state_dict(before)
        if not torch.allclose(out.detach().reshape(()).double(), want.double(), rtol=1e-4, atol=1e-6):
            return CheckResult(False, f"With the model in {'train' if train_mode else 'eval'} mode: expected "
                                      f"{want.item():.5f}, got {out.detach().reshape(()).item():.5f}. Use the layer's "
                                      "*input* (a forward pre-hook), the biased variance (unbiased=False), every BN "
                                      "layer, and the plain (not squared) Euclidean norm.")
        if got_grad is None or not torch.allclose(got_grad, want_grad, rtol=1e-3, atol=1e-6):
            return CheckResult(False, "The value is right but its gradient does not reach x (or is not the prior's): "
                                      "the attack differentiates this prior with respect to the candidate images, so "
                                      "run the forward pass on x itself, not on x.detach(), do not detach the "
                                      "statistics, and do not modify the model's tensors in place after the forward "
                                      "pass (run a copy of the model instead).")
    return CheckResult(True, "matches the BN-statistic prior on random BatchNorm networks in train and eval mode, "
                             "and leaves the running statistics alone.")
