import math

import pytest
import torch

from mixcon_lite import mixcon
from mixcon_lite.models import MLP
from mixcon_lite.train import train

# classes 0, 1: pairs (0, 1) and (2, 3); squared distances 25 and 1
H = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 2.0]])
Y = torch.tensor([0, 1, 0, 1])


def test_raw_form_hand_computed():
    lam, beta, eps = 0.1, 0.01, 0.05
    want = (lam * 25 + beta / 25.05) + (lam * 1 + beta / 1.05)
    assert mixcon.DEFAULT_FORM == "raw"
    assert mixcon.consistency_loss(H, Y, lam, beta, eps).item() == pytest.approx(want, rel=1e-6)
    assert mixcon.consistency_loss(H, Y, lam, beta, eps, reduction="mean").item() == pytest.approx(want / 2)
    assert mixcon.consistency_loss(H, Y, 0.0, 0.0).item() == 0.0
    # per-entry distances 12.5 and 0.5 (D_h = 2)
    per_entry = (lam * 12.5 + beta / 12.55) + (lam * 0.5 + beta / 0.55)
    got = mixcon.consistency_loss(H, Y, lam, beta, eps, distance="per_entry").item()
    assert got == pytest.approx(per_entry, rel=1e-6)


def test_normalised_form_hand_computed():
    # per-entry distances 12.5 -> clipped to 1, and 0.5; lam * (q + beta / q)
    lam, beta, eps = 0.1, 0.01, 0.01
    want = lam * (1 + beta / 1) + lam * (0.5 + beta / 0.5)
    got = mixcon.consistency_loss(H, Y, lam, beta, eps, form="normalised").item()
    assert got == pytest.approx(want, rel=1e-6)
    # a pair at distance 0 is clipped to eps: finite loss, no gradient
    h = torch.zeros(2, 3, requires_grad=True)
    loss = mixcon.consistency_loss(h, torch.tensor([0, 1]), lam, beta, form="normalised")
    assert loss.item() == pytest.approx(lam * (eps + beta / eps))
    loss.backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


def test_three_classes_and_shapes():
    # k-th of each class against the k-th of every other class; same-class pairs never enter
    h = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    y = torch.tensor([0, 1, 2, 0])                       # class 0 has two samples, the second is unpaired
    assert mixcon.consistency_loss(h, y, 1.0, 0.0).item() == pytest.approx(1 + 9 + 4)
    img = torch.zeros(4, 2, 3, 3)
    img[1] = 1.0
    assert mixcon.consistency_loss(img, Y, 1.0, 0.0).item() == pytest.approx(18.0)


@pytest.mark.parametrize("form", mixcon.FORMS)
def test_gradients_pull_and_push(form):
    y = torch.tensor([0, 1])
    far = torch.tensor([[0.0], [0.9]], requires_grad=True)    # per-entry 0.81, inside [eps, 1]
    mixcon.consistency_loss(far, y, 1.0, 0.0, form=form).backward()
    assert far.grad[0] < 0 < far.grad[1]                 # descending moves them together
    near = torch.tensor([[0.0], [0.2]], requires_grad=True)   # 0.04 < sqrt(beta) = 0.5
    mixcon.consistency_loss(near, y, 0.1, 0.25, form=form).backward()
    assert near.grad[0] > 0 > near.grad[1]               # descending moves them apart


def test_scale_with_representation_size_and_batch():
    """Squared distances summed over pairs grow with D_h and the batch; per-entry means do not."""
    g = torch.Generator().manual_seed(0)
    h, y = torch.randn(8, 4, generator=g), torch.tensor([0, 1] * 4)
    wide = h.repeat(1, 5)                                 # same geometry, D_h 4 -> 20
    both = (torch.cat([wide, wide]), torch.cat([y, y]))   # twice the pairs
    opts = {"distance": "per_entry", "reduction": "mean"}
    base = mixcon.consistency_loss(h, y, 0.1, 0.01, **opts).item()
    assert mixcon.consistency_loss(wide, y, 0.1, 0.01, **opts).item() == pytest.approx(base, rel=1e-5)
    assert mixcon.consistency_loss(*both, 0.1, 0.01, **opts).item() == pytest.approx(base, rel=1e-5)
    raw = mixcon.consistency_loss(h, y, 0.1, 0.0).item()
    assert mixcon.consistency_loss(wide, y, 0.1, 0.0).item() == pytest.approx(5 * raw, rel=1e-5)
    assert mixcon.consistency_loss(*both, 0.1, 0.0).item() == pytest.approx(10 * raw, rel=1e-5)


def test_optimal_pair_distance_minimises_penalty():
    lam, beta = 0.1, 0.01
    d = torch.linspace(0, 2, 200001, dtype=torch.float64)
    for form, eps in (("raw", 0.05), ("normalised", 0.01), ("normalised", 0.05)):
        d_star = mixcon.optimal_pair_distance(lam, beta, eps, form=form)
        pen = mixcon.pair_penalty(d, lam, beta, eps, form=form)
        assert d[pen.argmin()].item() == pytest.approx(d_star, abs=1e-4)
    assert mixcon.optimal_pair_distance(lam, beta, 0.05) == pytest.approx(math.sqrt(0.1) - 0.05)
    assert mixcon.optimal_pair_distance(0.7, beta, form="normalised") == pytest.approx(0.1)  # any lam
    assert mixcon.optimal_pair_distance(1.0, 0.0) == 0.0
    assert mixcon.optimal_pair_distance(0.1, 4.0, form="normalised") == 1.0    # clipped at 1
    with pytest.raises(ValueError, match="lam > 0"):
        mixcon.optimal_pair_distance(0.0, beta)


def test_pair_distances():
    p = torch.tensor([[0, 1], [2, 3]])
    assert mixcon.pair_distances(H, p).tolist() == [25.0, 1.0]
    assert mixcon.pair_distances(H, p, "per_entry").tolist() == [12.5, 0.5]
    with pytest.raises(ValueError, match="Unknown distance"):
        mixcon.pair_distances(H, p, "l1")


@pytest.mark.parametrize("kwargs,match", [
    (dict(h=torch.zeros(4), labels=torch.zeros(4)), r"\[b, \.\.\.\]"),
    (dict(h=torch.zeros(4, 2), labels=torch.zeros(3)), "shape \\[4\\]"),
    (dict(h=torch.zeros(4, 2), labels=torch.zeros(4, dtype=torch.long)), "two classes"),
    (dict(lam=-1.0), "lam and beta"),
    (dict(beta=True), "lam and beta"),
    (dict(eps=0.0), "eps"),
    (dict(eps=1.5), "eps"),
    (dict(reduction="max"), "reduction"),
    (dict(form="scaled"), "Unknown form"),
    (dict(distance="cosine"), "Unknown distance"),
    (dict(form="normalised", distance="squared"), "per_entry"),
])
def test_consistency_loss_bad_input(kwargs, match):
    args = dict(h=torch.zeros(2, 2), labels=torch.tensor([0, 1]), lam=0.1, beta=0.01)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mixcon.consistency_loss(**args)


def test_loss_fn_carries_its_options():
    fn = mixcon.mixcon_loss_fn("fc2", 0.1, 0.01, form="normalised", reduction="mean")
    assert (fn.cut, fn.lam, fn.beta, fn.form, fn.distance, fn.reduction, fn.eps) == \
        ("fc2", 0.1, 0.01, "normalised", "per_entry", "mean", mixcon.DEFAULT_EPS["normalised"])
    with pytest.raises(ValueError, match="lam and beta"):
        mixcon.mixcon_loss_fn("fc2", 0.1, -1.0)
    with pytest.raises(ValueError, match="Unknown form"):
        mixcon.mixcon_loss_fn("fc2", 0.1, 0.01, form="paper")


def test_mixcon_training_pulls_classes_together():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 4, generator=g) + 2.0 * (2 * y[:, None] - 1)
    gaps = {}
    for lam in (0.0, 0.5):
        torch.manual_seed(0)
        net = MLP(4, [16, 8], 2)
        fn = mixcon.mixcon_loss_fn("fc2", lam, 0.01)
        train(net, (x, y), epochs=5, lr=0.05, batch_size=20, loss_fn=fn, progress=False)
        with torch.no_grad():
            h = net.forward_to(x, "fc2")
        gaps[lam] = (h[y == 0].mean(0) - h[y == 1].mean(0)).norm().item()
    assert gaps[0.5] < 0.5 * gaps[0.0]


def test_within_class_pairs_and_the_pair_sets():
    from mixcon_lite.separability import within_class_pairs

    y = torch.tensor([0, 1, 0, 1, 0])
    got = {tuple(p) for p in within_class_pairs(y).tolist()}
    assert got == {(0, 2), (0, 4), (2, 4), (1, 3)}
    with pytest.raises(ValueError, match="at least two samples"):
        within_class_pairs(torch.tensor([0, 1, 2]))
    # H, Y: within-class pairs (0, 2) and (1, 3), squared distances 2 and 8
    lam, beta, eps = 0.1, 0.01, 0.05
    want = (lam * 2 + beta / 2.05) + (lam * 8 + beta / 8.05)
    got = mixcon.consistency_loss(H, Y, lam, beta, eps, pairs="within").item()
    assert got == pytest.approx(want, rel=1e-6)
    assert got != pytest.approx(mixcon.consistency_loss(H, Y, lam, beta, eps).item())
    with pytest.raises(ValueError, match="Unknown pairs"):
        mixcon.consistency_loss(H, Y, lam, beta, pairs="between")
    with pytest.raises(ValueError, match="Unknown pairs"):
        mixcon.mixcon_loss_fn("fc1", lam, beta, pairs="all")


def test_within_loss_fn_skips_batches_without_a_repeated_class():
    model = MLP(2, [3], 3)
    fn = mixcon.mixcon_loss_fn("fc1", 1.0, 0.1, pairs="within")
    assert fn.pairs == "within"
    x = torch.randn(3, 2)
    ce = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2]))
    assert fn(model, x, torch.tensor([0, 1, 2])).item() == pytest.approx(ce.item())
    assert fn(model, x, torch.tensor([0, 0, 2])).item() > torch.nn.functional.cross_entropy(
        model(x), torch.tensor([0, 0, 2])).item()
