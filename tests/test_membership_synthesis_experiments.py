"""The chapter 09 and 10 pipelines (mixcon_lite.experiments.membership / bn_synthesis) at a tiny size."""
import json
import math

import numpy as np
import pytest
import torch

from mixcon_lite import lira
from mixcon_lite.experiments import bn_synthesis, membership


def test_membership_settings():
    fast, full = membership.settings("fast"), membership.settings("full")
    assert fast["n_members"] < full["n_members"] and set(fast["epsilons"]) <= set(full["epsilons"])
    with pytest.raises(ValueError, match="mode"):
        membership.settings("medium")


def test_membership_data_is_disjoint(data_dir):
    cfg = {**membership.settings("fast"), "n_members": 50, "n_test": 40}
    d = membership.prepare_data(cfg, seed=2)
    flat = lambda t: {tuple(v) for v in t.flatten(1).numpy().round(4).tolist()}  # noqa: E731
    assert len(d["x_members"]) == len(d["x_nonmembers"]) == 50 and len(d["x_test"]) == 40
    assert not flat(d["x_members"]) & flat(d["x_nonmembers"])
    with pytest.raises(ValueError, match="need"):
        membership.prepare_data({**cfg, "n_members": 40_000})


def test_membership_run_tiny(data_dir, capsys):
    cfg = {**membership.settings("fast"), "n_members": 60, "n_test": 60, "epochs": 40, "batch_size": 16, "probes": 2,
           "dp_epochs": 1, "dp_batch_size": 30, "epsilons": [4.0],
           "dp_control_overfit": {"dp_epochs": 2, "dp_lr": 0.5, "dp_batch_size": 30,
                                  "dp_momentum": 0.9}}
    out = membership.run(config=cfg, seed=0, progress=False)
    res = out["results"]
    assert res["train_accuracy"] > 0.9                        # the target overfits its 60 members
    assert set(res["attacks"]) == {"curvature", "curvature_hutchinson", "loss", "combined",
                                   "label_only", "curvature_zo"}
    assert set(res["calibrated"]) == {f"{s} ({k})" for s in ("margin", "zero-order", "curvature")
                                      for k in ("offline LiRA", "online LiRA", "authors' NLL")}
    assert set(res["table"]) == set(res["attacks"]) | set(res["calibrated"])
    for s in list(res["attacks"].values()) + list(res["calibrated"].values()):
        assert 0 <= s["auc"] <= 1 and 0 <= s["tpr_at_1pct_fpr"] <= 1
    for row in res["table"].values():
        assert row["auc_low"] <= row["auc"] <= row["auc_high"]
        assert row["tpr_1_low"] <= row["tpr_1"] <= row["tpr_1_high"] and "tpr_0.1" in row
    # the exact curvature and its Hutchinson estimate rank the samples alike
    from scipy.stats import spearmanr
    sc = out["scores"]
    exact = np.r_[sc["curvature"][0], sc["curvature"][1]]
    hutch = np.r_[sc["curvature_hutchinson"][0], sc["curvature_hutchinson"][1]]
    assert spearmanr(exact, hutch).statistic > 0.5
    assert res["attacks"]["loss"]["auc"] > 0.5
    rows = res["dp"]
    assert [(r["target_epsilon"], r["recipe"]) for r in rows] == [
        (math.inf, "dp"), (4.0, "dp"), (math.inf, "overfit"), (8.0, "overfit")]
    assert rows[1]["epsilon"] == pytest.approx(4.0, rel=0.05) and rows[1]["auc_bound"] < 1
    # the TPR ceiling at 1 % FPR: e^eps * 0.01 + delta at eps = 4
    assert rows[1]["tpr_1_bound"] == pytest.approx(min(1, math.exp(rows[1]["epsilon"]) * 0.01
                                                       + cfg["delta"]))
    assert rows[0]["tpr_1_bound"] == rows[2]["tpr_1_bound"] == 1.0
    # every private model is also met by the calibrated margin, against the target's references
    for r in rows:
        for kind in ("offline", "online"):
            assert 0 <= r[f"auc_margin_{kind}"] <= 1 and 0 <= r[f"tpr_1_margin_{kind}"] <= 1
    json.dumps(membership._jsonable(res))                     # a record can be written


def test_bn_synthesis_run_tiny(data_dir):
    cfg = {**bn_synthesis.settings("fast"), "n_members": 100, "n_test": 100, "teacher_epochs": 8,
           "per_class": 3, "steps": 30, "student_epochs": 3, "n_attack": 50, "permutations": 200}
    out = bn_synthesis.run(config=cfg, seed=0, progress=False, sources=("class",))
    res = out["results"]
    assert set(res) == {"teacher", "real", "class", "control: noise", "control: noisy members",
                        "control: synthetic + noisy members", "release_attacks",
                        "release_comparisons"}
    assert set(res["release_comparisons"]) == {"trace_own_loo", "trace_own", "trace_vs_label",
                                               "trace_vs_loss", "syn_vs_others"}
    for c in res["release_comparisons"].values():
        assert c["low"] <= c["difference"] <= c["high"] and isinstance(c["verdict"], str)
    assert {"log_ratio", "log_ratio_p_value"} <= set(res["class"])
    # the copy test's positive control (noisy members) is flagged beyond its permutation null
    assert res["control: noisy members"]["closer_to_members"] == 1.0
    assert res["control: noisy members"]["closer_p_value"] < 0.01
    assert 0 < res["class"]["closer_p_value"] <= 1
    assert set(res["release_attacks"]) == {"tracing (class statistics)", "tracing (class synthetic set)",
                                           "distance (class synthetic set)",
                                           "tracing (statistics of the other members)",
                                           "tracing (class statistics, each member left out)",
                                           "distance (noisy-members control set)"}
    # the distance attack finds members against a set built from them (its positive control)
    assert res["release_attacks"]["distance (noisy-members control set)"]["auc"] > 0.55
    for row in res["release_attacks"].values():
        assert row["auc_low"] <= row["auc"] <= row["auc_high"] and 0 <= row["tpr_1"] <= 1
    assert out["synthetic"]["class"].reconstruction.shape == (30, 1, 28, 28)
    for key in ("test_accuracy", "auc_loss", "auc_curvature", "closer_to_members",
                "median_ssim_to_nearest_member"):
        assert 0 <= res["class"][key] <= 1 or key == "median_ssim_to_nearest_member"
    assert res["real"]["max_ssim_to_nearest_member"] <= 1
    json.dumps(res)
    with_scores = bn_synthesis.membership_aucs(out["teacher"], out["data"], cfg, seed=0,
                                               return_scores=True)
    from mixcon_lite import stats
    for k in ("loss", "curvature", "label_only"):
        m, n = with_scores["scores"][k]
        assert len(m) == len(n) == cfg["n_attack"]
        assert stats.auc(m, n) == pytest.approx(with_scores[f"auc_{k}"])
    with pytest.raises(ValueError, match="source"):
        bn_synthesis.synthesize(out["teacher"], out["data"], cfg, source="global")


def test_real_subset_is_balanced(data_dir):
    cfg = {**bn_synthesis.settings("fast"), "n_members": 200, "n_test": 10}
    d = bn_synthesis.prepare_data(cfg)
    x, y = bn_synthesis.real_subset(d, 4)
    assert x.shape == (40, 1, 28, 28) and np.bincount(y.numpy()).tolist() == [4] * 10
    assert torch.equal(x[0], d["x_members"][torch.nonzero(d["y_members"] == 0)[0, 0]])


def test_calibrated_study_tiny(data_dir):
    cfg = {**membership.settings("fast"), "n_members": 60, "n_test": 20, "epochs": 40,
           "batch_size": 16, "reference_models": 4}
    data = membership.prepare_data(cfg, seed=0)
    target, _ = membership.train_target(data, cfg, seed=0, progress=False)
    out = membership.calibrated_study(data, cfg, target, seed=0, progress=False)
    names = {f"{s} ({k})" for s in membership.CALIBRATED_SCORES
             for k in ("offline LiRA", "online LiRA", "authors' NLL")}
    assert set(out["scores"]) == names
    target_m, ref_m = out["raw"]["margin"]
    assert target_m.shape == (120,) and ref_m.shape == (4, 120)
    z = lira.lira_offline(target_m, ref_m, out["mask"])
    assert np.allclose(np.r_[out["scores"]["margin (offline LiRA)"]], z)
    for m, n in out["scores"].values():
        assert m.shape == n.shape == (60,) and np.isfinite(m).all() and np.isfinite(n).all()
    assert out["mask"].shape == (4, 120) and (out["mask"].sum(0) == 2).all()
    assert out["reference_train_accuracy"] > 0.85      # the references fit their halves
    # the calibrated margin attack beats guessing on an overfit target
    from mixcon_lite import membership as mb
    assert mb.attack_auc(*out["scores"]["margin (offline LiRA)"]) > 0.55
