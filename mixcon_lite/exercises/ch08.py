"""Checkers for chapter 08 (Reconstructing training data from weights): ``check_linear_lambda``,
``check_homogeneity_degree``, ``check_nnls_residual``, ``check_kkt_loss``."""
from __future__ import annotations

import numpy as np
import torch

from .core import CheckResult, as_1d, call_student


def _separable(seed: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    x = rng.normal(size=(n, d))
    score = x @ w
    x = x + 0.5 * np.sign(score)[:, None] * w / np.linalg.norm(w)  # push the classes apart
    return x, np.sign(x @ w)


def check_linear_lambda(fn) -> CheckResult:
    """Chapter 08: ``fn(X, y)`` (NumPy ``[n, d]`` and ±1 labels ``[n]``) must return the KKT multipliers
    λ ``[n]`` of the hard-margin linear classifier without bias,
    ``min ||w||^2 / 2  s.t.  y_i w.x_i >= 1``, for which ``w = sum_i λ_i y_i x_i``.

    The checker verifies the KKT conditions from the λ you return (the problem is convex, so they
    certify the maximum-margin ``w``): λ ≥ 0, every margin ``y_i w.x_i ≥ 1``, and ``λ_i = 0`` wherever
    the margin exceeds 1.
    """
    for seed, (n, d) in enumerate([(8, 2), (12, 3), (20, 5)]):
        x, y = _separable(seed, n, d)
        out, fail = call_student(fn, x.copy(), y.copy())
        if fail is not None:
            return fail
        lam, fail = as_1d(out, n, "your function")
        if fail is not None:
            return fail
        if (lam < -1e-6).any():
            return CheckResult(False, f"Dataset {seed}: some λ are negative ({lam.min():.3g}); KKT multipliers "
                                      "of inequality constraints are >= 0.")
        w = (lam * y) @ x
        margin = y * (x @ w)
        if margin.min() < 1 - 1e-3:
            return CheckResult(False, f"Dataset {seed}: w = sum λ_i y_i x_i violates a constraint (smallest "
                                      f"margin {margin.min():.4f} < 1). Your λ are too small or do not solve "
                                      "the dual problem.")
        slack = np.abs(lam * (margin - 1))
        if slack.max() > 1e-3 * max(1.0, lam.max()):
            i = int(slack.argmax())
            return CheckResult(False, f"Dataset {seed}: sample {i} has margin {margin[i]:.3f} > 1 but λ = "
                                      f"{lam[i]:.3f}; only samples exactly on the margin may carry λ > 0 "
                                      "(complementary slackness).")
    return CheckResult(True, "your λ satisfy every KKT condition on three datasets: w = Σ λ_i y_i x_i is the "
                             "maximum-margin direction, and only the samples on the margin carry weight.")


def check_homogeneity_degree(fn) -> CheckResult:
    """Chapter 08: ``fn(model)`` must return the degree ``L`` with ``Phi(c θ; x) = c^L Phi(θ; x)`` for all
    ``c > 0``, measured numerically (scale every parameter, compare outputs), or ``None`` when the model
    is not positively homogeneous in its parameters (e.g. it has biases)."""
    from ..models import MLP

    # measured, not read off the layers: a first-layer bias keeps the degree, a squaring activation
    # doubles what comes before it, a leaky ReLU is homogeneous like ReLU
    cases = [(MLP(6, [5], 1, bias=False), 2), (MLP(6, [5, 4], 1, bias=False), 3),
             (MLP(6, [5, 4, 3], 1, bias=False), 4), (MLP(6, [5, 4], 1, bias=True), None),
             (MLP(6, [5], 1, bias=False, activation="tanh"), None), (MLP(6, [5, 4], 1, bias="first"), 3),
             (_Net(torch.nn.Linear(6, 5, bias=False), _Square(), torch.nn.Linear(5, 1, bias=False)), 3),
             (_Net(torch.nn.Linear(6, 5, bias=False), torch.nn.LeakyReLU(0.1),
                   torch.nn.Linear(5, 1, bias=False)), 2)]
    for i, (model, want) in enumerate(cases):
        torch.manual_seed(i)
        model.load_state_dict({k: torch.randn_like(v) for k, v in model.state_dict().items()})
        before = {k: v.clone() for k, v in model.state_dict().items()}
        got, fail = call_student(fn, model)
        if fail is not None:
            return fail
        if any(not torch.equal(before[k], v) for k, v in model.state_dict().items()):
            return CheckResult(False, "Your function changed the model's weights in place; scale a copy "
                                      "(copy.deepcopy(model)) instead.")
        widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
        what = f"{_describe(model)} with widths {widths}"
        if want is None:
            if got is not None:
                return CheckResult(False, f"For {what} you returned {got!r}, but such a network is not "
                                          "homogeneous: Phi(2θ; x) is not 2^L Phi(θ; x) for any L. "
                                          "Return None when no degree fits.")
        else:
            try:
                ok = got is not None and int(got) == want and float(got) == want
            except (TypeError, ValueError):
                ok = False
            if not ok:
                return CheckResult(False, f"For {what} the degree is {want}, you returned {got!r}. Measure "
                                          "it (scale a copy's parameters by 2 and compare outputs) rather "
                                          "than reading it off the layers.")
    return CheckResult(True, "your measured degree is right on eight networks: the number of weight layers for "
                             "ReLU and leaky-ReLU MLPs, also with a bias on the first layer; one more for a "
                             "squaring activation; none with later biases or tanh.")


class _Square(torch.nn.Module):
    def forward(self, x):
        return x * x


class _Net(torch.nn.Sequential):
    input_shape = (6,)


def _describe(model) -> str:
    mods = list(model.modules())
    linear = [m for m in mods if isinstance(m, torch.nn.Linear)]
    if any(isinstance(m, _Square) for m in mods):
        return "a network with a squaring activation"
    if any(isinstance(m, torch.nn.LeakyReLU) for m in mods):
        return "a leaky-ReLU network"
    if any(isinstance(m, torch.nn.Tanh) for m in mods):
        return "a tanh MLP"
    if linear[0].bias is not None and all(m.bias is None for m in linear[1:]):
        return "a ReLU MLP with a bias on the first layer only"
    if any(m.bias is not None for m in linear):
        return "a ReLU MLP with biases on every layer"
    return "a bias-free ReLU MLP"


def check_nnls_residual(fn) -> CheckResult:
    """Chapter 08: ``fn(G, theta)`` with ``G`` ``[n, P]`` (row ``i`` = ``y_i ∇θ Phi(x_i)``) and ``theta``
    ``[P]`` (NumPy) must return ``(relative_residual, lam)``: the λ ≥ 0 minimising
    ``||theta - G.T @ lam||`` and that minimum divided by ``||theta||``."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(8)
    cases = []
    g = rng.normal(size=(4, 30))
    cases.append((g, g.T @ np.array([1.0, 0.0, 2.0, 0.5])))           # exact, with one λ = 0
    g = rng.normal(size=(5, 40))
    cases.append((g, g.T @ np.array([1.0, -1.0, 0.5, -0.3, 0.0]) + 0.1 * rng.normal(size=40)))  # signs matter
    g = rng.normal(size=(6, 50))
    cases.append((g, rng.normal(size=50)))
    for _ in range(3):   # correlated gradients, mixed signs: dropping negative λ and refitting is not NNLS
        g = rng.normal(size=(10, 40)) + 0.8 * rng.normal(size=(1, 40))
        cases.append((g, g.T @ rng.normal(size=10) + 0.1 * rng.normal(size=40)))
    for i, (g, theta) in enumerate(cases):
        out, fail = call_student(fn, g.copy(), theta.copy())
        if fail is not None:
            return fail
        try:
            res, lam = out
            res = float(res)
        except (TypeError, ValueError):
            return CheckResult(False, "Return a pair (relative_residual, lam).")
        lam, fail = as_1d(lam, len(g), "your λ")
        if fail is not None:
            return fail
        want_lam, rnorm = nnls(g.T, theta)
        want = rnorm / np.linalg.norm(theta)
        if (lam < -1e-8).any():
            return CheckResult(False, f"Case {i}: some λ are negative; use a non-negative solver "
                                      "(scipy.optimize.nnls), not plain least squares.")
        if abs(res - want) > 1e-5 + 1e-4 * want:
            return CheckResult(False, f"Case {i}: expected relative residual {want:.5f}, got {res:.5f}. Divide "
                                      "||theta - G.T @ lam|| by ||theta||, with lam >= 0.")
        mine = np.linalg.norm(theta - g.T @ lam) / np.linalg.norm(theta)
        if abs(mine - want) > 1e-5 + 1e-4 * want:
            return CheckResult(False, f"Case {i}: your λ leave residual {mine:.5f}, the best λ >= 0 "
                                      f"leave {want:.5f}.")
    return CheckResult(True, f"residual and λ match the non-negative least-squares solution on {len(cases)} "
                             "cases.")


def check_kkt_loss(fn) -> CheckResult:
    """Chapter 08: ``fn(model, x, lam, y)`` must return the KKT attack's stationarity loss
    :math:`\\sum_p \\lVert p - \\sum_j \\lambda_j y_j \\partial\\Phi(\\theta; x_j)/\\partial p\\rVert^2`
    over the model's parameters ``p`` (a scalar tensor), differentiable in the candidates ``x [m, d]``
    and the multipliers ``lam [m]`` (``y [m]`` are ±1 labels). Checked against the package's closed
    form (:func:`mixcon_lite.attacks.weights.combined_gradient`): the value and its gradients in ``x``
    and ``lam``."""
    from ..attacks.weights import _append_one, _parts, combined_gradient
    from ..models import MLP

    for seed, (bias, widths) in enumerate([(False, [6]), (False, [6, 5]), ("first", [6, 5])]):
        torch.manual_seed(seed)
        model = MLP(4, widths, 1, bias=bias).double()
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(5, 4, generator=g, dtype=torch.float64)
        lam = torch.rand(5, generator=g, dtype=torch.float64) + 0.2
        lam[1] = -0.7    # the loss is defined for any λ; the attack's penalty, not the loss, keeps λ >= λ_min
        y = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
        weights, first_bias = _parts(model)
        weights = [w.detach() for w in weights]
        xr, lr_ = x.clone().requires_grad_(True), lam.clone().requires_grad_(True)
        combo = combined_gradient(weights, _append_one(xr, first_bias), lr_ * y)
        want = sum(((w - c) ** 2).sum() for w, c in zip(weights, combo))
        want_gx, want_gl = torch.autograd.grad(want, (xr, lr_))
        xs, ls = x.clone().requires_grad_(True), lam.clone().requires_grad_(True)
        got, fail = call_student(fn, model, xs, ls, y.clone())
        if fail is not None:
            return fail
        what = f"a ReLU MLP with widths {widths}" + (" and a first-layer bias" if bias else "")
        if not torch.is_tensor(got) or got.numel() != 1:
            return CheckResult(False, f"Return one scalar tensor (the summed squared residual), got "
                                      f"{type(got).__name__ if not torch.is_tensor(got) else tuple(got.shape)}.")
        value = float(got.detach())
        want = float(want.detach())
        if abs(value - want) > 1e-6 * max(1.0, want):
            return CheckResult(False, f"For {what}: expected the loss {float(want):.6f}, got {value:.6f}. "
                                      "Sum, over all parameters p, the squared entries of p - Σ_j λ_j y_j ∂Φ(x_j)/∂p "
                                      "(one autograd.grad of Σ_j λ_j y_j Φ(x_j) gives the sum); use λ as given, "
                                      "without abs, relu or clamping.")
        if not got.requires_grad:
            return CheckResult(False, "Your loss carries no gradient to the candidates: build the parameter "
                                      "gradients with torch.autograd.grad(..., create_graph=True).")
        try:
            gx, gl = torch.autograd.grad(got.reshape(()), (xs, ls), allow_unused=True)
        except RuntimeError as err:
            return CheckResult(False, f"Differentiating your loss failed ({err}); use create_graph=True.")
        if gx is None or gl is None:
            return CheckResult(False, "Your loss does not depend on both the candidates x and the multipliers "
                                      "lam; the attack optimises both.")
        if not (torch.allclose(gx, want_gx, atol=1e-6, rtol=1e-5) and torch.allclose(gl, want_gl, atol=1e-6,
                                                                                        rtol=1e-5)):
            return CheckResult(False, f"For {what}: the loss value is right but its gradient in x or lam is not; "
                                      "keep the parameters fixed (detach them) and differentiate through "
                                      "the per-sample gradients with create_graph=True.")
    return CheckResult(True, "your stationarity loss and its gradients in the candidates and in λ match the "
                             "closed form on three networks, one with a first-layer bias.")
