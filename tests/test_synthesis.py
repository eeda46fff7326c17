"""mixcon_lite.synthesis: class-wise statistics, the TV-L2 prior, BN-statistics synthesis and the
copy test; LeNet5(batch_norm=True)."""
import numpy as np
import pytest
import torch

from mixcon_lite import synthesis as sy
from mixcon_lite.attacks.result import AttackResult
from mixcon_lite.models import LeNet5
from mixcon_lite.train import train


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    x = torch.rand(60, 1, 28, 28)
    y = torch.arange(3).repeat(20)
    x = 0.5 * x
    for c in range(3):               # each class has a bright band of its own
        x[y == c, :, 9 * c:9 * c + 9] += 0.5
    model = LeNet5(num_classes=3, batch_norm=True)
    train(model, (x, y), epochs=30, lr=3e-3, optimizer="adam", batch_size=20, progress=False)
    return model, x, y


def test_lenet_batch_norm_layers():
    plain, bn = LeNet5(), LeNet5(batch_norm=True)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in bn.modules()) == 4
    assert list(plain.state_dict())[:2] == ["blocks.block1.0.weight", "blocks.block1.0.bias"]
    with pytest.raises(ValueError, match="batch_norm"):
        LeNet5(batch_norm="yes")


def test_class_statistics_are_exact(teacher):
    model, x, y = teacher
    stats = sy.class_bn_statistics(model, x, y, batch_size=7)      # batches that split classes
    assert set(stats) == {0, 1, 2} and len(stats[0]) == 4
    first = model.blocks.block1[0]
    with torch.no_grad():
        h = first(x[y == 1])
    mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
    assert torch.allclose(stats[1][0][0], mean, atol=1e-5)
    assert torch.allclose(stats[1][0][1], var, atol=1e-5)
    assert not torch.allclose(stats[0][0][0], stats[1][0][0])


def test_tv_l2():
    flat = torch.ones(2, 1, 5, 5)
    assert torch.allclose(sy.tv_l2(flat), torch.zeros(2))
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0
    # down 1, right 1, diagonal 1, anti-diagonal 0 -> 3
    assert sy.tv_l2(x).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="N, C, H, W"):
        sy.tv_l2(torch.zeros(3, 3))


@pytest.mark.parametrize("source", ["running", "class"])
def test_synthesis_reaches_targets_and_matches_statistics(teacher, source):
    model, x, y = teacher
    stats = "running" if source == "running" else sy.class_bn_statistics(model, x, y)
    labels = torch.arange(3).repeat_interleave(4)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    out = sy.bn_synthesize(model, labels, steps=60, stats=stats, seed=0, bn_weight=0.1)
    assert isinstance(out, AttackResult) and out.reconstruction.shape == (12, 1, 28, 28)
    assert out.reconstruction.min() >= 0 and out.reconstruction.max() <= 1
    assert out.history["bn"][-1] < out.history["bn"][0]                 # the statistics got closer
    assert out.extras["accuracy"] >= 0.9 and out.extras["stats"] == source
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())   # teacher untouched
    again = sy.bn_synthesize(model, labels, steps=60, stats=stats, seed=0, bn_weight=0.1)
    assert torch.equal(out.reconstruction, again.reconstruction)        # seeded


def test_synthesis_bad_inputs(teacher):
    model, x, y = teacher
    with pytest.raises(ValueError, match="BatchNorm"):
        sy.bn_synthesize(LeNet5(), [0, 1], steps=1)
    with pytest.raises(ValueError, match="n >= 2"):
        sy.bn_synthesize(model, [0], steps=1)
    with pytest.raises(ValueError, match="integer"):
        sy.bn_synthesize(model, torch.tensor([0.0, 1.0]), steps=1)
    with pytest.raises(ValueError, match="stats"):
        sy.bn_synthesize(model, [0, 1], steps=1, stats="global")
    stats = sy.class_bn_statistics(model, x[y < 2], y[y < 2])
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        sy.bn_synthesize(model, [2, 2], steps=1, stats=stats)
    with pytest.raises(ValueError, match="tv_weight"):
        sy.bn_synthesize(model, [0, 1], steps=1, tv_weight=-1.0)
    with pytest.raises(ValueError, match="steps"):
        sy.bn_synthesize(model, [0, 1], steps=0)
    with pytest.raises(ValueError, match="box"):
        sy.bn_synthesize(model, [0, 1], steps=1, box=(1.0, 0.0))


def test_copy_test_detects_copies():
    torch.manual_seed(0)
    members, nonmembers = torch.rand(50, 1, 8, 8), torch.rand(50, 1, 8, 8)
    copies = members[:20] + 0.01 * torch.randn(20, 1, 8, 8)
    assert sy.copy_test(copies, members, nonmembers)["closer_to_members"] == 1.0
    fresh = torch.rand(200, 1, 8, 8)
    share = sy.copy_test(fresh, members, nonmembers)["closer_to_members"]
    assert 0.3 < share < 0.7
    idx, dist = sy.nearest_neighbours(members[:3], members)
    assert idx.tolist() == [0, 1, 2] and torch.allclose(dist, torch.zeros(3), atol=1e-3)
    with pytest.raises(ValueError, match="equally many"):
        sy.copy_test(fresh, members, nonmembers[:10])
    with pytest.raises(ValueError, match="same item shape"):
        sy.nearest_neighbours(torch.rand(2, 4), torch.rand(3, 5))


def test_copy_test_permutation_null():
    torch.manual_seed(0)
    members, nonmembers = torch.rand(60, 1, 8, 8), torch.rand(60, 1, 8, 8)
    copies = members[:30] + 0.01 * torch.randn(30, 1, 8, 8)
    out = sy.copy_test(copies, members, nonmembers, permutations=200, seed=1)
    assert out["closer_to_members"] == 1.0 and out["p_value"] < 0.01
    assert out["null"].shape == (200,) and out["null_low"] <= 0.5 <= out["null_high"]
    # a "hub": every query has the same nearest pooled image, so the share is 0 or 1 whatever the
    # split; a binomial interval would call it a strong effect, the permutation null does not
    hub = members[0].expand(40, 1, 8, 8) + 0.001 * torch.rand(40, 1, 8, 8)
    res = sy.copy_test(hub, members, nonmembers, permutations=200)
    assert res["closer_to_members"] == 1.0
    assert res["p_value"] > 0.2                        # about half the re-splits are as extreme
    fresh = torch.rand(100, 1, 8, 8)
    assert sy.copy_test(fresh, members, nonmembers, permutations=300)["p_value"] > 0.01
    assert "p_value" not in sy.copy_test(fresh, members, nonmembers)          # off by default
    with pytest.raises(ValueError, match="permutations"):
        sy.copy_test(fresh, members, nonmembers, permutations=-1)


def test_copy_test_log_ratio_sees_partial_leaks_among_hubs():
    torch.manual_seed(0)
    members, nonmembers = torch.rand(60, 1, 8, 8), torch.rand(60, 1, 8, 8)
    # a set dominated by a hub (40 flat images sharing one nearest neighbour) with a fifth built
    # from distinct members: the yes/no share swings with the hub's half and misses the leak,
    # the log distance ratio (how much nearer, per image) finds it
    hub = 0.5 + 0.02 * torch.randn(40, 1, 8, 8)
    leak = members[:10] + 0.05 * torch.randn(10, 1, 8, 8)
    out = sy.copy_test(torch.cat([hub, leak]), members, nonmembers, permutations=500, seed=2)
    assert out["p_value"] > 0.05, out["p_value"]
    assert out["log_ratio_p_value"] < 0.01, out["log_ratio_p_value"]
    expected = float((torch.as_tensor(out["nonmember_distance"]).log()
                      - torch.as_tensor(out["member_distance"]).log()).mean())
    assert abs(out["log_ratio"] - expected) < 1e-6
    assert out["log_ratio_null"].shape == (500,)
    assert out["log_ratio_null_low"] < 0 < out["log_ratio_null_high"]
    assert out["truncated"] == 0
    fresh = torch.rand(100, 1, 8, 8)
    res = sy.copy_test(fresh, members, nonmembers, permutations=300, seed=3)
    assert res["log_ratio_p_value"] > 0.01
    # with two neighbours per image some re-splits put both in one half: counted, still finite
    few = sy.copy_test(fresh, members, nonmembers, permutations=50, neighbours=2)
    assert few["truncated"] > 0 and np.isfinite(few["log_ratio_null"]).all()


def test_max_ssim_looks_beyond_the_l2_nearest():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 16, 16, generator=g)
    # member 0: the same pattern at 0.4 of the contrast, brighter (SSIM 0.63, pixel distance 5.0);
    # member 1: flat grey at the image's mean (pixel distance 4.6, no structure: SSIM about 0)
    members = torch.cat([0.4 * base + 0.55, torch.full_like(base, float(base.mean())),
                         torch.rand(8, 1, 16, 16, generator=g)])
    nn_idx, _ = sy.nearest_neighbours(base, members)
    assert nn_idx.item() == 1
    s, idx = sy.max_ssim_to_members(base, members, k=3)
    assert idx.tolist() == [0] and s[0] > 0.5
    s1, idx1 = sy.max_ssim_to_members(base, members, k=1)
    assert idx1.tolist() == [1] and s1[0] < s[0]
    with pytest.raises(ValueError, match="k must"):
        sy.max_ssim_to_members(base, members, k=0)


def test_bn_features_average_to_class_statistics(teacher):
    model, x, y = teacher
    f = sy.bn_features(model, x)
    assert f.shape == (len(x), 6 + 16 + 120 + 84) and f.dtype == torch.float64
    stats = sy.class_bn_statistics(model, x, y)
    means = sy.class_means(f, y)
    for c, layers in stats.items():
        assert torch.allclose(means[c].float(), torch.cat([mu for mu, _ in layers]), atol=1e-4)
    with pytest.raises(ValueError, match="BatchNorm"):
        sy.bn_features(LeNet5(), x)


def test_tracing_scores_find_members():
    g = torch.Generator().manual_seed(0)
    d, n = 400, 50                                    # D / n = 8: a strong tracing signal
    pop = torch.randn(2000, d, generator=g)
    members, nonmembers = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    labels = torch.zeros(n, dtype=torch.long)
    released = sy.class_means(members, labels)
    sm = sy.tracing_scores(members, labels, released, pop, torch.zeros(2000, dtype=torch.long))
    sn = sy.tracing_scores(nonmembers, labels, released, pop, torch.zeros(2000, dtype=torch.long))
    from mixcon_lite import stats
    assert stats.auc(sm, sn) > 0.95
    # a mean released from other people's records carries no trace of these members
    other = sy.class_means(torch.randn(n, d, generator=g), labels)
    sm0 = sy.tracing_scores(members, labels, other, pop, torch.zeros(2000, dtype=torch.long))
    sn0 = sy.tracing_scores(nonmembers, labels, other, pop, torch.zeros(2000, dtype=torch.long))
    assert 0.3 < stats.auc(sm0, sn0) < 0.7
    # leave-one-out: each member against its class mean without itself, as if recomputed
    loo = sy.tracing_scores(members, labels, released, pop, torch.zeros(2000, dtype=torch.long),
                            leave_one_out={0: n})
    without = sy.class_means(members[1:], labels[1:])
    one = sy.tracing_scores(members[:1], labels[:1], without, pop,
                            torch.zeros(2000, dtype=torch.long))
    assert np.allclose(loo[0], one[0])
    assert stats.auc(loo, sn) < 0.7 < stats.auc(sm, sn)   # the trace is gone, the gain with it
    with pytest.raises(ValueError, match="n_c >= 2"):
        sy.tracing_scores(members, labels, released, pop, torch.zeros(2000, dtype=torch.long),
                          leave_one_out={0: 1})
    with pytest.raises(ValueError, match="no released mean"):
        sy.tracing_scores(members, labels + 1, released, pop, torch.zeros(2000, dtype=torch.long))
    with pytest.raises(ValueError, match="share D"):
        sy.tracing_scores(members[:, :10], labels, released, pop, torch.zeros(2000, dtype=torch.long))


def test_distance_scores():
    synthetic = torch.rand(5, 1, 4, 4)
    near = synthetic + 0.01
    far = torch.rand(5, 1, 4, 4) + 2
    assert (sy.distance_scores(near, synthetic) > sy.distance_scores(far, synthetic).max()).all()
