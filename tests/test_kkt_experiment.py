"""The chapter 08 pipeline (mixcon_lite.experiments.kkt) at a tiny size, and train_margin's history."""
import json

import numpy as np
import pytest
import torch

from mixcon_lite.experiments import kkt

TINY = {"mode": "fast", "n_train": 6, "width": 16, "init_scale": 0.5, "train_steps": 300, "train_lr": 1.0,
        "n_candidates": 8, "attack_steps": 20, "attack_lr": 0.01, "lam_min": 0.5, "relu_alpha": 20.0,
        "n_test": 200}


def test_settings_are_the_documented_sizes():
    fast, full, cpu = kkt.settings("fast"), kkt.settings("full"), kkt.settings("full", scale="cpu")
    assert fast["n_candidates"] == 2 * fast["n_train"] and full["n_train"] == 500 and full["width"] == 1000
    assert cpu["n_candidates"] == 2 * cpu["n_train"] and fast["n_train"] < cpu["n_train"] < full["n_train"]
    assert fast["bias"] == full["bias"] == "first"
    with pytest.raises(ValueError, match="scale"):
        kkt.settings("full", scale="gpu")
    with pytest.raises(ValueError, match="mode"):
        kkt.settings("medium")


def test_load_task_draws_disjoint_balanced_sets(data_dir):
    data = kkt.load_task("mnist-odd-even", 10, seed=3, n_test=100)
    assert data["x_train"].shape == (10, 1, 28, 28) and data["y_train"].sum() == 0
    assert set(data["y_train"].tolist()) == {-1.0, 1.0}
    assert ((data["digits_train"] % 2 == 1) == (data["y_train"] > 0)).all()
    flat = lambda t: {tuple(v) for v in t.flatten(1).numpy().round(4).tolist()}  # noqa: E731
    assert not flat(data["x_train"]) & flat(data["x_control"]) and not flat(data["x_train"]) & flat(data["x_test"])
    other = kkt.load_task("mnist-odd-even", 10, seed=4, n_test=100)
    assert not torch.equal(other["x_train"], data["x_train"])
    with pytest.raises(ValueError, match="Unknown task"):
        kkt.load_task("cifar", 10)


def test_run_tiny_returns_every_number(data_dir, monkeypatch, capsys):
    out = kkt.run(config=TINY, seed=1, progress=False)
    res = out["results"]
    for key in kkt.SUMMARY_KEYS:
        assert key in res
    assert res["n_train"] == 6 and 0 <= res["test_accuracy"] <= 1 and 0 <= res["n_recovered"] <= 6
    assert -1 <= res["baseline_best_ssim"] <= 1 and len(res["ssim_per_sample"]) == 6
    assert 0 <= res["kkt_residual"] <= 1 and 0 <= res["kkt_residual_control"] <= 1
    assert out["images"].shape == (8, 1, 28, 28) and out["images"].min() >= 0 and out["images"].max() <= 1
    assert out["history"]["train_error"][-1] == 0
    assert res["n_recovered"] == res["n_recovered_distinct"] <= 6
    for key in ("authors_n_recovered_distinct", "naive_n_recovered_distinct", "n_control_recovered"):
        assert 0 <= res[key] <= 6
    # one to one: no candidate is credited to two training images
    idx = [i for i in res["best_candidate"] if i >= 0]
    assert len(idx) == len(set(idx)) == 6
    reg = out["regime"]
    assert len(reg["step"]) == len(reg["cosine"]) == len(reg["residual"]) >= 5
    assert abs(reg["cosine"][-1] - 1) < 1e-5 and reg["normalised_margin"][-1] > 0
    assert set(out["others"]) == {"authors", "naive"}
    # the attack's start is scored too: mean image plus noise, the same for every candidate
    start = kkt.start_images(out["data"], TINY, seed=1)
    assert start.shape == out["images"].shape and float((start - out["data"]["mean"]).abs().max()) < 0.1
    assert 0 <= res["start_n_recovered_distinct"] <= 6 and 0 <= res["candidate_residual"] <= 1
    assert 0 <= res["n_control_beat_random_real"] <= 6
    # start_images is reconstruct's first draw: an attack that barely moves stays there
    _, still = kkt.attack(out["model"], out["data"], TINY, seed=1, steps=1, lr=1e-9, lam_lr=1e-9)
    assert torch.allclose(still, start, atol=1e-6)
    monkeypatch.setattr(kkt, "settings", lambda mode=None, scale="paper": dict(TINY))
    kkt.main(["--mode", "fast", "--seed", "2", "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(printed) == sorted(kkt.SUMMARY_KEYS)


def test_train_margin_history_grows_the_margin():
    from mixcon_lite.models import MLP
    from mixcon_lite.train import train_margin

    torch.manual_seed(0)
    x = torch.randn(10, 5)
    y = torch.where(x[:, 0] > 0, 1.0, -1.0)
    net = MLP(5, [8], 1, bias=False)
    hist = train_margin(net, x, y, steps=200, lr=0.5, log_every=50, progress=False)
    assert hist["step"] == [0, 50, 100, 150, 199]
    assert hist["loss"][-1] < hist["loss"][0] and hist["margin"][-1] > 0 and hist["train_error"][-1] == 0
    torch.manual_seed(0)
    net2 = MLP(5, [8], 1, bias=False)
    h2 = train_margin(net2, x, y, steps=200, lr=0.5, weight_decay=0.05, log_every=50, progress=False)
    assert h2["param_norm"][-1] < hist["param_norm"][-1]
    assert np.isfinite(h2["loss"]).all()
    with pytest.raises(ValueError, match="weight_decay"):
        train_margin(net, x, y, steps=2, weight_decay=-1.0)
