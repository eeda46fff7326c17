"""Gradient inversion (chapter 06): shared gradients, iDLG's label, the gradient matcher's three paths,
the batched L-BFGS, DLG / iDLG / Inverting Gradients on small random networks, and bad inputs."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixcon_lite.attacks.gradients import (GradientMatcher, check_gradients, dlg, final_linear, idlg_label,
                                           invert_gradients, noisy_gradients, prune_gradients,
                                           shared_gradients, soft_cross_entropy)
from mixcon_lite.attacks.lbfgs import BatchedLBFGS
from mixcon_lite.attacks.result import AttackResult
from mixcon_lite.models import DLGLeNet, uniform_init_


def small_lenet(seed=0, in_channels=3, size=8, classes=5, activation="sigmoid"):
    return DLGLeNet(in_channels=in_channels, num_classes=classes, input_size=size, activation=activation,
                    seed=seed)


def smooth_images(n, c=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, 3, 3, generator=g)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------- labels --------------------------
@pytest.mark.parametrize("seed", range(5))
def test_idlg_label_recovers_the_label_on_random_networks(seed):
    g = torch.Generator().manual_seed(seed)
    for activation in ("sigmoid", "relu"):
        model = small_lenet(seed=seed, classes=10, activation=activation)
        y = torch.randint(0, 10, (1,), generator=g)
        grads = shared_gradients(model, torch.rand(1, 3, 8, 8, generator=g), y)
        assert idlg_label(model, grads) == int(y)


def test_final_linear_and_label_errors():
    model = small_lenet()
    layer, index = final_linear(model)
    assert layer is model.blocks.logits[1] and list(model.parameters())[index] is layer.weight
    with pytest.raises(ValueError, match="no nn.Linear"):
        final_linear(nn.Sequential(nn.Conv2d(3, 2, 3)))
    grads = shared_gradients(model, torch.rand(1, 3, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="one gradient per model parameter"):
        idlg_label(model, grads[:-1])
    with pytest.raises(ValueError, match="shape"):
        idlg_label(model, [g.T if g.ndim == 2 else g for g in grads])


# ---------------------------------------------------------------- matcher -------------------------
def _reference_terms(model, target, x, y):
    out = []
    for xk, yk in zip(x, y):
        loss = soft_cross_entropy(model(xk), yk)
        g = torch.autograd.grad(loss, list(model.parameters()))
        out.append([sum(((a - t) ** 2).sum() for a, t in zip(g, target)),
                    sum((a * t).sum() for a, t in zip(g, target)), sum((a * a).sum() for a in g)])
    return torch.tensor(out, dtype=torch.float64).T


@pytest.mark.parametrize("n", [1, 3])
def test_matcher_paths_agree_with_autograd(n):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Sigmoid(), nn.Conv2d(3, 4, 3, dilation=2),
                          nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 4, 6), nn.ReLU(), nn.Linear(6, 4))
    x_true = torch.rand(n, 2, 12, 12)
    target = shared_gradients(model, x_true, torch.arange(n) % 4)
    K = 3
    x = torch.randn(K, n, 2, 12, 12, requires_grad=True)
    y = torch.softmax(torch.randn(K, n, 4), -1)
    want = _reference_terms(model, target, x.detach(), y)
    for path in ("hooks", "vmap", "loop"):
        m = GradientMatcher(model, target, n=n, path=path)
        got = torch.stack(m.terms(x, y))
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7), path
        gx, = torch.autograd.grad(got[0].sum(), x)
        assert torch.isfinite(gx).all() and gx.abs().sum() > 0
    # the input gradient of each candidate depends on that candidate only, on every path
    for path in ("hooks", "vmap"):
        m = GradientMatcher(model, target, n=n, path=path)
        dist = m.terms(x, y)[0]
        gx, = torch.autograd.grad(dist[1], x)
        assert gx[0].abs().max() == 0 and gx[2].abs().max() == 0 and gx[1].abs().max() > 0
    assert GradientMatcher(model, target, n=n).path_for(K) == "hooks"


def test_matcher_falls_back_for_batchnorm_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 4))
    model.train()
    target = shared_gradients(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = GradientMatcher(model, target, n=2)
    assert m.path_for(3) == "vmap" and m.path_for(1) == "loop"
    with pytest.raises(ValueError, match="path='hooks'"):
        GradientMatcher(model, target, n=2, path="hooks").path_for(2)
    x = torch.randn(3, 2, 1, 8, 8)
    y = torch.softmax(torch.randn(3, 2, 4), -1)
    vm = torch.stack(m.terms(x, y))
    lp = torch.stack(GradientMatcher(model, target, n=2, path="loop").terms(x, y))
    assert torch.allclose(vm, lp, rtol=1e-4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(mod.track_running_stats for mod in model.modules() if isinstance(mod, nn.BatchNorm2d))


def test_matcher_rejects_bad_inputs():
    model = small_lenet()
    grads = shared_gradients(model, torch.rand(1, 3, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="path"):
        GradientMatcher(model, grads, path="fast")
    with pytest.raises(ValueError, match="n must be"):
        GradientMatcher(model, grads, n=0)
    with pytest.raises(ValueError, match=r"terms expects"):
        GradientMatcher(model, grads, n=2).terms(torch.zeros(1, 1, 3, 8, 8), torch.zeros(1, 1, 5))


# ---------------------------------------------------------------- L-BFGS --------------------------
def _convex(x):   # strictly convex, so every curvature pair passes torch's test (s^T y > 1e-10)
    scales = torch.linspace(0.2, 5.0, x.shape[-1], dtype=x.dtype)
    return 0.5 * (scales * x ** 2).sum(-1) + 0.1 * (x ** 4).sum(-1) + (x[..., 1:] * x[..., :-1]).sum(-1) * 0.1


def _torch_lbfgs_trajectory(x0, steps, history):
    xr = x0.clone().requires_grad_(True)
    ref = torch.optim.LBFGS([xr], lr=1, max_iter=1, history_size=history, tolerance_grad=-1,
                            tolerance_change=-1)
    out = []
    for _ in range(steps):
        def closure():
            ref.zero_grad()
            loss = _convex(xr)
            loss.backward()
            return loss
        ref.step(closure)
        out.append(xr.detach().clone())
    return torch.stack(out)


@pytest.mark.parametrize("history", [3, 100])
def test_batched_lbfgs_follows_torch_lbfgs_per_row(history):
    torch.manual_seed(0)
    K, dim, steps = 3, 5, 15
    x0 = torch.randn(K, dim, dtype=torch.float64)
    opt = BatchedLBFGS(K, dim, history_size=history, dtype=torch.float64)
    x, traj = x0.clone(), []
    for _ in range(steps):
        xx = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(_convex(xx).sum(), xx)
        x = opt.step(x, g)
        traj.append(x)
    traj = torch.stack(traj, 1)
    for k in range(K):
        ref = _torch_lbfgs_trajectory(x0[k], steps, history)
        for s in range(steps):
            assert torch.allclose(ref[s], traj[k, s], atol=1e-10), (k, s)


def test_batched_lbfgs_null_pairs_are_ignored():
    """A rejected pair (s^T y <= 1e-10) is stored as a null pair: the direction is the one the
    accepted pairs alone give."""
    torch.manual_seed(1)
    opt = BatchedLBFGS(2, 4, history_size=5, dtype=torch.float64)
    ref = BatchedLBFGS(2, 4, history_size=5, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    xx = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(_convex(xx).sum(), xx)
    x1 = opt.step(x, g)
    ref.step(x, g)
    opt.step(x1, g)                     # same gradient at a new point: s^T y = 0, rejected by both
    assert opt.pairs.tolist() == [0, 0]
    g2 = torch.randn(2, 4, dtype=torch.float64)
    assert torch.allclose(opt.direction(g2), -g2 * 1.0)   # no pair held: steepest descent


def test_batched_lbfgs_row_recovers_after_a_diverged_step_and_reset():
    """Regression: a row whose gradient became NaN is re-drawn and reset (as dlg does); from its new
    point it must follow torch.optim.LBFGS exactly, and the other rows must be untouched. (Null pairs
    used to be written as ``s * 0``, and NaN * 0 = NaN poisoned the reset row's history.)"""
    torch.manual_seed(2)
    K, dim, history, before, after = 3, 5, 100, 6, 12
    x0 = torch.randn(K, dim, dtype=torch.float64)
    opt = BatchedLBFGS(K, dim, history_size=history, dtype=torch.float64)
    x = x0.clone()
    traj = []
    for step in range(before + 1 + after):
        xx = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(_convex(xx).sum(), xx)
        if step == before:                       # row 1 diverges: non-finite gradient
            g = g.clone()
            g[1] = float("nan")
        x = opt.step(x, g)
        if step == before:
            assert torch.isnan(x[1]).all() and torch.isfinite(x[[0, 2]]).all()
            fresh_start = torch.randn(dim, dtype=torch.float64)
            x[1] = fresh_start
            opt.reset(torch.tensor([False, True, False]))
        traj.append(x.clone())
    traj = torch.stack(traj, 1)                  # [K, steps, dim]
    assert torch.isfinite(opt.S).all() and torch.isfinite(opt.SY).all(), "history poisoned by NaN"
    # the reset row, from its new point, is torch's L-BFGS from that point
    ref = _torch_lbfgs_trajectory(fresh_start, after, history)
    assert torch.allclose(traj[1, before + 1:], ref, atol=1e-10)
    # the other rows never saw the divergence
    for k in (0, 2):
        ref = _torch_lbfgs_trajectory(x0[k], before + 1 + after, history)
        assert torch.allclose(traj[k], ref, atol=1e-10), k


def test_batched_lbfgs_reset_and_bad_shapes():
    opt = BatchedLBFGS(2, 3, history_size=4)
    x = torch.zeros(2, 3)
    x = opt.step(x, torch.ones(2, 3))
    x = opt.step(x, torch.full((2, 3), 0.5))
    assert opt.pairs.tolist() == [1, 1]
    opt.reset(torch.tensor([True, False]))
    assert opt.pairs.tolist() == [0, 1] and bool(opt.fresh[0]) and not bool(opt.fresh[1])
    with pytest.raises(ValueError, match="step expects"):
        opt.step(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="lr"):
        BatchedLBFGS(2, 3, lr=0)


# ---------------------------------------------------------------- attacks -------------------------
def test_dlg_recovers_a_small_image_and_label():
    model = small_lenet(seed=3, classes=5)
    x = smooth_images(1, seed=1)
    grads = shared_gradients(model, x, torch.tensor([2]))
    res = dlg(model, grads, (3, 8, 8), 5, steps=400, restarts=2, seed=0, progress=False)
    assert isinstance(res, AttackResult) and res.reconstruction.shape == (1, 3, 8, 8)
    assert res.labels.tolist() == [2]
    assert float(((res.reconstruction - x) ** 2).mean()) < 1e-3
    assert res.extras["path"] == "hooks" and res.loss.shape == (1,)
    assert res.history["loss"] == sorted(res.history["loss"], reverse=True)   # best so far: monotone
    again = dlg(model, grads, (3, 8, 8), 5, steps=400, restarts=2, seed=0, progress=False)
    assert torch.equal(again.reconstruction, res.reconstruction)                # seeded


def test_idlg_with_fixed_labels_and_snapshots():
    model = small_lenet(seed=4, classes=5)
    x = smooth_images(1, seed=2)
    grads = shared_gradients(model, x, torch.tensor([4]))
    label = idlg_label(model, grads)
    res = dlg(model, grads, (3, 8, 8), 5, steps=30, labels=torch.tensor([label]), snapshot_every=10, tol=0)
    assert res.labels.tolist() == [4] and res.extras["steps"] == 30
    assert [s for s, _ in res.history["snapshots"]] == [0, 10, 20]
    assert len(res.history["restart_loss"]) == 30 and len(res.history["restart_loss"][0]) == 1


def test_dlg_restarts_are_independent_and_best_is_kept():
    model = small_lenet(seed=5, classes=5)
    grads = shared_gradients(model, smooth_images(1, seed=3), torch.tensor([1]))
    res = dlg(model, grads, (3, 8, 8), 5, steps=20, restarts=3, seed=7, tol=0)
    per = res.extras["restart_loss"]
    assert per.shape == (3,) and math.isclose(float(res.loss[0]), float(per.min()), rel_tol=1e-6)
    assert res.history["loss"][-1] == min(min(r) for r in res.history["restart_loss"])


def test_dlg_batch_of_two_and_vmap_path():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 16, 3))
    model.eval()
    grads = shared_gradients(model, torch.rand(2, 1, 6, 6), torch.tensor([0, 2]))
    res = dlg(model, grads, (1, 6, 6), 3, n=2, steps=5, restarts=2, tol=0)
    assert res.reconstruction.shape == (2, 1, 6, 6) and res.labels.shape == (2,) and res.extras["path"] == "vmap"


def test_invert_gradients_improves_and_respects_the_box():
    model = small_lenet(seed=6, classes=5, activation="relu")
    x = smooth_images(1, seed=4)
    grads = shared_gradients(model, x, torch.tensor([3]))
    res = invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), steps=150, restarts=2, tv_weight=1e-3)
    rec = res.reconstruction
    assert rec.shape == (1, 3, 8, 8) and rec.min() >= 0 and rec.max() <= 1
    assert res.history["loss"][-1] < res.history["loss"][0]
    assert res.extras["distance"] < 0.5
    l2 = invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), steps=5, distance="l2", box=None,
                          signed=False, lr_decay=False)
    assert l2.reconstruction.shape == (1, 3, 8, 8)


def test_invert_gradients_sweeps_the_tv_weight_across_restarts():
    """One TV weight per restart: each row optimises its own objective, independently of the
    others (row 1 of a [w0, w1] sweep equals row 1 of a [w1, w1] run from the same starts)."""
    model = small_lenet(seed=6, classes=5, activation="relu")
    x = smooth_images(1, seed=4)
    grads = shared_gradients(model, x, torch.tensor([3]))
    kw = dict(steps=40, restarts=2, seed=3, keep_all=True, progress=False)
    sweep = invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), tv_weight=[0.0, 0.5], **kw)
    same = invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), tv_weight=[0.5, 0.5], **kw)
    none = invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), tv_weight=[0.0, 0.0], **kw)
    a, b, c = (r.extras["all_reconstructions"] for r in (sweep, same, none))
    assert a.shape == (2, 1, 3, 8, 8)
    assert torch.allclose(a[1], b[1], atol=1e-5) and torch.allclose(a[0], c[0], atol=1e-5)
    assert not torch.allclose(a[0], a[1], atol=1e-3)
    from mixcon_lite.attacks.features import total_variation
    assert total_variation(a[1]).mean() < total_variation(a[0]).mean()     # the heavier TV is smoother
    with pytest.raises(ValueError, match="one per restart"):
        invert_gradients(model, grads, (3, 8, 8), torch.tensor([3]), tv_weight=[0.1, 0.2, 0.3], restarts=2)


@pytest.mark.parametrize("call", [
    lambda m, g: dlg(m, g, (3, 8, 8), 5, n=0),
    lambda m, g: dlg(m, g, (3, 8, 8), 5, steps=0),
    lambda m, g: dlg(m, g, (3, 8, 8), 5, restarts=1.5),
    lambda m, g: dlg(m, g, (3, 8, 8), 1),
    lambda m, g: dlg(m, g, (3, 8, 8), 5, labels=torch.tensor([0, 1])),
    lambda m, g: dlg(m, g, (3, 8, 8), 5, labels=torch.tensor([7])),
    lambda m, g: dlg(m, g, (3, 8, 8), 5, init="zeros"),
    lambda m, g: dlg(m, g, "3x8x8", 5),
    lambda m, g: dlg(m, g[:-1], (3, 8, 8), 5),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([0.5])),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([], dtype=torch.long)),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([9])),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([0]), distance="l1"),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([0]), box=(1, 0)),
    lambda m, g: invert_gradients(m, g, (3, 8, 8), torch.tensor([0]), tv_weight=-1),
    lambda m, g: prune_gradients(g, 1.0),
    lambda m, g: noisy_gradients(g, -0.1),
    lambda m, g: noisy_gradients(g, 0.1, kind="uniform"),
])
def test_attacks_reject_bad_inputs(call):
    model = small_lenet()
    grads = shared_gradients(model, torch.rand(1, 3, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError):
        call(model, grads)


# ---------------------------------------------------------------- defences and models -------------
def test_prune_and_noise():
    g = [torch.arange(10.0).reshape(2, 5) - 4.5, torch.tensor([3.0, -0.1])]
    pruned = prune_gradients(g, 0.5)
    assert (pruned[0] == 0).sum() == 5 and pruned[0].abs().max() == 4.5
    assert pruned[1].tolist() == [3.0, 0.0]
    assert all(torch.equal(a, b) for a, b in zip(prune_gradients(g, 0.0), g))
    big = [torch.zeros(20000)]
    for kind in ("gaussian", "laplacian"):
        noisy = noisy_gradients(big, 0.3, kind=kind, seed=1)[0]
        assert abs(float(noisy.std()) - 0.3) < 0.01 and abs(float(noisy.mean())) < 0.01
        assert torch.equal(noisy, noisy_gradients(big, 0.3, kind=kind, seed=1)[0])


def test_dlg_lenet_matches_the_reference_architecture_and_init():
    model = DLGLeNet()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(12, 3, 5, 5), (12,), (12, 12, 5, 5), (12,), (12, 12, 5, 5), (12,), (100, 768), (100,)]
    reference = DLGLeNet(seed=None)               # DLG's code: build, seed, then U(-0.5, 0.5) in order
    torch.manual_seed(1234)
    for p, q in zip(reference.parameters(), model.parameters()):
        assert torch.equal(torch.empty(p.shape).uniform_(-0.5, 0.5), q.detach())
    assert DLGLeNet(1, 10, 28).blocks.logits[1].in_features == 588
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    with pytest.raises(ValueError):
        DLGLeNet(num_classes=1)
    with pytest.raises(ValueError):
        uniform_init_(model, 0.5, -0.5)


def test_check_gradients_is_kept():
    model = small_lenet()
    grads = shared_gradients(model, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
    assert len(check_gradients(model, grads)) == len(list(model.parameters()))


def test_masked_matching_is_the_distance_over_the_sent_entries():
    from mixcon_lite.attacks.matching import sent_entries

    model = small_lenet(seed=3, classes=5)
    x = smooth_images(1, seed=1)
    grads = prune_gradients(shared_gradients(model, x, torch.tensor([2])), 0.5)
    mask = sent_entries(grads)
    assert all(m.dtype == torch.bool for m in mask) and 0.4 < sum(int(m.sum()) for m in mask) / sum(
        m.numel() for m in mask) < 0.6
    cand = smooth_images(1, seed=7)
    matcher = GradientMatcher(model, grads, mask=mask)
    assert matcher.path_for(1) != "hooks"
    dist = matcher.terms(cand[None], torch.nn.functional.one_hot(torch.tensor([[2]]), 5).float())[0]
    g_c = shared_gradients(model, cand, torch.tensor([2]))
    want = sum((((a - b) * m) ** 2).sum() for a, b, m in zip(g_c, grads, mask))
    assert torch.isclose(dist[0].float(), want, rtol=1e-4)


def test_masked_dlg_breaks_gradient_pruning():
    """The adaptive attack: pruning 60 % of the gradient stops plain DLG on a small picture, but an
    attacker who matches only the entries the client sent recovers it."""
    from mixcon_lite.attacks.matching import sent_entries
    from mixcon_lite.data import skimage_crops
    from mixcon_lite.models import DLGLeNet

    picture = skimage_crops(["coffee"], size=16)
    model = DLGLeNet(3, 10, 16, seed=1234)
    pruned = prune_gradients(shared_gradients(model, picture, torch.tensor([3])), 0.6)
    kw = dict(steps=400, seed=0, progress=False)
    plain = dlg(model, pruned, (3, 16, 16), 10, **kw)
    masked = dlg(model, pruned, (3, 16, 16), 10, mask=sent_entries(pruned), **kw)
    mse = [float(((r.reconstruction.clamp(0, 1) - picture) ** 2).mean()) for r in (plain, masked)]
    assert mse[0] > 0.01 and mse[1] < 1e-3, mse
