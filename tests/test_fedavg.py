"""FedAvg (chapter 06, section 8): the client's local update, checked against plain SGD by hand and
against the FedSGD gradient, and the unrolled attack on small random networks; bad inputs."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixcon_lite.attacks.fedavg import invert_update, local_update
from mixcon_lite.attacks.gradients import invert_gradients, shared_gradients
from mixcon_lite.models import DLGLeNet


def small(seed=0, size=8, classes=5):
    return DLGLeNet(in_channels=1, num_classes=classes, input_size=size, seed=seed)


def smooth_images(n, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 1, 3, 3, generator=g), size=(size, size), mode="bilinear",
                         align_corners=True)


def sgd_by_hand(model, x, y, steps, lr, batch_size=None):
    """torch.optim.SGD on a copy: the update theta_0 - theta_E."""
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    b = len(x) if batch_size is None else batch_size
    for t in range(steps):
        i = t % (len(x) // b)
        opt.zero_grad()
        F.cross_entropy(m(x[i * b:(i + 1) * b]), y[i * b:(i + 1) * b]).backward()
        opt.step()
    return [(p0 - p).detach() for p0, p in zip(model.parameters(), m.parameters())]


@pytest.mark.parametrize("steps,batch_size", [(1, None), (3, None), (4, 2), (3, 1)])
def test_local_update_is_plain_sgd(steps, batch_size):
    model = small()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = smooth_images(4), torch.tensor([0, 1, 2, 3])
    got = local_update(model, x, y, steps, 0.5, batch_size)
    want = sgd_by_hand(model, x, y, steps, 0.5, batch_size)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))   # model untouched
    assert not any(u.requires_grad for u in got)


def test_one_local_step_is_lr_times_the_gradient():
    model = small(seed=3)
    x, y = smooth_images(2, seed=1), torch.tensor([4, 1])
    g = shared_gradients(model, x, y)
    u = local_update(model, x, y, 1, 1e-4)
    for a, b in zip(u, g):
        assert torch.allclose(a, 1e-4 * b, rtol=1e-5, atol=1e-12)


def test_more_steps_move_the_update_away_from_the_gradient():
    """With several steps at a large lr the update is no longer parallel to the first gradient (what
    a naive attacker assumes); at a tiny lr it stays parallel."""
    model = small(seed=1)
    x, y = smooth_images(1, seed=2), torch.tensor([2])
    g = torch.cat([t.flatten() for t in shared_gradients(model, x, y)])

    def cos(u):
        u = torch.cat([t.flatten() for t in u])
        return float(u @ g / (u.norm() * g.norm()))

    assert cos(local_update(model, x, y, 5, 1e-5)) > 0.9999
    assert cos(local_update(model, x, y, 10, 0.1)) < 0.99
    # at a large lr one step fits the single input, the later gradients vanish: parallel again
    assert cos(local_update(model, x, y, 10, 3.0)) > 0.9999


def test_the_simulated_update_is_differentiable_in_the_inputs():
    model = small(seed=2)
    x = smooth_images(1, seed=3).requires_grad_(True)
    y = torch.tensor([1])
    u = local_update(model, x, y, 3, 0.3, create_graph=True)
    (gx,) = torch.autograd.grad(sum(t.sum() for t in u), x)
    assert gx.abs().sum() > 0
    # finite difference along a random direction
    d = torch.randn_like(x)
    eps = 1e-3
    with torch.no_grad():
        f = lambda z: float(sum(t.double().sum() for t in local_update(model, z, y, 3, 0.3)))  # noqa: E731
        fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
    assert fd == pytest.approx(float((gx * d).sum()), rel=0.05, abs=1e-5)


def test_unrolled_attack_beats_its_start_and_the_naive_attack():
    """Several local steps: the attacker that simulates them recovers the image; the one that treats
    the update as a single gradient does worse."""
    torch.manual_seed(0)
    model = small(seed=4)
    x, y = smooth_images(1, seed=5), torch.tensor([3])
    upd = local_update(model, x, y, 10, 0.1)
    res = invert_update(model, upd, (1, 8, 8), y, 10, 0.1, steps=300, tv_weight=0.0, seed=0, progress=False)
    naive = invert_gradients(model, upd, (1, 8, 8), y, steps=300, tv_weight=0.0, seed=0, progress=False)
    start = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(0, 1)
    err = lambda r: float(((r - x) ** 2).mean())  # noqa: E731
    assert err(res.reconstruction) < 0.1 * err(start)
    assert err(res.reconstruction) < err(naive.reconstruction)
    assert res.history["loss"][-1] <= res.history["loss"][0]
    assert res.reconstruction.min() >= 0 and res.reconstruction.max() <= 1
    assert res.extras["local_steps"] == 10 and res.extras["lr"] == 0.1


def test_restarts_keep_the_lowest_objective():
    model = small(seed=6)
    x, y = smooth_images(1, seed=7), torch.tensor([0])
    upd = local_update(model, x, y, 2, 0.5)
    res = invert_update(model, upd, (1, 8, 8), y, 2, 0.5, steps=20, restarts=3, seed=1, progress=False)
    assert len(res.extras["restart_loss"]) == 3
    assert float(res.loss[0]) == pytest.approx(float(res.extras["restart_loss"].min()))


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y, u: local_update(m, x, y, 0, 0.1), "local_steps"),
    (lambda m, x, y, u: local_update(m, x, y, 1, -1.0), "lr"),
    (lambda m, x, y, u: local_update(m, x, y, 1, float("nan")), "lr"),
    (lambda m, x, y, u: local_update(m, x, y, 2, 0.1, batch_size=3), "batch_size"),
    (lambda m, x, y, u: local_update(m, x, y.float(), 1, 0.1), "LongTensor"),
    (lambda m, x, y, u: local_update(m, x, y[:1], 1, 0.1), "LongTensor"),
    (lambda m, x, y, u: local_update(m, x[0, 0, 0], y, 1, 0.1), "batch"),
    (lambda m, x, y, u: invert_update(m, u[:-1], (1, 8, 8), y, 1, 0.1, steps=1), "gradient"),
    (lambda m, x, y, u: invert_update(m, [t * 0 for t in u], (1, 8, 8), y, 1, 0.1, steps=1), "zero"),
    (lambda m, x, y, u: invert_update(m, u, (1, 8, 8), y, 1, 0.1, steps=1, batch_size=3), "batch_size"),
    (lambda m, x, y, u: invert_update(m, u, (1, 8, 8), y.float(), 1, 0.1, steps=1), "labels"),
    (lambda m, x, y, u: invert_update(m, u, 8, y, 1, 0.1, steps=1), "input_shape"),
    (lambda m, x, y, u: invert_update(m, u, (1, 8, 8), y, 1, 0.1, steps=1, box=(1, 0)), "box"),
])
def test_bad_inputs_say_what_was_expected(call, match):
    model = small()
    x, y = smooth_images(2), torch.tensor([0, 1])
    u = local_update(model, x, y, 1, 0.1)
    with pytest.raises(ValueError, match=match):
        call(model, x, y, u)


def test_batchnorm_in_train_mode_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 36, 3))
    x, y = smooth_images(2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="BatchNorm"):
        local_update(model, x, y, 1, 0.1)
    model.eval()
    assert len(local_update(model, x, y, 1, 0.1)) == len(list(model.parameters()))


def _global_cosine_distance(a, b):
    u = torch.cat([t.flatten() for t in a]).double()
    v = torch.cat([t.flatten() for t in b]).double()
    return float(1 - u @ v / (u.norm() * v.norm()))


def test_reported_distance_is_one_global_cosine():
    """The distance both attacks report is 1 - cos over all parameters at once, recomputed by hand
    from the returned reconstruction (catches a missing square root, an unnormalised candidate,
    1 - |cos| and a per-layer cosine)."""
    model = small(seed=2)
    x, y = smooth_images(1, seed=5), torch.tensor([1])
    g = shared_gradients(model, x, y)
    res = invert_gradients(model, g, (1, 8, 8), y, steps=25, tv_weight=0.0, seed=0, progress=False)
    by_hand = _global_cosine_distance(shared_gradients(model, res.reconstruction, y), g)
    assert res.extras["distance"] == pytest.approx(by_hand, abs=1e-5)
    assert 1e-4 < by_hand < 1          # the test is not vacuous: neither solved nor opposite
    neg = [-t for t in g]              # a target the start points away from: cos < 0 at first
    rn = invert_gradients(model, neg, (1, 8, 8), y, steps=25, tv_weight=0.0, seed=0, progress=False)
    by_hand = _global_cosine_distance(shared_gradients(model, rn.reconstruction, y), neg)
    assert rn.extras["distance"] == pytest.approx(by_hand, abs=1e-5)
    upd = local_update(model, x, y, 3, 0.5)
    ru = invert_update(model, upd, (1, 8, 8), y, 3, 0.5, steps=25, tv_weight=0.0, seed=0, progress=False)
    by_hand = _global_cosine_distance(local_update(model, ru.reconstruction, y, 3, 0.5), upd)
    assert ru.extras["distance"] == pytest.approx(by_hand, abs=1e-5)
    assert 1e-4 < by_hand < 1


def test_the_scale_of_the_target_does_not_change_the_distance():
    model = small(seed=2)
    x, y = smooth_images(1, seed=5), torch.tensor([1])
    g = shared_gradients(model, x, y)
    kw = dict(steps=10, tv_weight=0.0, seed=0, progress=False)
    a = invert_gradients(model, g, (1, 8, 8), y, **kw)
    b = invert_gradients(model, [100 * t for t in g], (1, 8, 8), y, **kw)
    assert a.extras["distance"] == pytest.approx(b.extras["distance"], abs=1e-5)
    assert torch.allclose(a.reconstruction, b.reconstruction, atol=1e-3)


def test_one_local_step_attack_is_the_gradient_attack():
    """With E = 1 the update is lr times the gradient and the cosine ignores lr: the unrolled attack
    and Inverting Gradients run the same optimisation from the same start."""
    model = small(seed=3)
    x, y = smooth_images(1, seed=6), torch.tensor([2])
    kw = dict(steps=30, tv_weight=1e-3, seed=4, progress=False)
    ru = invert_update(model, local_update(model, x, y, 1, 0.1), (1, 8, 8), y, 1, 0.1, **kw)
    rg = invert_gradients(model, shared_gradients(model, x, y), (1, 8, 8), y, **kw)
    assert ru.extras["distance"] == pytest.approx(rg.extras["distance"], abs=1e-4)
    assert torch.allclose(ru.reconstruction, rg.reconstruction, atol=1e-3)
