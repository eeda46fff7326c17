"""The KKT attack of chapter 08: residual on exact cases, the attack's contract, bad inputs, train_margin."""
import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from mixcon_lite.attacks.result import AttackResult
from mixcon_lite.attacks.weights import (homogeneous_weights, kkt_residual, match, per_sample_gradients,
                                         reconstruct)
from mixcon_lite.models import MLP
from mixcon_lite.train import train_margin


def exact_kkt_net(a=1.0, b=1.0):
    """Phi(x) = a relu(a x_1) - b relu(b x_2): with x_1 = e_1 (y=+1) and x_2 = e_2 (y=-1), the weights
    equal 1 * grad Phi(x_1) - 1 * grad Phi(x_2), so lambda = (1, 1) and the residual is 0."""
    net = MLP(2, [2], 1, bias=False)
    with torch.no_grad():
        net.blocks["fc1"][0].weight.copy_(torch.tensor([[a, 0.0], [0.0, b]]))
        net.blocks["logits"].weight.copy_(torch.tensor([[a, -b]]))
    return net, torch.eye(2), torch.tensor([1.0, -1.0])


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (2.0, 0.5)])
def test_kkt_residual_exact_case(a, b):
    net, x, y = exact_kkt_net(a, b)
    res, lam = kkt_residual(net, x, y)
    assert res < 1e-6
    assert np.allclose(lam, [1.0, 1.0], atol=1e-6)
    # the wrong labels cannot be explained with lambda >= 0
    res_wrong, lam_wrong = kkt_residual(net, x, -y)
    assert res_wrong > 0.99 and np.allclose(lam_wrong, 0.0)


def test_kkt_residual_matches_explicit_nnls():
    torch.manual_seed(0)
    net = MLP(5, [7, 6], 1, bias=False).double()
    x = torch.randn(9, 5, dtype=torch.float64)
    y = torch.tensor([1.0, -1, 1, -1, 1, 1, -1, -1, 1])
    res, lam = kkt_residual(net, x, y)
    grads = per_sample_gradients(net, x).numpy() * y.numpy()[:, None]
    theta = torch.cat([p.detach().flatten() for p in net.parameters()]).numpy()
    lam_ref, rnorm = nnls(grads.T, theta)
    assert res == pytest.approx(rnorm / np.linalg.norm(theta), rel=1e-6, abs=1e-9)
    assert np.allclose(grads.T @ lam, grads.T @ lam_ref, atol=1e-6)
    # Euler: <theta, grad Phi(x)> = L * Phi(x) for a network homogeneous of degree L = 3
    with torch.no_grad():
        out = net(x)[:, 0].numpy()
    assert np.allclose(grads @ theta, 3 * out * y.numpy())


def test_trained_net_is_closer_to_kkt_than_a_control():
    torch.manual_seed(0)
    x = torch.randn(12, 20)
    y = torch.where(x[:, 0] + 0.3 * x[:, 1] > 0, 1.0, -1.0)
    net = MLP(20, [20], 1, bias=False)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1)
    hist = train_margin(net, x, y, steps=400, lr=0.5, progress=False)
    assert hist["train_error"][-1] == 0 and hist["margin"][-1] > hist["margin"][len(hist["margin"]) // 2]
    res, lam = kkt_residual(net, x, y)
    res_control, _ = kkt_residual(net, torch.randn(12, 20), y)
    assert res < 0.5 * res_control
    assert lam.shape == (12,) and (lam >= 0).all()


@pytest.mark.parametrize("model,message", [
    (MLP(4, [3], 1, bias=True), "bias"),
    (MLP(4, [3], 1, bias=False, activation="tanh"), "Tanh"),
    (MLP(4, [3], 2, bias=False), "one output"),
    (torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.Linear(3, 1, bias=False)), "without a ReLU"),
])
def test_non_homogeneous_models_are_rejected(model, message):
    with pytest.raises(ValueError, match=message):
        homogeneous_weights(model)
    with pytest.raises(ValueError, match=message):
        kkt_residual(model, torch.randn(3, 4), torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=message):
        reconstruct(model, (4,), 4, 2)


def test_bad_labels_and_inputs():
    net, x, _ = exact_kkt_net()
    with pytest.raises(ValueError, match="±1"):
        kkt_residual(net, x, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="Expected 2 labels"):
        kkt_residual(net, x, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="2 entries"):
        kkt_residual(net, torch.randn(2, 3), torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="±1"):
        train_margin(net, x, torch.tensor([1.0, 0.0]), steps=2)
    with pytest.raises(ValueError, match="one output"):
        train_margin(MLP(2, [3], 2, bias=False), x, torch.tensor([1.0, -1.0]), steps=2)
    with pytest.raises(ValueError, match="input_shape"):
        reconstruct(net, (3,), 4, 2)
    with pytest.raises(ValueError, match="n_candidates"):
        reconstruct(net, (2,), 1, 2)
    with pytest.raises(ValueError, match="box"):
        reconstruct(net, (2,), 4, 2, box=(1, -1))


def test_reconstruct_recovers_the_exact_case():
    net, x, y = exact_kkt_net()
    out = reconstruct(net, (2,), n_candidates=2, steps=300, lr=0.05, lam_lr=0.05, lam_min=0.5,
                      relu_alpha=20.0, init_scale=0.1, box=(-3, 3), labels=torch.tensor([1.0, -1.0]),
                      progress=False)
    assert isinstance(out, AttackResult) and out.reconstruction.shape == (2, 2)
    assert out.history["residual"][-1] < 0.2 < 0.9 < out.history["residual"][0]
    # the +1 candidate points along e_1, the -1 candidate along e_2 (their scale trades off against lambda)
    cos = torch.nn.functional.cosine_similarity(out.reconstruction, x)
    assert (cos > 0.95).all(), cos
    assert out.labels.tolist() == [1, 0] and out.extras["lam"].shape == (2,)


def test_match_finds_the_right_candidate():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(3, 1, 12, 12, generator=g)
    cands = torch.cat([torch.rand(2, 1, 12, 12, generator=g), train[[2, 0, 1]]])
    s, idx = match(cands, train)
    assert np.allclose(s, 1.0) and idx.tolist() == [3, 4, 2]
    with pytest.raises(ValueError, match="same image shape"):
        match(cands[:, :, :11], train)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        match(cands.flatten(1), train)


def test_per_pixel_box():
    net, _, _ = exact_kkt_net()
    out = reconstruct(net, (2,), 2, 5, box=(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 2.0])),
                      progress=False)
    assert out.reconstruction.shape == (2, 2)
    with pytest.raises(ValueError, match="two numbers or two tensors"):
        reconstruct(net, (2,), 2, 5, box=(torch.zeros(3), torch.ones(3)))
    with pytest.raises(ValueError, match="lo < hi everywhere"):
        reconstruct(net, (2,), 2, 5, box=(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])))


def test_first_layer_bias_is_homogeneous_and_supported():
    torch.manual_seed(0)
    net = MLP(5, [6, 4], 1, bias="first")
    x = torch.randn(7, 5)
    lin = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    w = homogeneous_weights(net)
    assert w[0].shape == (6, 6) and torch.equal(w[0][:, -1], lin[0].bias)
    with torch.no_grad():   # homogeneous of degree 3 in (W1, b1, W2, W3)
        scaled = MLP(5, [6, 4], 1, bias="first")
        scaled.load_state_dict({k: 2 * v for k, v in net.state_dict().items()})
        assert torch.allclose(scaled(x), 8 * net(x), atol=1e-5)
    # per-sample gradients equal autograd's, with the bias folded in as the last column of layer 1
    rows = []
    for xi in x:
        net.zero_grad()
        net(xi[None])[0, 0].backward()
        first = torch.cat([lin[0].weight.grad, lin[0].bias.grad[:, None]], 1)
        rows.append(torch.cat([first.flatten(), lin[1].weight.grad.flatten(), lin[2].weight.grad.flatten()]))
    assert torch.allclose(per_sample_gradients(net, x), torch.stack(rows), atol=1e-5)
    # Euler's identity holds with the bias: <theta, grad Phi> = L Phi
    theta = torch.cat([v.flatten() for v in homogeneous_weights(net)]).detach()
    assert torch.allclose(per_sample_gradients(net, x) @ theta, 3 * net(x)[:, 0].detach(), atol=1e-5)
    res, lam = kkt_residual(net, x, torch.tensor([1.0, -1, 1, -1, 1, -1, 1]))
    assert 0 <= res <= 1 and lam.shape == (7,)
    out = reconstruct(net, (5,), 4, 3, progress=False)
    assert out.reconstruction.shape == (4, 5)
    with pytest.raises(ValueError, match="first layer only"):
        homogeneous_weights(MLP(5, [6, 4], 1, bias=True))


def test_naive_and_sgd_variants_and_bad_names():
    torch.manual_seed(0)
    mlp = MLP(3, [8], 1, bias=False)
    naive = reconstruct(mlp, (3,), 6, 200, objective="naive", lr=0.05, init_scale=0.5, box=(-1, 1),
                        progress=False)
    # the naive control pushes the +1 candidates' output up and the -1 candidates' down
    with torch.no_grad():
        out = mlp(naive.reconstruction)[:, 0]
        start = mlp(0.5 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0)))[:, 0]
    gap = out[naive.labels == 1].mean() - out[naive.labels == 0].mean()
    assert gap > 0 and gap > start[3:].mean() - start[:3].mean()
    net, _, _ = exact_kkt_net()
    sgd = reconstruct(net, (2,), 2, 300, optimizer="sgd", lr=0.05, lam_lr=0.05, init_scale=0.1, box=(-3, 3),
                      labels=torch.tensor([1.0, -1.0]), normalize=False, progress=False)
    assert sgd.history["residual"][-1] < sgd.history["residual"][0]
    assert sgd.extras["settings"]["optimizer"] == "sgd" and not sgd.extras["settings"]["normalize"]
    with pytest.raises(ValueError, match="objective"):
        reconstruct(net, (2,), 2, 2, objective="margin")
    with pytest.raises(ValueError, match="optimizer"):
        reconstruct(net, (2,), 2, 2, optimizer="lbfgs")


def test_distinct_matching_credits_a_candidate_once():
    from mixcon_lite.attacks.weights import assign

    g = torch.Generator().manual_seed(1)
    train = torch.rand(3, 1, 12, 12, generator=g)
    # one candidate equals image 0 and is also the nearest candidate of the blurry images 1 and 2
    blur = train.mean(0, keepdim=True)
    cands = torch.cat([blur, train[:1], torch.rand(3, 1, 12, 12, generator=g)])
    near, near_idx = match(cands, train)
    s, idx = match(cands, train, distinct=True)
    assert len(set(idx.tolist())) == 3 and idx[0] == 1 and np.isclose(s[0], 1.0)
    assert s.sum() <= near.sum() + 1e-12
    scores, index = assign(np.array([[0.9, 0.8], [0.85, 0.1], [0.7, 0.6]]))
    assert index.tolist().count(-1) == 1 and set(index.tolist()) == {0, 1, -1}
    assert np.isinf(scores[index == -1]).all()
    with pytest.raises(ValueError, match="non-empty matrix"):
        assign(np.zeros((0, 3)))
