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


def test_class_mean_baseline_and_score():
    from mixcon_lite.experiments import feature_inversion as fi

    x_aux = torch.zeros(6, 1, 28, 28)
    x_aux[3:] = 1.0
    y_aux = torch.tensor([0, 0, 0, 1, 1, 1])
    base = fi.class_mean_baseline(torch.rand(3, 1, 28, 28), torch.tensor([1, 0, 1]), x_aux, y_aux)
    assert torch.equal(base[:, 0, 0, 0], torch.tensor([1.0, 0.0, 1.0]))
    x = torch.rand(2, 1, 28, 28)
    rows = fi.score(x, {"same": x.clone()})
    assert rows["same"]["ssim"] == pytest.approx(1.0) and rows["same"]["ssim_max"] == pytest.approx(1.0)
    assert isinstance(rows["same"]["lpips"], str) or rows["same"]["lpips"] >= 0
