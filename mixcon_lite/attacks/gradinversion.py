r"""GradInversion (Yin et al., CVPR 2021): recover a whole *batch* from its averaged gradient.

Federated-learning threat model as in :mod:`.gradients`: a client sends the gradient of the mean
cross-entropy of its private batch (``b`` images, one FedSGD step); the honest-but-curious server
knows the model, including its BatchNorm running statistics, and wants the images.

**BatchNorm and the mode the client trains in.** A training client runs its BatchNorm layers in
*train* mode: they normalise with the statistics of the private batch itself (and update the
running statistics on the client, which FedSGD does not send). The shared gradient therefore
depends on the batch's own statistics, so the attacker must forward its candidate batch in train
mode too, letting the candidate's statistics play the same role. The running mean and variance the
server already holds (the model *before* the client's step) are a separate, public piece of
knowledge: GradInversion uses them as a *prior*, pulling the candidate batch's statistics towards
them (:func:`bn_statistic_loss`, the ``R_feature`` of DeepInversion). Rule of this package: an
attack evaluates candidates in the mode the model is in, the same rule
:func:`~.gradients.shared_gradients` follows; pass the model in the mode the client used. No
function here changes the model or its buffers.

Public functions

* :func:`~.labels.restore_labels` — the batch's labels from the last linear layer's weight gradient
  (non-repeating labels); :func:`~.labels.count_labels` with :func:`~.labels.label_calibration` —
  the label multiset when labels repeat (both in :mod:`.labels`, re-exported here).
* :func:`bn_statistic_loss` — the BN-statistic prior on a candidate batch;
  :func:`batch_bn_statistics` — a batch's own BN statistics (what shared buffers would leak).
* :func:`gradinversion` — gradient matching plus fidelity priors (TV, L2, BN statistics) and
  group consistency over several seeds, the seeds batched in one graph with ``torch.func.vmap``.
* :func:`~.matching.match_batch` (re-exported here) — the optimal one-to-one assignment of
  reconstructions to originals (a batch's gradient does not tell which image came first).
* :func:`bn_layers` — the layers the BN prior reads (the output layer comes from
  :func:`~.labels.final_linear`).
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import resolve_seed
from ..utils import positive_int, progress_bar
from .features import total_variation
from .labels import count_labels, label_calibration, restore_labels  # noqa: F401
from .matching import check_gradients, match_batch  # noqa: F401 (re-exported)
from .result import AttackResult

#: The chapter's prior settings. The weights are ours, chosen by a small search on two batches
#: of the chapter's setting (its network, 500 to 1,000 steps): the paper tunes its weights for
#: ResNet-50 on ImageNet, and breaching's GradInversion configuration uses TV 1e-4, L2 1e-6 and
#: BN 0.1 against a gradient term scaled by 1e-4. With the Euclidean (not squared) group term,
#: weights much above 0.01 make the seeds collapse onto one candidate within a few hundred Adam
#: steps. Each row changes one thing from the row above: "+ best of 4 seeds" runs 4 seeds with
#: group weight 0 and keeps the seed with the smallest gradient distance, so "+ group consistency"
#: differs from it by the group term alone. Use one as ``gradinversion(..., **PRIORS[name])``.
PRIORS = {
    "none": dict(),
    "TV + L2": dict(tv_weight=1.0, l2_weight=0.001),
    "+ BN statistics": dict(tv_weight=1.0, l2_weight=0.001, bn_weight=0.1),
    "+ best of 4 seeds": dict(tv_weight=1.0, l2_weight=0.001, bn_weight=0.1, seeds=4),
    "+ group consistency": dict(tv_weight=1.0, l2_weight=0.001, bn_weight=0.1, group_weight=0.01, seeds=4),
}


def bn_layers(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers (``BatchNorm1d/2d/3d``), in ``model.modules()`` order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def _batch_stats(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0] + list(range(2, h.ndim))
    return h.mean(dims), h.var(dims, unbiased=False)


def _bn_term(stats: list, targets: list) -> torch.Tensor:
    total = 0.0
    for (mu, var), (rm, rv) in zip(stats, targets):
        total = total + torch.linalg.vector_norm(mu - rm) + torch.linalg.vector_norm(var - rv)
    return total


def bn_statistic_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""The BN-statistic prior (DeepInversion's :math:`R_{\mathrm{feature}}`, GradInversion's
    :math:`R_{\mathrm{BN}}`) of a candidate batch ``x``:

    .. math:: \sum_{l} \lVert \mu_l(x) - \mathrm{running\_mean}_l \rVert_2
              + \lVert \sigma^2_l(x) - \mathrm{running\_var}_l \rVert_2

    over the BatchNorm layers :math:`l`, where :math:`\mu_l, \sigma^2_l` are the per-channel mean
    and biased variance of the layer's *input* over the batch (and spatial positions), read with
    forward pre-hooks during one forward pass in the model's current mode. Returns a scalar tensor
    (differentiable in ``x``). The model's buffers are left unchanged.

    Raises ``ValueError`` if the model has no BatchNorm layer with running statistics."""
    layers = [m for m in bn_layers(model) if m.running_mean is not None]
    if not layers:
        raise ValueError("bn_statistic_loss needs BatchNorm layers with running statistics "
                         "(track_running_stats=True); this model has none.")
    if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"bn_statistic_loss expects a batch x [b, ...] with b >= 2, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    from torch.func import functional_call

    targets = [(m.running_mean.detach().clone(), m.running_var.detach().clone()) for m in layers]
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}   # a train-mode forward updates these
    stats: list = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: stats.append(_batch_stats(inp[0]))) for m in layers]
    try:
        functional_call(model, buffers, (x,), strict=False)
    finally:
        for h in hooks:
            h.remove()
    return _bn_term(stats, targets)


def batch_bn_statistics(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The per-channel mean and biased variance of each BatchNorm layer's *input* over the batch
    ``x`` (and spatial positions), for the layers with running statistics, in
    :func:`bn_layers` order, from one forward pass in the model's current mode (buffers left
    unchanged). This is what a protocol that also sends a client's updated BatchNorm buffers gives
    away: the new running mean is ``(1 - m) * old + m * batch mean``, so the server solves for the
    batch's own statistics. Pass the result as ``gradinversion(..., bn_targets=...)`` to model that
    stronger attacker."""
    layers = [m for m in bn_layers(model) if m.running_mean is not None]
    if not layers:
        raise ValueError("batch_bn_statistics needs BatchNorm layers with running statistics; this model has none.")
    if not torch.is_tensor(x) or x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"batch_bn_statistics expects a batch x [b, ...] with b >= 2, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    from torch.func import functional_call

    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    stats: list = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: stats.append(_batch_stats(inp[0].detach())))
             for m in layers]
    try:
        with torch.no_grad():
            functional_call(model, buffers, (x,), strict=False)
    finally:
        for h in hooks:
            h.remove()
    return stats


def _check_bn_targets(bn_targets, targets: list) -> list:
    """``bn_targets`` as a list of ``(mean, var)`` matching the running statistics ``targets``."""
    present = [t for t in targets if t is not None]
    if not isinstance(bn_targets, (list, tuple)) or len(bn_targets) != len(present):
        raise ValueError(f"bn_targets must be a list of (mean, var) pairs, one per BatchNorm layer with running "
                         f"statistics ({len(present)} here), e.g. from batch_bn_statistics(model, x).")
    out = []
    for (mu, var), (rm, rv) in zip(bn_targets, present):
        if not (torch.is_tensor(mu) and torch.is_tensor(var)) or mu.shape != rm.shape or var.shape != rv.shape:
            raise ValueError(f"each bn_targets pair must hold two tensors shaped like the layer's running "
                             f"statistics {tuple(rm.shape)}.")
        out.append((mu.detach().to(rm), var.detach().to(rv)))
    return out


def _check_weight(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number (0 switches the term off), got {value!r}.")
    return value


def _attack_copy(model: nn.Module) -> tuple[nn.Module, list, list]:
    """A copy of ``model`` to run candidates through, its BN layers, and their running statistics.

    BN layers that are in train mode normalise with the batch's statistics, as the client's did; in the
    copy they stop tracking running statistics, so that candidates never change them and the seeds can
    be batched with ``vmap``. Layers in eval mode keep using the running statistics."""
    att = copy.deepcopy(model)
    for p in att.parameters():
        p.requires_grad_(False)
    layers, targets = [], []
    for m in bn_layers(att):
        if m.running_mean is None:
            layers.append(m)
            targets.append(None)
            continue
        targets.append((m.running_mean.detach().clone(), m.running_var.detach().clone()))
        layers.append(m)
        if m.training:
            m.running_mean, m.running_var, m.num_batches_tracked = None, None, None
            m.track_running_stats = False
    return att, layers, targets


def gradinversion(model: nn.Module, gradients, input_shape, labels, steps: int = 500, lr: float = 0.1,
                  tv_weight: float = 0.0, l2_weight: float = 0.0, bn_weight: float = 0.0,
                  group_weight: float = 0.0, seeds: int = 1, box=(0.0, 1.0), init=None, seed: int | None = None,
                  progress: bool | None = None, record_every: int = 10, bn_targets=None) -> AttackResult:
    r"""GradInversion: optimise a batch of images so that its gradient matches the shared one.

    For each of ``seeds`` = :math:`G` starting points :math:`\hat x_g` (``[b, *input_shape]``,
    labels fixed to ``labels``), Adam minimises

    .. math:: \sum_l \lVert \nabla_{\theta_l} L(\hat x_g, y) - \nabla_{\theta_l} L(x, y)\rVert_2
              + \alpha_{TV} R_{TV} + \alpha_{\ell_2} R_{\ell_2} + \alpha_{BN} R_{BN}
              + \alpha_{group} R_{group}

    * gradient matching in the Euclidean norm per parameter tensor :math:`l`, summed (the paper's
      :math:`\mathcal L_{grad}` with weight 1);
    * :math:`R_{TV}`: anisotropic total variation (:func:`~.features.total_variation`), mean over
      the batch; :math:`R_{\ell_2}`: mean over the batch of :math:`\lVert\hat x_i\rVert_2`;
    * :math:`R_{BN}`: :func:`bn_statistic_loss` of the candidate batch (needs BatchNorm layers);
    * :math:`R_{group}`: the registration-free group consistency: mean over the batch of
      :math:`\lVert\hat x_{g,i} - \bar x_i\rVert_2`, where :math:`\bar x = \frac1G\sum_g \hat x_g`
      is the seeds' current consensus (held fixed within a step).

    All :math:`G` seeds run in one graph (``torch.func.vmap`` over the seed axis; each seed's
    BatchNorm statistics are its own batch's). After every step the images are clamped to ``box``.
    Candidates are evaluated in the model's current mode (see the module docstring); the model is
    not changed.

    Ours, not fixed by the paper for this setting: the weights (see :data:`PRIORS` for the
    chapter's), ``steps``, Adam's ``lr`` = 0.1 (breaching's value) with cosine decay to 0, the
    initialisation U(0, 1), ``seeds``, no Langevin noise (the paper adds some), output = the seed
    with the smallest gradient distance (the consensus is in ``extras``).

    Parameters
    ----------
    model : any classifier; gradients : one per parameter, ``model.parameters()`` order.
    input_shape : one input's shape, e.g. ``(1, 28, 28)``.
    labels : ``LongTensor[b]`` class indices (e.g. from :func:`restore_labels`), fixing ``b``.
    steps, lr : Adam steps and initial learning rate. seeds : :math:`G \ge 1`.
    tv_weight, l2_weight, bn_weight, group_weight : non-negative prior weights (0 = off);
        ``group_weight > 0`` needs ``seeds >= 2``, ``bn_weight > 0`` a model with BatchNorm.
    box : ``(low, high)`` pixel range, or ``None`` for no clamping.
    init : optional starting batch ``[b, *input_shape]`` (every seed starts there) or
        ``[G, b, *input_shape]``; default uniform in ``box`` (standard normal without a box), seeded.
    record_every : record the history every this many steps.
    bn_targets : optional ``[(mean, var), ...]``, one pair per BatchNorm layer with running
        statistics: the statistics :math:`R_{BN}` pulls towards instead of the running ones (the
        batch's own, from :func:`batch_bn_statistics`, for an attacker that receives them).

    Returns an :class:`AttackResult`: ``reconstruction`` ``[b, *input_shape]``, ``labels``,
    ``loss`` = the batch's final gradient distance repeated for each image (it is a property of the
    batch), ``history`` (``step``, ``grad_distance`` and ``loss`` of the best seed at each record,
    ``bn`` where used), ``extras`` (``consensus``, ``candidates`` ``[G, b, ...]``,
    ``seed_distances``, ``settings``).
    """
    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    grads = check_gradients(model, gradients)
    steps = positive_int(steps, "steps")
    seeds = positive_int(seeds, "seeds")
    record_every = positive_int(record_every, "record_every")
    weights = {name: _check_weight(v, name) for name, v in
               (("tv_weight", tv_weight), ("l2_weight", l2_weight), ("bn_weight", bn_weight),
                ("group_weight", group_weight))}
    lr = _check_weight(lr, "lr")
    if lr == 0:
        raise ValueError("lr must be positive.")
    if weights["group_weight"] > 0 and seeds < 2:
        raise ValueError("group_weight > 0 pulls several seeds towards their consensus: use seeds >= 2.")
    try:
        shape = tuple(positive_int(s, "every entry of input_shape") for s in input_shape)
    except TypeError:
        shape = ()
    if not shape:
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints such as (1, 28, 28), "
                         f"got {input_shape!r}.")
    if weights["tv_weight"] > 0 and len(shape) != 3:
        raise ValueError(f"tv_weight > 0 needs image inputs (C, H, W), but input_shape is {shape}; set tv_weight=0.")
    if not torch.is_tensor(labels) or labels.ndim != 1 or len(labels) == 0 or labels.is_floating_point():
        raise ValueError("labels must be a LongTensor [b] of class indices with b >= 1 (e.g. from restore_labels).")
    if box is not None:
        if len(box) != 2 or not float(box[0]) < float(box[1]):
            raise ValueError(f"box must be (low, high) with low < high, or None; got {box!r}.")
        box = (float(box[0]), float(box[1]))

    device = next(model.parameters()).device
    att, layers, targets = _attack_copy(model)
    if weights["bn_weight"] > 0 and not any(t is not None for t in targets):
        raise ValueError("bn_weight > 0 matches BatchNorm running statistics, but this model has no BatchNorm "
                         "layer with running statistics; set bn_weight=0.")
    if bn_targets is not None:
        if weights["bn_weight"] == 0:
            raise ValueError("bn_targets sets what the BN prior matches; it needs bn_weight > 0.")
        given = iter(_check_bn_targets(bn_targets, targets))
        targets = [None if t is None else next(given) for t in targets]
    b = len(labels)
    labels = labels.to(device).long()
    with torch.no_grad():
        try:
            out = att(torch.zeros(max(b, 2), *shape, device=device))
        except Exception as err:
            raise ValueError(f"The model does not accept inputs of shape {shape} ({type(err).__name__}: {err}); "
                             "pass the shape of one client input as input_shape.") from None
    if out.ndim != 2 or int(labels.min()) < 0 or int(labels.max()) >= out.shape[1]:
        raise ValueError(f"labels must be class indices in [0, {out.shape[1]}) for this model's "
                         f"{out.shape[1]} outputs.")

    from torch.func import functional_call, grad, vmap

    names = [k for k, _ in att.named_parameters()]
    params = {k: p.detach() for k, p in att.named_parameters()}
    target = [g.detach().to(device) for g in grads]
    bn_on = weights["bn_weight"] > 0
    hooked = [(m, t) for m, t in zip(layers, targets) if t is not None] if bn_on else []
    stats: list = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: stats.append(_batch_stats(inp[0])))
             for m, _ in hooked]

    def task_loss(p, xs):
        stats.clear()
        logits = functional_call(att, p, (xs,))
        bn = _bn_term(stats, [t for _, t in hooked]) if bn_on else logits.new_zeros(())
        return F.cross_entropy(logits, labels), bn

    def per_seed(xs):
        g, bn = grad(task_loss, has_aux=True)(params, xs)
        dist = sum(torch.linalg.vector_norm(g[k] - t) for k, t in zip(names, target))
        return dist, bn

    batched = vmap(per_seed, randomness="different")
    gen = torch.Generator().manual_seed(int(seed))
    if init is not None:
        if not torch.is_tensor(init) or tuple(init.shape[-len(shape) - 1:]) != (b, *shape) or \
                init.ndim not in (len(shape) + 1, len(shape) + 2) or \
                (init.ndim == len(shape) + 2 and init.shape[0] != seeds):
            raise ValueError(f"init must be a tensor [b, *input_shape] = {[b, *shape]} or "
                             f"[seeds, b, *input_shape] = {[seeds, b, *shape]}, got "
                             f"{tuple(init.shape) if torch.is_tensor(init) else type(init).__name__}.")
        x = init.detach().to(device=device, dtype=torch.float32).expand(seeds, b, *shape).clone()
    elif box is not None:
        x = (box[0] + (box[1] - box[0]) * torch.rand((seeds, b, *shape), generator=gen)).to(device)
    else:
        x = torch.randn((seeds, b, *shape), generator=gen).to(device)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history = {"step": [], "grad_distance": [], "loss": []}
    if bn_on:
        history["bn"] = []
    bar = progress_bar(range(steps), desc="GradInversion", progress=progress)
    try:
        for step in bar:
            opt.zero_grad(set_to_none=True)
            dist, bn = batched(x)                                     # [G], [G]
            flat = x.flatten(2)                                       # [G, b, D]
            loss = dist
            if weights["tv_weight"] > 0:
                tv = total_variation(x.reshape(seeds * b, *shape)).view(seeds, b)
                loss = loss + weights["tv_weight"] * tv.mean(1)
            if weights["l2_weight"] > 0:
                loss = loss + weights["l2_weight"] * flat.norm(dim=2).mean(1)
            if bn_on:
                loss = loss + weights["bn_weight"] * bn
            if weights["group_weight"] > 0:
                consensus = flat.detach().mean(0, keepdim=True)
                loss = loss + weights["group_weight"] * (flat - consensus).norm(dim=2).mean(1)
            loss.sum().backward()
            opt.step()
            sched.step()
            if box is not None:
                with torch.no_grad():
                    x.clamp_(*box)
            if step % record_every == 0 or step == steps - 1:
                dist, loss, bn = dist.detach(), loss.detach(), bn.detach()
                best = int(dist.argmin())
                history["step"].append(step)
                history["grad_distance"].append(float(dist[best]))
                history["loss"].append(float(loss[best]))
                if bn_on:
                    history["bn"].append(float(bn[best]))
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(grad_distance=f"{float(dist[best]):.3g}")
        with torch.no_grad():
            final, _ = batched(x.detach())
    finally:
        for h in hooks:
            h.remove()
        if hasattr(bar, "close"):
            bar.close()
    best = int(final.argmin())
    cand = x.detach().cpu()
    rec = cand[best]
    consensus = cand.mean(0)
    settings = {"steps": steps, "lr": lr, "seeds": seeds, "box": box, "seed": int(seed), **weights,
                "bn_targets": "given" if bn_targets is not None else "running"}
    return AttackResult(reconstruction=rec, labels=labels.cpu(), loss=final[best].detach().cpu().repeat(b),
                        history=history, seconds=time.perf_counter() - t0,
                        extras={"consensus": consensus, "candidates": cand, "best_seed": best,
                                "seed_distances": final.detach().cpu(), "settings": settings})
