r"""Gradient inversion: recover a client's private batch from the gradient it shares (federated
learning, chapters 06-07).

Threat model (honest-but-curious server): the server knows the model :math:`\theta`; a client computes
:math:`\nabla_\theta \ell(\theta; x, y)` on its private batch (mean cross-entropy, one FedSGD step) and
sends it. Every function here takes any ``torch.nn.Module`` classifier and gradients listed in
``model.parameters()`` order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .result import AttackResult  # noqa: F401  (the type every attack here returns)


def shared_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """What a client sends for one FedSGD step: the gradient of the mean cross-entropy of
    ``model(x)`` against class indices ``y`` (``[b]``), one detached tensor per parameter, in
    ``model.parameters()`` order. The model's train/eval mode is left as it is (BatchNorm in
    train mode uses the batch's statistics, as a training client's would)."""
    if not torch.is_tensor(x) or not torch.is_tensor(y) or y.ndim != 1 or x.shape[0] != y.shape[0] or len(y) == 0:
        raise ValueError(f"shared_gradients: expected x [b, ...] and class indices y [b] with b >= 1, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__} and "
                         f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}.")
    params = [p for p in model.parameters()]
    loss = F.cross_entropy(model(x), y.long())
    return [g.detach() for g in torch.autograd.grad(loss, params)]


def check_gradients(model: torch.nn.Module, gradients) -> list[torch.Tensor]:
    """Return ``gradients`` as a list after checking it matches ``model.parameters()`` one to one
    (count and shapes); ``ValueError`` saying which entry differs otherwise."""
    params = list(model.parameters())
    grads = list(gradients) if not torch.is_tensor(gradients) else None
    if grads is None or len(grads) != len(params):
        raise ValueError(f"Expected one gradient per model parameter ({len(params)} tensors, in "
                         f"model.parameters() order), got {'a single tensor' if grads is None else len(grads)}.")
    for i, (g, p) in enumerate(zip(grads, params)):
        if not torch.is_tensor(g) or g.shape != p.shape:
            raise ValueError(f"Gradient {i} has shape {tuple(g.shape) if torch.is_tensor(g) else type(g).__name__}"
                             f", but parameter {i} has shape {tuple(p.shape)}: gradients must follow "
                             f"model.parameters() order (use shared_gradients).")
    return grads
