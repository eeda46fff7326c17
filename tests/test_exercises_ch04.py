"""Chapter 04 checkers: right answers pass, plausible wrong answers are rejected."""
import torch

from mixcon_lite import exercises


def test_chapter04_checkers():
    from mixcon_lite.attacks.features import rmle_objective, total_variation
    from mixcon_lite.models import LeNet5

    assert exercises.check_rmle_objective(rmle_objective)
    summed = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: (m.forward_to(x, c) - h).pow(2).flatten(1).sum(1) + tv * total_variation(x))
    assert not summed and "Average" in summed.message
    good = {"block1": 0.8, "block2": 0.3, "fc1": 0.1, "fc2": 0.05, "logits": 0.01}
    assert exercises.check_safest_cut(good)
    assert not exercises.check_safest_cut({**good, "block2": 0.9})
    assert not exercises.check_safest_cut({"block1": 0.8})
    torch.manual_seed(0)
    model = LeNet5().eval()
    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    assert exercises.check_noise_defence(model, 50.0, images, labels)
    assert not exercises.check_noise_defence(model, -1.0, images, labels)
