r"""Synthetic images from a trained network's BatchNorm statistics (chapter 10).

A BatchNorm layer stores the mean and variance of its input over the training data. An image batch
whose features have the same statistics at every BatchNorm layer, and which the network classifies
as the intended classes, looks "like the training data" to the network, without any training image
being used. Two sources of statistics:

* ``stats="running"`` — the layers' running statistics, over all classes: what anyone holding the
  model has (DeepInversion, Yin et al. 2020, used to distil a model without its data).
* ``stats=class_bn_statistics(model, x, y)`` — per-class statistics that the *data owner* records
  once from the private data (the secure-synthetic-data abstract): each class's synthetic images
  match that class's statistics.

The objective over a batch :math:`\hat x` with target labels :math:`y` (a random jitter/flip
:math:`\tau` is applied to the batch each step):

.. math:: w_{\mathrm{CE}}\,\mathrm{CE}(f(\tau\hat x), y)
          + w_{\mathrm{BN}} \sum_l m_l\big(\lVert \mu_l(\tau\hat x) - \mu_l\rVert_2
          + \lVert \sigma^2_l(\tau\hat x) - \sigma^2_l\rVert_2\big)
          + w_{\mathrm{TV}}\,\mathrm{TV}_{L2}(\hat x) + w_{L2}\lVert \hat x\rVert_2

with :math:`m_1` = ``first_bn_multiplier`` for the first BatchNorm layer and 1 otherwise.
Six departures from DeepInversion's code, all ours: its :math:`R_{\mathrm{feature}}` hooks
``BatchNorm2d`` layers only, we hook every BatchNorm layer (LeNet-5's two ``BatchNorm1d`` layers
are half of its four); its TV-L2 is one norm over the whole batch, ours the mean of per-image
norms (:func:`tv_l2`); it takes TV-L2 on the jittered (and flipped) batch, we on :math:`\hat x`;
it flips the batch at random each step, we do not; its ImageNet defaults weight the L2 prior
:math:`10^{-5}` (0 for CIFAR-10), ours default to 0; its cosine schedule has 100 warm-up steps,
ours none.
:func:`bn_synthesize` minimises it with Adam and a cosine learning-rate decay, keeping pixels in
``box``; it returns the attacks' shared :class:`~mixcon_lite.attacks.result.AttackResult`.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .attacks.gradinversion import _batch_stats, bn_layers
from .attacks.result import AttackResult
from .config import resolve_seed
from .utils import positive_int, progress_bar


def _layers(model):
    layers = [m for m in bn_layers(model) if m.running_mean is not None]
    if not layers:
        raise ValueError("BN-statistics synthesis needs a model with BatchNorm layers that track running "
                         "statistics (e.g. LeNet5(batch_norm=True)); this model has none.")
    return layers


def class_bn_statistics(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                        batch_size: int = 1000) -> dict:
    """Per-class statistics of every BatchNorm layer's input, recorded from real data ``x`` ``[N, ...]``
    with labels ``y`` ``[N]`` (model in eval mode, so the features are those the trained model computes).

    Returns ``{class: [(mean [C_l], biased variance [C_l]) for each BatchNorm layer]}``, exact over all
    of the class's images (means over batch and spatial positions, as BatchNorm computes them)."""
    layers = _layers(model)
    if not torch.is_tensor(x) or not torch.is_tensor(y) or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError("x and y must be non-empty tensors [N, ...] and [N] of the same length.")
    batch_size = positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = {}
    try:
        for c in sorted(int(v) for v in torch.unique(y)):
            xc = x[y == c]
            sums = [None] * len(layers)
            count = [0] * len(layers)
            feats: list = []
            hooks = [m.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach()))
                     for m in layers]
            try:
                with torch.no_grad():
                    for i in range(0, len(xc), batch_size):
                        feats.clear()
                        model(xc[i:i + batch_size].to(device))
                        for j, h in enumerate(feats):
                            dims = [0] + list(range(2, h.ndim))
                            k = h.numel() // h.shape[1]
                            s1, s2 = h.sum(dims).double(), (h.double() ** 2).sum(dims)
                            sums[j] = (s1, s2) if sums[j] is None else (sums[j][0] + s1, sums[j][1] + s2)
                            count[j] += k
            finally:
                for hk in hooks:
                    hk.remove()
            stats = []
            for (s1, s2), k in zip(sums, count):
                mean = s1 / k
                stats.append((mean.float(), (s2 / k - mean ** 2).clamp_min(0).float()))
            out[c] = stats
    finally:
        model.train(was)
    return out


def tv_l2(x: torch.Tensor) -> torch.Tensor:
    """DeepInversion's smoothness prior, per image: the L2 norms of the differences between
    neighbouring pixels in four directions (down, right, and the two diagonals), summed.
    ``x``: ``[N, C, H, W]`` -> ``[N]``.

    DeepInversion's code (``get_image_prior_losses``) takes each direction's norm once over the
    whole jittered batch, a scalar; we take it per image and :func:`bn_synthesize` averages over the
    batch (ours), so the weight does not change meaning with the batch size."""
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(f"tv_l2 expects a tensor [N, C, H, W], got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    return sum(d.flatten(1).norm(dim=1) for d in tv_differences(x))


def tv_differences(x: torch.Tensor) -> tuple:
    """The four neighbour differences of :func:`tv_l2` (down, right, and the two diagonals) of
    images ``[N, C, H, W]``, each a tensor of its own shape."""
    return (x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1],
            x[:, :, 1:, 1:] - x[:, :, :-1, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, 1:])


def _check_weight(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def bn_synthesize(model: torch.nn.Module, labels, steps: int = 500, seed: int | None = None, lr: float = 0.1,
                  stats="running", bn_weight: float = 1.0, first_bn_multiplier: float = 10.0,
                  ce_weight: float = 1.0, tv_weight: float = 1e-3, l2_weight: float = 0.0,
                  jitter: int = 2, flip: bool = False, box=(0.0, 1.0), input_shape=None,
                  progress: bool | None = None) -> AttackResult:
    """Synthesise one image per entry of ``labels`` from ``model``'s BatchNorm statistics.

    Parameters
    ----------
    model : a trained classifier with BatchNorm layers; evaluated in eval mode and not changed.
    labels : ``LongTensor[n]`` (or a list) of target classes, ``n >= 2``.
    steps, lr : Adam steps (betas 0.5, 0.9, as DeepInversion) with a cosine decay of ``lr`` to 0.
    stats : ``"running"`` (the layers' running statistics, over all classes) or the dict of
        :func:`class_bn_statistics` (each class's images match that class's statistics; every label
        must be in it).
    bn_weight, first_bn_multiplier, ce_weight, tv_weight, l2_weight : the objective's weights (module
        docstring); the first BatchNorm layer's term is multiplied by ``first_bn_multiplier``.
    jitter : each step, roll the batch by a random shift of up to ``jitter`` pixels in each direction;
        ``flip``: also flip it horizontally with probability 1/2.
    box : pixel range the images are clamped to after each step (our images live in [0, 1]).
    input_shape : ``(C, H, W)``; default ``model.input_shape``.

    Returns an :class:`~mixcon_lite.attacks.result.AttackResult`: ``reconstruction`` ``[n, C, H, W]``,
    ``labels`` (the targets), ``loss`` (each image's final cross-entropy for its target, without
    jitter), ``history`` (``loss``, ``ce``, ``bn``, ``tv`` per step), ``seconds`` and ``extras``
    (the settings, and ``accuracy``: the share of images the model assigns to their target).
    """
    seed = resolve_seed(seed)
    layers = _layers(model)
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) < 2 or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be integer class labels [n] with n >= 2 (BatchNorm statistics need "
                         f"a batch), got {tuple(labels.shape)} of {labels.dtype}.")
    labels = labels.long()
    steps = positive_int(steps, "steps")
    jitter = positive_int(jitter, "jitter", minimum=0)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    w = {k: _check_weight(v, k) for k, v in (("bn_weight", bn_weight), ("first_bn_multiplier",
                                                                         first_bn_multiplier),
                                             ("ce_weight", ce_weight), ("tv_weight", tv_weight),
                                             ("l2_weight", l2_weight))}
    lo, hi = (float(box[0]), float(box[1])) if box is not None else (-math.inf, math.inf)
    if not lo < hi:
        raise ValueError(f"box must be (low, high) with low < high, got {box!r}.")
    shape = tuple(input_shape or getattr(model, "input_shape", ()) or ())
    if len(shape) != 3:
        raise ValueError("Pass input_shape=(C, H, W); the model does not say its input shape.")
    if isinstance(stats, str):
        if stats != "running":
            raise ValueError(f"stats must be 'running' or the dict of class_bn_statistics, got {stats!r}.")
        groups = [(torch.ones(len(labels), dtype=torch.bool),
                   [(m.running_mean.detach().clone(), m.running_var.detach().clone()) for m in layers])]
        stats_name = "running"
    elif isinstance(stats, dict):
        missing = sorted(set(labels.tolist()) - set(stats))
        if missing:
            raise ValueError(f"stats has no statistics for classes {missing}; record them with "
                             "class_bn_statistics on data of every class you synthesise.")
        if any(len(stats[c]) != len(layers) for c in set(labels.tolist())):
            raise ValueError(f"stats must hold one (mean, var) pair per BatchNorm layer ({len(layers)}).")
        groups = []
        for c in sorted(set(labels.tolist())):
            mask = labels == c
            if int(mask.sum()) < 2:
                raise ValueError(f"class {c} has one image; class-wise statistics need >= 2 per class.")
            groups.append((mask, [(mu.clone(), var.clone()) for mu, var in stats[c]]))
        stats_name = "class"
    else:
        raise ValueError(f"stats must be 'running' or the dict of class_bn_statistics, got {type(stats).__name__}.")

    device = next(model.parameters()).device
    labels_d = labels.to(device)
    groups = [(m.to(device), [(a.to(device), b.to(device)) for a, b in t]) for m, t in groups]
    g = torch.Generator().manual_seed(int(seed))
    x = (0.5 * (lo + hi if math.isfinite(lo + hi) else 0.0)
         + 0.2 * torch.randn((len(labels), *shape), generator=g)).clamp(lo, hi).to(device)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    was = model.training
    model.eval()
    feats: list = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0])) for m in layers]
    multipliers = [w["first_bn_multiplier"]] + [1.0] * (len(layers) - 1)
    history = {"loss": [], "ce": [], "bn": [], "tv": []}
    start = time.perf_counter()
    try:
        for _ in progress_bar(range(steps), desc="BN synthesis", progress=progress):
            xj = x
            if jitter:
                dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g))
                xj = torch.roll(xj, shifts=(dx, dy), dims=(2, 3))
            if flip and bool(torch.rand((), generator=g) < 0.5):
                xj = torch.flip(xj, dims=(3,))
            feats.clear()
            logits = model(xj)
            ce = F.cross_entropy(logits, labels_d)
            bn = logits.new_zeros(())
            for mask, targets in groups:
                part = 0.0
                for h, (mu_t, var_t), mult in zip(feats, targets, multipliers):
                    mu, var = _batch_stats(h[mask])
                    part = part + mult * (torch.linalg.vector_norm(mu - mu_t)
                                          + torch.linalg.vector_norm(var - var_t))
                bn = bn + part / len(groups)
            tv = tv_l2(x).mean()
            loss = w["ce_weight"] * ce + w["bn_weight"] * bn + w["tv_weight"] * tv
            if w["l2_weight"]:
                loss = loss + w["l2_weight"] * x.flatten(1).norm(dim=1).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Synthesis diverged (loss {loss.item()}); lower lr (now {lr}).")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
            for k, v in (("loss", loss), ("ce", ce), ("bn", bn), ("tv", tv)):
                history[k].append(float(v.detach()))
        with torch.no_grad():
            feats.clear()
            final = model(x)
            per_item = F.cross_entropy(final, labels_d, reduction="none").cpu()
            accuracy = float((final.argmax(1) == labels_d).float().mean())
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was)
    extras = {"stats": stats_name, "steps": steps, "lr": lr, **w, "jitter": jitter, "flip": bool(flip),
              "box": (lo, hi), "accuracy": accuracy}
    return AttackResult(reconstruction=x.detach().cpu(), labels=labels.cpu(), loss=per_item,
                        history=history, seconds=time.perf_counter() - start, extras=extras)


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, batch_size: int = 1000):
    """For each query image, the index of its nearest reference image in pixel (Euclidean) distance
    and that distance. ``queries`` ``[n, ...]``, ``references`` ``[m, ...]`` -> ``(index [n], distance [n])``."""
    if not torch.is_tensor(queries) or not torch.is_tensor(references) or queries.ndim < 2 \
            or queries.shape[1:] != references.shape[1:]:
        raise ValueError("queries [n, ...] and references [m, ...] must be tensors of the same item shape.")
    idx, dist = [], []
    for d in _distance_chunks(queries, references, batch_size):
        v, j = d.min(1)
        idx.append(j)
        dist.append(v)
    return torch.cat(idx), torch.cat(dist)


def _distance_chunks(queries: torch.Tensor, references: torch.Tensor, batch_size: int = 1000):
    """Pixel (Euclidean) distances of ``batch_size`` queries at a time to every reference,
    ``[b, m]`` per chunk, computed exactly (not via |a|^2 + |b|^2 - 2ab)."""
    r = references.flatten(1).float()
    batch_size = positive_int(batch_size, "batch_size")
    for i in range(0, len(queries), batch_size):
        yield torch.cdist(queries[i:i + batch_size].flatten(1).float(), r,
                          compute_mode="donot_use_mm_for_euclid_dist")


def _check_images(name, x):
    if not torch.is_tensor(x) or x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty tensor [n, ...] of images, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")


def copy_test(synthetic: torch.Tensor, members: torch.Tensor, nonmembers: torch.Tensor,
              permutations: int = 0, seed: int = 0, neighbours: int = 128) -> dict:
    """Does a synthetic set copy its training data? For each synthetic image compare its distance to
    the nearest *member* (an image the model was trained on) with its distance to the nearest
    *non-member* (an equally large set from the same distribution the model never saw). If synthesis
    leaks training samples, synthetic images sit closer to members. Two statistics:
    ``"closer_to_members"``, the share of synthetic images nearer a member than any non-member (a
    yes/no per image), and ``"log_ratio"``, the mean over images of
    :math:`\\log(d_{non} / d_{mem})` (how much nearer, so an image pulled part of the way towards a
    member counts too; positive when images sit nearer members). Returns both with
    ``"member_distance": [n], "nonmember_distance": [n], "member_index": [n]``.

    One half (or zero) is *not* the right reference: many synthetic images share a few nearest
    neighbours ("hubs"), so their verdicts are not independent and a binomial interval around one
    half is far too narrow. With ``permutations > 0`` the test also returns its permutation null:
    members and non-members are pooled and re-split at random into two halves of the same sizes
    ``permutations`` times, both statistics recomputed each time (no leakage means the real split is
    one such draw). Added keys: ``"null"`` (the shares, ``[permutations]``), ``"null_low"`` /
    ``"null_high"`` (its 2.5 % and 97.5 % quantiles), ``"p_value"`` (one-sided, as the leak
    hypothesis is: ``(1 + #{null >= observed}) / (1 + permutations)``), and the same for the log
    ratio: ``"log_ratio_null"``, ``"log_ratio_null_low"`` / ``"_high"``, ``"log_ratio_p_value"``.
    The re-splits read each image's ``neighbours`` nearest pooled images; where all of them fall in
    one half (``"truncated"`` counts such image-draws; about :math:`2^{1-k}` of them), the other
    half's distance is taken as the farthest of the ``neighbours``, a lower bound."""
    for name, x in (("synthetic", synthetic), ("members", members), ("nonmembers", nonmembers)):
        _check_images(name, x)
    if len(members) != len(nonmembers):
        raise ValueError(f"members and nonmembers must be equally many for a fair test, got {len(members)} "
                         f"and {len(nonmembers)}.")
    permutations = positive_int(permutations, "permutations", minimum=0)
    m = len(members)
    k = min(positive_int(neighbours, "neighbours"), 2 * m)
    md, mi, nd, ni, top_d, top_i = [], [], [], [], [], []
    # one exact search over members + non-members serves the real split and every re-split
    for d in _distance_chunks(synthetic, torch.cat([members, nonmembers]), 500):
        v, j = d[:, :m].min(1)
        md.append(v)
        mi.append(j)
        v, j = d[:, m:].min(1)
        nd.append(v)
        ni.append(j)
        v, j = d.topk(k, largest=False)
        top_d.append(v)
        top_i.append(j)
    md, mi, nd, ni = torch.cat(md), torch.cat(mi), torch.cat(nd), torch.cat(ni)
    top_d, top_i = torch.cat(top_d), torch.cat(top_i)

    def log_ratio(near_first, near_second):
        return float((near_second.clamp_min(1e-12).log() - near_first.clamp_min(1e-12).log()).mean())

    observed = float((md < nd).float().mean())
    out = {"closer_to_members": observed, "log_ratio": log_ratio(md, nd),
           "member_distance": md.numpy(), "nonmember_distance": nd.numpy(), "member_index": mi.numpy()}
    if permutations:
        # the share nearer the first half only depends on which half each image's nearest pooled
        # neighbour falls in (a tie goes to the member, the first index, as a search over the
        # pooled set would return); the log ratio needs each half's nearest, the first of the
        # sorted neighbours that falls in it
        nn_index = torch.where(md <= nd, mi, m + ni)
        g = torch.Generator().manual_seed(int(seed))
        null, null_ratio = np.empty(permutations), np.empty(permutations)
        truncated = 0
        for b in range(permutations):
            first = torch.zeros(2 * m, dtype=torch.bool)
            first[torch.randperm(2 * m, generator=g)[:m]] = True
            null[b] = float(first[nn_index].float().mean())
            f = first[top_i]                                       # [n, k]
            near = []
            for side in (f, ~f):
                found = side.any(1)
                truncated += int((~found).sum())
                pos = side.float().argmax(1, keepdim=True)
                near.append(torch.where(found, top_d.gather(1, pos)[:, 0], top_d[:, -1]))
            null_ratio[b] = log_ratio(*near)
        out.update(null=null, null_low=float(np.quantile(null, 0.025)),
                   null_high=float(np.quantile(null, 0.975)),
                   p_value=float((1 + (null >= observed - 1e-12).sum()) / (1 + permutations)),
                   log_ratio_null=null_ratio,
                   log_ratio_null_low=float(np.quantile(null_ratio, 0.025)),
                   log_ratio_null_high=float(np.quantile(null_ratio, 0.975)),
                   log_ratio_p_value=float((1 + (null_ratio >= out["log_ratio"] - 1e-12).sum())
                                           / (1 + permutations)),
                   truncated=truncated)
    return out


def max_ssim_to_members(images: torch.Tensor, members: torch.Tensor, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Each image's highest SSIM to any of its ``k`` nearest members in pixel distance, and which
    member that is: ``(ssim [n], member index [n])``. The L2-nearest member alone can miss a member
    that is structurally closer (same shape, other brightness), which SSIM rewards; the ``k``
    candidates catch it at ``n * k`` SSIM evaluations instead of ``n * len(members)``."""
    from .metrics import ssim_matrix

    _check_images("images", images)
    _check_images("members", members)
    k = min(positive_int(k, "k"), len(members))
    cand = torch.cat([d.topk(k, largest=False).indices
                      for d in _distance_chunks(images, members, 500)])     # [n, k]
    imgs = images.clamp(0, 1)
    # one row of ssim_matrix per image: the same numbers as metrics.ssim pair by pair, several
    # times faster than scikit-image's per-pair call
    s = np.stack([ssim_matrix(imgs[i:i + 1], members[cand[i]])[0] for i in range(len(images))])
    best = s.argmax(1)
    return s[np.arange(len(images)), best], cand.numpy()[np.arange(len(images)), best]


def bn_features(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Each image's contribution to the BatchNorm mean statistics: the input of every BatchNorm
    layer averaged over spatial positions (per channel), the layers concatenated, ``[N, D]``
    (``D`` = 6 + 16 + 120 + 84 = 226 for LeNet-5 with BatchNorm), model in eval mode, float64.
    The mean of these rows over a class's images is exactly that class's mean statistics
    (:func:`class_bn_statistics`), so a released mean is an average of these vectors."""
    layers = _layers(model)
    _check_images("x", x)
    batch_size = positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    feats: list = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp: feats.append(inp[0].detach())) for m in layers]
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                feats.clear()
                model(x[i:i + batch_size].to(device))
                out.append(torch.cat([h.double().mean(list(range(2, h.ndim))) if h.ndim > 2 else h.double()
                                      for h in feats], 1).cpu())
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was)
    return torch.cat(out)


def class_means(features: torch.Tensor, labels: torch.Tensor) -> dict:
    """``{class: mean row of features}`` over each class's rows (``features`` ``[N, D]``, ``labels``
    ``[N]``): with :func:`bn_features` of the members, the owner's released mean statistics."""
    labels = torch.as_tensor(labels)
    if not torch.is_tensor(features) or features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError("features must be [N, D] and labels [N].")
    return {int(c): features[labels == c].mean(0) for c in torch.unique(labels)}


def tracing_scores(features: torch.Tensor, labels: torch.Tensor, released: dict,
                   population: torch.Tensor, population_labels: torch.Tensor,
                   leave_one_out: dict | None = None) -> np.ndarray:
    r"""A tracing (membership) test on released class means, in the style of Homer et al. (2008)
    and Dwork et al. (2015): for a record with features :math:`f` and class :math:`c`,

    .. math:: s = \sum_d \frac{(f_d - p_{c,d})\,(\mu_{c,d} - p_{c,d})}{v_{c,d}},

    the inner product of the record's offset from the population mean :math:`p_c` with the released
    mean's offset :math:`\mu_c - p_c`, each coordinate scaled by the population variance
    :math:`v_c` (ours: the statistics' coordinates live on very different scales). A member moved
    :math:`\mu_c` towards itself by :math:`1/n_c` of its offset, so members score higher; with
    :math:`D` coordinates the shift is about :math:`D/n_c` against a spread of about
    :math:`\sqrt{D(1/n_c + 1/n_p)}`, so the test grows stronger as :math:`D/n_c` grows.

    ``features`` ``[N, D]`` and ``labels`` ``[N]``: the records scored (e.g. :func:`bn_features` of
    candidates); ``released``: ``{class: mean [D]}`` (:func:`class_means`); ``population`` and
    ``population_labels``: the attacker's own sample from the same distribution, disjoint from the
    records scored, which estimates :math:`p_c` and :math:`v_c`. Returns ``[N]`` (members higher).

    ``leave_one_out``: ``{class: n_c}``, the number of records each released mean averages, when
    the scored records are among them; each record is then scored against its class mean *with
    itself removed*, :math:`(n_c\\mu_c - f)/(n_c - 1)`: the same test with a mean of the same size
    that holds everything but the record's own trace (the exact control for it)."""
    labels = torch.as_tensor(labels)
    population_labels = torch.as_tensor(population_labels)
    if features.ndim != 2 or population.ndim != 2 or features.shape[1] != population.shape[1]:
        raise ValueError(f"features [N, D] and population [M, D] must share D, got {tuple(features.shape)} "
                         f"and {tuple(population.shape)}.")
    if labels.shape != (len(features),) or population_labels.shape != (len(population),):
        raise ValueError("labels and population_labels must give one class per row.")
    missing = sorted(set(labels.tolist()) - set(released) | set(labels.tolist()) - set(population_labels.tolist()))
    if missing:
        raise ValueError(f"no released mean or no population sample for classes {missing}.")
    f, pop = features.double(), population.double()
    out = torch.empty(len(f), dtype=torch.float64)
    for c in torch.unique(labels):
        rows = labels == c
        pc = pop[population_labels == c]
        if len(pc) < 2:
            raise ValueError(f"class {int(c)} has fewer than 2 population samples.")
        p, v = pc.mean(0), pc.var(0).clamp_min(1e-12)
        mu = torch.as_tensor(released[int(c)]).double()
        if leave_one_out is not None:
            n_c = int(leave_one_out[int(c)])
            if n_c < 2:
                raise ValueError(f"class {int(c)}: a leave-one-out mean needs n_c >= 2, got {n_c}.")
            mu = (n_c * mu - f[rows]) / (n_c - 1)            # one mean per record, [rows, D]
        out[rows] = ((f[rows] - p) * (mu - p) / v).sum(1)
    return out.numpy()


def distance_scores(candidates: torch.Tensor, synthetic: torch.Tensor) -> np.ndarray:
    """A membership score from the synthetic set alone: minus each candidate's pixel distance to its
    nearest synthetic image (members higher if synthesis pulls images towards them), ``[N]``."""
    _check_images("candidates", candidates)
    _check_images("synthetic", synthetic)
    return -nearest_neighbours(candidates, synthetic)[1].double().numpy()


__all__ = ["class_bn_statistics", "tv_l2", "bn_synthesize", "nearest_neighbours", "copy_test",
           "max_ssim_to_members", "bn_features", "class_means", "tracing_scores", "distance_scores"]
