"""One training loop for every chapter, and evaluation.

``train`` takes a model, tensors ``(x, y)`` and a loss function ``loss_fn(model, x, y) -> scalar``
(default: cross-entropy of ``model(x)``), so chapters change *what* is minimised (e.g. the MixCon
consistency loss) without writing another loop.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .config import resolve_seed
from .utils import positive_int, progress_bar


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
          loss_fn: Callable | None = None, eval_data=None, seed: int | None = None,
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
    seed = resolve_seed(seed)
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


def train_margin(model: torch.nn.Module, x: torch.Tensor, y_pm1: torch.Tensor, steps: int = 1000,
                 lr: float = 0.01, normalized: bool = False, weight_decay: float = 0.0,
                 log_every: int = 10, progress: bool | None = None, snapshot_steps=None) -> dict:
    """Full-batch gradient descent on the logistic loss with labels ±1 (chapter 08's victim).

    Minimises :math:`\\frac1N\\sum_i \\log(1 + e^{-y_i \\Phi(x_i)})` for a model with one output
    (``model(x)`` of shape ``[N, 1]`` or ``[N]``), in place, for ``steps`` plain GD steps.

    ``normalized=True`` divides the step by the current loss (a loss-scaled learning rate that
    keeps the late steps from shrinking with the loss; the plain GD of the theorem is ``False``). ``weight_decay`` adds :math:`\\frac{wd}{2}\\lVert\\theta\\rVert^2` to the loss.

    Returns a history every ``log_every`` steps: ``step``, ``loss``, ``margin``
    (:math:`\\min_i y_i\\Phi(x_i)`, positive once every sample is classified right), ``train_error``
    and ``param_norm`` (:math:`\\lVert\\theta\\rVert`). ``snapshot_steps`` (step numbers; ``steps``
    means after the last step) adds ``snapshots``: a list of ``(step, [parameter copies])``, for
    following the direction of :math:`\\theta` over training.
    """
    if not torch.is_tensor(x) or not torch.is_tensor(y_pm1) or x.ndim < 2 or len(x) != len(y_pm1.reshape(-1)):
        raise ValueError("train_margin needs tensors x [N, ...] and y_pm1 [N] with the same N.")
    y = y_pm1.reshape(-1).to(x.dtype)
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("Labels must be ±1 for the logistic loss; map 0/1 labels with 2 * y - 1.")
    steps = positive_int(steps, "steps")
    log_every = positive_int(log_every, "log_every")
    if not lr > 0 or weight_decay < 0:
        raise ValueError(f"lr must be positive and weight_decay >= 0, got {lr!r}, {weight_decay!r}.")
    params = [p for p in model.parameters() if p.requires_grad]
    history = {"step": [], "loss": [], "margin": [], "train_error": [], "param_norm": []}
    snap_at = sorted({int(t) for t in snapshot_steps}) if snapshot_steps is not None else []
    if any(t < 0 or t > steps for t in snap_at):
        raise ValueError(f"snapshot_steps must lie in [0, steps={steps}], got {snap_at}.")
    if snapshot_steps is not None:
        history["snapshots"] = []

    def snapshot(t):
        if t in snap_at:
            history["snapshots"].append((t, [p.detach().clone() for p in params]))

    model.train()
    bar = progress_bar(total=steps, desc="training (full batch)", progress=progress)
    for step in range(steps):
        out = model(x).reshape(-1)
        if out.shape != y.shape:
            bar.close()
            raise ValueError(f"train_margin needs a model with one output per sample; got output of shape "
                             f"{tuple(model(x[:1]).shape)} per input. Use num_classes=1.")
        loss = F.softplus(-y * out).mean()
        if not torch.isfinite(loss):
            bar.close()
            raise FloatingPointError(f"Training diverged (loss = {loss.item()}); lower lr (now {lr}).")
        if step % log_every == 0 or step == steps - 1:
            with torch.no_grad():
                margins = y * out
                history["step"].append(step)
                history["loss"].append(loss.item())
                history["margin"].append(float(margins.min()))
                history["train_error"].append(float((margins <= 0).float().mean()))
                history["param_norm"].append(float(torch.sqrt(sum((p ** 2).sum() for p in params))))
                bar.set_postfix(loss=f"{loss.item():.2e}")
        snapshot(step)
        total = loss
        if weight_decay > 0:
            total = total + 0.5 * weight_decay * sum((p ** 2).sum() for p in params)
        grads = torch.autograd.grad(total, params)
        scale = lr / max(loss.item(), 1e-30) if normalized else lr
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(scale * g)
        bar.update(1)
    snapshot(steps)
    bar.close()
    model.eval()
    return history


def train_dp_sgd(model: torch.nn.Module, train_data, epsilon: float, delta: float = 1e-5,
                 epochs: int = 1, lr: float = 0.1, batch_size: int = 64, max_grad_norm: float = 1.0,
                 momentum: float = 0.0, seed: int | None = None, progress: bool | None = None) -> dict:
    """Train ``model`` in place with DP-SGD (Abadi et al. 2016) through opacus: each step clips every
    sample's gradient to L2 norm ``max_grad_norm``, adds Gaussian noise, and draws its batch by
    Poisson sampling (opacus's rate ``1 / len(loader)``, about ``batch_size / n``). opacus picks the
    noise multiplier that spends exactly ``(epsilon, delta)`` over ``epochs`` by its RDP accountant.
    ``epsilon=math.inf`` is the control: the same clipping and Poisson batches with no noise (no
    privacy guarantee).

    The model must have no BatchNorm (per-sample gradients are undefined when samples share a batch's
    statistics; opacus refuses it). Returns ``{"loss": [mean per epoch], "epsilon": spent,
    "delta": delta, "noise_multiplier": sigma, "sample_rate": q, "steps": steps}``.
    Raises ``ValueError`` for a non-positive ``epsilon``, a ``delta`` outside (0, 1), or bad data."""
    seed = resolve_seed(seed)
    _check_xy(*train_data, "train_data")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"epsilon must be a positive number (the privacy budget; math.inf for clipping "
                         f"without noise), got {epsilon!r}.")
    import math

    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1) (typically below 1/n), got {delta!r}.")
    if not lr > 0 or not max_grad_norm > 0:
        raise ValueError(f"lr and max_grad_norm must be positive, got {lr!r} and {max_grad_norm!r}.")
    import warnings

    from torch.utils.data import DataLoader, TensorDataset
    from torch.nn.modules.batchnorm import _BatchNorm

    if any(isinstance(m, _BatchNorm) for m in model.modules()):
        raise ValueError("DP-SGD needs per-sample gradients, which BatchNorm mixes across a batch; use a "
                         "model without BatchNorm (e.g. GroupNorm instead).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from opacus import PrivacyEngine

        x, y = train_data
        g = torch.Generator().manual_seed(int(seed))
        loader = DataLoader(TensorDataset(x, y.long()), batch_size=batch_size, shuffle=True, generator=g)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        engine = PrivacyEngine(accountant="rdp")
        torch.manual_seed(int(seed))  # opacus draws its noise and Poisson batches from torch's RNG
        if math.isinf(epsilon):
            private, opt, loader = engine.make_private(
                module=model, optimizer=opt, data_loader=loader, noise_multiplier=0.0,
                max_grad_norm=float(max_grad_norm))
        else:
            private, opt, loader = engine.make_private_with_epsilon(
                module=model, optimizer=opt, data_loader=loader, target_epsilon=float(epsilon),
                target_delta=float(delta), epochs=epochs, max_grad_norm=float(max_grad_norm))
        history = {"loss": []}
        steps = 0
        bar = progress_bar(total=epochs * len(loader), desc=f"DP-SGD (eps={float(epsilon):g})", progress=progress)
        device = next(model.parameters()).device
        for _ in range(epochs):
            private.train()
            running, seen = 0.0, 0
            for xb, yb in loader:
                if len(xb) == 0:       # Poisson sampling can draw an empty batch
                    continue
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(private(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                running += loss.item() * len(xb)
                seen += len(xb)
                bar.update(1)
            history["loss"].append(running / max(seen, 1))
        bar.close()
        spent = math.inf if math.isinf(epsilon) else float(engine.get_epsilon(float(delta)))
        history.update(epsilon=spent, delta=float(delta),
                       noise_multiplier=float(opt.noise_multiplier),
                       sample_rate=float(getattr(loader, "sample_rate", 1.0 / len(loader))), steps=steps)
        private.remove_hooks() if hasattr(private, "remove_hooks") else None
    for p in model.parameters():              # leave a plain model behind
        if hasattr(p, "grad_sample"):
            p.grad_sample = None
        p.grad = None
    model.eval()
    return history
