"""Chapter 00 checkers: right answers pass, plausible wrong answers are rejected."""
import math

import pytest
import torch

from mixcon_lite import exercises
from mixcon_lite.attacks.features import invert, total_variation
from mixcon_lite.metrics import psnr
from mixcon_lite.models import LeNet5


def test_check_total_variation():
    assert exercises.check_total_variation(total_variation)
    summed = lambda x: ((x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(1)  # noqa: E731
                        + (x[..., 1:] - x[..., :-1]).abs().flatten(1).sum(1))
    verdict = exercises.check_total_variation(summed)
    assert not verdict and "expected" in verdict.message
    only_h = lambda x: (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1)  # noqa: E731
    assert not exercises.check_total_variation(only_h)
    squared = lambda x: ((x[:, :, 1:] - x[:, :, :-1]).pow(2).flatten(1).mean(1)  # noqa: E731
                         + (x[..., 1:] - x[..., :-1]).pow(2).flatten(1).mean(1))
    assert not exercises.check_total_variation(squared)
    assert not exercises.check_total_variation(lambda x: total_variation(x).mean())   # one number per batch
    assert not exercises.check_total_variation(lambda x: x.sum())            # wrong shape
    raising = exercises.check_total_variation(lambda x: 1 / 0)
    assert not raising and "ZeroDivisionError" in raising.message
    assert not exercises.check_total_variation("not a function")


def test_check_psnr():
    assert exercises.check_psnr(lambda x, y: torch.from_numpy(psnr(x, y)))
    wrong = exercises.check_psnr(lambda x, y: 20 * torch.log10(1 / (x - y).pow(2).flatten(1).mean(1)))
    assert not wrong and "10 log10" in wrong.message
    finite = lambda x, y: 10 * torch.log10(1 / ((x - y).pow(2).flatten(1).mean(1) + 1e-12))  # noqa: E731
    assert not exercises.check_psnr(finite)
    range_255 = lambda x, y: 10 * torch.log10(255 ** 2 / (x - y).pow(2).flatten(1).mean(1))  # noqa: E731
    assert not exercises.check_psnr(range_255)
    batch_mse = lambda x, y: (10 * torch.log10(1 / (x - y).pow(2).mean())).repeat(len(x))  # noqa: E731
    verdict = exercises.check_psnr(batch_mse)
    assert not verdict and "whole batch" in verdict.message
    assert not exercises.check_psnr(lambda x, y: 10 * math.log10(1 / float((x - y).pow(2).mean())))


@pytest.fixture(scope="module")
def victim():
    """An untrained, seeded LeNet-5 and four smooth images (a disc and a bar of varying size)."""
    torch.manual_seed(0)
    model = LeNet5().eval()
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    images = []
    for k in range(4):
        disc = ((yy - 10 - 2 * k) ** 2 + (xx - 14) ** 2 < (5 + k) ** 2).float()
        bar = ((xx - 6 - 3 * k).abs() < 2).float() * 0.6
        images.append((0.8 * disc + bar).clamp(0, 1))
    return model, torch.stack(images)[:, None]


def attack(model, cut, images):
    with torch.no_grad():
        h = model.forward_to(images, cut)
    return invert(model, cut, h, steps=150, lr=0.05, tv_weight=0.01, progress=False)


def test_check_deeper_cut_runs_the_attack(victim):
    model, images = victim
    verdict = exercises.check_deeper_cut(attack, model, images)
    assert verdict, verdict.message
    assert "measured by running your attack" in verdict.message and "400 numbers" in verdict.message


def test_check_deeper_cut_rejects_wrong_attacks(victim):
    model, images = victim

    def ignores_cut(model, cut, images):          # always inverts block1
        return attack(model, "block1", images)

    verdict = exercises.check_deeper_cut(ignores_cut, model, images)
    assert not verdict and "cut" in verdict.message
    grey = exercises.check_deeper_cut(lambda m, c, x: torch.full_like(x, 0.5), model, images)
    assert not grey and "grey" in grey.message
    copies = exercises.check_deeper_cut(lambda m, c, x: x.clone(), model, images)   # returns the originals
    assert not copies
    assert not exercises.check_deeper_cut(lambda m, c, x: x[:, :, :14], model, images)   # wrong shape
    assert not exercises.check_deeper_cut(lambda m, c, x: x * 3, model, images)          # out of [0, 1]
    assert not exercises.check_deeper_cut(lambda m, c, x: 1 / 0, model, images)
    assert not exercises.check_deeper_cut(attack, "not a model", images)
    assert not exercises.check_deeper_cut(attack, model, images, shallow="block2", deep="block1")
    assert not exercises.check_deeper_cut(attack, model, images, deep="nope")
