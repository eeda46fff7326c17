"""GradInversion (chapter 07): label restoration, BN-statistic prior, batch matching, the attack."""
import copy

import pytest
import torch
from torch import nn

from mixcon_lite.attacks.gradients import restore_labels, shared_gradients
from mixcon_lite.attacks.gradinversion import gradinversion
from mixcon_lite.attacks.gradinversion import (PRIORS, batch_bn_statistics, bn_layers, bn_statistic_loss,
                                               count_labels, label_calibration, match_batch)
from mixcon_lite.attacks.result import AttackResult
from mixcon_lite.models import BNConvNet


def relu_mlp(seed, d=12, hidden=32, k=10):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, k))


def distinct_batch(seed, b, k=10, shape=(12,)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, *shape, generator=g), torch.randperm(k, generator=g)[:b]


# ------------------------------------------------------------------ restore_labels -------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("b", [1, 3, 5])
def test_restore_labels_exact_for_distinct_labels_on_random_mlps(seed, b):
    model = relu_mlp(seed)
    x, y = distinct_batch(seed, b)
    got = restore_labels(model, shared_gradients(model, x, y), b)
    assert got.dtype == torch.long and got.shape == (b,)
    assert torch.equal(got, torch.sort(y).values)          # sorted ascending, exact set


@pytest.mark.parametrize("seed", range(4))
def test_restore_labels_on_random_bn_convnets_in_train_mode(seed):
    torch.manual_seed(seed)
    model = BNConvNet().train()
    x, y = distinct_batch(seed, 8, shape=(1, 28, 28))
    grads = shared_gradients(copy.deepcopy(model), x, y)
    assert torch.equal(restore_labels(model, grads, 8), torch.sort(y).values)


def test_restore_labels_all_classes_present():
    model = relu_mlp(0, k=6)
    x, y = distinct_batch(1, 6, k=6)
    assert torch.equal(restore_labels(model, shared_gradients(model, x, y), 6), torch.arange(6))


def test_restore_labels_repeated_labels_find_the_set_not_the_multiset():
    model = relu_mlp(3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 12, generator=g)
    y = torch.tensor([2, 2, 2, 5, 5, 7])
    got = restore_labels(model, shared_gradients(model, x, y), 6)
    assert set(got.tolist()) >= {2, 5, 7}                   # every present class is found ...
    assert sorted(got.tolist()) != sorted(y.tolist())       # ... but the multiset is wrong
    assert len(set(got.tolist())) == 6                      # each class at most once


def test_restore_labels_bad_inputs():
    model = relu_mlp(0)
    x, y = distinct_batch(0, 3)
    grads = shared_gradients(model, x, y)
    with pytest.raises(ValueError, match="n must be"):
        restore_labels(model, grads, 0)
    with pytest.raises(ValueError, match="exceeds"):
        restore_labels(model, grads, 11)
    with pytest.raises(ValueError, match="one gradient per model parameter"):
        restore_labels(model, grads[:-1], 3)
    with pytest.raises(ValueError, match="has shape"):
        restore_labels(model, [g.T if g.ndim == 2 else g for g in grads], 3)
    conv_only = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    xc = torch.rand(2, 1, 8, 8)
    gc = shared_gradients(conv_only, xc, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no nn.Linear"):
        restore_labels(conv_only, gc, 2)


# ------------------------------------------------------------------ BN-statistic prior ---------
def random_bn_net(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    for m in bn_layers(net):
        m.running_mean.normal_()
        m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("train_mode", [True, False])
def test_bn_statistic_loss_matches_the_definition_and_keeps_buffers(train_mode):
    net = random_bn_net(0).train(train_mode)
    x = torch.randn(4, 2, 6, 6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = bn_statistic_loss(net, x)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    ref = copy.deepcopy(net)                      # its forward in train mode updates its buffers
    h1 = ref[0](x)
    h2 = ref[4](ref[3](ref[2](ref[1](h1))))
    want = 0.0
    for h, bn in ((h1, net[1]), (h2, net[5])):
        dims = [0] + list(range(2, h.ndim))
        want = want + (h.mean(dims) - bn.running_mean).norm() + (h.var(dims, unbiased=False) - bn.running_var).norm()
    assert torch.allclose(got, want, rtol=1e-5)
    xg = x.clone().requires_grad_()
    bn_statistic_loss(net, xg).backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_bn_statistic_loss_is_zero_at_matching_statistics():
    net = nn.Sequential(nn.BatchNorm2d(2))
    x = torch.randn(5, 2, 3, 3)
    net[0].running_mean.copy_(x.mean((0, 2, 3)))
    net[0].running_var.copy_(x.var((0, 2, 3), unbiased=False))
    assert bn_statistic_loss(net, x) < 1e-6


def test_bn_statistic_loss_bad_inputs():
    with pytest.raises(ValueError, match="BatchNorm"):
        bn_statistic_loss(relu_mlp(0), torch.rand(3, 12))
    with pytest.raises(ValueError, match="b >= 2"):
        bn_statistic_loss(random_bn_net(0), torch.rand(1, 2, 6, 6))


# ------------------------------------------------------------------ match_batch ----------------
def test_match_batch_undoes_a_permutation():
    g = torch.Generator().manual_seed(0)
    originals = torch.rand(7, 1, 5, 5, generator=g)
    perm = torch.randperm(7, generator=g)
    rec = originals[perm] + 0.01 * torch.randn(7, 1, 5, 5, generator=g)
    order = match_batch(rec, originals)
    assert torch.equal(perm[order], torch.arange(7))
    assert torch.allclose(rec[order], originals, atol=0.05)


def test_match_batch_is_optimal_not_greedy():
    originals = torch.tensor([[0.0], [1.0]])
    rec = torch.tensor([[0.6], [2.0]])   # greedy: rec0 -> orig1 (0.16) leaves rec1 -> orig0 (4.0)
    order = match_batch(rec, originals)
    assert order.tolist() == [0, 1]      # optimum 0.36 + 1.0


def test_match_batch_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        match_batch(torch.rand(3, 4), torch.rand(2, 4))
    with pytest.raises(ValueError, match="two tensors"):
        match_batch([1, 2], torch.rand(2, 1))


# ------------------------------------------------------------------ gradinversion -------------
@pytest.fixture(scope="module")
def bn_case():
    torch.manual_seed(0)
    model = BNConvNet(channels=4).train()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 28, 28, generator=g)
    y = torch.tensor([1, 4, 7])
    return model, x, y, shared_gradients(copy.deepcopy(model), x, y)


def test_gradinversion_returns_an_attack_result_and_leaves_the_model_alone(bn_case):
    model, x, y, grads = bn_case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = gradinversion(model, grads, (1, 28, 28), y, steps=12, progress=False, record_every=5,
                        **PRIORS["+ group consistency"])
    assert isinstance(res, AttackResult) and res.reconstruction.shape == (3, 1, 28, 28)
    assert torch.equal(res.labels, y) and res.loss.shape == (3,)
    assert res.reconstruction.min() >= 0 and res.reconstruction.max() <= 1
    assert res.extras["candidates"].shape == (4, 3, 1, 28, 28)
    assert res.extras["consensus"].shape == (3, 1, 28, 28)
    assert res.history["step"] == [0, 5, 10, 11] and len(res.history["bn"]) == 4
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_gradinversion_distance_is_zero_at_the_private_batch_in_the_clients_mode(bn_case):
    model, x, y, grads = bn_case
    res = gradinversion(model, grads, (1, 28, 28), y, steps=1, lr=1e-9, init=x, progress=False)
    assert float(res.loss[0]) < 1e-5
    wrong_mode = copy.deepcopy(model).eval()                # the client trained in train mode
    res = gradinversion(wrong_mode, grads, (1, 28, 28), y, steps=1, lr=1e-9, init=x, progress=False)
    assert float(res.loss[0]) > 1e-3


def test_gradinversion_seeds_are_independent_without_group_term(bn_case):
    model, x, y, grads = bn_case
    init = torch.rand(2, 3, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    kw = dict(steps=8, progress=False, tv_weight=0.1, bn_weight=0.1)
    both = gradinversion(model, grads, (1, 28, 28), y, seeds=2, init=init, **kw)
    one = gradinversion(model, grads, (1, 28, 28), y, seeds=1, init=init[1], **kw)
    assert torch.allclose(both.extras["candidates"][1], one.extras["candidates"][0], atol=1e-5)


def test_gradinversion_is_seeded_and_reduces_the_gradient_distance():
    model = relu_mlp(0)
    x, y = distinct_batch(2, 2)
    grads = shared_gradients(model, x, y)
    a = gradinversion(model, grads, (12,), y, steps=60, lr=0.05, progress=False, seed=3)
    b = gradinversion(model, grads, (12,), y, steps=60, lr=0.05, progress=False, seed=3)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert a.history["grad_distance"][-1] < 0.5 * a.history["grad_distance"][0]


def test_bn_prior_gradient_reaches_the_images(bn_case):
    """R_BN is differentiable in x (a finite difference agrees with autograd) and, inside the attack,
    changes the trajectory: from the same start, bn_weight > 0 moves the images differently."""
    model, x, y, grads = bn_case
    xx = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    m64 = copy.deepcopy(model).double()
    xx.requires_grad_(True)
    g, = torch.autograd.grad(bn_statistic_loss(m64, xx), xx)
    assert float(g.abs().max()) > 0
    v = torch.randn(xx.shape, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        fd = (bn_statistic_loss(m64, xx + h * v) - bn_statistic_loss(m64, xx - h * v)) / (2 * h)
    assert torch.isclose(fd, (g * v).sum(), rtol=1e-4)
    init = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    kw = dict(steps=3, progress=False, init=init, box=None)
    plain = gradinversion(model, grads, (1, 28, 28), y, **kw)
    with_bn = gradinversion(model, grads, (1, 28, 28), y, bn_weight=10.0, **kw)
    assert not torch.allclose(plain.reconstruction, with_bn.reconstruction, atol=1e-4)
    assert with_bn.history["bn"][-1] < bn_statistic_loss(model, init).item()    # the prior is pursued


def test_group_term_pulls_the_seeds_together(bn_case):
    """With the same starts, a group weight makes the seeds' candidates closer to their consensus."""
    model, x, y, grads = bn_case
    init = torch.rand(3, 3, 1, 28, 28, generator=torch.Generator().manual_seed(12))
    kw = dict(steps=30, seeds=3, init=init, progress=False, tv_weight=0.1)

    def spread(res):
        c = res.extras["candidates"]
        return float((c - c.mean(0, keepdim=True)).flatten(2).norm(dim=2).mean())

    free = gradinversion(model, grads, (1, 28, 28), y, **kw)
    pulled = gradinversion(model, grads, (1, 28, 28), y, group_weight=5.0, **kw)
    assert spread(pulled) < 0.8 * spread(free)


def test_priors_change_one_thing_per_row():
    rows = list(PRIORS.values())
    for above, below in zip(rows, rows[1:]):
        changed = {k for k in set(above) | set(below) if above.get(k) != below.get(k)}
        assert len(changed) == 1 or changed == {"tv_weight", "l2_weight"}, changed
    assert PRIORS["+ best of 4 seeds"]["seeds"] == PRIORS["+ group consistency"]["seeds"] == 4
    assert PRIORS["+ best of 4 seeds"].get("group_weight", 0) == 0


def test_count_labels_recovers_repeated_labels_and_respects_the_batch_size():
    torch.manual_seed(0)
    model = relu_mlp(3)
    g = torch.Generator().manual_seed(4)
    x_aux, y_aux = torch.rand(400, 12, generator=g), torch.randint(0, 10, (400,), generator=g)
    y = torch.tensor([2, 2, 2, 5, 7, 7])
    x = torch.rand(6, 12, generator=g)
    cal = label_calibration(model, x_aux, y_aux, 6)
    assert cal[0].shape == cal[1].shape == (10,)
    grads = shared_gradients(model, x, y)
    got = count_labels(model, grads, 6, cal)
    assert got.dtype == torch.long and got.shape == (6,) and torch.equal(got, torch.sort(got).values)
    assert set(got.tolist()) == {2, 5, 7}                    # the present classes, each at least once
    # with exact knowledge of the private probabilities the bias formula is exact
    with torch.no_grad():
        p = model(x).softmax(1).double()
    onehot = torch.nn.functional.one_hot(y, 10).double()
    conf = (p * onehot).sum(0) / onehot.sum(0).clamp_min(1)
    leak = (p * (1 - onehot)).sum(0) / (1 - onehot).sum(0)
    assert torch.equal(count_labels(model, grads, 6, (conf, leak)), torch.sort(y).values)
    with pytest.raises(ValueError, match="calibration"):
        count_labels(model, grads, 6, (conf[:5], leak))
    with pytest.raises(ValueError, match="N >= 2n"):
        label_calibration(model, x_aux[:5], y_aux[:5], 6)


def test_gradinversion_bad_inputs(bn_case):
    model, x, y, grads = bn_case
    shape = (1, 28, 28)
    cases = [
        (dict(gradients=grads[:-1]), "one gradient per model parameter"),
        (dict(tv_weight=-1.0), "tv_weight must be a non-negative"),
        (dict(bn_weight=float("nan")), "bn_weight must be a non-negative"),
        (dict(group_weight=0.1, seeds=1), "seeds >= 2"),
        (dict(steps=0), "steps must be"),
        (dict(labels=torch.tensor([1, 10, 2])), r"class indices in \[0, 10\)"),
        (dict(labels=torch.tensor([0.5, 1.0, 2.0])), "LongTensor"),
        (dict(labels=torch.tensor([], dtype=torch.long)), "LongTensor"),
        (dict(input_shape=(1, 14, 14)), "does not accept inputs"),
        (dict(input_shape=28), "input_shape must be"),
        (dict(init=torch.rand(2, 1, 28, 28)), "init must be"),
        (dict(box=(1.0, 0.0)), "box must be"),
    ]
    for override, message in cases:
        kw = dict(model=model, gradients=grads, input_shape=shape, labels=y, steps=1, progress=False)
        kw.update(override)
        with pytest.raises(ValueError, match=message):
            gradinversion(**kw)
    mlp = relu_mlp(0)
    xm, ym = distinct_batch(0, 2)
    with pytest.raises(ValueError, match="no BatchNorm"):
        gradinversion(mlp, shared_gradients(mlp, xm, ym), (12,), ym, steps=1, bn_weight=0.1, progress=False)
    with pytest.raises(ValueError, match="image inputs"):
        gradinversion(mlp, shared_gradients(mlp, xm, ym), (12,), ym, steps=1, tv_weight=0.1, progress=False)


# ------------------------------------------------------------------ the chapter's experiment ---
def test_experiment_pieces_run_on_a_tiny_setting():
    from mixcon_lite.experiments import gradinversion as gx

    s = gx.settings("fast")
    assert s["steps"] > 0 and 8 in s["attack_batch_sizes"] and set(s["priors"]) == set(PRIORS)
    assert max(gx.settings("full")["attack_batch_sizes"]) == 48
    assert max(gx.settings("full", scale="cpu")["attack_batch_sizes"]) == 32
    with pytest.raises(ValueError, match="scale"):
        gx.settings("full", scale="gpu")
    torch.manual_seed(0)
    model = BNConvNet(channels=4).train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 1, 28, 28, generator=g), torch.arange(60) % 10
    xb, yb = gx.draw_batch(x, y, 4, distinct=True, gen=g)
    assert len(set(yb.tolist())) == 4
    labels = gx.label_restoration(model, x, y, [2, 4], trials=3, distinct=False, progress=False, aux=(x, y))
    assert set(labels) == {2, 4} and all(0 <= v["accuracy"] <= 1 for v in labels.values())
    assert all(0 <= v["count_accuracy"] <= 1 for v in labels.values())
    tiny = dict(s, steps=2, priors={"none": {}, "+ group consistency": PRIORS["+ group consistency"]},
                attack_batch_sizes=[4], batches_per_size=2, repeat_batch_size=12, repeat_batches=1,
                repeat_prior="none", decoy_priors=["+ group consistency"], batch_bn_prior="+ group consistency")
    decoy = gx.decoy_batch(x, y, xb, yb, torch.Generator().manual_seed(1))
    scores = gx.fidelity(model, xb, yb, (x, y), tiny, progress=False, decoy=decoy)
    summary = gx.summary(scores)
    assert set(summary) == {"none", "+ group consistency", gx.BATCH_BN_ROW, gx.decoy_row("+ group consistency"),
                            "class mean", "random same-class", "initial noise"}
    assert set(gx.summary(gx.fidelity(model, xb, yb, (x, y), tiny, progress=False))) == \
        set(summary) - {gx.decoy_row("+ group consistency")}          # no decoy given: no decoy row
    assert summary["class mean"]["beats_class_mean"] == 0.0
    assert scores["none"]["matched"].shape == xb.shape and len(scores["none"]["ssim"]) == 4
    study = gx.fidelity_study(model, (x, y), (x, y), tiny, progress=False)
    assert len(study[4]["batches"]) == 2 and len(study[4]["ssim"]["none"]) == 8
    assert len(study[4]["labels_exact"]) == 2
    # how far each attack row got in matching the gradient: final over start distance, per batch
    ratio = study[4]["distance_ratio"]
    assert set(ratio) == {"none", "+ group consistency", gx.BATCH_BN_ROW,
                          gx.decoy_row("+ group consistency")}        # attack rows only
    assert all(len(v) == 2 and all(0 < r < 2 for r in v) for v in ratio.values())
    sc0 = study[4]["batches"][0][2]["none"]
    assert ratio["none"][0] == pytest.approx(sc0["grad_distance"] / sc0["history"]["grad_distance"][0])
    # against a zero-gradient candidate: sum over the layers of the target's norms
    g0 = gx.client_gradients(model, *study[4]["batches"][0][:2])
    zero = sum(float(torch.linalg.vector_norm(t)) for t in g0)
    assert study[4]["distance_vs_zero"]["none"][0] == pytest.approx(sc0["grad_distance"] / zero,
                                                                    rel=1e-5)
    big = gx.fidelity_study(model, (x, y), (x, y), dict(tiny, attack_batch_sizes=[12], batches_per_size=1),
                            progress=False)           # more images than classes: count-aware labels
    assert len(big[12]["ssim"]["none"]) == 12 and len(big[12]["labels_exact"]) == 1
    # the start baseline is the attack's own first-seed start
    start = gx.baselines(xb, yb, x, y, torch.Generator().manual_seed(0), seed=5)["initial noise"]
    res = gx.gradinversion(model, gx.client_gradients(model, xb, yb), (1, 28, 28), yb, steps=1, lr=1e-12,
                           seed=5, progress=False)
    assert torch.allclose(res.reconstruction, start, atol=1e-6)
    assert gx.decoy_row("+ group consistency") in study[4]["ssim"]
    rep = gx.repeat_label_study(model, (x, y), (x, y), tiny, progress=False)
    assert len(rep["ssim_oracle_labels"]) == len(rep["ssim_recovered_labels"]) == 12
    assert 0 <= rep["label_accuracy"][0] <= 1


def test_restore_labels_survives_a_saturated_softmax():
    """Regression: with the true class's probability exactly 1.0 in float32 its row is all zeros,
    tying with absent classes whose minimum is 0 (dead ReLUs); the row sum breaks the tie."""
    torch.manual_seed(0)
    model = BNConvNet().eval()
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        final = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        final.bias[9] += 30.0          # float32 p_true rounds to 1; the others stay > 0
        assert float(model(x).softmax(1)[0, 9]) == 1.0
    grads = shared_gradients(model, x, torch.tensor([9]))
    assert float(grads[-2][9].abs().max()) == 0.0                 # the true row is exactly zero
    assert restore_labels(model, grads, 1).tolist() == [9]
    g = torch.Generator().manual_seed(4)
    cal = label_calibration(model, torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10, 1)
    assert count_labels(model, grads, 1, cal).tolist() == [9]


def test_gradinversion_returns_the_seed_with_the_smallest_gradient_distance(bn_case):
    """Each seed's reported distance is recomputed by hand (the Euclidean gradient distance summed
    over parameter tensors, the candidate run in the client's mode), and the returned reconstruction
    is the seed with the smallest one (catches argmax, the first seed, or a stale distance)."""
    model, x, y, grads = bn_case
    res = gradinversion(model, grads, (1, 28, 28), y, seeds=3, steps=6, progress=False,
                        tv_weight=0.1, bn_weight=0.1)
    by_hand = []
    for cand in res.extras["candidates"]:
        g = shared_gradients(copy.deepcopy(model), cand, y)
        by_hand.append(float(sum((a - b).norm() for a, b in zip(g, grads))))
    assert torch.allclose(res.extras["seed_distances"].double(), torch.tensor(by_hand).double(),
                          rtol=1e-3, atol=1e-6)
    assert max(by_hand) - min(by_hand) > 1e-6          # the seeds differ, so the choice matters
    best = int(torch.tensor(by_hand).argmin())
    assert res.extras["best_seed"] == best
    assert torch.equal(res.reconstruction, res.extras["candidates"][best])


def test_decoy_batch_has_the_labels_and_never_the_private_images():
    from mixcon_lite.experiments import gradinversion as gx

    g = torch.Generator().manual_seed(0)
    x_pool, y_pool = torch.rand(40, 1, 4, 4, generator=g), torch.arange(40) % 10
    x, y = x_pool[[3, 14, 25]], y_pool[[3, 14, 25]]
    for seed in range(5):
        xd, yd = gx.decoy_batch(x_pool, y_pool, x, y, torch.Generator().manual_seed(seed))
        assert torch.equal(yd, y) and xd.shape == x.shape
        assert not any(torch.equal(a, b) for a, b in zip(xd, x))
        assert all(any(torch.equal(a, p) for p in x_pool[y_pool == c]) for a, c in zip(xd, y.tolist()))
    with pytest.raises(ValueError, match="no other image of class"):
        gx.decoy_batch(x_pool[:10], y_pool[:10], x_pool[:1], y_pool[:1], torch.Generator().manual_seed(0))


def test_batch_bn_statistics_are_the_batchs_own_and_set_the_bn_target(bn_case):
    """batch_bn_statistics returns each BN layer's input mean and biased variance (by hand with a
    hook), leaves the buffers alone; passed as bn_targets, the BN term is zero at the private batch
    (it is not with the running statistics)."""
    model, x, y, grads = bn_case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = batch_bn_statistics(model, x)
    seen = []
    probe = copy.deepcopy(model)
    bn_layers(probe)[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    probe(x)
    assert len(got) == 1
    assert torch.allclose(got[0][0], seen[0].mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(got[0][1], seen[0].var((0, 2, 3), unbiased=False), atol=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    kw = dict(steps=1, lr=1e-9, init=x, progress=False, bn_weight=1.0)
    own = gradinversion(model, grads, (1, 28, 28), y, bn_targets=got, **kw)
    running = gradinversion(model, grads, (1, 28, 28), y, **kw)
    assert own.history["bn"][0] < 1e-4 < running.history["bn"][0]
    assert own.extras["settings"]["bn_targets"] == "given"
    with pytest.raises(ValueError, match="bn_weight > 0"):
        gradinversion(model, grads, (1, 28, 28), y, steps=1, bn_targets=got, progress=False)
    with pytest.raises(ValueError, match="one per BatchNorm layer"):
        gradinversion(model, grads, (1, 28, 28), y, bn_targets=got * 2, **kw)
    with pytest.raises(ValueError, match="shaped like"):
        gradinversion(model, grads, (1, 28, 28), y, bn_targets=[(got[0][0][:2], got[0][1])], **kw)
    with pytest.raises(ValueError, match="b >= 2"):
        batch_bn_statistics(model, x[:1])


def test_a_saturated_image_in_a_batch_hides_its_class():
    """b >= 2 with one image whose float32 softmax saturates (true-class probability 1): its own
    term in its class's row is exactly 0 and the other image adds a positive one, so that row has no
    negative entry and a positive sum, like an absent class's: neither the row minimum nor the row
    sum can find it. label_restoration counts such failures as ``failures_confident``."""
    from mixcon_lite.experiments import gradinversion as gx

    model = relu_mlp(0)
    with torch.no_grad():
        model[-1].bias[9] += 40.0          # every input is classified 9 with float32 probability 1
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 12, generator=g)
    y = torch.tensor([9, 3])
    with torch.no_grad():
        assert float(model(x).softmax(1)[0, 9]) == 1.0
    grads = shared_gradients(model, x, y)
    row9 = grads[-2][9]
    assert float(row9.min()) >= 0 and float(row9.sum()) > 0        # no trace of the image of class 9
    assert float(grads[-2][3].min()) < 0                             # the unsaturated image is found
    assert restore_labels(model, grads, 2).tolist() != [3, 9]
    x_pool, y_pool = torch.rand(200, 12, generator=g), torch.arange(200) % 10
    out = gx.label_restoration(model, x_pool, y_pool, [2], trials=40, distinct=True, progress=False)[2]
    assert 0 < out["exact"] < 1                      # the batches holding class 9 fail, the others do not
    assert out["failures_confident"] == 1.0 and out["confident"] > 0
