"""Chapter 01 checkers: right answers pass, plausible wrong answers are rejected."""
import pytest
import torch

from mixcon_lite import exercises
from mixcon_lite.separability import min_pairwise_distance as delta


def test_check_delta():
    assert exercises.check_delta(delta)
    squared = exercises.check_delta(lambda h: delta(h) ** 2)
    assert not squared and "square root" in squared.message
    with_diagonal = exercises.check_delta(lambda h: torch.cdist(h, h).min().item())
    assert not with_diagonal and "i == j" in with_diagonal.message
    assert not exercises.check_delta(lambda h: torch.pdist(h).max().item())      # max, not min
    assert not exercises.check_delta(lambda h: torch.pdist(h).mean().item())     # mean
    assert not exercises.check_delta(lambda h: torch.zeros(3))                   # not a number
    assert not exercises.check_delta(lambda h: 1 / 0)


def spectral(W, x):
    return torch.linalg.matrix_norm(W, ord=2).item() * delta(x)


def closest_pair_image(W, x):
    _, (a, b) = delta(x, return_pair=True)
    return (W @ (x[a] - x[b])).norm().item()


@pytest.fixture
def layer():
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, generator=g), torch.randn(40, 5, generator=g)


@pytest.mark.parametrize("valid", [spectral, closest_pair_image,
                                   lambda W, x: W.norm().item() * delta(x),           # Frobenius: looser, valid
                                   lambda W, x: 2 * spectral(W, x)])
def test_check_linear_delta_bound_accepts_valid_bounds(layer, valid):
    W, x = layer
    verdict = exercises.check_linear_delta_bound(valid, W, x)
    assert verdict, verdict.message
    assert "||W||_2" in verdict.message and "shrink" in verdict.message


def test_check_linear_delta_bound_says_when_a_valid_bound_is_loose(layer):
    W, x = layer
    assert "looser" not in exercises.check_linear_delta_bound(spectral, W, x).message
    assert "looser" in exercises.check_linear_delta_bound(lambda W, x: W.norm().item() * delta(x), W, x).message


@pytest.mark.parametrize("wrong", [
    lambda W, x: delta(x),                                                  # "a layer never grows δ"
    lambda W, x: torch.linalg.svdvals(W)[-1].item() * delta(x),             # smallest singular value
    lambda W, x: torch.linalg.matrix_norm(W, ord=2).item() ** 2 * delta(x), # squared norm
    lambda W, x: torch.linalg.svdvals(W).mean().item() * delta(x),          # average stretch
    lambda W, x: 25.0,                                                      # a fixed number
    lambda W, x: delta(x @ W.T),                                            # measured, not predicted
    lambda W, x: float("inf"),
    lambda W, x: "big",
])
def test_check_linear_delta_bound_rejects_wrong_bounds(layer, wrong):
    W, x = layer
    assert not exercises.check_linear_delta_bound(wrong, W, x)


def test_check_linear_delta_bound_without_the_chapter_layer_and_bad_input(layer):
    assert exercises.check_linear_delta_bound(spectral)
    W, x = layer
    assert not exercises.check_linear_delta_bound(spectral, W, x[:, :3])        # x does not fit W
    assert not exercises.check_linear_delta_bound(lambda W, x: 1 / 0, W, x)


def test_check_unfittable():
    assert exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    same_label = exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([1, 1]))
    assert not same_label and "share a label" in same_label.message
    assert not exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 1]))
    near = torch.tensor([[0.3, 0.7], [0.3, 0.7 + 1e-7], [1.0, 0.0]], dtype=torch.float64)
    assert not exercises.check_unfittable(near, torch.tensor([0, 1, 0]))       # δ > 0: fittable
    x = torch.randn(200, 30, dtype=torch.float64)
    x[150] = x[3]                                                              # exact duplicate in a large set
    y = torch.zeros(200, dtype=torch.long)
    y[150] = 1
    assert exercises.check_unfittable(x, y)
    assert not exercises.check_unfittable(torch.zeros(3, 2), torch.tensor([0, 1]))   # lengths differ
