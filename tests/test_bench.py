"""The benchmark's plumbing on a tiny configuration (the real run takes minutes and is not a test)."""
import json

from mixcon_lite import bench

KEYS = ("step_over_forward_backward", "batched_restarts_speedup", "reference_step_over_forward_backward",
        "reference_solved", "reference_median_seconds", "dlg_solved", "dlg_median_seconds")


def test_gradients_bench_json_keys(capsys):
    assert bench.main(["gradients", "--json", "--tiny"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in out, key
    assert out["step_over_forward_backward"] > 0 and out["batched_restarts_speedup"] > 0
    assert out["pictures"] == 1 and 0 <= out["dlg_solved"] <= 1
    assert set(out["dlg_runs"][0]) >= {"picture", "solved", "seconds", "mse"}
