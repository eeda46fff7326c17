"""The benchmark's plumbing on a tiny configuration (the real run takes minutes and is not a test)."""
import json

from mixcon_lite import bench

KEYS = ("step_over_forward_backward", "batched_restarts_speedup", "reference_step_over_forward_backward")
PREFIXES = ("dlg", "dlg_randn", "dlg_nocap", "reference", "strong_wolfe")


def test_gradients_bench_json_keys(capsys):
    assert bench.main(["gradients", "--json", "--tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in out, key
    assert out["step_over_forward_backward"] > 0 and out["batched_restarts_speedup"] > 0
    for prefix in PREFIXES:
        for key in ("solved", "trials", "median_evaluations", "solved_low", "solved_high", "median_seconds"):
            assert f"{prefix}_{key}" in out, (prefix, key)
        assert out[f"{prefix}_trials"] == out["pictures"] * out["seeds"] == 2
        assert 0 <= out[f"{prefix}_solved_low"] <= out[f"{prefix}_solved"] / 2 <= out[f"{prefix}_solved_high"] <= 1
        runs = out[f"{prefix}_runs"]
        assert {r["seed"] for r in runs} == {0, 1}
        assert set(runs[0]) >= {"picture", "seed", "solved", "seconds", "mse", "evaluations", "evaluations_to_goal"}
        assert all(r["evaluations"] <= out["evaluation_budget"] + 25 for r in runs)
    assert len(out["dlg_minus_reference_solved_rate"]) == 3


def test_torch_loops_count_evaluations_and_stop_on_the_oracle():
    import torch
    picture = torch.full((3, 8, 8), 0.5)
    row = bench.reference_dlg(picture, 1, 10, seed=0, evaluations=60, calls=10, mse_goal=10.0)
    assert row["solved"] and row["calls"] == 1 and row["evaluations_to_goal"] == row["evaluations"] <= 20
    row = bench.strong_wolfe_dlg(picture, 1, 10, seed=0, evaluations=30, calls=50, mse_goal=0.0)
    assert not row["solved"] and row["evaluations_to_goal"] is None and 30 <= row["evaluations"] <= 30 + 25
