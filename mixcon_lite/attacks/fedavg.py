r"""Inverting a federated-averaging update (chapter 06, section 8).

In FedSGD (the rest of chapter 06) a client sends one gradient. In federated averaging (FedAvg,
McMahan et al. 2017) it first takes :math:`E` steps of SGD on its own data at learning rate
:math:`\tau`, starting from the server's weights :math:`\theta_0`,

.. math:: \theta_{t+1} = \theta_t - \tau\,\nabla_\theta\,\ell(\theta_t; x_{B_t}, y_{B_t}),
          \qquad t = 0, \dots, E - 1,

and sends the update :math:`\Delta = \theta_0 - \theta_E`. With :math:`E = 1` that is
:math:`\tau` times the FedSGD gradient; with more steps it is a sum of gradients taken at weights
the server never saw.

Inverting Gradients (Geiping et al. 2020, section 6; its code's ``FedAvgReconstructor``) attacks
:math:`\Delta` by simulating the client: it runs the same :math:`E` steps on a candidate batch
:math:`\hat x`, differentiably (the graph of every local step is kept), and minimises the cosine
distance between the simulated update and :math:`\Delta` plus a TV prior, with signed Adam, as for
one gradient. The attacker is assumed to know :math:`E`, :math:`\tau`, the batch size and the
order of the mini-batches (the server sets the first three in FedAvg; the order is the attacker's
strongest assumption).

Public functions

* :func:`local_update` — the client: :math:`\Delta` after ``local_steps`` SGD steps (optionally
  differentiable with respect to the inputs).
* :func:`invert_update` — the attack: match :math:`\hat\Delta(\hat x)` to :math:`\Delta`.

The naive attacker, which treats :math:`\Delta` as if it were one gradient, is
:func:`~.gradients.invert_gradients` applied to :math:`\Delta` (the cosine ignores the factor
:math:`\tau`).
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import resolve_seed
from ..utils import positive_int, progress_bar
from .features import total_variation
from .gradients import signed_adam, signed_adam_step
from .matching import check_gradients
from .result import AttackResult


def _check_client(model, x, y, local_steps, lr, batch_size):
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if any(m.training for m in model.modules() if isinstance(m, _BatchNorm)):
        raise ValueError("local_update runs the client's steps functionally and does not track BatchNorm "
                         "running statistics: pass a model without BatchNorm, or one in eval mode.")
    if not torch.is_tensor(x) or x.ndim < 2 or len(x) < 1:
        raise ValueError(f"x must be a batch [n, ...] with n >= 1, got {getattr(x, 'shape', x)!r}.")
    if (not torch.is_tensor(y) or y.ndim != 1 or len(y) != len(x) or y.is_floating_point()):
        raise ValueError(f"y must be a LongTensor [{len(x)}] of class indices, got {y!r}.")
    return _check_schedule(len(x), local_steps, lr, batch_size)


def _check_schedule(n, local_steps, lr, batch_size):
    """The client's ``local_steps``, ``lr`` and ``batch_size`` for ``n`` inputs, validated."""
    steps = positive_int(local_steps, "local_steps")
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a positive number, got {lr!r}.") from None
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    b = n if batch_size is None else positive_int(batch_size, "batch_size")
    if b > n or n % b:
        raise ValueError(f"batch_size must divide the client's {n} inputs (or be None for full-batch "
                         f"steps), got {batch_size!r}.")
    return steps, lr, b


def local_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, local_steps: int = 1,
                 lr: float = 1e-4, batch_size: int | None = None, create_graph: bool = False
                 ) -> list[torch.Tensor]:
    r"""What a FedAvg client sends: :math:`\Delta = \theta_0 - \theta_E` after ``local_steps``
    steps of plain SGD at ``lr`` on the mean cross-entropy of ``(x, y)``, starting from ``model``'s
    weights (which are left unchanged).

    ``batch_size=None``: every step uses the whole batch. Otherwise step :math:`t` uses mini-batch
    :math:`t \bmod (n / b)` of ``x`` in order (``batch_size`` must divide :math:`n`), so
    ``local_steps = n / b`` is one local epoch. ``create_graph=True`` keeps the graph of every step,
    so that the update is differentiable with respect to ``x`` (the attacker's simulation);
    otherwise the returned tensors are detached. One tensor per parameter, in
    ``model.parameters()`` order (the layout of :func:`~.matching.shared_gradients`).
    """
    steps, lr, b = _check_client(model, x, y, local_steps, lr, batch_size)
    names = [name for name, _ in model.named_parameters()]
    theta0 = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    buffers = dict(model.named_buffers())
    # the update is accumulated as the sum of the steps, theta_t = theta_0 - delta_t, so that with
    # one step it is lr times the FedSGD gradient to the last bit (theta_0 - theta_E in float32
    # would lose the small steps' low digits to cancellation)
    delta = [torch.zeros_like(p) for p in theta0]
    chunks = len(x) // b
    with torch.enable_grad():             # the client's own gradients, also under torch.no_grad()
        for t in range(steps):
            i = t % chunks
            xb, yb = x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]
            theta = [p0 - d for p0, d in zip(theta0, delta)]
            out = functional_call(model, (dict(zip(names, theta)), buffers), (xb,))
            grads = torch.autograd.grad(F.cross_entropy(out, yb), theta, create_graph=create_graph)
            delta = [d + lr * g if create_graph else (d + lr * g).detach() for d, g in zip(delta, grads)]
    return delta


def invert_update(model: nn.Module, update, input_shape, labels: torch.Tensor, local_steps: int,
                  lr: float, batch_size: int | None = None, steps: int = 500, restarts: int = 1,
                  seed: int | None = None, attack_lr: float = 0.1, tv_weight: float = 1e-4,
                  signed: bool = True, box=(0.0, 1.0), lr_decay: bool = True,
                  progress: bool | None = None) -> AttackResult:
    r"""Inverting Gradients against a FedAvg update: recover the client's ``n = len(labels)`` inputs
    from :math:`\Delta` (``update``, from :func:`local_update`).

    Minimises :math:`1 - \cos(\hat\Delta(\hat x), \Delta) + \lambda_{\mathrm{TV}}\mathrm{TV}(\hat x)`
    over :math:`\hat x` (``[n, *input_shape]``), where :math:`\hat\Delta(\hat x)` is
    :func:`local_update` of the candidate with the client's ``local_steps``, ``lr`` and
    ``batch_size`` (known to the attacker, as are the labels and the mini-batch order). The rest
    follows :func:`~.gradients.invert_gradients`: N(0, 1) start clamped to ``box``, Adam at
    ``attack_lr`` on the sign of the gradient (``signed``), learning rate divided by 10 at 3/8, 5/8
    and 7/8 of the ``steps`` (``lr_decay``), pixels clamped after each step. Each attack step costs
    about ``local_steps`` times an attack step on one gradient (the client's steps are unrolled).
    ``restarts`` starts run one after another; the one with the lowest objective is returned.

    Returns an :class:`AttackResult` (``loss``: the objective; ``extras``: ``distance`` (the
    cosine term), ``restart_loss``, the client's settings; ``history["loss"]``: best objective so
    far).
    """
    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    if not torch.is_tensor(labels) or labels.ndim != 1 or len(labels) < 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a LongTensor [n] of class indices, got {labels!r}.")
    try:
        shape = tuple(positive_int(s, "input_shape entries") for s in input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be the shape of one input, e.g. (1, 28, 28); got "
                         f"{input_shape!r}.") from None
    n = len(labels)
    target = check_gradients(model, update)
    params = list(model.parameters())
    target = [t.detach().to(p.device, p.dtype) for t, p in zip(target, params)]
    target_norm = math.sqrt(float(sum(t.double().pow(2).sum() for t in target)))
    if target_norm == 0:
        raise ValueError("The update is zero everywhere: there is nothing to match.")
    steps = positive_int(steps, "steps")
    K = positive_int(restarts, "restarts")
    if not (float(tv_weight) >= 0 and float(attack_lr) > 0):
        raise ValueError(f"Need tv_weight >= 0 and attack_lr > 0, got {tv_weight!r}, {attack_lr!r}.")
    if box is not None and not (len(box) == 2 and float(box[0]) < float(box[1])):
        raise ValueError(f"box must be (low, high) with low < high, or None; got {box!r}.")
    # validates local_steps, lr and batch_size against n before any work
    _check_schedule(n, local_steps, lr, batch_size)
    p0 = params[0]
    labels = labels.to(p0.device)
    gen = torch.Generator().manual_seed(int(seed))
    best_f, best_d, best_x, finals = math.inf, math.inf, None, []
    hist = []
    bar = progress_bar(total=steps * K, desc="FedAvg inversion", progress=progress)
    image_like = len(shape) == 3
    for k in range(K):
        x = torch.randn(n, *shape, generator=gen).to(device=p0.device, dtype=p0.dtype)
        if box is not None:
            x.clamp_(float(box[0]), float(box[1]))
        adam, sched = signed_adam(x, attack_lr, steps, lr_decay)
        run_f, run_d, run_x = math.inf, math.inf, x.detach().clone()
        for step in range(steps):
            adam.zero_grad(set_to_none=True)
            sim = local_update(model, x, labels, local_steps, lr, batch_size, create_graph=True)
            inner = sum((s * t).sum() for s, t in zip(sim, target))
            norm = torch.sqrt(sum(s.pow(2).sum() for s in sim)).clamp_min(1e-30)
            d = 1 - inner / (norm * target_norm)
            obj = d + float(tv_weight) * total_variation(x).mean() if (tv_weight and image_like) else d
            obj.backward()
            f = float(obj.detach())
            if f < run_f:
                run_f, run_d, run_x = f, float(d.detach()), x.detach().clone()
            hist.append(min(best_f, run_f))
            signed_adam_step(x, adam, sched, signed, box)
            bar.update(1)
        finals.append(run_f)
        if run_f < best_f:
            best_f, best_d, best_x = run_f, run_d, run_x
    bar.close()
    extras = {"distance": best_d, "restart_loss": torch.tensor(finals), "restarts": K, "steps": steps,
              "local_steps": int(local_steps), "lr": float(lr), "batch_size": batch_size}
    return AttackResult(best_x.cpu(), labels.cpu(), torch.full((n,), best_f), {"loss": hist},
                        time.perf_counter() - t0, extras)
