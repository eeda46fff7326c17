"""One training loop for every chapter, and evaluation.

``train`` takes a model, tensors ``(x, y)`` and a loss function ``loss_fn(model, x, y) -> scalar``
(default: cross-entropy of ``model(x)``), so chapters change *what* is minimised (e.g. the MixCon
consistency loss) without writing another loop.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .utils import positive_int, progress_bar, show_progress  # noqa: F401 (show_progress re-exported)


def cross_entropy_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The plain task loss: mean cross-entropy of ``model(x)`` against integer labels ``y``."""
    return F.cross_entropy(model(x), y)


def _check_xy(x, y, name: str) -> None:
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise ValueError(f"{name} must be a pair of tensors (x, y).")
    if y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{name}: expected x [N, ...] and integer labels y [N] with N > 0; "
                         f"got x {tuple(x.shape)} and y {tuple(y.shape)}.")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name}: labels must be an integer tensor, got {y.dtype}.")


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``, in eval mode.

    Returns ``{"accuracy": float in [0, 1], "loss": float}``; the model's train/eval mode is restored.
    """
    _check_xy(x, y, "evaluate")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, total_loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device).long()
        logits = model(xb)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train(was_training)
    return {"accuracy": correct / len(x), "loss": total_loss / len(x)}


def train(model: torch.nn.Module, train_data, epochs: int = 1, lr: float = 0.01, batch_size: int = 64,
          optimizer: str = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
          loss_fn: Callable | None = None, eval_data=None, seed: int = 0,
          progress: bool | None = None) -> dict:
    """Train ``model`` in place with minibatches drawn in a seeded order.

    Parameters
    ----------
    train_data, eval_data : ``(x, y)`` tensors; ``eval_data`` (optional) is evaluated after each epoch.
    optimizer : ``"sgd"`` or ``"adam"``; ``lr``, ``momentum`` (SGD) and ``weight_decay`` apply.
    loss_fn : ``loss_fn(model, xb, yb) -> scalar tensor``; default :func:`cross_entropy_loss`.
    progress : tqdm bar over batches; default on only when interactive.

    Returns a history ``{"loss": [mean per epoch], "train_accuracy": [...],
    "eval_accuracy": [...], "eval_loss": [...]}`` (eval lists empty without ``eval_data``).
    """
    _check_xy(*train_data, "train_data")
    if eval_data is not None:
        _check_xy(*eval_data, "eval_data")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}.")
    params = [p for p in model.parameters() if p.requires_grad]
    name = str(optimizer).lower()
    if name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif name == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'.")
    loss_fn = loss_fn or cross_entropy_loss
    x, y = train_data
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    history = {"loss": [], "train_accuracy": [], "eval_accuracy": [], "eval_loss": []}
    n_batches = (len(x) + batch_size - 1) // batch_size
    bar = progress_bar(total=epochs * n_batches, desc="training", progress=progress)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        running, seen = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device).long()
            loss = loss_fn(model, xb, yb)
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(f"Training diverged (loss = {loss.item()}); lower lr (now {lr}).")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.3f}")
        history["loss"].append(running / seen)
        history["train_accuracy"].append(evaluate(model, x, y)["accuracy"])
        if eval_data is not None:
            ev = evaluate(model, *eval_data)
            history["eval_accuracy"].append(ev["accuracy"])
            history["eval_loss"].append(ev["loss"])
    bar.close()
    model.eval()
    return history
