import pytest
import torch

from mixcon_lite.models import MLP, LeNet5, SplitNet
from mixcon_lite.train import evaluate, train

LENET_SHAPES = {"block1": (6, 14, 14), "block2": (16, 5, 5), "fc1": (120,), "fc2": (84,), "logits": (10,)}


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_lenet_cuts_compose(activation):
    torch.manual_seed(0)
    net = LeNet5(activation=activation).eval()
    x = torch.rand(3, 1, 28, 28)
    full = net(x)
    assert full.shape == (3, 10)
    for cut, shape in LENET_SHAPES.items():
        h = net.forward_to(x, cut)
        assert h.shape[1:] == shape and net.representation_shape(cut) == shape
        assert torch.allclose(net.forward_from(h, cut), full, atol=1e-6)
        h2, logits = net.forward_with(x, cut)
        assert torch.equal(h2, h) and torch.allclose(logits, full, atol=1e-6)


def test_lenet_colour_and_classes():
    net = LeNet5(in_channels=3, num_classes=5)
    assert net(torch.rand(2, 3, 28, 28)).shape == (2, 5)


def test_splitnet_errors():
    net = LeNet5()
    with pytest.raises(ValueError, match="Unknown cut 'conv9'.*block1"):
        net.forward_to(torch.rand(1, 1, 28, 28), "conv9")
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        net(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="gelu9")
    with pytest.raises(ValueError, match="num_classes"):
        LeNet5(num_classes=1)
    with pytest.raises(ValueError, match="at least one block"):
        SplitNet({}, (1,))


def test_mlp_blocks_and_bias():
    net = MLP(10, [100, 100, 100], 2)
    assert net.block_names == ["fc1", "fc2", "fc3", "logits"]
    x = torch.randn(4, 10)
    assert net.forward_to(x, "fc2").shape == (4, 100)
    assert net(x).shape == (4, 2)
    nobias = MLP(5, [7], 1, bias=False)
    assert all(p.ndim == 2 for p in nobias.parameters())
    with pytest.raises(ValueError, match="positive widths"):
        MLP(5, [], 2)
    with pytest.raises(ValueError, match="positive widths"):
        MLP(5, [3, 0], 2)


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) + 3.0 * (2 * y[:, None] - 1)
    return x, y


def test_train_learns_and_reports_history():
    torch.manual_seed(0)
    net = MLP(2, [16], 2)
    x, y = _blobs()
    hist = train(net, (x, y), epochs=5, lr=0.1, batch_size=20, eval_data=_blobs(seed=1), progress=False)
    assert set(hist) == {"loss", "train_accuracy", "eval_accuracy", "eval_loss"}
    assert len(hist["loss"]) == 5 and len(hist["eval_accuracy"]) == 5
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["train_accuracy"][-1] > 0.95 and hist["eval_accuracy"][-1] > 0.95
    assert not net.training


def test_train_is_seeded_and_uses_loss_fn():
    x, y = _blobs()
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        net = MLP(2, [8], 2)
        results.append(train(net, (x, y), epochs=2, seed=7, optimizer="adam", lr=0.01, progress=False)["loss"])
    assert results[0] == results[1]
    calls = []

    def loss_fn(model, xb, yb):
        calls.append(len(xb))
        return torch.nn.functional.cross_entropy(model(xb), yb) + 0.0 * model.forward_to(xb, "fc1").sum()

    train(MLP(2, [8], 2), (x, y), epochs=1, batch_size=64, loss_fn=loss_fn, progress=False)
    assert calls == [64, 64, 64, 8]


def test_train_bad_input():
    net = MLP(2, [4], 2)
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="epochs"):
        train(net, (x, y), epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        train(net, (x, y), optimizer="rmsprop9")
    with pytest.raises(ValueError, match="integer labels"):
        train(net, (x, y[:5]))
    with pytest.raises(ValueError, match="integer tensor"):
        train(net, (x, y.float()))
    with pytest.raises(ValueError, match="lr"):
        train(net, (x, y), lr=0)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(net, (x, y), loss_fn=lambda m, a, b: torch.tensor(float("nan"), requires_grad=True), progress=False)


def test_evaluate_accuracy_and_mode():
    net = MLP(2, [4], 2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.blocks["logits"].bias.copy_(torch.tensor([1.0, 0.0]))   # always predicts class 0
    net.train()
    x = torch.randn(10, 2)
    y = torch.tensor([0] * 7 + [1] * 3)
    res = evaluate(net, x, y, batch_size=3)
    assert res["accuracy"] == pytest.approx(0.7)
    expected = torch.nn.functional.cross_entropy(torch.tensor([[1.0, 0.0]]).repeat(10, 1), y).item()
    assert res["loss"] == pytest.approx(expected, rel=1e-6)
    assert net.training
