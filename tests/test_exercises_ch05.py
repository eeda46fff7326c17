"""Chapter 05 checkers: right answers pass, plausible wrong answers are rejected."""
import pytest
import torch

from mixcon_lite import exercises
from mixcon_lite.experiments import mixcon_images as mi
from mixcon_lite.separability import mixcon_pairs, within_class_pairs


def test_check_within_pairs():
    assert exercises.check_within_pairs(within_class_pairs)

    def as_list(y):
        return [(i, j) for i in range(len(y)) for j in range(i + 1, len(y)) if y[i] == y[j]]

    assert exercises.check_within_pairs(as_list)
    both_orders = exercises.check_within_pairs(
        lambda y: [(i, j) for i in range(len(y)) for j in range(len(y)) if i != j and y[i] == y[j]])
    assert not both_orders and "once" in both_orders.message
    with_self = exercises.check_within_pairs(
        lambda y: [(i, j) for i in range(len(y)) for j in range(i, len(y)) if y[i] == y[j]])
    assert not with_self and "itself" in with_self.message
    across = exercises.check_within_pairs(mixcon_pairs)
    assert not across and "cross-class pairs S" in across.message
    neighbours = exercises.check_within_pairs(        # only consecutive members of a class
        lambda y: [(int(m[k]), int(m[k + 1])) for c in torch.unique(y)
                   for m in [torch.nonzero(y == c).flatten()] for k in range(len(m) - 1)])
    assert not neighbours and "missing" in neighbours.message
    assert not exercises.check_within_pairs(lambda y: 3)
    assert not exercises.check_within_pairs(lambda y: 1 / 0)


def test_check_sweet_spot():
    assert exercises.check_sweet_spot(mi.sweet_spot)

    def vanilla_of(points):
        return next(p for p in points if p["lam"] == 0 and p["beta"] == 0)

    def lowest_ssim(points, drop):                    # ignores accuracy
        return min((p for p in points if p is not vanilla_of(points)),
                   key=lambda p: p["whitebox"]["ssim"])

    def percent_points(points, drop):                  # max_drop read as points, not a fraction
        v = vanilla_of(points)
        ok = [p for p in points if p is not v and p["pairs"] == "across"
              and p["accuracy"] >= v["accuracy"] - drop * 100
              and p["whitebox"]["ssim"] < v["whitebox"]["ssim"]]
        return min(ok, key=lambda p: p["whitebox"]["ssim"]) if ok else None

    def keeps_within(points, drop):                   # forgets to drop within-class points
        v = vanilla_of(points)
        ok = [p for p in points if p is not v and p["accuracy"] >= v["accuracy"] - drop
              and p["whitebox"]["ssim"] < v["whitebox"]["ssim"]]
        return min(ok, key=lambda p: p["whitebox"]["ssim"]) if ok else None

    def never_none(points, drop):                     # no check that SSIM is below vanilla's
        v = vanilla_of(points)
        ok = [p for p in points if p is not v and p["pairs"] == "across"
              and p["accuracy"] >= v["accuracy"] - drop]
        return min(ok, key=lambda p: p["whitebox"]["ssim"]) if ok else None

    for wrong in (lowest_ssim, percent_points, keeps_within, never_none):
        verdict = exercises.check_sweet_spot(wrong)
        assert not verdict and "expected" in verdict.message, wrong.__name__
    assert not exercises.check_sweet_spot(lambda p, d: "lam 1")
    assert not exercises.check_sweet_spot(lambda p, d: 1 / 0)


def test_check_mnist_sweet_spot_rejects_without_training():
    assert not exercises.check_mnist_sweet_spot(0.0, 0.0)
    assert "lam and beta" in exercises.check_mnist_sweet_spot(-1, 0.1).message


def test_check_mnist_sweet_spot_trains_and_judges(data_dir, monkeypatch):
    calls = []

    def fake_point(lam, beta, data, cfg, decoder):
        calls.append((lam, beta, cfg["dataset"], decoder))
        acc, s = {0.0: (0.90, 0.40), 1.0: (0.89, 0.20), 10.0: (0.50, 0.0), 0.1: (0.90, 0.38)}[lam]
        return {"accuracy": acc, "whitebox": {"ssim": s}}

    monkeypatch.setattr(mi, "run_point", fake_point)
    ok = exercises.check_mnist_sweet_spot(1.0, 0.01)
    assert ok and "label-only baseline" in ok.message and "1.0 accuracy points lost" in ok.message
    assert calls[:2] == [(0.0, 0.0, "mnist", False), (1.0, 0.01, "mnist", False)]
    collapsed = exercises.check_mnist_sweet_spot(10.0, 0.0)
    assert not collapsed and "Accuracy fell" in collapsed.message
    too_gentle = exercises.check_mnist_sweet_spot(0.1, 0.0)
    assert not too_gentle and "SSIM fell by 0.020" in too_gentle.message
