r"""Calibrated membership inference: reference models and the likelihood-ratio attack (LiRA).

A global threshold on a score ("member if the loss is below t") mixes two things: whether the model
saw a sample, and how hard the sample is. A hard non-member and an easy one get very different
losses from *any* model. Carlini et al. (2022, "Membership Inference Attacks From First
Principles") calibrate per sample: train **reference models** on random halves of a data pool, so
each sample is left *out* of some of them (and, online, put *in* others), and ask whether the
target's score on the sample looks like an *out* score **for that sample**.

* :func:`train_reference_models` — ``k`` copies of a network, each trained on its own random half
  of the pool, all at once: their weights are stacked (``torch.func.stack_module_state``), the
  forward pass is ``torch.func.functional_call`` under ``torch.func.vmap`` and one Adam step updates
  every copy (Adam acts entry by entry, so a stacked Adam is ``k`` independent ones).
* :func:`reference_model` — one of them as an ordinary ``nn.Module``, for any score function.
* :func:`reference_scores` — a score (``margin_scores``, ``-loss_scores``, ``-curvature_scores``
  ...) of every pool sample under every reference model, ``[k, n]``.
* :func:`lira_offline` — out-models only, one-sided: :math:`(s - \mu_{out})/\sigma_{out}` per sample.
* :func:`lira_online` — in and out models: the Gaussian log-likelihood ratio
  :math:`\log N(s;\mu_{in},\sigma_{in}) - \log N(s;\mu_{out},\sigma_{out})`.
* :func:`lira_authors_nll` — the rule the input-loss-curvature paper's code reports as its best
  ("Curv ZO NLL"): the same ratio with one spread for both Gaussians, each sample's own in-score
  variance, which their code passes where a standard deviation goes.

Both return scores oriented so that members score higher, to be read with
:func:`mixcon_lite.membership.tpr_at_fpr` and friends. With few reference models the per-sample
standard deviations are noisy; ``global_variance=True`` (the default, as Carlini et al. advise for
fewer than about 64 models) uses one standard deviation pooled over the samples.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import resolve_seed
from .utils import positive_int, progress_bar

__all__ = ["half_masks", "train_reference_models", "reference_model", "reference_scores",
           "lira_offline", "lira_online", "lira_authors_nll"]


def half_masks(k: int, n: int, seed: int | None = None) -> np.ndarray:
    """``[k, n]`` booleans: row ``j`` marks the pool samples reference model ``j`` trains on. Each
    column is balanced: every sample is *in* for ``k // 2`` models and *out* for the rest (so each
    sample has out-models to calibrate against); each row holds about half the pool."""
    k, n = positive_int(k, "k"), positive_int(n, "n")
    if k < 2:
        raise ValueError(f"k must be >= 2 reference models (each sample needs an out-model), got {k}.")
    rng = np.random.default_rng(resolve_seed(seed))
    mask = np.zeros((k, n), dtype=bool)
    for i in range(n):
        mask[rng.choice(k, size=k // 2, replace=False), i] = True
    return mask


def train_reference_models(make_model: Callable[[], torch.nn.Module], x_pool: torch.Tensor,
                           y_pool: torch.Tensor, k: int = 8, epochs: int = 20, lr: float = 2e-3,
                           batch_size: int = 64, mask: np.ndarray | None = None,
                           seed: int | None = None, progress: bool | None = None) -> dict:
    """Train ``k`` reference models, model ``j`` on the pool samples ``mask[j]`` (default
    :func:`half_masks`), with Adam and minibatches of ``batch_size``, for ``epochs`` passes over its
    own half. Every model is built by ``make_model()`` with its own seed (``seed + j``) and trained
    in train mode; a model with BatchNorm is not supported (its batch statistics would mix with
    ``vmap``'s) and raises.

    Returns ``{"base", "params", "buffers", "mask", "k", "loss"}``: the stacked weights
    (``[k, ...]`` each), the mask and the mean training loss per epoch (averaged over models)."""
    from torch.func import functional_call, stack_module_state, vmap

    seed = resolve_seed(seed)
    k, epochs, batch_size = (positive_int(k, "k"), positive_int(epochs, "epochs"),
                             positive_int(batch_size, "batch_size"))
    if not torch.is_tensor(x_pool) or not torch.is_tensor(y_pool) or len(x_pool) != len(y_pool):
        raise ValueError("x_pool and y_pool must be tensors of the same length (inputs, labels).")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}.")
    n = len(x_pool)
    mask = half_masks(k, n, seed) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != (k, n):
        raise ValueError(f"mask must have shape (k, n) = ({k}, {n}), got {mask.shape}.")
    models = []
    for j in range(k):
        torch.manual_seed(int(seed) + j)
        m = make_model()
        if any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.modules()):
            raise ValueError("train_reference_models does not support BatchNorm layers "
                             "(their batch statistics would be shared across the stacked models).")
        models.append(m.train())
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def forward(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    batched = vmap(forward)
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    g = torch.Generator().manual_seed(int(seed))
    members = [torch.as_tensor(np.flatnonzero(mask[j])) for j in range(k)]
    size = min(len(m) for m in members)
    if size == 0:
        raise ValueError("a reference model has no training samples; use a larger pool.")
    steps = math.ceil(size / batch_size)
    history = []
    for _ in progress_bar(range(epochs), desc="reference models", progress=progress):
        orders = [m[torch.randperm(len(m), generator=g)][:size] for m in members]
        total = 0.0
        for s in range(steps):
            idx = torch.stack([o[s * batch_size:(s + 1) * batch_size] for o in orders])  # [k, B]
            xb, yb = x_pool[idx], y_pool[idx]
            logits = batched(params, buffers, xb)                                   # [k, B, C]
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="mean") * k
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() / k
        history.append(total / steps)
    return {"base": models[0], "params": {n_: p.detach() for n_, p in params.items()},
            "buffers": buffers, "mask": mask, "k": k, "loss": history}


def reference_model(refs: dict, j: int) -> torch.nn.Module:
    """Reference model ``j`` of :func:`train_reference_models` as an ordinary module (a copy)."""
    if not 0 <= j < refs["k"]:
        raise ValueError(f"j must lie in [0, {refs['k']}), got {j}.")
    m = copy.deepcopy(refs["base"])
    state = {name: t[j] for name, t in {**refs["params"], **refs["buffers"]}.items()}
    m.load_state_dict(state)
    return m.eval()


def reference_scores(refs: dict, score: Callable, x: torch.Tensor, y: torch.Tensor,
                     progress: bool | None = None) -> np.ndarray:
    """``score(model, x, y) -> [n]`` under every reference model: ``np.ndarray [k, n]``."""
    rows = []
    for j in progress_bar(range(refs["k"]), desc="reference scores", progress=progress):
        s = score(reference_model(refs, j), x, y)
        rows.append(np.asarray(s.detach().cpu().double().numpy() if torch.is_tensor(s) else s,
                               dtype=float))
    return np.stack(rows)


def _check_scores(target, ref, mask):
    t = np.asarray(target, dtype=float)
    r = np.asarray(ref, dtype=float)
    m = np.asarray(mask, dtype=bool)
    if t.ndim != 1 or r.ndim != 2 or r.shape[1] != len(t) or m.shape != r.shape:
        raise ValueError(f"expected target scores [n], reference scores [k, n] and a mask [k, n]; "
                         f"got {t.shape}, {r.shape} and {m.shape}.")
    if not (np.isfinite(t).all() and np.isfinite(r).all()):
        raise ValueError("scores contain NaN or infinite values; score in float64 "
                         "(membership.margin_scores does not saturate).")
    return t, r, m


def _moments(r, sel, global_variance):
    cnt = sel.sum(0)
    if (cnt == 0).any():
        raise ValueError(f"{int((cnt == 0).sum())} samples have no reference model on this side; "
                         "use more reference models (half_masks balances them).")
    mu = np.where(sel, r, 0).sum(0) / cnt
    dev = np.where(sel, (r - mu) ** 2, 0)
    if global_variance:
        sd = np.full_like(mu, math.sqrt(dev.sum() / max(sel.sum() - 1, 1)))
    else:
        sd = np.sqrt(dev.sum(0) / np.maximum(cnt - 1, 1))
    return mu, np.maximum(sd, 1e-12)


def lira_offline(target_scores, ref_scores, in_mask, global_variance: bool = True) -> np.ndarray:
    """Offline LiRA: how far above its *out* scores each sample's target score lies,
    :math:`(s - \\mu_{out})/\\sigma_{out}` (one-sided; members score higher). ``in_mask[j, i]``
    says whether reference model ``j`` trained on sample ``i``; only the out-models are used."""
    t, r, m = _check_scores(target_scores, ref_scores, in_mask)
    mu, sd = _moments(r, ~m, global_variance)
    return (t - mu) / sd


def lira_online(target_scores, ref_scores, in_mask, global_variance: bool = True) -> np.ndarray:
    """Online LiRA: the log-likelihood ratio of the target score under the sample's *in* and *out*
    Gaussians (members score higher)."""
    t, r, m = _check_scores(target_scores, ref_scores, in_mask)
    mu_in, sd_in = _moments(r, m, global_variance)
    mu_out, sd_out = _moments(r, ~m, global_variance)

    def logpdf(v, mu, sd):
        return -0.5 * ((v - mu) / sd) ** 2 - np.log(sd)

    return logpdf(t, mu_in, sd_in) - logpdf(t, mu_out, sd_out)


def lira_authors_nll(target_scores, ref_scores, in_mask) -> np.ndarray:
    """The calibration rule of the curvature paper's code, the one it reports as its strongest
    attack ("Curv ZO NLL" in Ravikumar et al.'s notebooks): a Gaussian log-likelihood ratio with
    each sample's own in- and out-means and **one** spread for both, the sample's in-score variance
    :math:`v_{in}` (population variance over its in-models, never pooled), which their code passes
    where a standard deviation goes. Both Gaussians share it, so the normalising terms cancel:

    .. math:: \\frac{(s - \\mu_{out})^2 - (s - \\mu_{in})^2}{2\\,v_{in}^2}

    (members score higher). With few reference models :math:`v_{in}` rests on a handful of scores
    per sample; the authors use 64 models and two augmentations, summing the ratio over them."""
    t, r, m = _check_scores(target_scores, ref_scores, in_mask)
    mu_in, _ = _moments(r, m, global_variance=False)
    mu_out, _ = _moments(r, ~m, global_variance=False)
    var_in = np.where(m, (r - mu_in) ** 2, 0).sum(0) / m.sum(0)
    scale = 2 * (var_in + 1e-32) ** 2
    return ((t - mu_out) ** 2 - (t - mu_in) ** 2) / scale
