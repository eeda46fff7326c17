"""mixcon_lite.experiments.feature_inversion: settings, tuning, scoring, summaries, noise defence."""
import json

import pytest
import torch

from mixcon_lite.experiments import feature_inversion as fi
from mixcon_lite.metrics import ssim
from mixcon_lite.models import LeNet5


def _blobs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    rr, cc = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    for i in range(n):
        r0, c0 = torch.randint(6, 22, (2,), generator=g).tolist()
        x[i, 0] = torch.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / 30.0)
    return x


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LeNet5().eval()


def tiny_settings(**over):
    s = fi.get_settings("fast")
    s.update(white_box_steps=20, decoder_epochs=1, tv_grid=[0.0, 0.1])
    s.update(over)
    return s


def test_settings_resolved_once():
    fast, full = fi.get_settings("fast"), fi.get_settings("full")
    assert fast["mode"] == "fast" and full["mode"] == "full"
    assert fast["recipes"] == ["fast"] and full["recipes"] == ["fast", "paper"]
    # the attack is the same kind in both modes; only sizes change
    assert fast["white_box"] == full["white_box"] == fi.WHITE_BOX
    assert fast["white_box_steps"] < full["white_box_steps"]
    assert fi.WHITE_BOX["sgd_paper"] == {"optimizer": "sgd", "lr": 10.0, "reduction": "sum"}
    assert 0.0 in fast["tv_grid"] and len(fast["tv_grid"]) >= 3
    json.dumps(full)                                     # goes into the record as is
    with pytest.raises(ValueError, match="mode"):
        fi.get_settings("medium")


def test_class_mean_baseline_and_score(model):
    x_aux = torch.zeros(6, 1, 28, 28)
    x_aux[3:] = 1.0
    y_aux = torch.tensor([0, 0, 0, 1, 1, 1])
    base = fi.class_mean_baseline(torch.rand(3, 1, 28, 28), torch.tensor([1, 0, 1]), x_aux, y_aux)
    assert torch.equal(base[:, 0, 0, 0], torch.tensor([1.0, 0.0, 1.0]))
    x = _blobs(3)
    worse = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    rows = fi.score(x, {"same": x.clone(), "worse": worse}, model, "block2")
    same = rows["same"]
    assert same["ssim"] == pytest.approx(1.0) and same["ssim_max"] == pytest.approx(1.0)
    assert same["nssim"] == pytest.approx(1.0) and same["feature_residual"] == pytest.approx(0.0)
    s = ssim(x, worse)
    w = rows["worse"]
    assert w["ssim"] == pytest.approx(s.mean()) and w["ssim_max"] == pytest.approx(s.max())
    assert w["nssim"] == pytest.approx((s.mean() + 1) / 2)
    assert w["nssim_max"] == pytest.approx((s.max() + 1) / 2)
    assert w["nssim_std"] == pytest.approx(s.std() / 2)
    assert w["feature_residual"] > 0.01
    assert isinstance(same["lpips"], str) or same["lpips"] >= 0
    assert "feature_residual" not in fi.score(x, {"same": x})["same"]


def test_white_box_scales_tv_for_the_sum_objective(model, monkeypatch):
    seen = []
    monkeypatch.setattr(fi, "invert", lambda *a, **kw: seen.append(kw) or torch.zeros(1))
    h = torch.zeros(2, 16, 5, 5)
    st = tiny_settings()
    fi.white_box(model, "block2", h, "sgd_paper", 0.01, st)
    fi.white_box(model, "block2", h, "adam", 0.01, st)
    assert seen[0]["tv_weight"] == pytest.approx(0.01 * 400) and seen[0]["reduction"] == "sum"
    assert seen[0]["lr"] == 10.0 and seen[0]["optimizer"] == "sgd"
    assert seen[1]["tv_weight"] == pytest.approx(0.01) and seen[1]["reduction"] == "mean"
    assert seen[0]["steps"] == seen[1]["steps"] == st["white_box_steps"]
    with pytest.raises(ValueError, match="white-box attack"):
        fi.white_box(model, "block2", h, "decoder", 0.01, st)


def test_tune_tv_picks_the_best_grid_value(model):
    x = _blobs(4, seed=3)
    st = tiny_settings(white_box_steps=60, tv_grid=[0.0, 0.05, 50.0])
    out = fi.tune_tv(model, "block1", x, st)
    assert set(out) == set(st["white_box"])
    for attack, t in out.items():
        assert t["grid"] == [0.0, 0.05, 50.0] and len(t["ssim"]) == 3
        assert t["best"] == t["grid"][max(range(3), key=t["ssim"].__getitem__)]
    # each grid value's score is that of a separate run
    with torch.no_grad():
        h = model.forward_to(x, "block1")
    alone = fi.white_box(model, "block1", h, "adam", 0.05, st)
    assert out["adam"]["ssim"][1] == pytest.approx(float(ssim(x, alone).mean()), abs=1e-4)


def test_attack_cut_shapes(model):
    st = tiny_settings()
    data = {"x_victims": _blobs(3, seed=1), "x_aux": _blobs(40, seed=2)}
    out = fi.attack_cut(model, "fc1", data, {"sgd_paper": 0.0, "adam": 0.1}, st)
    assert list(out) == list(fi.ATTACKS)
    for rec in out.values():
        assert rec.shape == (3, 1, 28, 28) and 0 <= rec.min() and rec.max() <= 1


def _row(v):
    return {"ssim": v}


def test_summarise_reads_the_comparisons():
    cuts = ["block1", "block2", "fc1", "fc2", "logits"]
    table = {"sgd_paper": [0.02, 0.5, 0.01, 0.02, 0.01],
             "adam": [0.9, 0.5, 0.45, 0.3, 0.2],
             "decoder": [0.6, 0.6, 0.41, 0.5, 0.5]}
    scores = {c: {a: _row(table[a][i]) for a in table} for i, c in enumerate(cuts)}
    out = fi.summarise(scores, _row(0.4), cuts)
    # sgd_paper rises above the bar at block2, so it only stays below from fc1 on
    assert out["first_below_baseline"] == {"sgd_paper": "fc1", "adam": "fc2", "decoder": "none"}
    assert out["above_baseline"]["adam"] == ["block1", "block2", "fc1"]
    assert out["best_attack"] == {"block1": "adam", "block2": "decoder", "fc1": "adam",
                                  "fc2": "decoder", "logits": "decoder"}
    assert out["decoder_beats"]["adam"] == ["block2", "fc2", "logits"]
    assert out["decoder_beats"]["sgd_paper"] == cuts


def test_noise_defence_measures_both_sides(model):
    x = _blobs(6, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    kw = dict(n_victims=3, steps=40, tv_grid=[0.0, 0.01])   # 0.01: the fixed attack's weight
    clean = fi.noise_defence(model, 0.0, x, y, **kw)
    loud = fi.noise_defence(model, 50.0, x, y, **kw)
    assert clean["accuracy"] == clean["clean_accuracy"] == 1.0
    assert loud["clean_accuracy"] == 1.0 and loud["accuracy"] < 1.0
    assert loud["ssim"] < clean["ssim"]
    assert clean["ssim_adaptive"] >= clean["ssim"] - 1e-5     # the grid holds the fixed weight
    assert fi.noise_defence(model, 50.0, x, y, **kw) == loud            # seeded
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            fi.noise_defence(model, bad, x, y, **kw)
    with pytest.raises(ValueError, match="labels"):
        fi.noise_defence(model, 0.1, x, y[:2], **kw)
    quick = fi.noise_defence(model, 50.0, x, y, adaptive=False, **kw)
    assert "ssim_adaptive" not in quick and quick["ssim"] == loud["ssim"]


def test_summarise_with_victims_needs_the_interval():
    cuts = ["block1", "block2"]
    sign = [1.0 if k % 2 else -1.0 for k in range(30)]
    bar = [0.4 + 0.1 * e for e in sign]                       # mean 0.4

    def row(values):
        return {"ssim": sum(values) / len(values), "ssim_per_victim": values}

    adam1 = [b + 0.3 + 0.02 * e for b, e in zip(bar, sign)]   # far above the bar
    adam2 = [b + 0.01 + 0.3 * e for b, e in zip(bar, sign)]   # above on the mean, noisy
    scores = {"block1": {"adam": row(adam1), "decoder": row([a + 0.005 - 0.1 * e for a, e in
                                                              zip(adam1, sign)])},
              "block2": {"adam": row(adam2), "decoder": row([b + 0.2 for b in bar])}}
    out = fi.summarise(scores, row(bar), cuts)
    assert scores["block2"]["adam"]["ssim"] > 0.4             # above the bar on the mean ...
    assert out["above_baseline"]["adam"] == ["block1"]        # ... but not beyond the noise
    assert out["first_below_baseline"]["adam"] == "block2"
    assert out["decoder_beats"]["adam"] == ["block2"]         # block1: 0.005 apart, noisy
