import json

import pytest
import torch

from mixcon_lite import experiments
from mixcon_lite.experiments import mixcon_synthetic as ms


def _tiny_settings():
    st = ms.get_settings("fast", seeds=[0])
    st["data"].update(n_train=80, n_test=40)
    st["train"]["epochs"] = 1
    st["attack"]["steps"] = st["check_attack"]["steps"] = 5
    st["width_sweep"]["widths"] = [2]
    return st


def test_get_settings_resolves_the_mode_once():
    fast, full = ms.get_settings("fast"), ms.get_settings("full")
    assert fast["mode"] == "fast" and len(fast["seeds"]) == 3 and fast["attack_nets"] == ["default"]
    assert len(full["seeds"]) == 10 and full["attack_nets"] == list(ms.NETS)
    # the paper's attack (App. C.1): SGD, lr 0.01, 500 steps, on the sum of squares
    assert {k: fast["attack"][k] for k in ("optimizer", "lr", "steps", "reduction")} == \
        {"optimizer": "sgd", "lr": 0.01, "steps": 500, "reduction": "sum"}
    assert ms.get_settings("fast", seeds=range(2))["seeds"] == [0, 1]


def test_default_seeds_follow_the_course_seed(monkeypatch):
    monkeypatch.setenv("MIXCON_LITE_SEED", "5")
    s = ms.get_settings("fast")
    assert s["seeds"] == [5, 6, 7] and s["data"]["seed"] == 5
    assert s["width_sweep"]["seeds"] == [5]
    monkeypatch.delenv("MIXCON_LITE_SEED")
    assert ms.get_settings("fast")["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match="at least one seed"):
        ms.get_settings("fast", seeds=[])
    with pytest.raises(ValueError, match="Unknown mode"):
        ms.get_settings("paper")


def test_run_setting_small():
    st = _tiny_settings()
    data = ms.make_data(st)
    out = ms.run_setting("default", 0.1, 0.01, seed=0, data=data, settings=st)
    assert 0 <= out["test"] <= 100 and out["mse"] > 0 and -1 <= out["mcs"] <= 1
    assert out["residual"] >= 0 and out["check_residual"] >= 0 and out["h_sq"] >= 0
    assert out["delta"] <= out["delta_S"] <= out["median_S"] <= out["Delta_S"]
    assert out["h"].shape == (40, 2) and out["x_hat"].shape == (40, 10)
    quiet = ms.run_setting("wider", None, None, seed=0, data=data, settings=st, attacks=False)
    assert "mse" not in quiet and quiet["x_hat"] is None
    with pytest.raises(ValueError, match="Unknown net"):
        ms.run_setting("huge", None, None, 0, data, st)


def test_run_rows_baselines_and_extras():
    st = _tiny_settings()
    res = ms.run(settings=st, progress=False)
    assert len(res["rows"]) == 3 + 6 * len(ms.FORMS)
    assert {r["form"] for r in res["rows"]} == {"none", *ms.FORMS}
    row = ms.find_row(res["rows"], "MixCon (0.1, 0.01)", "default", "normalised")
    assert row["form"] == "normalised" and "mse_std" in row and row["paper"]["test"] == 88.0
    assert "mse" not in ms.find_row(res["rows"], "MixCon (0.1, 0)", "deeper")      # not attacked in fast
    assert ms.find_row(res["rows"], "vanilla", "default", "normalised")["form"] == "none"
    with pytest.raises(ValueError, match="No row"):
        ms.find_row(res["rows"], "MixCon (1, 1)")
    assert res["eps_check"]["eps"] == 0.01 and "check_mse" in res["eps_check"]
    assert {(r["width"], r["scaling"]) for r in res["width_sweep"]} == \
        {(2, "vanilla"), (2, "squared, sum"), (2, "per-entry, mean")}
    assert ("raw", "MixCon (0.1, 0)", "default") in res["models"]


def test_baselines_and_separation_by_hand():
    x_tr = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-2.0, 0.0], [-2.0, 2.0]])
    y_tr = torch.tensor([1, 1, 0, 0])                        # class means (2, 0) and (-2, 1)
    x_te = torch.tensor([[2.0, 0.0], [-2.0, 1.0]])
    y_te = torch.tensor([0, 0])                              # the first label is "wrong"
    base = ms.baselines((x_tr, y_tr, x_te, y_te))
    assert base["zero"] == {"mse": pytest.approx(2.25), "mcs": 0.0}
    assert base["best_mean"]["mse"] == pytest.approx(0.0) and base["best_mean"]["mcs"] == pytest.approx(1.0)
    assert base["class_mean"]["mse"] == pytest.approx((16 + 1) / 4)
    h = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [0.0, 1.0]])
    sep = ms.separation(h, torch.tensor([0, 1, 0, 1]))      # S = (0, 1), (2, 3)
    assert sep == {"delta": 0.0, "delta_S": 1.0, "median_S": 1.0, "Delta_S": 5.0, "at_origin": 0.5}


def test_records_round_trip(tmp_path):
    path = experiments.save_record("demo", "fast", {"a": 1}, [{"x": 2.0}], tmp_path)
    rec = json.loads(path.read_text())
    assert rec["experiment"] == "demo" and rec["results"] == [{"x": 2.0}]
    assert {"torch", "cpu_count", "python"} <= set(rec["hardware"]) and rec["date"]
    assert experiments.load_record("demo", "fast", tmp_path)["settings"] == {"a": 1}
    assert experiments.load_record("missing", "full", tmp_path) is None


def test_paper_table_covers_every_setting():
    assert {(s, n) for s, n, _, _ in ms.SETTINGS} == set(ms.PAPER)




def test_summarise_keeps_the_values_per_seed():
    row = ms.summarise([{"test": 80.0}, {"test": 84.0}])
    assert row["test"] == 82.0 and row["test_std"] == 2.0 and row["test_per_seed"] == [80.0, 84.0]


def test_fedavg_study_on_a_tiny_grid():
    """The FedAvg experiment end to end on two clients, two cells and a few attack steps: shapes,
    the E = 1 cell's cosine, the baselines, and a summary with intervals."""
    from mixcon_lite.experiments import fedavg as fa

    cfg = {**fa.settings("fast"), "clients": 2, "cells": [(1, 1e-2), (2, 1e-2)], "attack_steps": 3,
           "sweep_steps": [1, 3], "sweep_lrs": [1e-2, 1.0]}
    study = fa.fedavg_study(cfg, progress=False)
    assert [(c["local_steps"], c["lr"]) for c in study["cells"]] == cfg["cells"]
    one = study["cells"][0]
    assert len(one["unrolled"]) == len(one["naive"]) == 2 == len(study["class_mean"])
    assert all(abs(c - 1) < 1e-4 for c in one["cosine_to_gradient"])
    assert study["reconstructions"][(2, 1e-2)][0].shape == (2, 1, 28, 28)
    rows = fa.summary(study)
    assert rows[1]["unrolled_minus_naive"].n == 2
    sweep = fa.cosine_sweep(cfg)
    assert sweep["cosine"].shape == (2, 2, 2) and abs(sweep["cosine"][0].mean() - 1) < 1e-4
    assert sweep["loss_after"].min() >= 0
