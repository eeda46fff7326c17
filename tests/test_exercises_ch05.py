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


def _strongest(p, key):
    return max((a for a in mi.ATTACKS if a in p), key=lambda a: p[a][key])


def _rule(points, drop, min_drop, strict_acc=False, strict_ssim=False, select_on="pick_ssim",
          select_acc="accuracy_select", same_attack=True, keep_within=False, evaluate=True,
          only=None, select_attack_by="pick_ssim", evaluate_attack_by="ssim", evaluate_all=False):
    """The sweet-spot rule with one knob to get wrong."""
    v = next(p for p in points if p["lam"] == 0 and p["beta"] == 0)
    ge = (lambda a, b: a > b) if strict_acc else (lambda a, b: a >= b)
    le = (lambda a, b: a < b) if strict_ssim else (lambda a, b: a <= b)
    ok = [p for p in points if p is not v and (keep_within or (p["pairs"] == "across"
                                                               and p["form"] == "raw"))
          and ge(p[select_acc], v[select_acc] - drop)]
    key = "ssim" if select_on == "ssim" else "pick_ssim"
    attack = (lambda p, k: only) if only else _strongest
    if not ok:
        return None

    def good(c):
        a = attack(c, evaluate_attack_by)
        ref = v[a]["ssim"] if same_attack else v[_strongest(v, "ssim")]["ssim"]
        return ge(c["accuracy"], v["accuracy"] - drop) and le(c[a]["ssim"], (1 - min_drop) * ref)

    if evaluate_all:                      # evaluates every point on the victims, keeps the best
        passing = [p for p in ok if good(p)]
        return min(passing, key=lambda p: p[attack(p, key)][key]) if passing else None
    c = min(ok, key=lambda p: p[attack(p, select_attack_by if key == "pick_ssim" else key)][key])
    if not evaluate:
        return c
    return c if good(c) else None


def test_check_sweet_spot():
    assert exercises.check_sweet_spot(mi.sweet_spot)
    assert exercises.check_sweet_spot(_rule)
    wrong = {"strict accuracy": dict(strict_acc=True), "strict SSIM": dict(strict_ssim=True),
             "selects on the victims": dict(select_on="ssim"),
             "selects on the test accuracy": dict(select_acc="accuracy"),
             "vanilla's strongest attack": dict(same_attack=False),
             "keeps within-class and normalised": dict(keep_within=True),
             "never evaluates": dict(evaluate=False), "white-box only": dict(only="whitebox"),
             "decoder only": dict(only="decoder"),
             "evaluates every point": dict(evaluate_all=True),
             "selects by the victims' strongest attack": dict(select_attack_by="ssim"),
             "evaluates the pick images' strongest attack": dict(evaluate_attack_by="pick_ssim")}
    for name, knob in wrong.items():
        verdict = exercises.check_sweet_spot(lambda p, d, m, knob=knob: _rule(p, d, m, **knob))
        assert not verdict and "expected" in verdict.message, name
    assert not exercises.check_sweet_spot(lambda p, d, m: "lam 1")
    assert not exercises.check_sweet_spot(lambda p, d, m: 1 / 0)
    assert not exercises.check_sweet_spot(lambda p, d: None)          # old two-argument form


def _break_case():
    from mixcon_lite.models import LeNet5

    g = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for c in range(10):                                # class c: a bright square at its own place
        x = 0.1 * torch.rand(40, 1, 28, 28, generator=g)
        r, col = 2 + 2 * (c % 5), 4 + 10 * (c // 5)
        x[:, :, r:r + 8, col:col + 8] += 0.3 + 0.6 * torch.rand(40, 1, 1, 1, generator=g)
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((40,), c))
    x, y = torch.cat(xs), torch.cat(ys)
    aux = torch.arange(len(x)) % 40 >= 6
    vic, pick = torch.arange(len(x)) % 40 < 3, (torch.arange(len(x)) % 40 >= 3) & ~aux
    data = {"x_aux": x[aux], "y_aux": y[aux], "x_victims": x[vic], "y_victims": y[vic],
            "x_pick": x[pick], "y_pick": y[pick]}
    torch.manual_seed(0)
    return LeNet5().eval(), data


def test_check_break_defence():
    client, data = _break_case()
    x = torch.cat([data["x_victims"], data["x_pick"]])
    assert exercises.check_break_defence(lambda c, cut, h, aux: x.clone(), client, data)  # perfect

    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ok = exercises.check_break_defence(lambda c, cut, h, aux: noisy, client, data)
    assert ok and "leaks more than the label" in ok.message
    seen = {}
    exercises.check_break_defence(lambda c, cut, h, aux: seen.update(h=h, aux=aux) or x, client, data)
    assert torch.allclose(seen["h"], client.forward_to(x, "block2"))       # h, never the images
    assert seen["aux"] is data["x_aux"]
    means = torch.cat([mi.class_mean_baseline(data), mi.class_mean_baseline(data, "pick")])
    label_only = exercises.check_break_defence(lambda c, cut, h, aux: means.clone(), client, data)
    assert not label_only and "label-only" in label_only.message
    # label-only in disguise: the mean image of the class the client predicts (the server sees
    # the prediction), and a contrast-stretched class mean
    with torch.no_grad():
        pred, pred_aux = client(x).argmax(1), client(data["x_aux"]).argmax(1)
    pm = torch.stack([data["x_aux"][pred_aux == c].mean(0) if (pred_aux == c).any()
                      else data["x_aux"].mean(0) for c in pred.tolist()])
    predicted = exercises.check_break_defence(lambda c, cut, h, aux: pm.clone(), client, data)
    assert not predicted and "label-only" in predicted.message
    stretched = ((means - 0.5) * 1.25 + 0.5).clamp(0, 1)
    assert not exercises.check_break_defence(lambda c, cut, h, aux: stretched, client, data)
    grey = exercises.check_break_defence(lambda c, cut, h, aux: torch.full_like(x, 0.5), client, data)
    assert not grey and "grey" in grey.message
    assert "tensor" in exercises.check_break_defence(lambda c, cut, h, aux: x[:3], client, data).message
    assert "[0, 1]" in exercises.check_break_defence(lambda c, cut, h, aux: 2 * x, client, data).message
    assert not exercises.check_break_defence(lambda c, cut, h, aux: 1 / 0, client, data)
