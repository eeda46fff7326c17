import math

import pytest
import torch

from mixcon_lite import mixcon
from mixcon_lite.models import MLP
from mixcon_lite.train import train


def test_consistency_loss_hand_computed():
    # classes 0, 1: pairs (0, 1) and (2, 3); squared distances 25 and 1
    h = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 2.0]])
    y = torch.tensor([0, 1, 0, 1])
    lam, beta, eps = 0.1, 0.01, 0.05
    want = (lam * 25 + beta / 25.05) + (lam * 1 + beta / 1.05)
    assert mixcon.consistency_loss(h, y, lam, beta, eps).item() == pytest.approx(want, rel=1e-6)
    assert mixcon.consistency_loss(h, y, lam, beta, eps, reduction="mean").item() == pytest.approx(want / 2, rel=1e-6)
    assert mixcon.consistency_loss(h, y, 0.0, 0.0).item() == 0.0


def test_consistency_loss_three_classes_and_shapes():
    # k-th of each class against the k-th of every other class; same-class pairs never enter
    h = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    y = torch.tensor([0, 1, 2, 0])                       # class 0 has two samples, the second is unpaired
    got = mixcon.consistency_loss(h, y, 1.0, 0.0)
    assert got.item() == pytest.approx(1 + 9 + 4)
    img = torch.zeros(4, 2, 3, 3)
    img[1] = 1.0
    assert mixcon.consistency_loss(img, torch.tensor([0, 1, 0, 1]), 1.0, 0.0).item() == pytest.approx(18.0)


def test_gradients_pull_and_push():
    y = torch.tensor([0, 1])
    far = torch.tensor([[0.0], [2.0]], requires_grad=True)
    mixcon.consistency_loss(far, y, 1.0, 0.0).backward()
    assert far.grad[0] < 0 < far.grad[1]                 # descending moves them together
    near = torch.tensor([[0.0], [0.01]], requires_grad=True)
    mixcon.consistency_loss(near, y, 0.0, 1.0).backward()
    assert near.grad[0] > 0 > near.grad[1]               # descending moves them apart


def test_optimal_pair_distance_minimises_penalty():
    lam, beta, eps = 0.1, 0.01, 0.05
    d_star = mixcon.optimal_pair_distance(lam, beta, eps)
    d = torch.linspace(0, 2, 20001)
    pen = lam * d + beta / (d + eps)
    assert d[pen.argmin()].item() == pytest.approx(d_star, abs=1e-3)
    assert d_star == pytest.approx(math.sqrt(0.1) - 0.05)
    assert mixcon.optimal_pair_distance(1.0, 0.0) == 0.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(h=torch.zeros(4), labels=torch.zeros(4)), r"\[B, \.\.\.\]"),
    (dict(h=torch.zeros(4, 2), labels=torch.zeros(3)), "shape \\[4\\]"),
    (dict(h=torch.zeros(4, 2), labels=torch.zeros(4, dtype=torch.long)), "two classes"),
    (dict(h=torch.zeros(2, 2), labels=torch.tensor([0, 1]), lam=-1.0), "lam and beta"),
    (dict(h=torch.zeros(2, 2), labels=torch.tensor([0, 1]), eps=0.0), "eps"),
    (dict(h=torch.zeros(2, 2), labels=torch.tensor([0, 1]), reduction="max"), "reduction"),
])
def test_consistency_loss_bad_input(kwargs, match):
    args = dict(lam=0.1, beta=0.01)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mixcon.consistency_loss(**args)


def test_mixcon_training_pulls_classes_together():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 4, generator=g) + 2.0 * (2 * y[:, None] - 1)
    gaps = {}
    for lam in (0.0, 0.5):
        torch.manual_seed(0)
        net = MLP(4, [16, 8], 2)
        fn = mixcon.mixcon_loss_fn("fc2", lam, 0.01)
        assert fn.cut == "fc2" and fn.lam == lam
        train(net, (x, y), epochs=5, lr=0.05, batch_size=20, loss_fn=fn, progress=False)
        with torch.no_grad():
            h = net.forward_to(x, "fc2")
        gaps[lam] = (h[y == 0].mean(0) - h[y == 1].mean(0)).norm().item()
    assert gaps[0.5] < 0.5 * gaps[0.0]
    with pytest.raises(ValueError, match="lam and beta"):
        mixcon.mixcon_loss_fn("fc2", 0.1, -1.0)
