r"""Reconstructing training data from the trained weights alone (chapter 08).

Haim, Vardi, Yehudai, Shamir and Irani (NeurIPS 2022) build on the implicit bias of gradient
descent: a homogeneous network :math:`\Phi(\theta;\cdot)` trained with the logistic loss converges in
direction to a KKT point of the max-margin problem
:math:`\min \tfrac12\lVert\theta\rVert^2` s.t. :math:`y_i\Phi(\theta;x_i)\ge 1`, so

.. math:: \theta = \sum_i \lambda_i y_i \nabla_\theta\Phi(\theta; x_i),\quad \lambda_i\ge 0,
          \quad \lambda_i = 0 \text{ unless } y_i\Phi(\theta;x_i) = 1 .

* :func:`kkt_residual` — how well the trained weights satisfy that stationarity condition on a given
  set of samples (λ fitted by non-negative least squares);
* :func:`reconstruct` — the attack: optimise candidate inputs and their λ so that the condition holds;
* :func:`match` — SSIM of every training sample to its best candidate.

The victim is a bias-free ReLU MLP with one output (:class:`mixcon_lite.models.MLP` with
``bias=False`` and ``num_classes=1``); :func:`homogeneous_weights` checks that and returns its weight
matrices. Every per-sample gradient is computed in closed form by back-propagating through those
matrices, so the attack's loss needs a single backward pass (no double back-propagation).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..config import resolve_seed
from ..utils import positive_int, progress_bar
from .result import AttackResult

_CONTAINERS = (nn.Sequential, nn.ModuleDict, nn.ModuleList)


def _parts(model: nn.Module) -> tuple[list[torch.Tensor], bool]:
    """``(weights, first_bias)``: the weight matrices of a homogeneous ReLU MLP with one output, the
    first one with its bias folded in as a last column when the first layer has one."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    weights, previous, first_bias = [], None, False
    for name, module in model.named_modules():
        if isinstance(module, _CONTAINERS) or module is model:
            continue
        if isinstance(module, nn.Linear):
            if previous == "linear":
                raise ValueError(f"Layer {name!r} follows another linear layer without a ReLU between them.")
            if module.bias is not None and weights:
                raise ValueError(f"Layer {name!r} has a bias: the KKT attack needs a network homogeneous in "
                                 "its parameters, which allows a bias on the first layer only; build it with "
                                 "bias='first' or bias=False (e.g. MLP(d, widths, 1, bias='first')).")
            if module.bias is not None:
                first_bias = True
                weights.append(torch.cat([module.weight, module.bias[:, None]], 1))
            else:
                weights.append(module.weight)
            previous = "linear"
        elif isinstance(module, nn.ReLU):
            previous = "relu"
        elif isinstance(module, nn.Flatten):
            continue
        else:
            raise ValueError(f"Layer {name!r} is a {type(module).__name__}: the KKT attack needs a homogeneous "
                             "network made of nn.Linear layers (a bias on the first one only) and ReLU "
                             "activations.")
    if not weights:
        raise ValueError("model has no nn.Linear layer.")
    if weights[-1].shape[0] != 1:
        raise ValueError(f"The KKT attack needs one output (binary classification with labels ±1); the last "
                         f"layer has {weights[-1].shape[0]} outputs. Build the model with num_classes=1.")
    return weights, first_bias


def homogeneous_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices ``[W_1, ..., W_L]`` of a ReLU MLP with one output, homogeneous in its
    parameters.

    Such a network :math:`\Phi(x) = W_L\,\sigma(W_{L-1}\cdots\sigma(W_1 x + b_1))` is positively
    homogeneous of degree ``L`` in its parameters :math:`\theta = (W_1, b_1, W_2, \dots, W_L)`, which
    the KKT analysis needs. A bias on the *first* layer keeps that property (scaling every parameter
    by ``c`` scales the first pre-activation by ``c``) and is what Haim et al.'s network has; it is
    returned folded into the first matrix, ``[W_1 | b_1]``, which acts on the input with a constant 1
    appended. A bias on any later layer adds terms of a lower degree and is rejected. Raises
    ``ValueError`` naming the problem for such a bias, an activation other than ReLU, any other kind
    of layer, or more than one output.
    """
    return _parts(model)[0]


def check_pm1(y, n: int | None = None) -> torch.Tensor:
    """``y`` as a float tensor ``[N]`` of ±1 labels; ``ValueError`` otherwise (e.g. for 0/1 labels)."""
    if not torch.is_tensor(y):
        y = torch.as_tensor(np.asarray(y))
    y = y.reshape(-1).to(torch.float64)
    if y.numel() == 0 or not bool(((y == 1) | (y == -1)).all()):
        bad = sorted(set(y.unique().tolist()) - {1.0, -1.0})[:5]
        raise ValueError(f"Labels must be ±1 (binary classification); found values {bad}. "
                         "Map 0/1 labels with y_pm1 = 2 * y - 1.")
    if n is not None and y.numel() != n:
        raise ValueError(f"Expected {n} labels (one per sample), got {y.numel()}.")
    return y


def _flat(x: torch.Tensor, d: int) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim < 2 or x[0].numel() != d:
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"Expected a batch [N, ...] of inputs with {d} entries each, got {got}.")
    return x.reshape(len(x), d)


def _inputs(model: nn.Module, x: torch.Tensor, dtype=None):
    """``(weights, x_in)``: detached weights and ``x`` flattened, a constant 1 appended when the first
    layer has a bias."""
    weights, bias = _parts(model)
    weights = [w.detach() if dtype is None else w.detach().to(dtype) for w in weights]
    x = _flat(x, weights[0].shape[1] - int(bias)).detach().to(weights[0].dtype)
    return weights, _append_one(x, bias)


def _append_one(x: torch.Tensor, bias: bool) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], 1) if bias else x


def _derivative(a: torch.Tensor, alpha: float | None) -> torch.Tensor:
    """ReLU's derivative at ``a``: the step function, or sigmoid(alpha * a) when ``alpha`` is given."""
    if alpha is None:
        return (a > 0).to(a.dtype)
    return torch.sigmoid(alpha * a)


def backprop_parts(weights, x: torch.Tensor, alpha: float | None = None):
    """Forward and backward pass of the MLP on a batch, kept per layer.

    Returns ``(out, inputs, deltas)``: ``out [N]`` the outputs :math:`\\Phi(x_i)`; for every layer
    ``l``, ``inputs[l] [N, d_{l-1}]`` what enters it and ``deltas[l] [N, d_l]`` the derivative of
    :math:`\\Phi(x_i)` with respect to its pre-activation, so that
    :math:`\\nabla_{W_l}\\Phi(x_i) = \\delta_{l,i}\\, h_{l-1,i}^\\top`. ``alpha`` replaces the ReLU
    derivative in the backward pass by ``sigmoid(alpha * a)`` (the paper's softened derivative).
    """
    h = x
    inputs, pre = [], []
    for i, w in enumerate(weights):
        inputs.append(h)
        a = h @ w.T
        pre.append(a)
        h = torch.relu(a) if i < len(weights) - 1 else a
    out = h[:, 0]
    deltas = [None] * len(weights)
    delta = torch.ones_like(h)
    for i in range(len(weights) - 1, -1, -1):
        deltas[i] = delta
        if i > 0:
            delta = (delta @ weights[i]) * _derivative(pre[i - 1], alpha)
    return out, inputs, deltas


def combined_gradient(weights, x: torch.Tensor, coef: torch.Tensor, alpha: float | None = None):
    """:math:`\\sum_i c_i \\nabla_{W_l}\\Phi(x_i)` for every layer (a list of matrices), differentiable
    in ``x`` and ``coef``; ``coef[i] = λ_i y_i`` gives the stationarity condition's right-hand side."""
    _, inputs, deltas = backprop_parts(weights, x, alpha)
    return [(d * coef[:, None]).T @ h for d, h in zip(deltas, inputs)]


def per_sample_gradients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The matrix ``[N, P]`` whose row ``i`` is :math:`\\nabla_\\theta\\Phi(\\theta;x_i)`: the gradients
    of the matrices of :func:`homogeneous_weights` flattened in order (with a first-layer bias, the
    first is ``[W_1 | b_1]``, so its columns interleave differently from ``model.parameters()``).
    Meant for small nets (tests, the 2-D toy)."""
    weights, x = _inputs(model, x)
    _, inputs, deltas = backprop_parts(weights, x)
    return torch.cat([(d[:, :, None] * h[:, None, :]).flatten(1) for d, h in zip(deltas, inputs)], 1)


def kkt_residual(model: nn.Module, x: torch.Tensor, y_pm1) -> tuple[float, np.ndarray]:
    """How far the weights are from a KKT point of the max-margin problem on ``(x, y_pm1)``.

    Fits :math:`\\lambda \\ge 0` by non-negative least squares (``scipy.optimize.nnls``) in
    :math:`\\min_\\lambda \\lVert\\theta - \\sum_i \\lambda_i y_i \\nabla_\\theta\\Phi(\\theta;x_i)\\rVert`
    and returns ``(relative_residual, lam)``: that norm divided by :math:`\\lVert\\theta\\rVert` (0 at an
    exact KKT point, 1 when the samples explain nothing) and ``lam`` (NumPy ``[N]``).

    The fit never forms the ``N x P`` gradient matrix ``A``: for an MLP the Gram matrix is
    :math:`(A^\\top A)_{ij} = y_i y_j\\sum_l (\\delta_{l,i}\\cdot\\delta_{l,j})(h_{l-1,i}\\cdot h_{l-1,j})`
    and :math:`(A^\\top\\theta)_i = y_i \\sum_l \\delta_{l,i}^\\top W_l h_{l-1,i}`, and the NNLS problem
    is solved on a square root of the Gram matrix (same minimiser), in float64.
    """
    weights, x = _inputs(model, x, torch.float64)
    y = check_pm1(y_pm1, len(x)).to(x.device)
    _, inputs, deltas = backprop_parts(weights, x)
    gram = sum((d @ d.T) * (h @ h.T) for d, h in zip(deltas, inputs))
    rhs = sum(((d @ w) * h).sum(1) for d, h, w in zip(deltas, inputs, weights))
    gram = (gram * y[:, None] * y[None, :]).cpu().numpy()
    rhs = (rhs * y).cpu().numpy()
    theta_sq = float(sum((w ** 2).sum() for w in weights))
    from scipy.optimize import nnls

    evals, evecs = np.linalg.eigh(gram)
    keep = evals > evals.max() * 1e-12
    root = np.sqrt(evals[keep])[:, None] * evecs[:, keep].T  # root.T @ root = gram on its range
    target = (evecs[:, keep].T @ rhs) / np.sqrt(evals[keep])
    lam, _ = nnls(root, target, maxiter=50 * len(rhs))
    res_sq = max(theta_sq - 2 * rhs @ lam + lam @ gram @ lam, 0.0)
    return float(np.sqrt(res_sq / theta_sq)), lam


OBJECTIVES = ("kkt", "naive")
OPTIMIZERS = ("adam", "sgd")


def reconstruct(model: nn.Module, input_shape, n_candidates: int = 100, steps: int = 2000, seed: int | None = None,
                lr: float = 0.01, lam_lr: float = 0.01, lam_min: float = 0.5, relu_alpha: float | None = 20.0,
                box=(-1.0, 1.0), init_scale: float = 0.01, prior_weight: float = 5.0, lam_weight: float = 5.0,
                labels=None, objective: str = "kkt", optimizer: str = "adam", momentum: float = 0.9,
                normalize: bool = True, progress: bool | None = None, log_every: int = 20) -> AttackResult:
    r"""The KKT reconstruction attack of Haim et al.: candidates that make the weights stationary.

    Minimises over candidates :math:`\hat x_1..\hat x_m` and multipliers :math:`\lambda_1..\lambda_m`

    .. math:: \Big\lVert \theta - \sum_j \lambda_j y_j
              \nabla_\theta\Phi(\theta; \hat x_j)\Big\rVert^2
              + c_\lambda \sum_j \max(\lambda_{\min} - \lambda_j, 0)^2
              + c_{\mathrm{prior}} \sum_j \lVert \max(\hat x_j - \mathrm{hi}, 0)\rVert^2
              + \lVert\max(\mathrm{lo} - \hat x_j, 0)\rVert^2

    jointly, with Adam (``optimizer="adam"``, ours) or SGD with momentum (``"sgd"``, the paper's code),
    where :math:`\theta` is either the weights as trained or, by default, scaled to unit norm first
    (``normalize=True``: the stationarity condition only fixes the direction of :math:`\theta`; the
    scale goes into λ, and learning rates stop depending on how long the model was trained; the paper's
    code uses the weights as they are) and λ is measured in units of :math:`1/m`, as in the paper's
    code. ``objective="naive"`` is the paper's non-KKT control: it maximises the candidates' margin,
    :math:`-(\overline{\Phi(\hat x_j)}_{y_j=+1} - \overline{\Phi(\hat x_j)}_{y_j=-1})`, plus the same
    pixel prior and no λ.

    Parameters
    ----------
    model : a ReLU MLP with one output, homogeneous in its parameters (see :func:`homogeneous_weights`;
        a first-layer bias is allowed).
    input_shape : shape of one input without the batch axis, e.g. ``(1, 28, 28)``.
    n_candidates : m, the number of candidates (half get label -1, half +1, unless ``labels``).
    steps, lr, lam_lr : optimiser steps and learning rates for the candidates and for λ.
    lam_min : the lower bound :math:`\lambda_{\min}` that keeps every candidate in the sum.
    relu_alpha : softened ReLU derivative ``sigmoid(alpha * a)`` in the backward pass; ``None`` = exact.
    box : ``(lo, hi)`` the pixel range of the prior (inputs as the model sees them): two numbers, or two
        tensors of ``input_shape`` (e.g. the range [0, 1] shifted by a known mean image).
    init_scale : candidates start as ``init_scale * N(0, 1)``; λ starts uniform in [0, 1].
    prior_weight, lam_weight : :math:`c_{\mathrm{prior}}` and :math:`c_\lambda`.
    labels : optional ±1 labels of the candidates.
    objective : ``"kkt"`` (the attack) or ``"naive"`` (the margin-maximising control).
    optimizer, momentum : ``"adam"`` or ``"sgd"`` (with ``momentum``, as the paper's code).
    normalize : scale the weights to unit norm first (ours) or use them as they are (the paper's code).

    Returns an :class:`AttackResult`: ``reconstruction [m, *input_shape]``, ``labels`` (0 for -1,
    1 for +1), ``loss`` per candidate (its prior violation; the stationarity term is shared),
    ``history`` (``loss``, ``stationarity``, relative residual ``residual``) every ``log_every`` steps,
    ``extras['lam']``.
    """
    seed = resolve_seed(seed)
    weights0, first_bias = _parts(model)
    weights0 = [w.detach() for w in weights0]
    m = positive_int(n_candidates, "n_candidates", minimum=2)
    steps = positive_int(steps, "steps")
    log_every = positive_int(log_every, "log_every")
    if objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {objective!r}; expected one of {OBJECTIVES}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}.")
    if not 0 <= float(momentum) < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
    shape = tuple(int(s) for s in input_shape)
    d = weights0[0].shape[1] - int(first_bias)
    if int(np.prod(shape)) != d:
        raise ValueError(f"input_shape {shape} has {int(np.prod(shape))} entries but the model expects {d}.")
    try:
        lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in box)
        lo, hi = lo.reshape(-1) if lo.numel() > 1 else lo, hi.reshape(-1) if hi.numel() > 1 else hi
        if lo.numel() not in (1, d) or hi.numel() not in (1, d):
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"box must be (lo, hi): two numbers or two tensors of input_shape {shape}.") from None
    if not bool((lo < hi).all()):
        raise ValueError(f"box must be (lo, hi) with lo < hi everywhere, got {box!r}.")
    for name, value in (("lr", lr), ("lam_lr", lam_lr), ("init_scale", init_scale)):
        if not float(value) > 0:
            raise ValueError(f"{name} must be positive, got {value!r}.")
    if relu_alpha is not None and not float(relu_alpha) > 0:
        raise ValueError(f"relu_alpha must be positive or None, got {relu_alpha!r}.")
    if labels is None:
        y = torch.cat([-torch.ones(m // 2), torch.ones(m - m // 2)])
    else:
        y = check_pm1(labels, m).float()
    start = time.perf_counter()
    norm = torch.sqrt(sum((w.float() ** 2).sum() for w in weights0))
    weights = [(w.float() / norm) if normalize else w.float() for w in weights0]  # unit norm: a direction
    theta_norm = 1.0 if normalize else float(norm)
    g = torch.Generator().manual_seed(int(seed))
    x = (init_scale * torch.randn(m, d, generator=g)).requires_grad_(True)
    lam = torch.rand(m, generator=g).requires_grad_(True)
    groups = [{"params": [x], "lr": lr}, {"params": [lam], "lr": lam_lr}]
    opt = (torch.optim.Adam(groups) if optimizer == "adam"
           else torch.optim.SGD(groups, momentum=float(momentum)))
    history = {"step": [], "loss": [], "stationarity": [], "residual": []}
    alpha = None if relu_alpha is None else float(relu_alpha)
    bar = progress_bar(total=steps, desc="reconstructing", progress=progress)
    for step in range(steps):
        logging = step % log_every == 0 or step == steps - 1
        x_in = _append_one(x, first_bias)
        prior = ((torch.relu(x - hi) ** 2) + (torch.relu(lo - x) ** 2)).sum(1)
        if objective == "kkt":
            combo = combined_gradient(weights, x_in, lam * y / m, alpha)
            stat = sum(((w - c) ** 2).sum() for w, c in zip(weights, combo))
            lam_pen = (torch.relu(lam_min - lam) ** 2).sum()
            loss = stat + lam_weight * lam_pen + prior_weight * prior.sum()
        else:
            out = _forward(weights, x_in)
            loss = -(out[y > 0].mean() - out[y < 0].mean()) + prior_weight * prior.sum()
            if logging:    # the stationarity this control reaches, for the history only
                with torch.no_grad():
                    combo = combined_gradient(weights, x_in, lam * y / m, alpha)
                    stat = sum(((w - c) ** 2).sum() for w, c in zip(weights, combo))
        if not torch.isfinite(loss):
            bar.close()
            raise FloatingPointError(f"The reconstruction diverged at step {step}; lower lr (now {lr}).")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if logging:
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["stationarity"].append(stat.item())
            history["residual"].append(stat.item() ** 0.5 / theta_norm)
            bar.set_postfix(stationarity=f"{stat.item():.3g}")
        bar.update(1)
    bar.close()
    with torch.no_grad():
        prior = ((torch.relu(x - hi) ** 2) + (torch.relu(lo - x) ** 2)).sum(1)
    return AttackResult(reconstruction=x.detach().reshape(m, *shape).clone(), labels=((y + 1) / 2).long(),
                        loss=prior.detach(), history=history, seconds=time.perf_counter() - start,
                        extras={"lam": lam.detach().clone(), "settings": {
                            "n_candidates": m, "steps": steps, "lr": lr, "lam_lr": lam_lr, "lam_min": lam_min,
                            "relu_alpha": relu_alpha, "init_scale": init_scale,
                            "prior_weight": prior_weight, "lam_weight": lam_weight, "objective": objective,
                            "optimizer": optimizer, "momentum": momentum, "normalize": bool(normalize),
                            "seed": int(seed)}})


def _forward(weights, x: torch.Tensor) -> torch.Tensor:
    h = x
    for i, w in enumerate(weights):
        h = h @ w.T
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h[:, 0]


def _check_images(**named):
    for name, t in named.items():
        if not torch.is_tensor(t) or t.ndim != 4 or len(t) == 0:
            got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"{name} must be images [N, C, H, W] with N >= 1, got {got}.")


def ssim_matrix(candidates: torch.Tensor, images: torch.Tensor) -> np.ndarray:
    """SSIM (:func:`mixcon_lite.metrics.ssim_matrix`, raw, in [-1, 1]) of every image to every
    candidate: a NumPy matrix ``[len(images), len(candidates)]``. Both are batches ``[N, C, H, W]`` in
    [0, 1] (candidates are clamped to [0, 1]), at least 11x11."""
    from ..metrics import ssim_matrix as cross

    _check_images(candidates=candidates, images=images)
    if candidates.shape[1:] != images.shape[1:]:
        raise ValueError(f"candidates {tuple(candidates.shape[1:])} and images {tuple(images.shape[1:])} "
                         "must have the same image shape.")
    return cross(images.detach().float(), candidates.detach().float().clamp(0, 1))


def assign(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A one-to-one matching of images (rows) to candidates (columns) that maximises the summed score
    (``scipy.optimize.linear_sum_assignment``), so that one candidate is credited to one image only.
    Returns ``(score, index)`` per image; an image left without a candidate (more images than
    candidates) gets score ``-inf`` and index ``-1``."""
    from scipy.optimize import linear_sum_assignment

    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be a non-empty matrix [images, candidates], got shape {scores.shape}.")
    rows, cols = linear_sum_assignment(scores, maximize=True)
    out, idx = np.full(len(scores), -np.inf), np.full(len(scores), -1)
    out[rows], idx[rows] = scores[rows, cols], cols
    return out, idx


def match(candidates: torch.Tensor, x_train: torch.Tensor, distinct: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For every training image, its best candidate by SSIM (:func:`ssim_matrix`).

    Both are image batches ``[N, C, H, W]`` in [0, 1] (map the attack's output back to pixel range
    first; candidates are clamped to [0, 1] here), at least 11x11. Returns ``(ssim, index)``: the SSIM
    of each training image to its best candidate (raw, in [-1, 1]) and that candidate's index. With
    ``distinct=False`` one candidate may be the best for many images (a blurry average can "match"
    several); ``distinct=True`` matches one to one (:func:`assign`), so each candidate counts once.
    """
    _check_images(candidates=candidates, x_train=x_train)
    if candidates.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"candidates {tuple(candidates.shape[1:])} and x_train {tuple(x_train.shape[1:])} "
                         "must have the same image shape.")
    scores = ssim_matrix(candidates, x_train)
    if distinct:
        return assign(scores)
    best = scores.argmax(1)
    return scores[np.arange(len(scores)), best], best
