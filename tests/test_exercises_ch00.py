"""Chapter 00 checkers: right answers pass, plausible wrong answers are rejected."""
import pytest
import torch

from mixcon_lite import exercises
from mixcon_lite.attacks.features import total_variation
from mixcon_lite.metrics import psnr


def test_check_total_variation():
    assert exercises.check_total_variation(total_variation)
    summed = lambda x: (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(1) + (x[..., 1:] - x[..., :-1]).abs().flatten(1).sum(1)  # noqa: E731
    verdict = exercises.check_total_variation(summed)
    assert not verdict and "expected" in verdict.message
    only_h = lambda x: (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1)  # noqa: E731
    assert not exercises.check_total_variation(only_h)
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


@pytest.mark.parametrize("s1,s2,passed", [(0.8, 0.2, True), (0.2, 0.8, False), (0.5, 0.5, False),
                                          (3.0, 0.1, False), ("x", 0.1, False)])
def test_check_deeper_cut(s1, s2, passed):
    assert bool(exercises.check_deeper_cut(s1, s2)) is passed
