r"""Gradient matching: what a federated client sends, and how far a candidate's gradient is from it
(chapters 06-07).

* :func:`shared_gradients`, :func:`check_gradients` — the client's FedSGD gradient; its validation.
* :func:`soft_cross_entropy` — DLG's loss against a label distribution.
* :class:`GradientMatcher` — per-candidate matching terms (squared distance, inner product, squared
  norm of the candidate's gradient) for ``K`` candidate batches in one graph.
* :func:`match_batch` — the optimal one-to-one assignment of a batch's reconstructions to its
  originals (a batch's gradient does not say which image came first), for scoring.

The attacks built on these live in :mod:`.gradients` (DLG, Inverting Gradients) and
:mod:`.gradinversion`; the label tricks in :mod:`.labels`.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils import positive_int


def shared_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """What a client sends for one FedSGD step: the gradient of the mean cross-entropy of
    ``model(x)`` against class indices ``y`` (``[b]``), one detached tensor per parameter, in
    ``model.parameters()`` order. The model's train/eval mode is left as it is (BatchNorm in
    train mode uses the batch's statistics, as a training client's would, and so also updates its
    running statistics: pass ``copy.deepcopy(model)`` when the model must stay unchanged)."""
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


@contextlib.contextmanager
def _batch_statistics_only(bn_layers):
    """BatchNorm layers in train mode normalise with the batch's statistics; stop them also updating
    their running statistics while candidates are evaluated (the model is not to be changed, and
    ``vmap`` cannot write to shared buffers). Layers in eval mode are left alone."""
    changed = [m for m in bn_layers if m.training and m.track_running_stats]
    for m in changed:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


def sent_entries(gradients) -> list[torch.Tensor]:
    """The entries a client actually sent: ``g != 0`` for every tensor (after gradient pruning the
    zeroed entries carry no information, and an attacker who sees the zeros can skip them)."""
    return [g.detach() != 0 for g in gradients]


def soft_cross_entropy(logits: torch.Tensor, soft_labels: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of :math:`-\\sum_c y_c \\log\\mathrm{softmax}(z)_c` (DLG's
    ``cross_entropy_for_onehot``); equals ``F.cross_entropy`` for one-hot ``soft_labels``."""
    return -(soft_labels * F.log_softmax(logits, dim=-1)).sum(-1).mean()


PATHS = ("auto", "hooks", "vmap", "loop")


class GradientMatcher:
    r"""Gradient-matching terms for ``K`` candidate batches of ``n`` inputs, all in one graph.

    For a candidate batch :math:`(\hat x_k, \hat y_k)` (inputs ``[n, ...]`` and label distributions
    ``[n, classes]``) let :math:`\hat g_k = \nabla_\theta \mathrm{CE}(\hat x_k, \hat y_k)` (mean over
    the batch, as :func:`shared_gradients`) and :math:`g` the shared gradient. :meth:`terms` returns,
    per candidate, :math:`\lVert\hat g_k - g\rVert^2` (DLG's distance), :math:`\langle\hat g_k, g\rangle`
    and :math:`\lVert\hat g_k\rVert^2` (Inverting Gradients' cosine), differentiable with respect to
    the candidates. The ``K`` candidates are independent: candidate ``k``'s terms depend on its
    own inputs only.

    Three ways to get the ``K`` parameter gradients (``path``):

    * ``"hooks"`` — when every parameter belongs to an ``nn.Conv2d`` (``groups=1``, zero padding) or
      an ``nn.Linear``, each called once, and no BatchNorm layer mixes a batch's samples: one forward
      of all ``K n`` inputs, one backward to the layers' outputs, and the per-candidate weight
      gradients from the saved layer inputs (for convolutions, the weight gradient of the same
      convolution with the ``K`` candidates as ``K`` groups, ``aten.convolution_backward``; for linear layers
      the terms come from Gram matrices, :math:`\lVert\sum_i \delta_i a_i^\top\rVert^2 =
      \sum_{ij} (\delta_i\cdot\delta_j)(a_i\cdot a_j)`, so the ``K`` weight gradients are never
      formed). Checked once against autograd when the matcher is built; on a mismatch it falls back.
    * ``"vmap"`` — ``torch.func.vmap`` of ``torch.func.grad`` over ``functional_call``: any model
      whose layers ``vmap`` supports (e.g. BatchNorm, which then normalises each candidate batch with
      its own statistics).
    * ``"loop"`` — a Python loop over the candidates with plain autograd: anything at all.

    ``"auto"`` picks ``"hooks"`` when it applies, else ``"vmap"`` for ``K > 1`` (``"loop"`` for one).
    The model's mode is respected (pass it in the mode the client used) and nothing in it changes.

    ``mask`` (one bool tensor per parameter, e.g. :func:`sent_entries` of a pruned gradient): match
    only the entries where it is true, the adaptive attack on gradient pruning (the attacker sees
    which entries the client zeroed). A mask turns the hooks path off.
    """

    def __init__(self, model: nn.Module, gradients, n: int = 1, path: str = "auto", mask=None):
        self.model = model
        self.params = list(model.parameters())
        self.target = [g.detach().to(p.device, p.dtype) for g, p in zip(check_gradients(model, gradients),
                                                                        self.params)]
        self.mask = None
        if mask is not None:
            masks = check_gradients(model, mask)
            self.mask = [m.to(p.device).bool() for m, p in zip(masks, self.params)]
            self.target = [t * m for t, m in zip(self.target, self.mask)]
        self.n = positive_int(n, "n")
        if path not in PATHS:
            raise ValueError(f"Unknown path {path!r}; expected one of {PATHS}.")
        self.requested = path
        self.target_sq = float(sum(t.double().pow(2).sum() for t in self.target))
        self.target_norm = math.sqrt(self.target_sq)
        self.bn_layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self._plan = self._hook_plan() if self.mask is None else None
        if self._plan is not None:
            self._modules = list(dict.fromkeys(m for m, _ in self._plan))
            self._target64 = {(pn, id(m)): t.double() for (m, pn), t in zip(self._plan, self.target)}
            self._target_sq64 = {k: v.pow(2).sum() for k, v in self._target64.items()}
            self._grouped = {}
        self.fallback_reason = None if self._plan is not None else "layers other than Conv2d/Linear"
        self._verified = False
        self._names = [name for name, _ in model.named_parameters()]
        self._buffers = dict(model.named_buffers())

    # -- which path -----------------------------------------------------------------------------
    def _hook_plan(self):
        owners = {}
        for module in self.model.modules():
            for pname, p in module.named_parameters(recurse=False):
                owners.setdefault(id(p), []).append((module, pname))
        if any(m.training for m in self.bn_layers):
            return None
        plan = []
        for p in self.params:
            found = owners.get(id(p), [])
            if len(found) != 1:
                return None
            module, pname = found[0]
            ok = isinstance(module, nn.Linear) or (
                type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros"
                and not isinstance(module.padding, str))
            if not ok:
                return None
            plan.append((module, pname))
        return plan

    def path_for(self, K: int) -> str:
        """The path :meth:`terms` takes for ``K`` candidates."""
        if self.requested == "hooks" and self._plan is None:
            raise ValueError("path='hooks' needs every parameter in an nn.Conv2d (groups=1, zero padding) or "
                             "nn.Linear and no BatchNorm in train mode; use path='auto'.")
        if self.requested != "auto":
            return self.requested
        if self._plan is not None and self.fallback_reason is None:
            return "hooks"
        return "vmap" if K > 1 else "loop"

    # -- the terms ------------------------------------------------------------------------------
    def terms(self, x: torch.Tensor, soft_labels: torch.Tensor, distance_only: bool = False):
        """``(distance, inner, sq)``, each float64 ``[K]``, for inputs ``x`` ``[K, n, ...]`` and label
        distributions ``soft_labels`` ``[K, n, classes]`` (rows summing to one; one-hot for known labels).
        With ``distance_only`` the hooks path skips ``inner`` and ``sq`` (returned as ``None``)."""
        if x.ndim < 3 or x.shape[1] != self.n or soft_labels.shape[:2] != x.shape[:2]:
            raise ValueError(f"terms expects x [K, {self.n}, ...] and soft_labels [K, {self.n}, classes]; got "
                             f"{tuple(x.shape)} and {tuple(soft_labels.shape)}.")
        K = x.shape[0]
        path = self.path_for(K)
        if path == "hooks" and not self._verified and self.requested == "auto":
            self._verify(x, soft_labels)
            path = self.path_for(K)
        with _batch_statistics_only(self.bn_layers):
            if path == "hooks":
                return self._terms_hooks(x, soft_labels, distance_only)
            if path == "vmap":
                return self._terms_vmap(x, soft_labels)
            return self._terms_loop(x, soft_labels)

    def _combine(self, grads):
        if self.mask is not None:                 # only the entries the client sent
            grads = [g * m for g, m in zip(grads, self.mask)]
        dist = sum((g - t).pow(2).sum() for g, t in zip(grads, self.target))
        inner = sum((g * t).sum() for g, t in zip(grads, self.target))
        sq = sum(g.pow(2).sum() for g in grads)
        return dist.double(), inner.double(), sq.double()

    def _terms_loop(self, x, y):
        out = []
        for xk, yk in zip(x, y):
            loss = soft_cross_entropy(self.model(xk), yk)
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            out.append(self._combine(grads))
        return tuple(torch.stack(v) for v in zip(*out))

    def _terms_vmap(self, x, y):
        from torch.func import functional_call, grad, vmap

        params = {name: p.detach() for name, p in zip(self._names, self.params)}

        def one(xk, yk):
            def loss(p):
                return soft_cross_entropy(functional_call(self.model, (p, self._buffers), (xk,)), yk)
            g = grad(loss)(params)
            return torch.stack(self._combine([g[name] for name in self._names]))

        values = vmap(one)(x, y)
        return values[:, 0], values[:, 1], values[:, 2]

    def _terms_hooks(self, x, y, distance_only=False):
        K, n = x.shape[:2]
        seen = {}
        modules = self._modules

        def save(module, inputs, output):
            seen.setdefault(module, []).append((inputs[0], output))

        handles = [m.register_forward_hook(save) for m in modules]
        try:
            logits = self.model(x.reshape(K * n, *x.shape[2:]))
        finally:
            for h in handles:
                h.remove()
        if any(len(seen.get(m, ())) != 1 for m in modules):
            raise RuntimeError("a Conv2d/Linear layer was not called exactly once; use path='vmap'.")
        loss = -(y.reshape(K * n, -1) * F.log_softmax(logits, dim=-1)).sum() / n
        deltas = torch.autograd.grad(loss, [seen[m][0][1] for m in modules], create_graph=True)
        delta = dict(zip(modules, deltas))
        dist32, dist64 = 0.0, 0.0          # squared differences in float32; Gram terms in float64
        inner, sq = 0.0, 0.0
        for (module, pname), t in zip(self._plan, self.target):
            a, dz = seen[module][0][0], delta[module]
            if isinstance(module, nn.Conv2d):
                if pname == "bias":
                    g = dz.reshape(K, n, dz.shape[1], -1).sum((1, 3))
                else:      # per-candidate weight gradients = the weight gradient of a K-group conv
                    ai = a.reshape(K, n, *a.shape[1:]).transpose(0, 1).reshape(n, -1, *a.shape[2:])
                    di = dz.reshape(K, n, *dz.shape[1:]).transpose(0, 1).reshape(n, -1, *dz.shape[2:])
                    g = torch.ops.aten.convolution_backward(
                        di, ai, self._grouped_weight(module, K), None, module.stride, module.padding,
                        module.dilation, False, [0] * len(module.stride), K, [False, True, False])[1]
                g = g.reshape(K, -1)
            else:  # Linear: rows are the n items (times any extra leading dimensions)
                A = a.reshape(K, -1, a.shape[-1])
                Dz = dz.reshape(K, -1, dz.shape[-1])
                if pname == "bias":
                    g = Dz.sum(1)
                elif A.shape[1] ** 2 < t.numel():
                    Ad, Dd = A.double(), Dz.double()
                    s = ((Dd @ Dd.transpose(1, 2)) * (Ad @ Ad.transpose(1, 2))).sum((1, 2))
                    i = (Dd * (Ad @ self._target64[pname, id(module)].T)).sum((1, 2))
                    dist64 = dist64 + s - 2 * i + self._target_sq64[pname, id(module)]
                    if not distance_only:
                        sq, inner = sq + s, inner + i
                    continue
                else:
                    g = torch.bmm(Dz.transpose(1, 2), A).reshape(K, -1)
            tf = t.reshape(1, -1)
            dist32 = dist32 + (g - tf).pow(2).sum(1)
            if not distance_only:
                inner = inner + (g * tf).sum(1).double()
                sq = sq + g.pow(2).sum(1).double()
        dist = dist64 + (dist32.double() if torch.is_tensor(dist32) else dist32)
        if distance_only:
            return dist, None, None
        return dist, inner, sq

    def _grouped_weight(self, module, K):
        key = (id(module), K)
        if key not in self._grouped:
            self._grouped[key] = module.weight.detach().repeat(K, 1, 1, 1)
        return self._grouped[key]

    def _verify(self, x, y):
        """Compare the hooks path with plain autograd on the first two candidates, once."""
        self._verified = True
        xs, ys = x[:2].detach(), y[:2].detach()
        try:
            with _batch_statistics_only(self.bn_layers):
                fast = torch.stack(self._terms_hooks(xs, ys)).detach()
                slow = torch.stack(self._terms_loop(xs, ys)).detach()
        except RuntimeError as err:
            self.fallback_reason = str(err)
            return
        scale = slow.abs().max(dim=1, keepdim=True).values.clamp_min(1e-12)
        if not torch.allclose(fast / scale, slow / scale, atol=1e-4):
            self.fallback_reason = "the layer-wise gradients did not match autograd"

    # -- conveniences ----------------------------------------------------------------------------
    def cosine_distance(self, inner: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
        """Inverting Gradients' :math:`1 - \\langle\\hat g, g\\rangle / (\\lVert\\hat g\\rVert\\lVert g\\rVert)`."""
        return 1.0 - inner / (sq.clamp_min(1e-30).sqrt() * max(self.target_norm, 1e-30))


def match_batch(reconstruction, originals) -> torch.Tensor:
    """The optimal assignment of reconstructions to originals, by pixel MSE.

    Returns ``order`` (``LongTensor[n]``) such that ``reconstruction[order[j]]`` is the
    reconstruction matched to ``originals[j]``; the matching minimises the total MSE over all
    one-to-one assignments (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). Use it
    before scoring any batch attack, and match baselines the same way."""
    from scipy.optimize import linear_sum_assignment

    if not torch.is_tensor(reconstruction) or not torch.is_tensor(originals):
        raise ValueError("match_batch expects two tensors [n, ...].")
    if reconstruction.shape != originals.shape or reconstruction.ndim < 2 or len(originals) == 0:
        raise ValueError(f"match_batch expects two batches of the same shape [n, ...] with n >= 1, got "
                         f"{tuple(reconstruction.shape)} and {tuple(originals.shape)}.")
    a = reconstruction.detach().cpu().double().flatten(1)
    b = originals.detach().cpu().double().flatten(1)
    cost = torch.cdist(a, b).pow(2) / a.shape[1]          # cost[i, j] = MSE(rec i, original j)
    rows, cols = linear_sum_assignment(cost.numpy())
    order = np.empty(len(b), dtype=np.int64)
    order[cols] = rows
    return torch.from_numpy(order)
