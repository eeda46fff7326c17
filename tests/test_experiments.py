import json

import pytest
import torch

from mixcon_lite import experiments
from mixcon_lite.data import two_gaussians
from mixcon_lite.experiments import mixcon_synthetic as ms


def test_run_setting_small():
    data = two_gaussians(n_train=80, n_test=40, seed=1)
    out = ms.run_setting("default", 0.1, 0.01, seed=0, data=data, epochs=2, attack_steps=20)
    assert 0 <= out["test"] <= 100 and out["mse"] > 0 and -1 <= out["mcs"] <= 1
    assert out["h"].shape == (40, 2) and out["x_hat"].shape == (40, 10)
    with pytest.raises(ValueError, match="Unknown net"):
        ms.run_setting("huge", None, None, 0, data)


def test_records_round_trip(tmp_path):
    path = experiments.save_record("demo", "fast", {"a": 1}, [{"x": 2.0}], tmp_path)
    rec = json.loads(path.read_text())
    assert rec["experiment"] == "demo" and rec["results"] == [{"x": 2.0}]
    assert {"torch", "cpu_count", "python"} <= set(rec["hardware"]) and rec["date"]
    assert experiments.load_record("demo", "fast", tmp_path)["settings"] == {"a": 1}
    assert experiments.load_record("missing", "full", tmp_path) is None


def test_paper_table_covers_every_setting():
    assert {(s, n) for s, n, _, _ in ms.SETTINGS} == set(ms.PAPER)
