"""mixcon_lite.experiments.mixcon_images: settings, data split, one grid point, sweet spot, script."""
import json

import numpy as np
import pytest
import torch

from mixcon_lite.experiments import mixcon_images as mi
from mixcon_lite.separability import min_pairwise_distance


def _data(n_per_class=6, seed=0):
    """Tiny class-dependent images: class c is a bright square at a class-specific place."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(10):
        x = 0.1 * torch.rand(n_per_class, 1, 28, 28, generator=g)
        r, col = 2 + 2 * (c % 5), 4 + 10 * (c // 5)
        x[:, :, r:r + 8, col:col + 8] += 0.8
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((n_per_class,), c))
    x, y = torch.cat(xs), torch.cat(ys)
    return {"x_train": x, "y_train": y, "x_aux": x, "y_aux": y, "x_tune": x[::n_per_class][:4],
            "x_test": x, "y_test": y, "x_victims": x[::n_per_class][:6],
            "y_victims": y[::n_per_class][:6], "x_delta": x[:20]}


def tiny(**over):
    cfg = mi.settings("fast")
    cfg.update(epochs=1, whitebox_steps=10, decoder_epochs=1, tv_grid=[0.0, 0.1],
               grid={"lam": [1.0], "beta": [0.01]})
    cfg.update(over)
    return cfg


def test_settings_and_grid():
    fast, full = mi.settings("fast"), mi.settings("full")
    assert (fast["epochs"], full["epochs"]) == (3, 20)
    assert (full["lr"], full["momentum"]) == (0.01, 0.0)          # the paper's SGD
    assert full["victims_per_class"] * 10 == 100 and full["whitebox_steps"] == 500
    assert full["decoder_epochs"] == 50 and full["decoder_lr"] == 0.002
    assert full["decoder_adversarial"] > 0 and fast["decoder_adversarial"] == 0
    assert mi.settings("fast", "mnist")["n_per_class"] is None
    assert 0.0 in fast["grid"]["beta"]
    pts = mi.grid_points(fast)
    assert pts[0] == (0.0, 0.0) and len(pts) == 1 + len(fast["grid"]["lam"]) * len(fast["grid"]["beta"])
    with pytest.raises(ValueError, match="Unknown dataset"):
        mi.settings("fast", "cifar10")


def test_one_point_measures_everything():
    data, cfg = _data(), tiny()
    p = mi.run_point(1.0, 0.01, data, cfg)
    assert 0 <= p["accuracy"] <= 1 and p["pairs"] == "across"
    assert p["whitebox"]["images"].shape == data["x_victims"].shape
    assert p["decoder"]["images"].shape == data["x_victims"].shape
    for attack in ("whitebox", "decoder"):
        r = p[attack]
        assert r["nssim"] == pytest.approx((r["ssim"] + 1) / 2)
        assert r["ssim"] <= r["ssim_max"] <= 1
        assert len(r["ssim_per_victim"]) == len(data["x_victims"])
        assert np.mean(r["ssim_per_victim"]) == pytest.approx(r["ssim"])
    assert p["tv"] in cfg["tv_grid"]
    assert 0 <= p["whitebox"]["feature_residual"] < 10
    model, _ = mi.train_client(1.0, 0.01, data, cfg)
    h = model.forward_to(data["x_delta"], "block2").flatten(1)
    assert p["delta"] == pytest.approx(float(min_pairwise_distance(h)), rel=1e-5)
    assert p["relative_delta"] == pytest.approx(p["delta"] / p["mean_distance"])
    (row,) = mi.rows([p])
    assert tuple(row) == mi.JSON_KEYS and row["ssim_whitebox"] == p["whitebox"]["nssim"]
    plain = mi.plain_point(p)
    assert "model" not in plain and "images" not in plain["whitebox"]
    json.dumps(plain)


def test_mixcon_changes_training_and_within_pairs_differ():
    data, cfg = _data(), tiny()
    v, _ = mi.train_client(0.0, 0.0, data, cfg)
    m, _ = mi.train_client(10.0, 0.0, data, cfg)
    w, _ = mi.train_client(10.0, 0.0, data, cfg, pairs="within")
    h = [net.forward_to(data["x_delta"], "block2") for net in (v, m, w)]
    assert not torch.allclose(h[0], h[1]) and not torch.allclose(h[1], h[2])
    with pytest.raises(ValueError, match="lam and beta"):
        mi.train_client(-1.0, 0.0, data, cfg)


def _pt(lam, beta, acc, s, pairs="across"):
    return {"lam": lam, "beta": beta, "accuracy": acc, "pairs": pairs, "whitebox": {"ssim": s}}


def test_sweet_spot_rules():
    pts = [_pt(0, 0, 0.80, 0.25), _pt(1, 0.01, 0.79, 0.10), _pt(10, 0, 0.10, 0.00),
           _pt(1, 0.1, 0.81, 0.30), _pt(0.1, 0, 0.785, 0.05, pairs="within")]
    spot = mi.sweet_spot(pts)
    assert (spot["lam"], spot["beta"]) == (1, 0.01)      # not the collapsed net, not within-class
    assert mi.sweet_spot(pts, max_drop=0.005) is None     # 1 point is too much here
    assert mi.sweet_spot(pts[:1] + pts[3:4]) is None      # higher SSIM than vanilla is no defence
    with pytest.raises(ValueError, match="max_drop"):
        mi.sweet_spot(pts, max_drop=2)
    with pytest.raises(ValueError, match="No vanilla"):
        mi.vanilla(pts[1:])


def test_within_class_comparison_matches_accuracy(monkeypatch):
    accs = {0.0: 0.70, 0.01: 0.78, 0.1: 0.60}
    monkeypatch.setattr(mi, "run_point", lambda lam, beta, data, cfg, pairs, decoder: {
        "lam": lam, "beta": beta, "pairs": pairs, "accuracy": accs[beta]})
    spot = _pt(1.0, 0.1, 0.77, 0.1)
    wc = mi.within_class_comparison(spot, None, tiny(grid={"lam": [1.0], "beta": [0.0, 0.01, 0.1]}))
    assert [p["pairs"] for p in wc["points"]] == ["within"] * 3
    assert wc["matched"]["beta"] == 0.01


def test_mnist_split_is_disjoint(data_dir):
    cfg = mi.settings("fast", "mnist")
    d = mi.prepare_data(cfg)
    assert (len(d["x_train"]), len(d["x_aux"]), len(d["x_test"])) == (6000, 2000, 2000)
    flat = lambda x: {bytes(v.numpy().tobytes()) for v in x.flatten(1)}  # noqa: E731
    assert not flat(d["x_victims"]) & flat(d["x_aux"])
    assert not flat(d["x_victims"]) & flat(d["x_train"])


def test_script_prints_json_rows(monkeypatch, capsys):
    cfg = tiny()
    monkeypatch.setattr(mi, "settings", lambda mode, dataset, seed: {**cfg, "seed": seed})
    monkeypatch.setattr(mi, "prepare_data", lambda cfg: _data())
    mi.main(["--mode", "fast", "--seed", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    res = mi.run_grid(cfg, _data(), decoder=False)
    assert res["start"]["ssim"] < 0.5 and "images" in res["baseline"]
    assert [tuple(r) for r in out] == [mi.JSON_KEYS] * 2
    assert (out[0]["lam"], out[0]["beta"]) == (0.0, 0.0)
    assert all(0 <= r["ssim_whitebox"] <= 1 and 0 <= r["ssim_decoder"] <= 1 for r in out)
