"""mixcon_lite.lira: stacked reference models train like separate ones, the masks are balanced, and
the calibrated scores separate members from non-members where a global threshold cannot."""
import numpy as np
import pytest
import torch

from mixcon_lite import lira
from mixcon_lite import membership as mb
from mixcon_lite.models import MLP


def test_half_masks_are_balanced():
    m = lira.half_masks(6, 50, seed=1)
    assert m.shape == (6, 50) and (m.sum(0) == 3).all()
    assert abs(m.sum(1).mean() - 25) < 1e-9
    assert not (m == lira.half_masks(6, 50, seed=2)).all()
    with pytest.raises(ValueError, match="k must be >= 2"):
        lira.half_masks(1, 10)


def test_stacked_training_equals_one_model_at_a_time():
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    make = lambda: MLP(5, [7], num_classes=3)  # noqa: E731
    refs = lira.train_reference_models(make, x, y, k=3, epochs=2, lr=1e-2, batch_size=8, seed=4,
                                       progress=False)
    # model 1 alone: same init (seed + 1), same mask rows, same batch order (one generator)
    torch.manual_seed(5)
    alone = make()
    opt = torch.optim.Adam(alone.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(4)
    members = [torch.as_tensor(np.flatnonzero(refs["mask"][j])) for j in range(3)]
    size = min(len(m) for m in members)
    for _ in range(2):
        orders = [m[torch.randperm(len(m), generator=g)][:size] for m in members]
        for s in range(0, size, 8):
            idx = orders[1][s:s + 8]
            loss = torch.nn.functional.cross_entropy(alone(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    one = lira.reference_model(refs, 1)
    for (name, a), b in zip(one.state_dict().items(), alone.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert not torch.allclose(lira.reference_model(refs, 0)(x), one(x))


def test_bad_inputs_say_what_is_expected():
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    with pytest.raises(ValueError, match="BatchNorm"):
        lira.train_reference_models(lambda: torch.nn.Sequential(torch.nn.Linear(5, 3),
                                                                torch.nn.BatchNorm1d(3)),
                                    x, y, k=2, epochs=1)
    with pytest.raises(ValueError, match="shape"):
        lira.train_reference_models(lambda: MLP(5, [4], num_classes=3), x, y, k=2,
                                    mask=np.ones((3, 10), bool))
    with pytest.raises(ValueError, match=r"\[k, n\]"):
        lira.lira_offline(np.zeros(4), np.zeros((2, 5)), np.zeros((2, 5), bool))
    with pytest.raises(ValueError, match="no reference model"):
        lira.lira_offline(np.zeros(3), np.zeros((2, 3)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="NaN"):
        lira.lira_offline(np.array([np.nan, 0, 0]), np.zeros((2, 3)), np.zeros((2, 3), bool))


def test_calibration_removes_per_sample_difficulty():
    # each sample has its own difficulty d_i (shared by every model); membership adds +0.5.
    # A global threshold on the raw score is swamped by d_i; LiRA subtracts each sample's own
    # out-mean and recovers the membership signal.
    rng = np.random.default_rng(0)
    n, k = 400, 16
    d = rng.normal(0, 3, n)
    mask = lira.half_masks(k, n, seed=0)
    ref = d + 0.5 * mask + rng.normal(0, 0.3, (k, n))
    member = rng.random(n) < 0.5
    target = d + 0.5 * member + rng.normal(0, 0.3, n)
    raw = mb.attack_auc(target[member], target[~member])
    off = lira.lira_offline(target, ref, mask)
    on = lira.lira_online(target, ref, mask)
    auc_off = mb.attack_auc(off[member], off[~member])
    auc_on = mb.attack_auc(on[member], on[~member])
    assert raw < 0.6 and auc_off > 0.8 and auc_on > 0.8, (raw, auc_off, auc_on)
    # per-sample variances give the same ranking here (equal noise everywhere)
    per = lira.lira_offline(target, ref, mask, global_variance=False)
    assert mb.attack_auc(per[member], per[~member]) > 0.75
    # and so does the curvature authors' rule, which also works per sample
    nll = lira.lira_authors_nll(target, ref, mask)
    assert mb.attack_auc(nll[member], nll[~member]) > 0.8


def test_authors_nll_rule_is_their_formula():
    # the rule written as the authors' code writes it: NaN-masked per-sample means and population
    # variances, a Gaussian log-likelihood whose "var" argument is squared, in minus out, and the
    # in-variance used for both sides
    rng = np.random.default_rng(3)
    k, n = 8, 30
    mask = lira.half_masks(k, n, seed=3)
    ref = rng.normal(0, 1, (k, n)) + rng.normal(0, 2, n)
    target = rng.normal(0, 1, n)
    r_in, r_out = np.where(mask, ref, np.nan), np.where(~mask, ref, np.nan)
    mu_in, mu_out, var_in = np.nanmean(r_in, 0), np.nanmean(r_out, 0), np.nanvar(r_in, 0)

    def loglik(s, mean, var):
        return -((s - mean) ** 2) / (2 * var ** 2) - 0.5 * np.log(var ** 2)

    theirs = loglik(target, mu_in, var_in) - loglik(target, mu_out, var_in)
    assert np.allclose(lira.lira_authors_nll(target, ref, mask), theirs, rtol=1e-9)
    # the variance stands where a standard deviation goes: scaling every score by c scales the
    # ratio by 1 / c**2, where a proper Gaussian likelihood ratio would not change
    assert np.allclose(lira.lira_authors_nll(3 * target, 3 * ref, mask), theirs / 9, rtol=1e-9)
    with pytest.raises(ValueError, match="no reference model"):
        lira.lira_authors_nll(np.zeros(3), np.zeros((2, 3)), np.zeros((2, 3), bool))


def test_reference_scores_shape():
    torch.manual_seed(0)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    refs = lira.train_reference_models(lambda: MLP(5, [4], num_classes=3), x, y, k=2, epochs=1,
                                       progress=False)
    s = lira.reference_scores(refs, mb.margin_scores, x, y, progress=False)
    assert s.shape == (2, 20) and s.dtype == np.float64
    assert np.allclose(s[0], mb.margin_scores(lira.reference_model(refs, 0), x, y).numpy())
