"""Chapter 01 checkers: right answers pass, plausible wrong answers are rejected."""
import torch

from mixcon_lite import exercises


def test_check_delta():
    from mixcon_lite.separability import min_pairwise_distance as delta

    assert exercises.check_delta(delta)
    squared = exercises.check_delta(lambda h: delta(h) ** 2)
    assert not squared and "square root" in squared.message
    with_diagonal = exercises.check_delta(lambda h: torch.cdist(h, h).min().item())
    assert not with_diagonal and "i == j" in with_diagonal.message
    assert not exercises.check_delta(lambda h: torch.zeros(3))


def test_check_linear_delta_bound_and_unfittable():
    from mixcon_lite.separability import min_pairwise_distance as delta

    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(5, 4, generator=g), torch.randn(30, 4, generator=g)
    right = torch.linalg.matrix_norm(w, ord=2).item() * delta(x)
    assert exercises.check_linear_delta_bound(w, x, right)
    frob = exercises.check_linear_delta_bound(w, x, w.norm().item() * delta(x))
    assert not frob and "Frobenius" in frob.message
    assert exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    assert not exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([1, 1]))
    assert not exercises.check_unfittable(torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 1]))
