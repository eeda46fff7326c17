r"""MixCon's consistency loss (Li et al., §3.2), re-derived from the paper's text.

For a batch with representations :math:`h` at the cut and labels :math:`y`, let :math:`P` be MixCon's
pairs: the :math:`k`-th sample of class :math:`c` with the :math:`k`-th sample of every other class
:math:`c'` (:func:`mixcon_lite.separability.mixcon_pairs`). With the squared distance
:math:`d_{ab} = \lVert h_a - h_b\rVert_2^2`,

.. math:: L_c(h, y;\lambda,\beta) = \sum_{(a,b)\in P}\Bigl(\lambda\, d_{ab} + \frac{\beta}{d_{ab}+\varepsilon}\Bigr).

The first term pulls representations of different classes together (smaller :math:`\Delta_S`), the second
keeps them apart (a floor on separability :math:`\delta`); each pair's penalty is smallest at
:math:`d^\star=\sqrt{\beta/\lambda}-\varepsilon`. With :math:`\beta = 0` nothing stops the collapse of every
representation onto one point, and the classifier after the cut can only guess.

Choices the paper's surviving text leaves open, and ours: the sum over pairs of a batch (Eq. (1) is a sum;
with a mean, λ = 0.1 is too weak to collapse anything at β = 0); distances on the raw representation (the
paper's β = 0 nets map everything to (0, 0)); :math:`\varepsilon = 0.05` added to the denominator "to avoid
division by zero" (with ε = 0.01 MixCon's accuracy drops by about 17 points on the synthetic task; chapter 03
shows both). Training minimises ``cross-entropy + L_c``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import SplitNet
from .separability import mixcon_pairs


def consistency_loss(h: torch.Tensor, labels: torch.Tensor, lam: float, beta: float,
                     eps: float = 0.05, reduction: str = "sum") -> torch.Tensor:
    r"""MixCon's :math:`L_c` on a batch (see the module docstring). Differentiable scalar tensor.

    Parameters
    ----------
    h : ``[B, ...]`` representations at the cut (flattened per sample).
    labels : ``[B]`` integer class labels; the batch needs at least two classes.
    lam, beta : :math:`\lambda\ge0` (pull) and :math:`\beta\ge0` (push).
    eps : :math:`\varepsilon > 0` added to the distance in the push term.
    reduction : ``"sum"`` over pairs (the paper's Eq. (1)) or ``"mean"``.
    """
    if not torch.is_tensor(h) or h.ndim < 2:
        raise ValueError(f"h must be a tensor [B, ...] of representations, got "
                         f"{tuple(h.shape) if torch.is_tensor(h) else type(h).__name__}.")
    if not torch.is_tensor(labels) or labels.shape != (h.shape[0],):
        raise ValueError(f"labels must be a tensor of shape [{h.shape[0]}] (one per representation).")
    if lam < 0 or beta < 0:
        raise ValueError(f"lam and beta must be >= 0, got lam={lam!r}, beta={beta!r}.")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}.")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")
    pairs = mixcon_pairs(labels).to(h.device)          # raises if fewer than two classes
    flat = h.reshape(h.shape[0], -1)
    d = (flat[pairs[:, 0]] - flat[pairs[:, 1]]).pow(2).sum(1)
    penalty = lam * d + beta / (d + eps)
    return penalty.sum() if reduction == "sum" else penalty.mean()


def optimal_pair_distance(lam: float, beta: float, eps: float = 0.05) -> float:
    """The squared distance ``max(0, sqrt(beta / lam) - eps)`` at which one pair's penalty
    ``lam d + beta / (d + eps)`` is smallest."""
    if lam <= 0 or beta < 0 or eps <= 0:
        raise ValueError(f"Need lam > 0, beta >= 0 and eps > 0, got {lam!r}, {beta!r}, {eps!r}.")
    return max(0.0, (beta / lam) ** 0.5 - eps)


def mixcon_loss_fn(cut: str, lam: float, beta: float, eps: float = 0.05, reduction: str = "sum"):
    """A ``loss_fn(model, x, y)`` for :func:`mixcon_lite.train.train`: cross-entropy of the logits plus
    :func:`consistency_loss` of the representation after ``cut`` (one forward pass for both).
    Batches holding a single class contribute only the cross-entropy."""
    if lam < 0 or beta < 0:
        raise ValueError(f"lam and beta must be >= 0, got lam={lam!r}, beta={beta!r}.")

    def loss_fn(model: SplitNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h, logits = model.forward_with(x, cut)
        loss = F.cross_entropy(logits, y)
        if torch.unique(y).numel() > 1 and (lam > 0 or beta > 0):
            loss = loss + consistency_loss(h, y, lam, beta, eps, reduction)
        return loss

    loss_fn.cut, loss_fn.lam, loss_fn.beta = cut, lam, beta
    return loss_fn
