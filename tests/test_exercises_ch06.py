"""Chapter 06 checkers: right answers pass, plausible wrong answers are rejected."""
import torch

from mixcon_lite import exercises
from mixcon_lite.attacks.gradients import final_linear, idlg_label, prune_gradients


def test_check_idlg_label():
    assert exercises.check_idlg_label(idlg_label)

    def by_bias(model, grads):                       # the bias gradient gives the label too
        _, i = final_linear(model)
        return int(torch.argmin(grads[i + 1]))
    assert exercises.check_idlg_label(by_bias)

    def wrong_sign(model, grads):
        _, i = final_linear(model)
        return int(torch.argmax(grads[i].sum(1)))
    verdict = exercises.check_idlg_label(wrong_sign)
    assert not verdict and "largest" in verdict.message
    assert not exercises.check_idlg_label(lambda m, g: int(torch.argmin(g[0].sum((1, 2, 3)))))

    def largest_magnitude(model, grads):           # right on most networks, tied on a confident one
        _, i = final_linear(model)
        return int(torch.argmax(grads[i].sum(1).abs()))
    verdict = exercises.check_idlg_label(largest_magnitude)
    assert not verdict and "confident in a wrong class" in verdict.message
    assert not exercises.check_idlg_label(lambda m, g: "seven")
    assert not exercises.check_idlg_label(lambda m, g: 1 / 0)


def test_check_cosine_distance():
    def right(a, b):
        fa, fb = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
        return float(1 - fa @ fb / (fa.norm() * fb.norm()))
    assert exercises.check_cosine_distance(right)

    def per_layer(a, b):
        return float(sum(1 - (x.flatten() @ y.flatten()) / (x.norm() * y.norm()) for x, y in zip(a, b)) / len(a))
    verdict = exercises.check_cosine_distance(per_layer)
    assert not verdict and "per-layer" in verdict.message

    def l2(a, b):
        return float(sum(((x - y) ** 2).sum() for x, y in zip(a, b)))
    assert not exercises.check_cosine_distance(l2)


def test_check_pruning_defence():
    assert exercises.check_pruning_defence(prune_gradients, 0.6)
    verdict = exercises.check_pruning_defence(prune_gradients, 0.4)
    assert not verdict and "prune more" in verdict.message
    verdict = exercises.check_pruning_defence(prune_gradients, 0.8)     # stops DLG, but not the smallest
    assert not verdict and "smallest fraction" in verdict.message

    def largest_first(grads, fraction):               # prunes the wrong end
        out = []
        for g in grads:
            k = round(fraction * g.numel())
            flat = g.flatten().clone()
            flat[flat.abs().argsort(descending=True)[:k]] = 0
            out.append(flat.view(g.shape))
        return out
    verdict = exercises.check_pruning_defence(largest_first, 0.6)
    assert not verdict and "smallest" in verdict.message

    def global_threshold(grads, fraction):            # one threshold over all tensors together
        flat = torch.cat([g.flatten() for g in grads]).abs()
        t = flat.sort().values[round(fraction * flat.numel()) - 1]
        return [torch.where(g.abs() <= t, torch.zeros_like(g), g) for g in grads]
    verdict = exercises.check_pruning_defence(global_threshold, 0.6)
    assert not verdict and "global" in verdict.message
    assert not exercises.check_pruning_defence(prune_gradients, 1.5)
    assert not exercises.check_pruning_defence(prune_gradients, 0.5)   # not one of the choices
