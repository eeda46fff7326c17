r"""Gradient inversion: recover a client's private batch from the gradient it shares (federated
learning, chapters 06-07).

Threat model (honest-but-curious server): the server knows the model :math:`\theta`; a client computes
:math:`\nabla_\theta \ell(\theta; x, y)` on its private batch (mean cross-entropy, one FedSGD step) and
sends it. Every function here takes any ``torch.nn.Module`` classifier and gradients listed in
``model.parameters()`` order, and returns an :class:`~.result.AttackResult`.

Public functions

* :func:`dlg` — Deep Leakage from Gradients (L-BFGS on the squared gradient distance, dummy input and
  soft label jointly; or iDLG with fixed labels), ``K`` restarts batched.
* :func:`invert_gradients` — Inverting Gradients (cosine distance + TV, signed Adam, box), batched.
* :func:`prune_gradients`, :func:`noisy_gradients` — the two gradient-side defences of DLG's paper.

Re-exported for convenience: :func:`~.matching.shared_gradients`, :func:`~.matching.check_gradients`,
:class:`~.matching.GradientMatcher` (what the client sends, and the matching terms) and
:func:`~.labels.final_linear`, :func:`~.labels.idlg_label`, :func:`~.labels.restore_labels`,
:func:`~.labels.count_labels` (labels from the output layer's gradient). The import graph is a tree:
``matching`` <- ``labels`` <- ``gradients``, ``gradinversion``.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import resolve_seed
from ..utils import positive_int, progress_bar
from .features import total_variation
from .labels import count_labels, final_linear, idlg_label, label_calibration, restore_labels  # noqa: F401
from .lbfgs import BatchedLBFGS
from .matching import (GradientMatcher, _batch_statistics_only, check_gradients,  # noqa: F401
                       sent_entries, shared_gradients, soft_cross_entropy)
from .result import AttackResult


def _check_attack_args(model, gradients, input_shape, n):
    check_gradients(model, gradients)
    n = positive_int(n, "n")
    try:
        shape = tuple(positive_int(s, "input_shape entries") for s in input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be the shape of one input without the batch dimension, e.g. "
                         f"(3, 32, 32); got {input_shape!r}.") from None
    if not shape:
        raise ValueError("input_shape must have at least one entry, e.g. (3, 32, 32).")
    return n, shape


def _check_labels(labels, n_classes=None):
    if not torch.is_tensor(labels) or labels.ndim != 1 or len(labels) < 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a LongTensor [n] of class indices with n >= 1 (e.g. from idlg_label "
                         f"or restore_labels); got {labels!r}.")
    if labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); got {labels.tolist()}.")
    return labels.long()


def _output_size(model, shape, n):
    with torch.no_grad(), _batch_statistics_only([m for m in model.modules() if isinstance(m, _BatchNorm)]):
        p = next(model.parameters())
        out = model(torch.zeros(n, *shape, device=p.device, dtype=p.dtype))
    if out.ndim != 2:
        raise ValueError(f"The model must return logits [n, classes]; it returned shape {tuple(out.shape)}.")
    return out.shape[1]


# ---------------------------------------------------------------- DLG / iDLG --------------------
INITS = ("randn", "rand", "grey")


def dlg(model: nn.Module, gradients, input_shape, num_classes: int, steps: int = 6000, restarts: int = 1,
        seed: int | None = None, n: int = 1, labels: torch.Tensor | None = None, tol: float = 1e-7,
        history_size: int = 100, lr: float = 1.0, max_step: float | None = 5.0, init: str = "grey",
        reinit_diverged: bool = True, snapshot_every: int = 0, keep_all: bool = False, path: str = "auto",
        mask=None, progress: bool | None = None) -> AttackResult:
    r"""Deep Leakage from Gradients (Zhu et al. 2019): find a dummy batch whose gradient matches.

    Minimises :math:`D(\hat x, \hat y) = \lVert\nabla_\theta\mathrm{CE}(\hat x, \mathrm{softmax}(\hat y))
    - g\rVert_2^2` (summed over all parameter tensors) jointly over the dummy inputs
    :math:`\hat x` (``[n, *input_shape]``) and label logits :math:`\hat y` (``[n, num_classes]``,
    N(0, 1)), with L-BFGS at learning rate 1 without line search, history 100 (DLG's code:
    ``torch.optim.LBFGS`` defaults). With ``labels`` given the labels are fixed and only
    :math:`\hat x` is optimised: that is iDLG (Zhao et al. 2020) when ``labels`` comes from
    :func:`idlg_label`.

    **Two changes from DLG's code, both ours**: the dummy input starts at mid-grey,
    ``0.5 + 0.1 N(0, 1)`` (``init="grey"``; DLG draws N(0, 1), which puts the sigmoids of a
    U(-0.5, 0.5) network into saturation), and each L-BFGS step is at most ``max_step`` long in
    Euclidean norm (a guard against the long steps L-BFGS without line search can take once its
    curvature model is poor; torch's first step is at most 1 long, so the cap never binds on it).
    ``init="randn", max_step=None`` restores DLG's start and step rule, not its whole loop: pairs
    failing the curvature test, the relative-tolerance exit, re-drawn diverged restarts and the
    best-iterate return still differ from ``torch.optim.LBFGS``. ``python -m mixcon_lite.bench
    gradients`` races both changes, each ablated, against DLG's loop over seeds and pictures.

    **Steps.** One step = one evaluation of :math:`D` and its gradient, then one L-BFGS update.
    DLG's code calls ``LBFGS.step`` 300 times, each running up to 20 such iterations, so its budget
    is up to 6,000 of ours: the default ``steps=6000`` is that budget (a 3x32x32 picture of DLG's
    setting needs several hundred to a few thousand; the run stops earlier at ``tol``).

    **Stopping** needs no ground truth: the run ends once the best restart's distance falls below
    ``tol`` times :math:`\lVert g\rVert^2` (relative tolerance; ``tol=0`` runs every step).

    **Adaptive to pruning.** ``mask`` (one bool tensor per parameter, e.g.
    :func:`~.matching.sent_entries` of a pruned gradient) matches only the entries the client sent:
    the attack that knows the defence (see :class:`~.matching.GradientMatcher`).

    **Restarts.** ``restarts=K`` optimises K starting points at once: their objectives are evaluated
    in one graph (:class:`GradientMatcher`) and each keeps its own L-BFGS history
    (:class:`~.lbfgs.BatchedLBFGS`; ``torch.optim.LBFGS`` on the stacked points would share one
    curvature model and one step length, so the restarts would not be independent). Each restart
    remembers its best iterate; the result is the best restart's, by gradient distance. A restart
    whose distance becomes non-finite is re-drawn with an empty history when ``reinit_diverged``.

    Returns an :class:`AttackResult`: ``reconstruction`` ``[n, *input_shape]`` (unclamped, as
    optimised), ``labels`` (argmax of the soft labels, or the given ones), ``loss`` the best distance
    (the same for every item of the batch), ``history["loss"]`` the best distance so far at each
    step and ``history["restart_loss"]`` each restart's distance at each step; with
    ``snapshot_every=s`` also ``history["snapshots"]`` (the best iterate every ``s`` steps).
    ``extras``: ``steps`` run, ``converged``, ``soft_labels``, ``restart_loss`` (best per restart),
    ``reinitialised``, ``path``, ``relative_loss`` (= loss / :math:`\lVert g\rVert^2`); with
    ``keep_all`` also ``all_reconstructions``, every restart's best iterate ``[K, n, *input_shape]``.
    """
    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    n, shape = _check_attack_args(model, gradients, input_shape, n)
    steps = positive_int(steps, "steps")
    K = positive_int(restarts, "restarts")
    num_classes = positive_int(num_classes, "num_classes", minimum=2)
    if labels is not None:
        labels = _check_labels(labels, num_classes)
        if len(labels) != n:
            raise ValueError(f"Got {len(labels)} labels for a batch of n={n}.")
    if not float(tol) >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}.")
    snapshot_every = int(snapshot_every)
    matcher = GradientMatcher(model, gradients, n, path, mask=mask)
    p = matcher.params[0]
    opts = dict(device=p.device, dtype=p.dtype)
    gen = torch.Generator().manual_seed(int(seed))
    dx = n * math.prod(shape)
    dy = 0 if labels is not None else n * num_classes
    fixed = None if labels is None else F.one_hot(labels, num_classes).to(**opts).expand(K, n, num_classes)

    if init not in INITS:
        raise ValueError(f"Unknown init {init!r}; expected one of {INITS}.")

    def draw(k):
        z = torch.randn(k, dx + dy, generator=gen)
        if init == "rand":
            z[:, :dx] = torch.rand(k, dx, generator=gen)
        elif init == "grey":
            z[:, :dx] = 0.5 + 0.1 * z[:, :dx]
        return z.to(**opts)

    z = draw(K)
    opt = BatchedLBFGS(K, dx + dy, history_size=history_size, lr=lr, max_step=max_step, **opts)
    best_f = torch.full((K,), math.inf, dtype=torch.float64, device=p.device)
    best_z = z.clone()
    stop_at = float(tol) * matcher.target_sq
    per_restart, snaps = [], []
    reinit, done, converged = 0, 0, False
    bar = progress_bar(total=steps, desc="DLG" if labels is None else "iDLG", progress=progress)
    for step in range(steps):
        zz = z.requires_grad_(True)
        x = zz[:, :dx].reshape(K, n, *shape)
        soft = fixed if fixed is not None else F.softmax(zz[:, dx:].reshape(K, n, num_classes), dim=-1)
        dist = matcher.terms(x, soft, distance_only=True)[0]
        grad, = torch.autograd.grad(dist.sum(), zz)
        z = z.detach()
        f = dist.detach()
        bad = ~torch.isfinite(f)
        better = f < best_f                           # False for NaN
        best_f = torch.where(better, f, best_f)
        best_z = torch.where(better[:, None], z, best_z)
        per_restart.append(f)
        done = step + 1
        if snapshot_every and step % snapshot_every == 0:
            snaps.append((step, best_z[int(best_f.argmin())][:dx].reshape(n, *shape).clone().cpu()))
        bar.update(1)
        if bool((best_f <= stop_at).any()):
            converged = True
            break
        z = opt.step(z, grad)
        if bool(bad.any()):
            if not reinit_diverged:
                raise FloatingPointError("DLG diverged (non-finite gradient distance); pass reinit_diverged=True.")
            z[bad] = draw(int(bad.sum()))
            opt.reset(bad)
            reinit += int(bad.sum())
    bar.close()
    per_restart = torch.stack(per_restart)                                   # [steps, K]
    running = torch.where(torch.isfinite(per_restart), per_restart, math.inf).min(1).values
    hist = torch.cummin(running, 0).values.tolist()
    k = int(best_f.argmin())
    zb = best_z[k]
    rec = zb[:dx].reshape(n, *shape).detach().cpu()
    soft = fixed[0] if fixed is not None else F.softmax(zb[dx:].reshape(n, num_classes), dim=-1)
    out_labels = labels.cpu() if labels is not None else soft.argmax(1).cpu()
    history = {"loss": hist, "restart_loss": per_restart.tolist()}
    if snapshot_every:
        history["snapshots"] = snaps
    loss = float(best_f[k])
    extras = {"steps": done, "converged": converged, "soft_labels": soft.detach().cpu(),
              "restart_loss": best_f.cpu(), "reinitialised": reinit, "path": matcher.path_for(K),
              "relative_loss": loss / max(matcher.target_sq, 1e-300), "restarts": K, "tol": float(tol)}
    if keep_all:
        extras["all_reconstructions"] = best_z[:, :dx].reshape(K, n, *shape).detach().cpu()
    return AttackResult(rec, out_labels, torch.full((n,), loss), history, time.perf_counter() - t0, extras)


# ---------------------------------------------------------------- Inverting Gradients -----------
DISTANCES = ("cosine", "l2")


def signed_adam(x: torch.Tensor, lr: float, steps: int, lr_decay: bool = True):
    """Inverting Gradients' optimiser for the candidate ``x`` (made a leaf that requires grad):
    Adam at ``lr`` and, with ``lr_decay``, the learning rate divided by 10 at 3/8, 5/8 and 7/8 of
    ``steps``. Returns ``(adam, scheduler)`` for :func:`signed_adam_step`."""
    x.requires_grad_(True)
    adam = torch.optim.Adam([x], lr=float(lr))
    milestones = [int(steps * f) for f in (3 / 8, 5 / 8, 7 / 8)] if lr_decay else []
    return adam, torch.optim.lr_scheduler.MultiStepLR(adam, milestones=milestones, gamma=0.1)


def signed_adam_step(x: torch.Tensor, adam, sched, signed: bool = True, box=(0.0, 1.0)) -> None:
    """One step after ``backward()``: the gradient replaced by its sign (``signed``), Adam and the
    schedule stepped, the pixels clamped to ``box`` (``None``: no clamp)."""
    if signed:
        with torch.no_grad():
            x.grad.sign_()
    adam.step()
    sched.step()
    if box is not None:
        with torch.no_grad():
            x.clamp_(float(box[0]), float(box[1]))


def invert_gradients(model: nn.Module, gradients, input_shape, labels: torch.Tensor, steps: int = 1000,
                     restarts: int = 1, seed: int | None = None, lr: float = 0.1, tv_weight=1e-4,
                     distance: str = "cosine", signed: bool = True, box=(0.0, 1.0), lr_decay: bool = True,
                     snapshot_every: int = 0, keep_all: bool = False, path: str = "auto",
                     progress: bool | None = None) -> AttackResult:
    r"""Inverting Gradients (Geiping et al. 2020): cosine gradient matching with a TV prior.

    Minimises, over inputs :math:`\hat x` (``[n, *input_shape]``, ``n = len(labels)``, labels fixed,
    e.g. from :func:`idlg_label`),

    .. math:: 1 - \frac{\langle\nabla_\theta\mathrm{CE}(\hat x, y), g\rangle}
              {\lVert\nabla_\theta\mathrm{CE}(\hat x, y)\rVert\,\lVert g\rVert}
              + \lambda_{\mathrm{TV}}\,\mathrm{TV}(\hat x)

    (one cosine over all parameters; ``distance="l2"`` swaps in DLG's squared distance, divided by
    :math:`\lVert g\rVert^2` so that a TV weight means the same for every victim, to compare the two), with Adam at ``lr`` on the **sign** of the gradient (``signed``), the learning rate
    divided by 10 at 3/8, 5/8 and 7/8 of the steps (``lr_decay``), and the pixels clamped to ``box``
    after every step (``None``: no box). TV is the mean absolute difference of neighbouring pixels
    (:func:`~.features.total_variation`), averaged over the batch. Start: N(0, 1), clamped to the box.

    The paper's settings: 24,000 steps (GPU), ``lr`` 0.1, ``tv_weight`` from 1e-4 (its script's
    default) to 1e-1 (its ImageNet notebook). The defaults here (1,000 steps, 1e-4) are ours, sized
    for a CPU. ``restarts=K`` runs K starts in one graph (:class:`GradientMatcher`); Adam is
    element-wise, so one Adam over the stacked candidates is K independent ones. The result is the
    restart with the lowest objective (each restart's best iterate).

    ``tv_weight`` may also be a sequence of ``restarts`` weights, one per restart: the restarts then
    optimise different objectives (a batched sweep over the weight), so pass ``keep_all`` and compare
    ``extras["all_reconstructions"]`` (``[K, n, *input_shape]``, each restart's best iterate) with a
    criterion of your own; the returned reconstruction is still the lowest objective's.

    Returns an :class:`AttackResult` (``loss`` = the objective, the same for every item; ``extras``
    hold the ``distance`` term alone, ``restart_loss``, ``path``; ``history["loss"]`` the best
    objective so far, ``history["distance"]`` its distance term).
    """
    seed = resolve_seed(seed)
    t0 = time.perf_counter()
    labels = _check_labels(labels)
    n, shape = _check_attack_args(model, gradients, input_shape, len(labels))
    steps = positive_int(steps, "steps")
    K = positive_int(restarts, "restarts")
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.")
    weights = torch.as_tensor(tv_weight, dtype=torch.float64).flatten()
    if weights.numel() not in (1, K) or not bool((weights >= 0).all()) or not float(lr) > 0:
        raise ValueError(f"Need tv_weight >= 0 (one number, or one per restart: {K}) and lr > 0, got "
                         f"{tv_weight!r}, {lr!r}.")
    if box is not None and not (len(box) == 2 and float(box[0]) < float(box[1])):
        raise ValueError(f"box must be (low, high) with low < high, or None; got {box!r}.")
    matcher = GradientMatcher(model, gradients, n, path)
    p = matcher.params[0]
    opts = dict(device=p.device, dtype=p.dtype)
    num_classes = _output_size(model, shape, n)
    if labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) for this model; got {labels.tolist()}.")
    onehot = F.one_hot(labels.to(p.device), num_classes).to(**opts).expand(K, n, num_classes)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(K, n, *shape, generator=gen).to(**opts)
    if box is not None:
        x.clamp_(float(box[0]), float(box[1]))
    adam, sched = signed_adam(x, lr, steps, lr_decay)
    best_f = torch.full((K,), math.inf, dtype=torch.float64, device=p.device)
    best_d = best_f.clone()
    best_x = x.detach().clone()
    hist, hist_d, snaps = [], [], []
    bar = progress_bar(total=steps, desc="Inverting Gradients", progress=progress)
    image_like = len(shape) == 3
    for step in range(steps):
        adam.zero_grad(set_to_none=True)
        dist, inner, sq = matcher.terms(x, onehot)
        d = matcher.cosine_distance(inner, sq) if distance == "cosine" else dist / max(matcher.target_sq, 1e-30)
        obj = d
        if bool((weights > 0).any()) and image_like:
            tv = total_variation(x.reshape(K * n, *shape)).reshape(K, n).mean(1).double()
            obj = d + weights.to(tv.device) * tv
        obj.sum().backward()
        with torch.no_grad():
            f = obj.detach()
            better = f < best_f
            best_f = torch.where(better, f, best_f)
            best_d = torch.where(better, d.detach(), best_d)
            best_x[better] = x[better]
            hist.append(float(best_f.min()))
            hist_d.append(float(best_d[best_f.argmin()]))
            if snapshot_every and step % int(snapshot_every) == 0:
                snaps.append((step, best_x[int(best_f.argmin())].clone().cpu()))
        signed_adam_step(x, adam, sched, signed, box)
        bar.update(1)
    bar.close()
    k = int(best_f.argmin())
    history = {"loss": hist, "distance": hist_d}
    if snapshot_every:
        history["snapshots"] = snaps
    extras = {"distance": float(best_d[k]), "restart_loss": best_f.cpu(), "path": matcher.path_for(K),
              "restarts": K, "steps": steps}
    if keep_all:
        extras["all_reconstructions"] = best_x.detach().cpu()
    return AttackResult(best_x[k].cpu(), labels.cpu(), torch.full((n,), float(best_f[k])), history,
                        time.perf_counter() - t0, extras)


# ---------------------------------------------------------------- defences (DLG §6) -------------
def prune_gradients(gradients, fraction: float) -> list[torch.Tensor]:
    """Gradient pruning (DLG's defence, in the spirit of deep gradient compression): in every tensor,
    set the ``fraction`` of entries with the smallest magnitude to zero. Per-tensor thresholds are
    our reading. Returns new tensors; ``fraction`` in [0, 1)."""
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}.")
    out = []
    for g in gradients:
        k = int(round(float(fraction) * g.numel()))
        if k == 0:
            out.append(g.detach().clone())
            continue
        flat = g.detach().reshape(-1)
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[flat.abs().argsort()[:k]] = False
        out.append((flat * keep).reshape(g.shape))
    return out


def noisy_gradients(gradients, sigma: float, kind: str = "gaussian", seed: int | None = None) -> list[torch.Tensor]:
    """Add zero-mean noise of standard deviation ``sigma`` to every entry (``kind`` ``"gaussian"`` or
    ``"laplacian"``, the two DLG's paper tries), seeded. Returns new tensors."""
    seed = resolve_seed(seed)
    if not float(sigma) >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}.")
    if kind not in ("gaussian", "laplacian"):
        raise ValueError(f"kind must be 'gaussian' or 'laplacian', got {kind!r}.")
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for g in gradients:
        if kind == "gaussian":
            noise = torch.randn(g.shape, generator=gen)
        else:  # Laplace(0, b) with std sigma: b = sigma / sqrt(2), sampled by inverse CDF
            u = torch.rand(g.shape, generator=gen) - 0.5
            noise = -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2.0)
        out.append(g.detach() + float(sigma) * noise.to(g))
    return out

