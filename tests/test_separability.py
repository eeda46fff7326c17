import time

import pytest
import torch

from mixcon_lite import separability as sep
from mixcon_lite.models import MLP, LeNet5


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_delta_matches_pdist(seed, chunk):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(int(torch.randint(2, 90, (1,), generator=g)), 6, generator=g) * 10 + 100
    d, (i, j) = sep.min_pairwise_distance(h, chunk=chunk, return_pair=True)
    ref = torch.pdist(h.double())
    assert d == pytest.approx(ref.min().item(), rel=1e-12)
    assert i < j and (h[i] - h[j]).double().norm().item() == pytest.approx(d, rel=1e-12)


def test_delta_duplicates_and_tiny_gaps():
    h = torch.randn(50, 8, dtype=torch.float64) * 1e3
    h[31] = h[4]
    assert sep.min_pairwise_distance(h, chunk=16) == 0.0
    h = torch.randn(50, 8, dtype=torch.float64) * 1e3
    h[9] = h[40] + 1e-6                      # far below the Gram trick's rounding error
    assert sep.min_pairwise_distance(h, chunk=16) == pytest.approx(1e-6 * 8 ** 0.5, rel=1e-3)


def test_delta_is_fast_and_bounded(monkeypatch):
    h = torch.randn(10000, 1000)
    start = time.perf_counter()
    d = sep.min_pairwise_distance(h)
    assert time.perf_counter() - start < 30
    assert 30 < d < 45      # sqrt(2 * 1000) = 44.7 typical, the minimum over 5e7 pairs is smaller


def test_Delta_and_pairs():
    h = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    assert sep.max_pair_distance(h, [(0, 1), (2, 3)]) == pytest.approx(5.0)
    assert sep.max_pair_distance(h, torch.tensor([[2, 3]]), chunk=1) == pytest.approx(5 ** 0.5)
    y = torch.tensor([0, 1, 0, 1, 2, 2, 0])
    p = sep.mixcon_pairs(y)
    assert {tuple(r) for r in p.tolist()} == {(0, 1), (2, 3), (0, 4), (2, 5), (1, 4), (3, 5)}
    assert all(y[a] != y[b] for a, b in p.tolist())


def test_bad_input():
    with pytest.raises(ValueError, match="at least two rows"):
        sep.min_pairwise_distance(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        sep.min_pairwise_distance(torch.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        sep.min_pairwise_distance(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match=r"\[P, 2\]"):
        sep.max_pair_distance(torch.zeros(3, 2), [(0, 1, 2)])
    with pytest.raises(ValueError, match="indices"):
        sep.max_pair_distance(torch.zeros(3, 2), [(0, 3)])
    with pytest.raises(ValueError, match="two classes"):
        sep.mixcon_pairs(torch.zeros(4))
    with pytest.raises(ValueError, match="too large"):
        sep.pairwise_distances(torch.zeros(6000, 1))
    with pytest.raises(ValueError, match="gap"):
        sep.twin_points(5, 3, 0.0)
    with pytest.raises(ValueError, match="width"):
        sep.steps_to_fit(0, torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))


def test_twin_points_have_the_requested_gap():
    for gap in (1.5, 0.5, 0.1, 0.01):
        x, y = sep.twin_points(40, 8, gap, seed=1)
        assert x.shape == (80, 8) and torch.allclose(x.norm(dim=1), torch.ones(80), atol=1e-5)
        assert torch.allclose((x[:40] - x[40:]).norm(dim=1), torch.full((40,), gap), rtol=1e-4)
        assert sep.min_pairwise_distance(x) <= gap * (1 + 1e-4)          # other pairs may be closer for large gaps
        if gap <= 0.1:
            assert sep.min_pairwise_distance(x) == pytest.approx(gap, rel=1e-3)
        assert torch.equal(y[:40], 1 - y[40:])


def test_steps_to_fit_grows_as_gap_shrinks():
    easy = sep.steps_to_fit(64, *sep.twin_points(20, 5, 0.5, seed=0), max_steps=3000)
    hard = sep.steps_to_fit(64, *sep.twin_points(20, 5, 0.02, seed=0), max_steps=3000)
    assert easy is not None and (hard is None or hard > easy)


def test_layer_report():
    torch.manual_seed(0)
    net = LeNet5().eval()
    x = torch.rand(20, 1, 28, 28)
    y = torch.arange(20) % 2
    rows = sep.layer_report(net, x, pairs=sep.mixcon_pairs(y))
    assert [r["layer"] for r in rows] == ["input"] + net.block_names
    assert rows[0]["dim"] == 784 and rows[1]["dim"] == 6 * 14 * 14
    pairs = sep.mixcon_pairs(y)
    for r in rows:  # each row against a brute-force computation at that layer
        h = x if r["layer"] == "input" else net.forward_to(x, r["layer"]).detach()
        d = torch.cdist(h.flatten(1).double(), h.flatten(1).double())
        off_diagonal = d + torch.diag(torch.full((len(x),), float("inf"), dtype=torch.float64))
        assert r["delta"] == pytest.approx(off_diagonal.min().item(), rel=1e-6, abs=1e-9)
        assert r["Delta_S"] == pytest.approx(d[pairs[:, 0], pairs[:, 1]].max().item(), rel=1e-6)
        assert r["median"] == pytest.approx(torch.pdist(h.flatten(1).double()).median().item(), rel=1e-5)
    assert sep.layer_report(MLP(3, [4], 2), torch.rand(5, 3), include_input=False)[0]["Delta_S"] is None


@pytest.mark.parametrize("seed", range(12))
def test_twin_points_gap_is_delta_at_every_seed(seed):
    # a draw where two points of different pairs fall closer than the gap is redrawn
    for gap in (0.4, 0.025):
        x, _ = sep.twin_points(50, 10, gap, seed=seed)
        assert abs(sep.min_pairwise_distance(x) - gap) < 1e-3 * gap


def test_closest_pairs_against_brute_force():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(40, 5, generator=g)
    h[7] = h[3] + 1e-4                      # a near-duplicate: the closest pair
    pairs = sep.closest_pairs(h, 5)
    d = torch.cdist(h.double(), h.double())
    i, j = torch.triu_indices(40, 40, offset=1)
    want = d[i, j].argsort()[:5]
    assert pairs.tolist() == torch.stack([i[want], j[want]], 1).tolist()
    assert pairs[0].tolist() == [3, 7]
    with pytest.raises(ValueError, match="only"):
        sep.closest_pairs(h[:3], 4)


def test_geometry_kept_orders_pairs_like_the_input():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 30, generator=g)
    same = sep.geometry_kept(x, 3 * x, n_pairs=150)
    assert same["rho"] == pytest.approx(1.0) and same["n_pairs"] == 150
    unrelated = sep.geometry_kept(x, torch.randn(400, 30, generator=g), n_pairs=150)
    assert unrelated["low"] < 0 < unrelated["high"]            # no association: covers 0
    noisy = sep.geometry_kept(x, x + 0.5 * torch.randn(400, 30, generator=g), n_pairs=150)
    assert unrelated["high"] < noisy["low"] and noisy["rho"] < 1
    with pytest.raises(ValueError, match="one row per sample"):
        sep.geometry_kept(x, x[:-1])
    with pytest.raises(ValueError, match="disjoint pairs"):
        sep.geometry_kept(x, x, n_pairs=300)
