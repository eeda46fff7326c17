"""Chapter 08 checkers: right answers pass, plausible wrong answers are rejected."""
import copy

import numpy as np
import torch
from scipy.optimize import minimize, nnls

from mixcon_lite.exercises import ch08


def dual_lambda(x, y):
    """Right answer: the hard-margin dual, max sum(l) - |sum l_i y_i x_i|^2 / 2 over l >= 0."""
    a = y[:, None] * x
    q = a @ a.T
    res = minimize(lambda l: 0.5 * l @ q @ l - l.sum(), np.zeros(len(y)), jac=lambda l: q @ l - 1,
                   bounds=[(0, None)] * len(y), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    return res.x


def test_linear_lambda_checker():
    assert ch08.check_linear_lambda(dual_lambda)
    # plausible wrong answers: equal weights on all samples; the dual without the bound l >= 0
    assert not ch08.check_linear_lambda(lambda x, y: np.ones(len(y)))
    assert not ch08.check_linear_lambda(lambda x, y: np.linalg.lstsq((y[:, None] * x) @ (y[:, None] * x).T,
                                                                     np.ones(len(y)), rcond=None)[0])
    short = ch08.check_linear_lambda(lambda x, y: np.ones(3))
    assert not short and "shape" in short.message


def degree(model):
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for p in scaled.parameters():
            p.mul_(2.0)
    x = torch.randn(16, model.input_shape[0])
    with torch.no_grad():
        a, b = model(x)[:, 0], scaled(x)[:, 0]
    ratio = (b / a).abs()
    ratio = ratio[a.abs() > 1e-6]
    if len(ratio) == 0 or ratio.max() / ratio.min() > 1 + 1e-4:
        return None
    deg = float(np.log2(float(ratio.mean())))
    return round(deg) if abs(deg - round(deg)) < 1e-3 else None


def test_homogeneity_checker():
    assert ch08.check_homogeneity_degree(degree)
    n_params = ch08.check_homogeneity_degree(lambda m: len(list(m.parameters())))
    assert not n_params and "not homogeneous" in n_params.message
    n_hidden = ch08.check_homogeneity_degree(lambda m: len(list(m.parameters())) - 1)
    assert not n_hidden

    def in_place(model):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.0)
                p.add_(0.0 * p + 1e-3)
        return degree(model)
    assert not ch08.check_homogeneity_degree(in_place)


def test_nnls_checker():
    def right(g, theta):
        lam, r = nnls(g.T, theta)
        return r / np.linalg.norm(theta), lam
    assert ch08.check_nnls_residual(right)

    def lstsq(g, theta):
        lam = np.linalg.lstsq(g.T, theta, rcond=None)[0]
        return np.linalg.norm(theta - g.T @ lam) / np.linalg.norm(theta), lam
    wrong = ch08.check_nnls_residual(lstsq)
    assert not wrong and "negative" in wrong.message

    def absolute(g, theta):
        lam, r = nnls(g.T, theta)
        return r, lam
    assert not ch08.check_nnls_residual(absolute)
    assert not ch08.check_nnls_residual(lambda g, t: 0.0)


def test_homogeneity_checker_measures_rather_than_reads_the_layers():
    def counts_layers(model):
        """Reads the degree off the architecture: right for bias-free ReLU MLPs only."""
        mods = list(model.modules())
        linear = [m for m in mods if isinstance(m, torch.nn.Linear)]
        if any(m.bias is not None for m in linear) or any(isinstance(m, torch.nn.Tanh) for m in mods):
            return None
        return len(linear)
    wrong = ch08.check_homogeneity_degree(counts_layers)
    assert not wrong and "first layer only" in wrong.message

    def counts_allowing_first_bias(model):
        mods = list(model.modules())
        linear = [m for m in mods if isinstance(m, torch.nn.Linear)]
        if any(m.bias is not None for m in linear[1:]) or any(isinstance(m, torch.nn.Tanh) for m in mods):
            return None
        return len(linear)
    wrong = ch08.check_homogeneity_degree(counts_allowing_first_bias)
    assert not wrong and "squaring" in wrong.message


def test_nnls_checker_rejects_drop_and_refit():
    def drop_and_refit(g, theta):
        """Least squares, drop the negative multipliers, refit once and clip: not NNLS."""
        lam = np.linalg.lstsq(g.T, theta, rcond=None)[0]
        keep, out = lam > 0, np.zeros(len(g))
        out[keep] = np.linalg.lstsq(g[keep].T, theta, rcond=None)[0]
        out = np.clip(out, 0, None)
        return np.linalg.norm(theta - g.T @ out) / np.linalg.norm(theta), out
    assert not ch08.check_nnls_residual(drop_and_refit)


def kkt_loss(model, x, lam, y):
    """Right answer: one autograd.grad of sum_j lam_j y_j Phi(x_j), with create_graph=True."""
    params = [p for p in model.parameters()]
    out = model(x)[:, 0]
    grads = torch.autograd.grad((lam * y * out).sum(), params, create_graph=True)
    return sum(((p.detach() - g) ** 2).sum() for p, g in zip(params, grads))


def test_kkt_loss_checker():
    assert ch08.check_kkt_loss(kkt_loss)

    def no_graph(model, x, lam, y):
        params = list(model.parameters())
        grads = torch.autograd.grad((lam * y * model(x)[:, 0]).sum(), params)
        return sum(((p.detach() - g) ** 2).sum() for p, g in zip(params, grads))
    wrong = ch08.check_kkt_loss(no_graph)
    assert not wrong and "create_graph" in wrong.message

    def without_labels(model, x, lam, y):
        return kkt_loss(model, x, lam, torch.ones_like(y))
    assert not ch08.check_kkt_loss(without_labels)

    def mean_not_sum(model, x, lam, y):
        params = list(model.parameters())
        grads = torch.autograd.grad((lam * y * model(x)[:, 0]).mean(), params, create_graph=True)
        return sum(((p.detach() - g) ** 2).sum() for p, g in zip(params, grads))
    assert not ch08.check_kkt_loss(mean_not_sum)

    def live_params(model, x, lam, y):    # forgets to detach p: the value is right, so is d/dx
        params = list(model.parameters())
        grads = torch.autograd.grad((lam * y * model(x)[:, 0]).sum(), params, create_graph=True)
        return sum(((p - g) ** 2).sum() for p, g in zip(params, grads))
    assert ch08.check_kkt_loss(live_params)   # the same loss in x and lam: accepted
    assert not ch08.check_kkt_loss(lambda m, x, l, y: 0.0)


def test_kkt_loss_checker_rejects_a_changed_lambda():
    for change in (torch.abs, torch.relu, lambda l: l.clamp(min=0.2)):
        assert not ch08.check_kkt_loss(lambda m, x, lam, y, f=change: kkt_loss(m, x, f(lam), y))
