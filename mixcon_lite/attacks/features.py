r"""Feature inversion: recover an input from the representation a client sends (split learning).

White-box *regularised maximum likelihood* (rMLE, He, Zhang & Lee 2019): knowing the client's
layers :math:`f` (here ``model.forward_to(., cut)``) and an observed representation :math:`h`, solve

.. math::  \hat x = \arg\min_{x \in [0,1]^{C\times H\times W}}
           \tfrac{1}{|h|}\lVert f(x) - h\rVert_2^2 + \lambda_{TV}\,\mathrm{TV}(x)

by gradient descent, projecting onto the pixel box after every step. A batch of representations is
inverted at once; each image's objective involves only its own pixels, so the batch is just many
independent problems solved together.
"""
from __future__ import annotations

import torch

from ..models import SplitNet
from ..train import show_progress


def total_variation(x: torch.Tensor) -> torch.Tensor:
    r"""Anisotropic total variation per image: mean :math:`|x_{i+1,j}-x_{i,j}|` plus mean
    :math:`|x_{i,j+1}-x_{i,j}|` over channels and pixels. ``x``: ``[N, C, H, W]`` -> ``[N]``."""
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(f"total_variation expects a tensor of shape [N, C, H, W], got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def invert(model: SplitNet, cut: str, h: torch.Tensor, steps: int = 500, lr: float = 0.05,
           tv_weight: float = 0.0, optimizer: str = "adam", init: str = "constant",
           seed: int = 0, progress: bool | None = None, return_history: bool = False):
    """Recover inputs from representations ``h`` taken after block ``cut`` of ``model`` (white-box rMLE).

    Parameters
    ----------
    model : a :class:`~mixcon_lite.models.SplitNet`; it is put in eval mode and not changed.
    cut : block name whose output ``h`` is (``model.block_names`` lists them).
    h : ``[N, *model.representation_shape(cut)]`` observed representations.
    steps, lr : iterations and step size. ``optimizer``: ``"adam"`` or ``"sgd"`` (the paper's App. C
        uses SGD with lr 10 on a sum-of-squares objective; here the data term is a mean, so use a
        larger lr with SGD).
    tv_weight : :math:`\\lambda_{TV}` (0 = plain MLE).
    init : ``"constant"`` (all pixels 0.5), ``"uniform"`` (U[0,1], seeded) or ``"zeros"``.

    Returns ``x_hat`` ``[N, *model.input_shape]`` in [0, 1] (detached); with ``return_history`` also
    a dict ``{"loss": [...], "feature_mse": [...]}`` of batch means per step.
    """
    if not isinstance(model, SplitNet):
        raise ValueError("invert needs a mixcon_lite SplitNet (e.g. LeNet5) so it knows where the cut is.")
    expected = model.representation_shape(cut)  # also validates the cut name
    if not torch.is_tensor(h) or tuple(h.shape[1:]) != expected or h.shape[0] == 0:
        got = tuple(h.shape) if torch.is_tensor(h) else type(h).__name__
        raise ValueError(f"h must have shape [N, {', '.join(map(str, expected))}] for cut {cut!r}, got {got}.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if not lr > 0 or tv_weight < 0:
        raise ValueError(f"Need lr > 0 and tv_weight >= 0, got lr={lr!r}, tv_weight={tv_weight!r}.")
    if tv_weight > 0 and len(model.input_shape) != 3:
        raise ValueError(f"tv_weight > 0 needs image inputs [C, H, W]; this model takes {model.input_shape}. "
                         "Use tv_weight=0 for vector inputs.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    h = h.detach().to(device)
    shape = (h.shape[0], *model.input_shape)
    if init == "constant":
        x = torch.full(shape, 0.5, device=device)
    elif init == "uniform":
        x = torch.rand(shape, generator=torch.Generator().manual_seed(int(seed))).to(device)
    elif init == "zeros":
        x = torch.zeros(shape, device=device)
    else:
        raise ValueError(f"Unknown init {init!r}; expected 'constant', 'uniform' or 'zeros'.")
    x.requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([x], lr=lr)
    else:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected 'adam' or 'sgd'.")
    history = {"loss": [], "feature_mse": []}
    for _ in (bar := _progress(steps, progress)):
        feat_err = (model.forward_to(x, cut) - h).pow(2).flatten(1).mean(1)  # [N]
        loss = feat_err + tv_weight * total_variation(x) if tv_weight > 0 else feat_err
        grad, = torch.autograd.grad(loss.sum(), x)  # per-image objectives are independent
        opt.zero_grad(set_to_none=True)
        x.grad = grad
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
        history["loss"].append(loss.mean().item())
        history["feature_mse"].append(feat_err.mean().item())
        if hasattr(bar, "set_postfix") and len(history["loss"]) % 25 == 0:
            bar.set_postfix(feature_mse=f"{history['feature_mse'][-1]:.2e}")
    model.train(was_training)
    x_hat = x.detach()
    return (x_hat, history) if return_history else x_hat


def _progress(steps: int, progress: bool | None):
    from tqdm.auto import tqdm

    return tqdm(range(steps), disable=not show_progress(progress), desc="inverting", leave=False)
