"""mixcon_lite.membership: Hutchinson curvature against the exact trace, the scores, ROC/AUC, the DP
ceiling, and DP-SGD training."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from mixcon_lite import membership as mb
from mixcon_lite.models import MLP, LeNet5
from mixcon_lite.train import train_dp_sgd


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = MLP(6, [8], num_classes=3)
    x = torch.randn(4, 6)
    y = torch.tensor([0, 1, 2, 1])
    return model, x, y


def test_exact_trace_matches_closed_form(tiny):
    # for a ReLU net the input Hessian is J^T (diag p - p p^T) J; its trace is sum_k p_k |J_k|^2 - |J^T p|^2
    model, x, y = tiny
    ex = mb.exact_input_curvature(model, x, y)
    for i in range(len(x)):
        J = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], x[i])      # [3, 6]
        p = torch.softmax(model(x[i:i + 1])[0], 0).detach()
        closed = (p * (J ** 2).sum(1)).sum() - ((J.T @ p) ** 2).sum()
        assert ex[i].item() == pytest.approx(closed.item(), rel=1e-4, abs=1e-7)
    assert (ex >= -1e-7).all()


def test_hutchinson_converges_to_exact(tiny):
    model, x, y = tiny
    ex = mb.exact_input_curvature(model, x, y)
    est = mb.input_curvature(model, x, y, probes=4000, seed=1)
    assert torch.allclose(est, ex, rtol=0.05, atol=1e-4)
    few = mb.input_curvature(model, x, y, probes=1, seed=1)
    assert not torch.allclose(few, ex, rtol=1e-3, atol=1e-6)   # one probe is noisy: the test can fail


def test_hutchinson_variance_formula(tiny):
    model, x, y = tiny
    H = mb.input_hessian(model, x, y)
    q = mb.input_curvature(model, x, y, probes=4000, seed=2, per_probe=True)          # [n, K]
    assert q.shape == (4, 4000)
    predicted = mb.hutchinson_variance(H)
    assert torch.allclose(q.var(1), predicted, rtol=0.15, atol=1e-6)
    # a diagonal matrix has zero Rademacher variance
    assert mb.hutchinson_variance(torch.diag(torch.tensor([1.0, 2.0, 3.0]))).item() == pytest.approx(0.0)


def test_finite_difference_matches_on_smooth_model():
    torch.manual_seed(0)
    model = MLP(5, [7], num_classes=3, activation="tanh")
    x, y = torch.randn(3, 5), torch.tensor([0, 1, 2])
    hvp = mb.input_curvature(model, x, y, probes=16, seed=3, per_probe=True)
    fd = mb.input_curvature(model, x, y, probes=16, seed=3, per_probe=True, method="finite-difference", h=1e-3)
    assert torch.allclose(hvp, fd, rtol=1e-3, atol=1e-5)


def test_curvature_keeps_mode_and_works_with_batchnorm():
    torch.manual_seed(0)
    model = LeNet5(batch_norm=True)
    model.train()
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
    c = mb.input_curvature(model, x, y, probes=2, batch_size=2)
    assert c.shape == (5,) and torch.isfinite(c).all()
    assert model.training                  # restored


@pytest.mark.parametrize("kwargs, match", [
    ({"probes": 0}, "probes"), ({"probes": 2.5}, "probes"), ({"method": "exact"}, "method"),
    ({"h": 0.0, "method": "finite-difference"}, "h")])
def test_curvature_bad_arguments(tiny, kwargs, match):
    model, x, y = tiny
    with pytest.raises(ValueError, match=match):
        mb.input_curvature(model, x, y, **kwargs)


def test_mismatched_lengths_and_types(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="same length"):
        mb.input_curvature(model, x, y[:3])
    with pytest.raises(ValueError, match="same length"):
        mb.loss_scores(model, x[:2], y)
    with pytest.raises(ValueError, match="integer"):
        mb.loss_scores(model, x, y.float())
    with pytest.raises(ValueError, match="nn.Module"):
        mb.loss_scores(lambda z: z, x, y)
    with pytest.raises(ValueError, match="too large"):
        mb.exact_input_curvature(LeNet5(), torch.rand(1, 1, 28, 28), torch.tensor([0]), max_dim=100)


def test_loss_scores_match_cross_entropy(tiny):
    model, x, y = tiny
    expected = nn.functional.cross_entropy(model(x), y, reduction="none")
    got = mb.loss_scores(model, x, y, batch_size=3)
    assert got.dtype == torch.float64
    assert torch.allclose(got.float(), expected.detach(), atol=1e-6)


class _FixedLogits(nn.Module):
    """Returns given logits whatever the input: a model whose confidence we choose."""

    def __init__(self, logits):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("z", logits)

    def forward(self, x):
        return self.z[x[:, 0].long()] + 0 * self.w


def test_scores_do_not_saturate_at_large_margins():
    # margins 20..60: a float32 cross-entropy returns exactly 0 for all of them (ties)
    margins = torch.arange(20.0, 61.0, 5.0)
    z = torch.zeros(len(margins), 10)
    z[:, 3] = margins                                   # true class 3, nine others at 0
    model = _FixedLogits(z)
    x = torch.arange(len(margins)).float()[:, None]
    y = torch.full((len(margins),), 3)
    f32 = nn.functional.cross_entropy(z, y, reduction="none")
    assert (f32 == 0).sum() >= 6                        # the tie this test guards against
    m = mb.margin_scores(model, x, y)
    expected = margins.double() - math.log(9.0)        # z_y - logsumexp of nine zeros
    assert torch.allclose(m, expected, atol=1e-9)
    loss = mb.loss_scores(model, x, y)
    assert (loss > 0).all() and (loss.diff() < 0).all()          # strictly ordered: no ties
    assert torch.allclose(loss, 9 * torch.exp(-margins.double()), rtol=1e-6)
    assert len(torch.unique(-loss)) == len(margins)


def test_curvature_scores_equal_the_exact_trace(tiny):
    model, x, y = tiny
    assert torch.allclose(mb.curvature_scores(model, x, y, batch_size=3).float(),
                          mb.exact_input_curvature(model, x, y), rtol=1e-4, atol=1e-7)
    torch.manual_seed(3)
    net = LeNet5()
    xs, ys = torch.rand(1, 1, 28, 28), torch.tensor([7])
    direct = mb.input_curvature(net, xs, ys, probes=3000, seed=2)
    exact = mb.curvature_scores(net, xs, ys)
    assert torch.allclose(direct.double(), exact, rtol=0.1)


def test_curvature_scores_stay_distinct_when_confident():
    torch.manual_seed(0)
    model = MLP(6, [8], num_classes=3)
    with torch.no_grad():
        model.blocks.logits.weight.mul_(200.0)         # logit margins in the hundreds
    x = torch.randn(6, 6)
    y = model(x).argmax(1)
    c = mb.curvature_scores(model, x, y)
    assert (c > 0).all() and len(torch.unique(c)) == len(c)


def test_zero_order_curvature_tracks_the_size_of_the_hessian(tiny):
    model, x, y = tiny
    zo = mb.zero_order_curvature(model, x, y, h=1e-3, draws=1500, seed=0)
    H = mb.input_hessian(model, x, y).double()
    # E|u^T H v| for Rademacher u, v lies between ||H||_F / sqrt(2) and ||H||_F (Khintchine)
    fro = torch.linalg.matrix_norm(H)
    assert ((zo > fro / 2 ** 0.5 * 0.9) & (zo < fro * 1.1)).all(), (zo, fro)
    with pytest.raises(ValueError, match="h"):
        mb.zero_order_curvature(model, x, y, h=0)


def test_auc_and_roc():
    assert mb.attack_auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert mb.attack_auc([0, 1, 2], [3, 4, 5]) == 0.0
    assert mb.attack_auc([1, 1], [1, 1]) == 0.5
    # AUC is P(member > non-member): 2 of 4 pairs higher, 1 tie
    assert mb.attack_auc([1, 3], [2, 1]) == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    fpr, tpr, _ = mb.roc_curve([3, 4, 5], [0, 1, 2])
    assert fpr[0] == 0 and tpr[-1] == 1
    assert mb.tpr_at_fpr([3, 4, 5], [0, 1, 2], 0.0) == 1.0
    assert mb.tpr_at_fpr([0, 4, 5], [1, 2, 3], 0.0) == pytest.approx(2 / 3)
    # members tied with the top non-member are not found (one rule with stats.tpr_interval)
    assert mb.tpr_at_fpr([5, 5, 5], [5, 0, 0, 0], 0.0) == 0.0
    assert mb.tpr_at_fpr([5, 5, 5], [5, 0, 0, 0], 0.25) == 1.0
    assert mb.tpr_at_fpr([1, 2], [0, 3], 1.0) == 1.0
    with pytest.raises(ValueError, match="non-empty"):
        mb.attack_auc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mb.attack_auc([np.nan, 1.0], [1.0])
    with pytest.raises(ValueError, match="fpr"):
        mb.tpr_at_fpr([1.0], [0.0], 1.5)


def test_rank_average():
    r = mb.rank_average([1, 2, 3, 4], [4, 3, 2, 1])
    assert np.allclose(r, 1.5)
    assert np.allclose(mb.rank_average([10, 30, 20]), [0, 2, 1])
    with pytest.raises(ValueError, match="same length"):
        mb.rank_average([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one"):
        mb.rank_average()


def test_dp_bounds():
    assert mb.dp_auc_bound(0.0) == pytest.approx(0.5)
    assert mb.dp_auc_bound(1.0) == pytest.approx(math.e / (1 + math.e))
    # the numerical integral agrees with the closed form at delta -> 0 and grows with delta
    assert mb.dp_auc_bound(1.0, 1e-9) == pytest.approx(math.e / (1 + math.e), abs=1e-6)
    assert mb.dp_auc_bound(1.0, 0.1) > mb.dp_auc_bound(1.0)
    assert mb.dp_auc_bound(0.5) < mb.dp_auc_bound(2.0) < mb.dp_auc_bound(8.0) < 1.0
    f = np.linspace(0, 1, 11)
    b = mb.dp_roc_bound(f, 1.0)
    assert b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) >= 0) and np.all(b >= f - 1e-12)
    with pytest.raises(ValueError, match="epsilon"):
        mb.dp_auc_bound(-1.0)
    with pytest.raises(ValueError, match="delta"):
        mb.dp_auc_bound(1.0, 1.0)


def test_train_dp_sgd_spends_the_budget():
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    model = LeNet5()
    before = [p.detach().clone() for p in model.parameters()]
    h = train_dp_sgd(model, (x, y), epsilon=4.0, epochs=2, lr=0.1, batch_size=16, progress=False)
    assert h["epsilon"] == pytest.approx(4.0, rel=0.05)
    assert h["noise_multiplier"] > 0 and h["steps"] > 0 and len(h["loss"]) == 2
    # opacus's Poisson rate is 1 / len(loader): 1/4 here; with 60 samples and batch 16 it is
    # 1/4 too, not 16/60
    assert h["sample_rate"] == pytest.approx(0.25)
    h60 = train_dp_sgd(LeNet5(), (x[:60], y[:60]), epsilon=4.0, epochs=1, batch_size=16, progress=False)
    assert h60["sample_rate"] == pytest.approx(0.25)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert model(x).shape == (64, 10)              # a plain model is left behind
    control = train_dp_sgd(LeNet5(), (x, y), epsilon=math.inf, epochs=1, batch_size=16, progress=False)
    assert control["noise_multiplier"] == 0.0 and math.isinf(control["epsilon"])


@pytest.mark.parametrize("kwargs, match", [({"epsilon": 0}, "epsilon"), ({"epsilon": 1.0, "delta": 0}, "delta"),
                                           ({"epsilon": 1.0, "lr": -1}, "lr")])
def test_train_dp_sgd_bad_arguments(kwargs, match):
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match=match):
        train_dp_sgd(LeNet5(), (x, y), **kwargs)


def test_train_dp_sgd_refuses_batchnorm():
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match="BatchNorm"):
        train_dp_sgd(LeNet5(batch_norm=True), (x, y), epsilon=1.0)


def test_correctness_scores_and_label_only_auc(tiny):
    model, x, y = tiny
    pred = model(x).argmax(1)
    s = mb.correctness_scores(model, x, y)
    assert torch.equal(s, (pred == y).float())
    # AUC of "member if correct" = (1 + acc_members - acc_nonmembers) / 2
    members, nonmembers = np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0])
    assert mb.attack_auc(members, nonmembers) == pytest.approx((1 + 0.75 - 0.25) / 2)



def test_curvature_estimators_do_not_tie_at_large_margins():
    # a linear model whose input Hessian is W^T (diag p - p p^T) W: tiny but nonzero and falling
    # with the margin; margins 20..60, where CE's own log-sum-exp rounds to 0 from about 36 on
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 10, bias=False))
    with torch.no_grad():
        w = 0.1 * torch.arange(10.0)[:, None] * torch.tensor([1.0, -1.0, 1.0, -1.0])
        w[3] = 1.0
        net[1].weight.copy_(w)
    margins = torch.arange(20.0, 61.0, 5.0)
    x = (margins + math.log(9.0))[:, None, None, None].expand(-1, 1, 2, 2) / 4   # z_3 = margin + log 9
    y = torch.full((len(margins),), 3)
    assert torch.allclose(mb.margin_scores(net, x, y), margins.double(), atol=1e-4)
    scores = {"exact": mb.curvature_scores(net, x, y),
              "zero-order": mb.zero_order_curvature(net, x, y, seed=0),
              "Hutchinson": mb.input_curvature(net, x, y, probes=16, seed=0)}
    for name, s in scores.items():
        assert (s > 0).all(), name
        assert (s.double().diff() < 0).all(), name            # strictly ordered: no ties


def test_zero_order_vs_exact_separates_smooth_from_piecewise_linear_nets():
    from mixcon_lite.models import LeNet5, MLP

    torch.manual_seed(0)
    smooth = MLP(12, [16, 16], num_classes=3, activation="tanh").eval()
    x, y = torch.rand(20, 12), torch.randint(0, 3, (20,))
    r = mb.zero_order_vs_exact(smooth, x, y, hs=(1e-2, 1e-3, 1e-4), seed=1)
    assert r["zero_order"].shape == (3, 20) and r["exact"].shape == (20,)
    # a twice-differentiable loss: the mixed difference settles on the exact |u^T H v|
    assert np.abs(r["zero_order"][1:] / r["exact"] - 1).max() < 1e-3
    # a ReLU / max-pooling LeNet: the boxes cross kinks, and the quotient stays far above
    # |u^T H v| however small h is
    net = LeNet5().eval()
    xi, yi = torch.rand(30, 1, 28, 28), torch.randint(0, 10, (30,))
    r = mb.zero_order_vs_exact(net, xi, yi, hs=(1e-3, 1e-4), seed=0)
    ratio = np.median(r["zero_order"] / r["exact"], axis=1)
    assert (ratio > 10).all(), ratio
    with pytest.raises(ValueError, match="hs"):
        mb.zero_order_vs_exact(net, xi, yi, hs=(0.0,))
