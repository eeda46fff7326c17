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
            "x_test": x, "y_test": y, "x_select": x, "y_select": y,
            "x_victims": x[::n_per_class][:6], "y_victims": y[::n_per_class][:6],
            "x_pick": x[1::n_per_class][:4], "y_pick": y[1::n_per_class][:4], "x_delta": x[:20]}


def tiny(**over):
    cfg = mi.settings("fast")
    cfg.update(epochs=1, whitebox_steps=10, decoder_epochs=1, tv_grid=[0.0, 0.1],
               grid=[[1.0, 0.1]], whitebox_restarts=2)
    cfg.update(over)
    return cfg


def test_settings_and_grid():
    fast, full = mi.settings("fast"), mi.settings("full")
    cpu = mi.settings("full", scale="cpu")
    assert (fast["epochs"], full["epochs"], cpu["epochs"]) == (3, 20, 20)
    assert (full["lr"], full["momentum"]) == (0.01, 0.0)          # the paper's SGD
    assert (cpu["lr"], cpu["momentum"]) == (0.01, 0.9)            # same steps, converged
    assert full["victims_per_class"] * 10 == 100 and full["whitebox_steps"] == 500
    assert full["decoder_epochs"] == 50 and full["decoder_lr"] == 0.002
    assert full["decoder_adversarial"] > 0 and fast["decoder_adversarial"] == 0
    assert cpu["n_per_class"] == 1500 and cpu["decoder_adversarial"] == 0
    assert mi.settings("fast", "mnist")["n_per_class"] is None
    assert set(full["attacks"]) == set(mi.ATTACKS) and "cosine" not in fast["attacks"]
    assert mi.settings("fast", scale="cpu")["scale"] == "fast"       # cpu scale is full mode only
    for c in (fast, full, cpu):
        pts = mi.grid_points(c)
        assert pts[0] == (0.0, 0.0) and len(pts) == 1 + len(c["grid"])
        assert all(b == 0 or mi.floor(lam, b) > 0 for lam, b in pts[1:])   # beta sets a floor
        assert any(b == 0 for _, b in pts[1:])                              # and the ablation
    with pytest.raises(ValueError, match="Unknown dataset"):
        mi.settings("fast", "cifar10")
    with pytest.raises(ValueError, match="Unknown scale"):
        mi.settings("full", scale="gpu")
    with pytest.raises(ValueError, match="no floor"):
        mi.grid_points({**fast, "grid": [[10.0, 0.01]]})


def test_floor_is_the_penalty_minimiser():
    lam, beta, eps = 1.0, 0.1, 0.05
    d = np.linspace(0, 2, 200001)
    pen = lam * d + beta / (d + eps)
    assert mi.floor(lam, beta, eps) == pytest.approx(d[np.argmin(pen)], abs=1e-4)
    assert mi.floor(10.0, 0.01, eps) == 0.0                  # sqrt(0.001) < eps: no floor
    with pytest.raises(ValueError, match="lam > 0"):
        mi.floor(0.0, 0.1)


def test_one_point_measures_everything():
    data, cfg = _data(), tiny()
    p = mi.run_point(1.0, 0.1, data, cfg, attacks=list(mi.ATTACKS))
    assert 0 <= p["accuracy"] <= 1 and 0 <= p["accuracy_select"] <= 1 and p["pairs"] == "across"
    for attack in mi.ATTACKS:
        r = p[attack]
        assert r["images"].shape == data["x_victims"].shape
        assert r["nssim"] == pytest.approx((r["ssim"] + 1) / 2)
        assert r["ssim"] <= r["ssim_max"] <= 1
        assert len(r["ssim_per_victim"]) == len(data["x_victims"])
        assert np.mean(r["ssim_per_victim"]) == pytest.approx(r["ssim"])
        assert len(r["pick_per_image"]) == len(data["x_pick"])
        assert np.mean(r["pick_per_image"]) == pytest.approx(r["pick_ssim"])
    for attack in mi.WHITEBOX:
        assert p[attack]["tv"] in cfg["tv_grid"]
        assert 0 <= p[attack]["feature_residual"] < 10
    assert p["strongest"] == max(mi.ATTACKS, key=lambda a: p[a]["ssim"])
    assert p["ssim_strongest"] == p[p["strongest"]]["ssim"]
    model, _ = mi.train_client(1.0, 0.1, data, cfg)
    h = model.forward_to(data["x_delta"], "block2").flatten(1)
    assert p["delta"] == pytest.approx(float(min_pairwise_distance(h)), rel=1e-5)
    assert p["relative_delta"] == pytest.approx(p["delta"] / p["mean_distance"])
    start = mi.ssim_summary(data["x_victims"], torch.full_like(data["x_victims"], 0.5))
    (row,) = mi.rows([p], start)
    assert tuple(row) == mi.JSON_KEYS and row["ssim_whitebox"] == p["whitebox"]["nssim"]
    assert row["ssim_strongest"] == max(row[f"ssim_{a}"] for a in mi.ATTACKS)
    assert row["ssim_start"] == start["nssim"] and row["selected"] is False
    assert mi.rows([p], start, selected=p)[0]["selected"] is True
    plain = mi.plain_point(p)
    assert "model" not in plain and "images" not in plain["whitebox"]
    json.dumps(plain)
    with pytest.raises(ValueError, match="Unknown or no attacks"):
        mi.attack(model, data, cfg, attacks=["gan"])


def test_mixcon_changes_training_and_within_pairs_differ():
    data, cfg = _data(), tiny()
    v, _ = mi.train_client(0.0, 0.0, data, cfg)
    m, _ = mi.train_client(10.0, 0.0, data, cfg)
    w, _ = mi.train_client(10.0, 0.0, data, cfg, pairs="within")
    n, _ = mi.train_client(10.0, 0.0, data, cfg, form="normalised")
    h = [net.forward_to(data["x_delta"], "block2") for net in (v, m, w, n)]
    assert not torch.allclose(h[0], h[1]) and not torch.allclose(h[1], h[2])
    assert not torch.allclose(h[1], h[3])
    with pytest.raises(ValueError, match="lam and beta"):
        mi.train_client(-1.0, 0.0, data, cfg)


def _pt(lam, beta, acc, s, pick=None, acc_select=None, pairs="across", form="raw", attack="decoder"):
    """A grid point with one attack's mean SSIM on the victims (``s``) and the pick images."""
    return {"lam": lam, "beta": beta, "accuracy": acc, "pairs": pairs, "form": form,
            "accuracy_select": acc if acc_select is None else acc_select,
            attack: {"ssim": s, "pick_ssim": s if pick is None else pick}}


def test_select_then_evaluate():
    pts = [_pt(0, 0, 0.80, 0.60), _pt(1, 0.1, 0.79, 0.35), _pt(10, 0, 0.10, 0.00),
           _pt(1, 1, 0.81, 0.50), _pt(0.1, 0, 0.785, 0.05, pairs="within"),
           _pt(0.3, 0.1, 0.80, 0.02, form="normalised")]
    c = mi.candidate(pts)
    assert (c["lam"], c["beta"]) == (1, 0.1)     # not collapsed, not within-class, not normalised
    assert mi.sweet_spot(pts) is c               # 0.35 <= (2/3) 0.60
    assert mi.candidate(pts, max_drop=0.005)["beta"] == 1        # one point is too much for 0.79
    assert mi.sweet_spot(pts, max_drop=0.005) is None            # 0.50 > 0.40: picked, not cleared
    # selection looks at the pick images and the select accuracy only
    pts2 = [_pt(0, 0, 0.80, 0.60), _pt(1, 0.1, 0.79, 0.10, pick=0.50), _pt(1, 1, 0.80, 0.30, pick=0.20)]
    assert mi.candidate(pts2)["beta"] == 1 and mi.sweet_spot(pts2)["beta"] == 1
    pts3 = [_pt(0, 0, 0.80, 0.60), _pt(1, 0.1, 0.70, 0.10, acc_select=0.80)]
    assert mi.candidate(pts3) is not None and mi.sweet_spot(pts3) is None   # test accuracy fails
    # the strongest attack decides: a second attack that still recovers sinks the point
    two = _pt(1, 0.1, 0.79, 0.10)
    two["whitebox"] = {"ssim": 0.58, "pick_ssim": 0.58}
    van = _pt(0, 0, 0.80, 0.60)
    van["whitebox"] = {"ssim": 0.70, "pick_ssim": 0.70}
    assert mi.strongest(two) == "whitebox" and not mi.clears_bar(two, van)
    with pytest.raises(ValueError, match="max_drop"):
        mi.sweet_spot(pts, max_drop=2)
    with pytest.raises(ValueError, match="min_drop"):
        mi.sweet_spot(pts, min_drop=0)
    with pytest.raises(ValueError, match="No vanilla"):
        mi.vanilla(pts[1:])
    with pytest.raises(ValueError, match="no attack"):
        mi.strongest({"lam": 1, "beta": 0})


def test_bars_are_inclusive():
    v = _pt(0, 0, 0.8125, 0.75)
    assert mi.clears_bar(_pt(1, 0.1, 0.8125 - 0.0625, 0.5), v, max_drop=0.0625)   # both on the bar
    assert not mi.clears_bar(_pt(1, 0.1, 0.75, 0.5 + 1e-9), v, max_drop=0.0625)
    assert not mi.clears_bar(_pt(1, 0.1, 0.75 - 1e-9, 0.5), v, max_drop=0.0625)


def test_credit_needs_an_attack_that_works():
    rng = np.random.default_rng(0)
    per = lambda m: list(m + 0.01 * rng.standard_normal(20))   # noqa: E731
    v = {"lam": 0, "beta": 0, "decoder": {"ssim": 0.6, "ssim_per_victim": per(0.6)}}
    p = {"lam": 1, "beta": 0.1, "decoder": {"ssim": 0.3, "ssim_per_victim": per(0.3)}}
    start, base = {"ssim_per_victim": per(0.1)}, {"ssim_per_victim": per(0.4)}
    c = mi.credit(p, v, base, start)
    assert c["attack"] == "decoder" and c["works"] and c["credited"] and c["drop"].a_better
    weak_base = {"ssim_per_victim": per(0.7)}                 # the label alone does better
    c = mi.credit(p, v, weak_base, start)
    assert not c["works"] and not c["credited"]
    same = {"lam": 1, "beta": 0.1, "decoder": {"ssim": 0.6, "ssim_per_victim": per(0.6)}}
    assert not mi.credit(same, v, base, start)["credited"]    # no drop beyond noise
    json.dumps(mi._plain_credit(c))


def test_within_class_comparison_matches_accuracy(monkeypatch):
    accs = {0.0: 0.70, 0.01: 0.78, 0.1: 0.60}
    monkeypatch.setattr(mi, "run_point", lambda lam, beta, data, cfg, pairs, attacks, progress: {
        "lam": lam, "beta": beta, "pairs": pairs, "accuracy": accs[beta]})
    point = _pt(1.0, 0.1, 0.77, 0.1)
    wc = mi.within_class_comparison(point, None, tiny(), betas=[0.0, 0.01, 0.1])
    assert [p["pairs"] for p in wc["points"]] == ["within"] * 3
    assert wc["matched"]["beta"] == 0.01
    assert [p["beta"] for p in mi.within_class_comparison(point, None, tiny())["points"]] == [0.1]


def test_mnist_split_is_disjoint(data_dir):
    cfg = mi.settings("fast", "mnist")
    d = mi.prepare_data(cfg)
    assert (len(d["x_train"]), len(d["x_aux"]), len(d["x_test"]), len(d["x_select"])) == \
        (6000, 2000, 1000, 1000)
    flat = lambda x: {bytes(v.numpy().tobytes()) for v in x.flatten(1)}  # noqa: E731
    assert not flat(d["x_victims"]) & flat(d["x_aux"])
    assert not flat(d["x_victims"]) & flat(d["x_train"])
    assert not flat(d["x_victims"]) & flat(d["x_pick"])
    assert len(d["x_victims"]) == 10 * cfg["victims_per_class"]
    assert len(d["x_pick"]) == 10 * cfg["select_per_class"]
    assert sorted(d["y_pick"].tolist()) == sorted(list(range(10)) * cfg["select_per_class"])


def test_script_prints_json_rows(monkeypatch, capsys):
    cfg = tiny()
    monkeypatch.setattr(mi, "settings", lambda mode, dataset, seed, scale: {**cfg, "seed": seed})
    monkeypatch.setattr(mi, "prepare_data", lambda cfg: _data())
    mi.main(["--mode", "fast", "--seed", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    res = mi.run_grid(cfg, _data(), attacks=["decoder"])
    assert res["start"]["ssim"] < 0.5 and "images" in res["baseline"]
    assert [tuple(r) for r in out] == [mi.JSON_KEYS] * 2
    assert (out[0]["lam"], out[0]["beta"]) == (0.0, 0.0)
    assert all(0 <= r["ssim_whitebox"] <= 1 and 0 <= r["ssim_decoder"] <= 1 for r in out)
    assert all(r["ssim_cosine"] is None for r in out)            # not a fast-mode attack
    assert all(r["ssim_strongest"] >= r["ssim_adaptive"] for r in out)
    assert sum(r["selected"] for r in out) <= 1


def test_against_vanilla_and_excess_removed():
    rng = np.random.default_rng(1)
    per = lambda m: list(m + 0.01 * rng.standard_normal(20))   # noqa: E731

    def pt(lam, beta, s, **kw):
        return {"lam": lam, "beta": beta, "pairs": kw.get("pairs", "across"),
                "form": kw.get("form", "raw"), "decoder": {"ssim": s, "ssim_per_victim": per(s)}}

    pts = [pt(0, 0, 0.6), pt(1, 0.1, 0.5), pt(1, 1, 0.7), pt(3, 0.1, 0.6),
           pt(1, 0.1, 0.1, pairs="within"), pt(1, 0.1, 0.1, form="normalised")]
    rows = mi.against_vanilla(pts)
    assert [(p["lam"], p["beta"]) for p, _, _ in rows] == [(1, 0.1), (1, 1), (3, 0.1)]
    assert [a for _, a, _ in rows] == ["decoder"] * 3
    less, more, same = (c for _, _, c in rows)
    assert less.a_better and more.b_better and not (same.a_better or same.b_better)
    base = {"ssim": 0.4}
    assert mi.excess_removed(pts[1], pts[0], base) == pytest.approx(0.5)    # 0.2 above -> 0.1
    assert mi.excess_removed(pts[2], pts[0], base) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="does not beat the label-only"):
        mi.excess_removed(pts[1], pts[0], {"ssim": 0.7})


def test_add_attacks_keeps_the_strongest_consistent():
    data, cfg = _data(), tiny()
    p = mi.run_point(1.0, 0.1, data, cfg, attacks=["decoder"])
    assert mi.attacks_of(p) == ["decoder"] and p["strongest"] == "decoder"
    assert mi.add_attacks(p, data, cfg, ["cosine", "adaptive"]) is p
    assert mi.attacks_of(p) == ["cosine", "decoder", "adaptive"]
    assert p["strongest"] == max(mi.attacks_of(p), key=lambda a: p[a]["ssim"])
    assert p["ssim_strongest"] == p[p["strongest"]]["ssim"]


def test_train_client_halves_the_learning_rate_when_training_diverges(monkeypatch):
    """A diverging loss (FloatingPointError from train) is retrained from the same start at half
    the learning rate, at most twice; a third divergence is raised."""
    cfg = tiny()
    x = torch.rand(20, 1, 28, 28)
    y = torch.arange(20) % 10
    data = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    seen = []

    def fake_train(model, xy, lr, **kw):
        seen.append(lr)
        if len(seen) < 2:
            raise FloatingPointError("Training diverged (loss = nan)")

    monkeypatch.setattr(mi, "train", fake_train)
    model, _ = mi.train_client(1.0, 0.1, data, cfg)
    assert seen == [cfg["lr"], cfg["lr"] / 2] and model.lr_used == cfg["lr"] / 2

    def always(model, xy, lr, **kw):
        seen.append(lr)
        raise FloatingPointError("Training diverged (loss = nan)")

    seen.clear()
    monkeypatch.setattr(mi, "train", always)
    with pytest.raises(FloatingPointError):
        mi.train_client(1.0, 0.1, data, cfg)
    assert seen == [cfg["lr"], cfg["lr"] / 2, cfg["lr"] / 4]
