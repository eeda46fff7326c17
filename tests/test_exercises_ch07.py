"""Chapter 07 checkers: right answers pass, plausible wrong answers are rejected."""
import numpy as np
import torch

from mixcon_lite import exercises
from mixcon_lite.attacks.gradients import final_linear, restore_labels
from mixcon_lite.attacks.gradinversion import bn_statistic_loss


def test_check_restore_labels():
    assert exercises.check_restore_labels(restore_labels)

    def by_row_sum(model, grads, n):             # iDLG's rule stretched to a batch
        return torch.argsort(grads[final_linear(model)[1]].sum(1))[:n]

    verdict = exercises.check_restore_labels(by_row_sum)
    assert not verdict and "row *sums*" in verdict.message

    def descending(model, grads, n):             # the largest minima: the classes NOT in the batch
        return torch.argsort(grads[final_linear(model)[1]].min(1).values, descending=True)[:n]

    assert not exercises.check_restore_labels(descending)

    def by_absolute_minimum(model, grads, n):    # |min|: right on ReLU nets, wrong on sigmoid ones
        return torch.argsort(grads[final_linear(model)[1]].min(1).values.abs(), descending=True)[:n]

    verdict = exercises.check_restore_labels(by_absolute_minimum)
    assert not verdict and "sigmoid" in verdict.message
    assert not exercises.check_restore_labels(lambda m, g, n: torch.arange(n))
    assert not exercises.check_restore_labels(lambda m, g, n: 1 / 0)
    assert not exercises.check_restore_labels("not a function")


def test_check_repeat_accuracy():
    right = lambda b, k: k * (1 - (1 - 1 / k) ** b) / b  # noqa: E731
    verdict = exercises.check_repeat_accuracy(right)
    assert verdict and "measured" in verdict.message
    no_repeat = lambda b, k: float(np.prod([1 - i / k for i in range(b)]))  # noqa: E731
    verdict = exercises.check_repeat_accuracy(no_repeat)
    assert not verdict and "no repeated label" in verdict.message
    assert not exercises.check_repeat_accuracy(lambda b, k: (1 - 1 / k) ** (b - 1))   # P(a label is unique)
    assert not exercises.check_repeat_accuracy(lambda b, k: 1.0)
    assert not exercises.check_repeat_accuracy(lambda b, k: "high")


def test_check_bn_loss():
    assert exercises.check_bn_loss(bn_statistic_loss)

    def make(unbiased=False, squared=False, output=False, mutate=False, detach=False,
             detach_input=False):
        from mixcon_lite.attacks.gradinversion import bn_layers

        def fn(model, x):
            import copy

            probe = model if mutate else copy.deepcopy(model)   # a copy keeps the buffers
            layers = bn_layers(probe)
            saved = [(m.running_mean.clone(), m.running_var.clone()) for m in bn_layers(model)]
            stats = []
            if output:
                hooks = [m.register_forward_hook(lambda mod, i, o: stats.append(o)) for m in layers]
            else:
                hooks = [m.register_forward_pre_hook(lambda mod, i: stats.append(i[0])) for m in layers]
            probe(x.detach() if detach_input else x)
            for h in hooks:
                h.remove()
            total = 0
            for h, (rm, rv) in zip(stats, saved):
                dims = [0] + list(range(2, h.ndim))
                dm, dv = h.mean(dims) - rm, h.var(dims, unbiased=unbiased) - rv
                total = total + (dm.pow(2).sum() + dv.pow(2).sum() if squared else dm.norm() + dv.norm())
            return total.detach() if detach else total
        return fn

    assert exercises.check_bn_loss(make())
    for wrong in (dict(unbiased=True), dict(squared=True), dict(output=True), dict(detach=True),
                  dict(detach_input=True)):
        assert not exercises.check_bn_loss(make(**wrong)), wrong
    verdict = exercises.check_bn_loss(make(mutate=True))
    assert not verdict and "buffers" in verdict.message


def test_check_bn_loss_rejects_switching_to_eval_mode():
    """A plausible slip: call model.eval() so that the forward pass leaves the buffers alone. The
    statistics are then measured in the wrong mode (and the model left in it)."""
    def eval_mode(model, x):
        model.eval()
        return bn_statistic_loss(model, x)

    verdict = exercises.check_bn_loss(eval_mode)
    assert not verdict and "mode" in verdict.message

    def eval_then_restore(model, x):          # restores the mode, but measured in eval mode
        was = model.training
        model.eval()
        out = bn_statistic_loss(model, x)
        model.train(was)
        return out

    assert not exercises.check_bn_loss(eval_then_restore)
