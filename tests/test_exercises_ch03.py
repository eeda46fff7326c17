"""Chapter 03 checkers: right answers pass, plausible wrong answers are rejected."""
import math

import pytest
import torch

from mixcon_lite import exercises, mixcon
from mixcon_lite.data import two_gaussians
from mixcon_lite.models import MLP
from mixcon_lite.separability import mixcon_pairs
from mixcon_lite.train import train


def test_check_consistency_loss():
    assert exercises.check_consistency_loss(mixcon.consistency_loss)
    mean = exercises.check_consistency_loss(lambda h, y, l, b, e: mixcon.consistency_loss(h, y, l, b, e, "mean"))
    assert not mean and "mean over pairs" in mean.message

    def euclidean(h, y, lam, beta, eps):
        flat, p = h.reshape(len(h), -1), mixcon_pairs(y)
        d = (flat[p[:, 0]] - flat[p[:, 1]]).norm(dim=1)
        return (lam * d + beta / (d + eps)).sum()

    def all_cross_pairs(h, y, lam, beta, eps):
        flat = h.reshape(len(h), -1)
        q = torch.cdist(flat, flat)[(y[:, None] != y[None, :]).triu(1)] ** 2
        return (lam * q + beta / (q + eps)).sum()

    for wrong, word in ((euclidean, "squared distance"), (all_cross_pairs, "k-th"),
                        (lambda h, y, l, b, e: mixcon.consistency_loss(h, y, l, b, e, form="normalised"),
                         "normalised")):
        verdict = exercises.check_consistency_loss(wrong)
        assert not verdict and word in verdict.message, verdict.message
    assert not exercises.check_consistency_loss(lambda *a: "a string")
    assert not exercises.check_consistency_loss(lambda *a: 1 / 0)          # raises: verdict, no crash


def test_check_optimal_distance():
    def right(lam, beta, eps):
        return max(0.0, math.sqrt(beta / lam) - eps)

    assert exercises.check_optimal_distance(right)
    assert exercises.check_optimal_distance(lambda l, b, e: mixcon.optimal_pair_distance(l, b, e))
    euclid = exercises.check_optimal_distance(lambda l, b, e: right(l, b, e) ** 0.5)
    assert not euclid and "Euclidean" in euclid.message
    no_eps = exercises.check_optimal_distance(lambda l, b, e: (b / l) ** 0.5)
    assert not no_eps and "eps was left out" in no_eps.message
    normalised = exercises.check_optimal_distance(lambda l, b, e: math.sqrt(b))
    assert not normalised and "normalised" in normalised.message
    assert not exercises.check_optimal_distance(lambda l, b, e: 0.2662)           # one typed number
    assert not exercises.check_optimal_distance(0.2662)                             # not a function


def _median(h):
    d = torch.cdist(h, h)
    return d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median()


@pytest.fixture(scope="module")
def models():
    x_tr, y_tr, _, _ = two_gaussians(seed=0)
    out = {}
    for name, loss_fn in (("vanilla", None), ("beta0", mixcon.mixcon_loss_fn("fc2", 0.1, 0.0)),
                          ("mixcon", mixcon.mixcon_loss_fn("fc2", 0.1, 0.01)), ("untrained", False)):
        torch.manual_seed(0)
        model = MLP(10, [100, 2, 100], 2)
        if loss_fn is not False:
            train(model, (x_tr, y_tr), epochs=20, lr=0.01, batch_size=32, loss_fn=loss_fn, progress=False)
        out[name] = model
    return out


def test_check_collapse(models):
    v, b0 = models["vanilla"], models["beta0"]
    assert exercises.check_collapse(_median, v, b0)
    # wrong medians: the whole matrix with its zero diagonal, squared distances
    whole = exercises.check_collapse(lambda h: torch.cdist(h, h).median(), v, b0)
    assert not whole and "diagonal" in whole.message
    sq = exercises.check_collapse(lambda h: _median(h) ** 2, v, b0)
    assert not sq and "squared" in sq.message
    # wrong models: swapped, the same twice, the MixCon (beta > 0) net, an untrained net
    assert not exercises.check_collapse(_median, b0, v)
    assert not exercises.check_collapse(_median, v, v)
    assert not exercises.check_collapse(_median, v, models["mixcon"])
    assert not exercises.check_collapse(_median, v, models["untrained"])
    assert not exercises.check_collapse(_median, v, "a model")


def test_as_number_names_what_came_back():
    assert exercises.as_number(torch.tensor(2.5), "f") == (2.5, None)
    value, fail = exercises.as_number(torch.ones(3), "your function")
    assert value is None and not fail and "shape (3,)" in fail.message
    verdict = exercises.check_consistency_loss(lambda *a: torch.ones(2))
    assert not verdict and "one number" in verdict.message
