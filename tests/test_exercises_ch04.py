"""Chapter 04 checkers: right answers pass, plausible wrong answers are rejected."""
import pytest
import torch

from mixcon_lite import exercises
from mixcon_lite.attacks.features import rmle_objective, total_variation
from mixcon_lite.metrics import ssim
from mixcon_lite.models import LeNet5


def _sq(m, c, x, h):
    return (m.forward_to(x, c) - h).pow(2).flatten(1)


def test_rmle_objective_checker():
    right = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: _sq(m, c, x, h).sum(1) + tv * total_variation(x))
    assert right and "gradient" in right.message
    assert exercises.check_rmle_objective(
        lambda m, c, x, h, tv: rmle_objective(m, c, x, h, tv, reduction="sum"))
    # plausible wrong answers
    mean = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: _sq(m, c, x, h).mean(1) + tv * total_variation(x))
    assert not mean and "averaged" in mean.message
    no_tv = exercises.check_rmle_objective(lambda m, c, x, h, tv: _sq(m, c, x, h).sum(1))
    assert not no_tv and "tv_weight=0.05" in no_tv.message
    tv_summed = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: _sq(m, c, x, h).sum(1)
        + tv * ((x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
                + (x[..., 1:] - x[..., :-1]).abs().flatten(1).sum(1)))
    assert not tv_summed
    detached = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: (_sq(m, c, x, h).sum(1) + tv * total_variation(x)).detach())
    assert not detached and "gradient" in detached.message
    as_numpy = exercises.check_rmle_objective(
        lambda m, c, x, h, tv: (_sq(m, c, x, h).sum(1) + tv * total_variation(x)).tolist())
    assert not as_numpy and "gradient" in as_numpy.message

    def in_place(m, c, x, h, tv):
        out = _sq(m, c, x, h).sum(1) + tv * total_variation(x)
        with torch.no_grad():
            x.clamp_(0.2, 0.8)
        return out

    assert not exercises.check_rmle_objective(in_place)
    assert not exercises.check_rmle_objective(lambda m, c, x, h, tv: 1 / 0)
    assert not exercises.check_rmle_objective("not a function")


def _recovered(victims):
    """Synthetic attack outputs with known quality: noise of a set size per cut and attack."""
    g = torch.Generator().manual_seed(0)
    noise = {"block1": (0.05, 0.3), "block2": (0.3, 0.2), "fc1": (0.6, 0.35),
             "fc2": (0.8, 0.4), "logits": (0.7, 0.5)}        # (white-box, decoder) noise levels
    rec = {}
    for cut, (wb, dec) in noise.items():
        rec[cut] = {a: (victims + s * torch.randn(victims.shape, generator=g)).clamp(0, 1)
                    for a, s in (("white-box", wb), ("decoder", dec))}
    return rec


def test_safest_cut_checker():
    g = torch.Generator().manual_seed(1)
    victims = torch.rand(6, 1, 28, 28, generator=g)
    rec = _recovered(victims)
    means = {c: {a: float(ssim(victims, r).mean()) for a, r in d.items()} for c, d in rec.items()}
    right = {c: max(m.values()) for c, m in means.items()}
    safest = min(right, key=right.get)
    assert exercises.check_safest_cut(right, safest, victims, rec)
    # the strongest attack differs between cuts, so one attack's column is a wrong answer
    assert len({max(m, key=m.get) for m in means.values()}) > 1
    one_attack = {c: m["white-box"] for c, m in means.items()}
    verdict = exercises.check_safest_cut(one_attack, safest, victims, rec)
    assert not verdict and "strongest" in verdict.message
    normalised = {c: (v + 1) / 2 for c, v in right.items()}
    verdict = exercises.check_safest_cut(normalised, safest, victims, rec)
    assert not verdict and "normalised" in verdict.message
    typed = {c: round(v, 1) for c, v in right.items()}       # right ranking, typed values
    assert not exercises.check_safest_cut(typed, safest, victims, rec)
    leakiest = max(right, key=right.get)
    verdict = exercises.check_safest_cut(right, leakiest, victims, rec)
    assert not verdict and "lowest" in verdict.message
    assert not exercises.check_safest_cut({"block1": 0.8}, "block1", victims, rec)
    assert not exercises.check_safest_cut(right, safest, victims, {"block1": rec["block1"]})


def test_noise_defence_checker_end_to_end():
    torch.manual_seed(0)
    model = LeNet5().eval()
    g = torch.Generator().manual_seed(2)
    images = torch.zeros(8, 1, 28, 28)
    rr, cc = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    for i in range(8):                                    # smooth blobs
        r0, c0 = torch.randint(6, 22, (2,), generator=g).tolist()
        images[i, 0] = torch.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / 30.0)
    with torch.no_grad():
        labels = model(images).argmax(1)                  # clean accuracy 1 by construction
    huge = exercises.check_noise_defence(model, 50.0, images, labels)
    assert not huge and "floor" in huge.message           # stops the attack, ruins accuracy
    assert not exercises.check_noise_defence(model, -1.0, images, labels)
    assert not exercises.check_noise_defence(model, "lots", images, labels)
    assert not exercises.check_noise_defence(model, 0.1, images, labels[:3])


@pytest.mark.parametrize("measured, passes, words", [
    (dict(ssim=0.45, accuracy=0.80, clean_accuracy=0.80), False, "add more noise"),
    (dict(ssim=0.20, accuracy=0.55, clean_accuracy=0.80), False, "floor"),   # a huge sigma
    (dict(ssim=0.29, accuracy=0.65, clean_accuracy=0.80), True, "re-tunes"),
])
def test_noise_defence_checker_verdicts(monkeypatch, measured, passes, words):
    from mixcon_lite.experiments import feature_inversion as fi

    calls = []

    def fake(model, sigma, images, labels, cut):
        calls.append((sigma, cut))
        return {"sigma": sigma, "ssim_adaptive": 0.4, "tv_adaptive": 1.0, **measured}

    monkeypatch.setattr(fi, "noise_defence", fake)
    verdict = exercises.check_noise_defence(None, 0.5, None, None)
    assert bool(verdict) is passes and words in verdict.message
    assert calls == [(0.5, "block1")]                     # recomputed, not trusted


@pytest.mark.parametrize("sigma", [float("nan"), float("inf")])
def test_noise_defence_checker_rejects_non_finite(sigma):
    model = LeNet5().eval()
    images, labels = torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    assert not exercises.check_noise_defence(model, sigma, images, labels)
