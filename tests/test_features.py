import pytest
import torch

from mixcon_lite.attacks.features import invert, total_variation
from mixcon_lite.metrics import ssim
from mixcon_lite.models import MLP, LeNet5


def test_total_variation_values():
    assert torch.allclose(total_variation(torch.full((2, 3, 5, 5), 0.7)), torch.zeros(2))
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0
    assert torch.allclose(total_variation(stripes), torch.tensor([1.0]))       # only horizontal jumps
    assert torch.allclose(total_variation(stripes.transpose(2, 3)), torch.tensor([1.0]))
    ramp = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 1, 5, 3) / 4
    assert torch.allclose(total_variation(ramp), torch.tensor([0.25]))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        total_variation(torch.zeros(4, 4))


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return LeNet5().eval()


def _images(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):          # smooth blobs, like real images rather than noise
        r0, c0 = torch.randint(6, 22, (2,), generator=g).tolist()
        rr, cc = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        x[i, 0] = torch.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / 30.0)
    return x


def test_invert_recovers_from_first_block(lenet):
    x = _images()
    with torch.no_grad():
        h = lenet.forward_to(x, "block1")
    x_hat, hist = invert(lenet, "block1", h, steps=200, lr=0.05, tv_weight=0.01, progress=False,
                         return_history=True)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    assert hist["feature_mse"][-1] < 0.05 * hist["feature_mse"][0]
    assert ssim(x, x_hat).mean() > 0.5


def test_invert_batch_equals_one_by_one(lenet):
    x = _images(3, seed=1)
    with torch.no_grad():
        h = lenet.forward_to(x, "block2")
    together = invert(lenet, "block2", h, steps=30, progress=False)
    alone = torch.cat([invert(lenet, "block2", h[i:i + 1], steps=30, progress=False) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_invert_leaves_model_untouched(lenet):
    before = [p.clone() for p in lenet.parameters()]
    lenet.train()
    with torch.no_grad():
        h = lenet.forward_to(_images(1), "fc1")
    invert(lenet, "fc1", h, steps=5, optimizer="sgd", lr=1.0, init="uniform", progress=False)
    assert lenet.training and all(torch.equal(a, b) for a, b in zip(before, lenet.parameters()))
    assert all(p.grad is None for p in lenet.parameters())
    lenet.eval()


def test_invert_bad_input(lenet):
    h = torch.zeros(2, 6, 14, 14)
    with pytest.raises(ValueError, match=r"shape \[N, 16, 5, 5\] for cut 'block2'"):
        invert(lenet, "block2", h)
    with pytest.raises(ValueError, match="Unknown cut"):
        invert(lenet, "conv1", h)
    with pytest.raises(ValueError, match="SplitNet"):
        invert(torch.nn.Linear(2, 2), "block1", h)
    with pytest.raises(ValueError, match="init"):
        invert(lenet, "block1", h, init="noise9")
    with pytest.raises(ValueError, match="optimizer"):
        invert(lenet, "block1", h, optimizer="lbfgs9")
    with pytest.raises(ValueError, match="steps"):
        invert(lenet, "block1", h, steps=0)
    with pytest.raises(ValueError, match="tv_weight"):
        invert(lenet, "block1", h, tv_weight=-1)


def test_invert_vector_inputs():
    torch.manual_seed(0)
    net = MLP(3, [50], 2).eval()
    x = torch.rand(2, 3)
    with torch.no_grad():
        h = net.forward_to(x, "fc1")
    # total variation needs images; on vectors use tv_weight=0 (the default)
    x_hat = invert(net, "fc1", h, steps=400, lr=0.05, progress=False)
    assert torch.allclose(x_hat, x, atol=0.05)


def test_invert_tv_needs_images():
    net = MLP(3, [5], 2)
    with pytest.raises(ValueError, match="image inputs"):
        invert(net, "fc1", torch.zeros(1, 5), tv_weight=0.1)


def test_rmle_objective_and_new_options(lenet):
    from mixcon_lite.attacks.features import rmle_objective

    x = _images(2)
    with torch.no_grad():
        h = lenet.forward_to(x, "block1")
        assert torch.allclose(rmle_objective(lenet, "block1", x, h), torch.zeros(2))
        loss, feat = rmle_objective(lenet, "block1", torch.zeros_like(x), h, tv_weight=1.0, return_feature_error=True)
    assert torch.allclose(loss, feat)                     # TV of a constant image is 0
    out = invert(lenet, "block1", h, steps=3, init="normal", box=None, progress=False)
    assert out.min() < 0 or out.max() > 1                 # no clamping asked for
    with pytest.raises(ValueError, match="box"):
        invert(lenet, "block1", h, box=(1, 0))


def test_invert_vectors_default_to_no_box():
    torch.manual_seed(1)
    net = MLP(3, [40], 2).eval()
    x = torch.randn(3, 3) * 2                            # outside [0, 1]
    with torch.no_grad():
        h = net.forward_to(x, "fc1")
    x_hat = invert(net, "fc1", h, steps=600, lr=0.05, progress=False)
    assert torch.allclose(x_hat, x, atol=0.1)


def test_decoder_learns_block1_inverse(lenet):
    from mixcon_lite.attacks.features import Decoder, train_decoder

    x_aux = torch.cat([_images(300, seed=s) for s in range(2)])
    x_vic = _images(8, seed=9)
    dec = train_decoder(lenet, "block1", x_aux, epochs=8, lr=2e-3, progress=False)
    with torch.no_grad():
        rec = dec(lenet.forward_to(x_vic, "block1"))
    assert rec.shape == x_vic.shape and 0 <= rec.min() and rec.max() <= 1
    baseline = ssim(x_vic, x_aux.mean(0, keepdim=True).expand_as(x_vic)).mean()   # guessing the average image
    assert ssim(x_vic, rec).mean() > max(0.4, baseline + 0.2)
    assert all(p.grad is None for p in lenet.parameters())
    with pytest.raises(ValueError, match="Decoder expects"):
        dec(torch.zeros(1, 16, 5, 5))
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        train_decoder(lenet, "block1", torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="hidden"):
        Decoder((3,), (1, 2, 2), hidden=0)


def test_label_decoder_sees_the_servers_prediction(lenet):
    from mixcon_lite.attacks.features import LabelDecoder, train_decoder

    x_aux = torch.cat([_images(100, seed=s) for s in range(2)])
    dec = train_decoder(lenet, "block2", x_aux, epochs=1, progress=False, condition="label")
    assert isinstance(dec, LabelDecoder) and dec.n_classes == 10
    h = lenet.forward_to(_images(5, seed=9), "block2").detach()
    rec = dec(h)
    assert rec.shape == (5, 1, 28, 28)
    # the code appended is the one-hot of the server's own prediction from h
    first = dec.net[1]
    code = torch.nn.functional.one_hot(lenet.forward_from(h, "block2").argmax(1), 10).float()
    with torch.no_grad():
        want = dec.net[2:](first(torch.cat([h.flatten(1), code], 1))).view(5, 1, 28, 28)
    assert torch.allclose(rec, want)
    assert all(p.grad is None for p in lenet.parameters())
    assert not any(p is q for p in dec.parameters() for q in lenet.parameters())
    with pytest.raises(ValueError, match="Decoder expects"):
        dec(torch.zeros(1, 6, 12, 12))
    with pytest.raises(ValueError, match="Unknown condition"):
        train_decoder(lenet, "block2", x_aux, epochs=1, progress=False, condition="class")


def test_rmle_reduction_sum_is_the_papers_objective(lenet):
    from mixcon_lite.attacks.features import rmle_objective

    x, other = _images(2), _images(2, seed=5)
    with torch.no_grad():
        h = lenet.forward_to(other, "block2")
        size_h = h[0].numel()                              # 16 * 5 * 5 = 400
        direct = (lenet.forward_to(x, "block2") - h).pow(2).flatten(1).sum(1)
        summed = rmle_objective(lenet, "block2", x, h, reduction="sum")
        mean = rmle_objective(lenet, "block2", x, h, reduction="mean")
        default = rmle_objective(lenet, "block2", x, h)
        tv = 0.3 * total_variation(x)
        with_tv = rmle_objective(lenet, "block2", x, h, tv_weight=0.3, reduction="sum")
    assert size_h == 400 and torch.allclose(summed, direct)
    assert torch.allclose(mean, direct / size_h) and torch.equal(default, mean)
    assert not torch.allclose(summed, mean)                # a wrong reduction would show
    assert torch.allclose(with_tv, direct + tv)            # TV is added, not reduced
    for bad in ("avg", "none", None, "Sum"):
        with pytest.raises(ValueError, match="reduction"):
            rmle_objective(lenet, "block2", x, h, reduction=bad)
        with pytest.raises(ValueError, match="reduction"):
            invert(lenet, "block2", h, steps=1, reduction=bad, progress=False)


def test_invert_sgd_step_scales_with_reduction(lenet):
    """One SGD step on the sum objective equals one on the mean objective with lr * |h|."""
    x = _images(2, seed=3)
    with torch.no_grad():
        h = lenet.forward_to(x, "fc1")                     # |h| = 120
    kw = dict(steps=1, optimizer="sgd", box=None, init="zeros", progress=False)
    step_sum = invert(lenet, "fc1", h, lr=0.01, reduction="sum", **kw)
    step_mean = invert(lenet, "fc1", h, lr=0.01 * 120, reduction="mean", **kw)
    small = invert(lenet, "fc1", h, lr=0.01, reduction="mean", **kw)
    assert torch.allclose(step_sum, step_mean, atol=1e-6)
    move_sum, move_small = step_sum.norm(), small.norm()   # distance from the zero start
    assert move_sum > 0 and torch.allclose(move_sum, 120 * move_small, rtol=1e-3)


def test_invert_history_reports_per_entry_error_for_both_reductions(lenet):
    with torch.no_grad():
        h = lenet.forward_to(_images(2, seed=4), "block2")
    kw = dict(steps=2, progress=False, return_history=True)
    _, hist_sum = invert(lenet, "block2", h, reduction="sum", **kw)
    _, hist_mean = invert(lenet, "block2", h, reduction="mean", **kw)
    # same start (constant 0.5 image), so the first per-entry error agrees ...
    assert hist_sum["feature_mse"][0] == pytest.approx(hist_mean["feature_mse"][0], rel=1e-5)
    # ... and the sum objective is |h| = 400 times it
    assert hist_sum["loss"][0] == pytest.approx(400 * hist_mean["loss"][0], rel=1e-5)


def test_invert_one_tv_weight_per_image_equals_separate_runs(lenet):
    x = _images(2, seed=6)
    with torch.no_grad():
        h = lenet.forward_to(x, "block2")
    grid = [0.0, 0.05, 0.5]
    hh = h.repeat(len(grid), 1, 1, 1)                      # image-major blocks, one per weight
    weights = torch.tensor(grid).repeat_interleave(len(x))
    kw = dict(steps=20, lr=0.05, progress=False)
    together = invert(lenet, "block2", hh, tv_weight=weights, **kw)
    alone = torch.cat([invert(lenet, "block2", h, tv_weight=w, **kw) for w in grid])
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(alone[:2], alone[4:], atol=1e-3)   # the weights do differ
    for bad in (torch.tensor([0.1, 0.2]), torch.tensor([0.1] * 5 + [-1.0]),
                torch.tensor([float("nan")] * 6), "0.1x", float("inf")):
        with pytest.raises(ValueError, match="tv_weight"):
            invert(lenet, "block2", hh, tv_weight=bad, steps=1, progress=False)


def test_adversarial_decoder_trains_a_critic_and_checks_its_weight(monkeypatch):
    from mixcon_lite.attacks import features
    from mixcon_lite.models import LeNet5

    torch.manual_seed(0)
    lenet = LeNet5().eval()
    x_aux = torch.rand(64, 1, 28, 28)
    calls = []
    real_forward = features.Critic.forward

    def spy(self, x):
        calls.append(x.shape[0])
        return real_forward(self, x)

    monkeypatch.setattr(features.Critic, "forward", spy)
    plain = features.train_decoder(lenet, "block2", x_aux, epochs=1, batch_size=32, progress=False)
    assert calls == []                                  # no critic without the GAN term
    adv = features.train_decoder(lenet, "block2", x_aux, epochs=1, batch_size=32, adversarial=0.1,
                                 progress=False)
    assert len(calls) == 2 * 3                          # real, fake (detached), fake per batch
    h = lenet.forward_to(x_aux[:4], "block2")
    assert adv(h).shape == (4, 1, 28, 28)
    assert not torch.allclose(adv(h), plain(h))
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="adversarial"):
            features.train_decoder(lenet, "block2", x_aux, epochs=1, adversarial=bad)


def test_cosine_distance_is_scale_free_and_restarts_never_hurt():
    torch.manual_seed(0)
    lenet = LeNet5().eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = lenet.forward_to(x, "block1")
    kw = dict(steps=40, lr=0.05, seed=2, progress=False, distance="cosine")
    a, b = invert(lenet, "block1", h, **kw), invert(lenet, "block1", 3.0 * h, **kw)
    assert torch.allclose(a, b, atol=1e-5)      # the squared distance would see a 3x larger target
    sq = invert(lenet, "block1", 3.0 * h, steps=40, lr=0.05, seed=2, progress=False)
    assert not torch.allclose(sq, a, atol=1e-3)

    def err(rec):
        with torch.no_grad():
            return (lenet.forward_to(rec, "block1") - h).flatten(1).norm(dim=1)
    one = invert(lenet, "block1", h, steps=40, lr=0.05, seed=2, progress=False)
    three, hist = invert(lenet, "block1", h, steps=40, lr=0.05, seed=2, progress=False, restarts=3,
                         return_history=True)
    assert three.shape == one.shape and len(hist["start"]) == 3
    assert (err(three) <= err(one) + 1e-6).all()     # start 0 is the single run; it can only improve
    with pytest.raises(ValueError, match="distance"):
        invert(lenet, "block1", h, steps=2, distance="l1")
    with pytest.raises(ValueError, match="restarts"):
        invert(lenet, "block1", h, steps=2, restarts=0)
