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
