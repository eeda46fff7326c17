r"""Membership inference from a trained classifier: the loss attack and the input-loss-curvature
attack (chapter 09), their ROC curves, and the ceiling that differential privacy puts on them.

**Input-loss curvature.** For a sample :math:`(x, y)` and the cross-entropy loss
:math:`\ell(x) = \mathrm{CE}(f(x), y)`, the curvature is :math:`\kappa(x) = \operatorname{tr}
\nabla^2_x \ell(x)`, the trace of the loss's Hessian with respect to the *input*. Hutchinson's
estimator reads it from Hessian-vector products: for a Rademacher probe :math:`v` (entries
:math:`\pm 1`), :math:`\mathbb E[v^\top H v] = \sum_{ij} H_{ij}\,\mathbb E[v_i v_j] = \operatorname{tr} H`,
so the mean of :math:`v_k^\top H v_k` over :math:`k = 1..K` probes is unbiased, with variance
:math:`2(\lVert H\rVert_F^2 - \sum_i H_{ii}^2)/K`.

* :func:`input_curvature` — per-sample Hutchinson estimates, batched with ``torch.func.vmap`` over
  samples and probes; ``method="hvp"`` (white box: forward-over-reverse Hessian-vector products) or
  ``method="finite-difference"`` (black box: loss queries only,
  :math:`v^\top H v \approx [\ell(x+hv) + \ell(x-hv) - 2\ell(x)]/h^2`).
* :func:`input_hessian`, :func:`exact_input_curvature`, :func:`hutchinson_variance` — the full
  input Hessian, its exact trace and the estimator's variance (tiny models only), to check against.
* :func:`curvature_scores` — the exact trace for piecewise-linear networks, from one
  vector-Jacobian product per class (float64), and :func:`zero_order_curvature`, the authors'
  loss-query estimator.
* :func:`loss_scores`, :func:`margin_scores` — the per-sample loss (the classic loss-threshold
  attack's score) and the logit margin, both in float64 from the margin, so they do not saturate.
* :func:`correctness_scores` — the label-only baseline (member if correctly classified).
* :func:`attack_auc`, :func:`roc_curve`, :func:`tpr_at_fpr` — how well a score separates members
  from non-members (scikit-learn's ROC functions).
* :func:`rank_average` — a label-free combination of several scores.
* :func:`dp_auc_bound` — the largest AUC any membership test can reach against an
  :math:`(\varepsilon, \delta)`-differentially private training algorithm.

Convention: every score here is oriented so that **members score higher**. The loss and the
curvature are both *lower* on members, so the attacks use their negatives (``-loss_scores(...)``).
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .config import resolve_seed
from .utils import positive_int

METHODS = ("hvp", "finite-difference")


def _check_xy(model, x, y) -> None:
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module classifier, got {type(model).__name__}.")
    if not torch.is_tensor(x) or x.ndim < 2:
        raise ValueError(f"x must be a tensor [n, ...] of inputs, got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    if not torch.is_tensor(y) or y.ndim != 1:
        raise ValueError(f"y must be a tensor [n] of integer labels, got "
                         f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}.")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length (one label per input); got {len(x)} "
                         f"inputs and {len(y)} labels.")
    if len(x) == 0:
        raise ValueError("x and y are empty; pass at least one sample.")
    if y.dtype.is_floating_point:
        raise ValueError("y must hold integer class labels (dtype long), not floats.")


@contextlib.contextmanager
def _quiet():
    """Silence PyTorch's one-time notice that forward-mode AD's internal decompositions use the
    deprecated ``torch.jit.script`` (a notice about PyTorch itself, not about the caller's code)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        yield


class _EvalMode:
    """Run a model in eval mode (BatchNorm uses its running statistics, dropout is off) and restore
    its mode afterwards: curvature and loss are properties of the deployed model."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        return False


def _sample_loss(model):
    def loss(xi, yi):
        return F.cross_entropy(model(xi.unsqueeze(0)), yi.unsqueeze(0))
    return loss


def _per_sample(model, x, y, batch_size: int, score, dtype=torch.float32) -> torch.Tensor:
    """``score(logits, y) -> [b]`` for every sample, in batches, model in eval mode, no gradients;
    returned as ``dtype`` on the CPU."""
    _check_xy(model, x, y)
    batch_size = positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    out = []
    with _EvalMode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out.append(score(model(xb), yb).to(dtype).cpu())
    return torch.cat(out)


def _margin(logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """``z_y - logsumexp_{k != y} z_k`` per row, in float64 (it does not saturate at p_y -> 1)."""
    z = logits.double()
    zy = z.gather(1, yb.view(-1, 1)).squeeze(1)
    others = z.scatter(1, yb.view(-1, 1), float("-inf"))
    return zy - torch.logsumexp(others, dim=1)


def margin_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int = 1000) -> torch.Tensor:
    r"""The logit margin of each sample, :math:`z_y - \log\sum_{k\ne y} e^{z_k}`, ``Tensor[n]``
    (float64), model in eval mode. It equals :math:`\log\frac{p_y}{1-p_y}`, the logit-scaled
    confidence of LiRA (Carlini et al., 2022), but computed from the logits, so it keeps growing
    where :math:`p_y` rounds to 1: confident members do not tie. Members score higher."""
    return _per_sample(model, x, y, batch_size, _margin, dtype=torch.float64)


def loss_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                batch_size: int = 1000) -> torch.Tensor:
    r"""The cross-entropy loss of each sample, ``Tensor[n]`` (CPU, float64), model in eval mode.

    Computed as :math:`\log(1 + e^{-m})` from the logit margin :math:`m` (:func:`margin_scores`), in
    float64: a float32 cross-entropy returns exactly 0 from a margin of about 17 on, so confident
    members would tie; this form stays distinct up to margins of several hundred.
    Members of an overfit model have lower loss: use ``-loss_scores(...)`` as a membership score."""
    return _per_sample(model, x, y, batch_size,
                       lambda logits, yb: F.softplus(-_margin(logits, yb)),
                       dtype=torch.float64)


def correctness_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                       batch_size: int = 1000) -> torch.Tensor:
    """The label-only baseline's score: 1 where the model classifies the sample correctly, 0 where not
    (``Tensor[n]``). "Member if correctly classified" needs only the predicted label; its AUC is
    ``(1 + acc_members - acc_nonmembers) / 2``, one half plus half the generalisation gap, and any
    attack worth its cost should beat it."""
    return _per_sample(model, x, y, batch_size, lambda logits, yb: logits.argmax(1) == yb)


def rademacher(shape, generator: torch.Generator) -> torch.Tensor:
    """A tensor of independent ±1 entries (Rademacher probes) of the given shape."""
    return torch.randint(0, 2, tuple(shape), generator=generator).float().mul_(2).sub_(1)


def input_curvature(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int = 8,
                    seed: int | None = None, method: str = "hvp", h: float = 1e-2, batch_size: int = 100,
                    per_probe: bool = False) -> torch.Tensor:
    r"""Hutchinson's estimate of each sample's input-loss curvature
    :math:`\operatorname{tr}\nabla^2_x \mathrm{CE}(f(x_i), y_i)`.

    Parameters
    ----------
    model : any ``nn.Module`` classifier mapping ``[b, ...]`` inputs to ``[b, classes]`` logits; it is
        evaluated in eval mode (its mode is restored afterwards) and is not changed.
    x, y : inputs ``[n, ...]`` and integer labels ``[n]``.
    probes : number :math:`K \ge 1` of Rademacher probes per sample (the same probes for every
        sample, drawn from ``seed``); the estimate's standard deviation falls as :math:`1/\sqrt K`.
    method : ``"hvp"`` — exact Hessian-vector products (``torch.func.jvp`` of ``torch.func.grad``),
        needs the model's gradients; ``"finite-difference"`` — a black-box estimate from three loss
        evaluations per probe with step ``h`` (in input units; our images are in [0, 1]).
    batch_size : samples per vectorised chunk (memory grows with ``batch_size * probes``).
    per_probe : return ``[n, K]`` (each probe's :math:`v^\top H v`) instead of the mean ``[n]``.

    Returns ``Tensor[n]`` (or ``[n, K]``), float32 on the CPU. For a ReLU network the Hessian is
    :math:`J^\top(\mathrm{diag}\,p - pp^\top)J` almost everywhere (J the logits' Jacobian, p the softmax),
    so the exact trace is :math:`\ge 0`; single-probe values can be negative.

    Raises ``ValueError`` for mismatched ``x``/``y``, ``probes < 1``, an unknown ``method`` or ``h <= 0``.
    """
    seed = resolve_seed(seed)
    _check_xy(model, x, y)
    if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 1:
        raise ValueError(f"probes must be an integer >= 1 (the number of Rademacher probes), got {probes!r}.")
    batch_size = positive_int(batch_size, "batch_size")
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; expected one of {METHODS}.")
    if not (isinstance(h, (int, float)) and h > 0):
        raise ValueError(f"h (the finite-difference step) must be a positive number, got {h!r}.")
    from torch.func import grad, jvp, vmap

    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    v_all = rademacher((int(probes), *x.shape[1:]), g).to(device)         # [K, ...]
    out = []
    if method == "finite-difference":       # float64 keeps the 1/h^2 cancellation accurate
        import copy
        model = copy.deepcopy(model).double()
    with _EvalMode(model), _quiet():
        loss = _sample_loss(model)
        if method == "hvp":
            def quad(xi, yi, v):                                          # v^T H v for one probe
                _, hv = jvp(lambda z: grad(loss)(z, yi), (xi,), (v,))
                return (hv * v).sum()
        else:
            def quad(xi, yi, v):
                return (loss(xi + h * v, yi) + loss(xi - h * v, yi) - 2 * loss(xi, yi)) / (h * h)
        per_sample = vmap(vmap(quad, in_dims=(None, None, 0)), in_dims=(0, 0, None))
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).float()
            yb = y[i:i + batch_size].to(device).long()
            if method == "hvp":
                q = per_sample(xb, yb, v_all)
            else:
                with torch.no_grad():
                    q = per_sample(xb.double(), yb, v_all.double())
            out.append(q.detach().float().cpu())
    q = torch.cat(out)                                                     # [n, K]
    return q if per_probe else q.mean(1)


def input_hessian(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  max_dim: int = 4096) -> torch.Tensor:
    """Each sample's full input Hessian of the cross-entropy loss, ``[n, d, d]`` with ``d`` the number
    of input entries (``torch.func.hessian``; model in eval mode). Cost grows with ``d`` squared: for
    tiny models only (raises ``ValueError`` when ``d > max_dim``)."""
    _check_xy(model, x, y)
    d = int(np.prod(x.shape[1:]))
    if d > max_dim:
        raise ValueError(f"The exact Hessian of a {d}-dimensional input is too large (max_dim={max_dim}); "
                         "use input_curvature (Hutchinson) or a smaller model/input.")
    from torch.func import hessian

    device = next(model.parameters()).device
    out = []
    with _EvalMode(model), _quiet():
        loss = _sample_loss(model)
        for xi, yi in zip(x.to(device).float(), y.to(device).long()):
            out.append(hessian(loss)(xi, yi).reshape(d, d).detach().cpu())
    return torch.stack(out).float()


def exact_input_curvature(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                          max_dim: int = 4096) -> torch.Tensor:
    """The exact trace of each sample's input Hessian (:func:`input_hessian`), ``Tensor[n]``: the
    reference to check :func:`input_curvature` against on tiny models."""
    return torch.diagonal(input_hessian(model, x, y, max_dim=max_dim), dim1=1, dim2=2).sum(1)


def curvature_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     batch_size: int = 100) -> torch.Tensor:
    r"""The exact input-loss curvature of each sample from the logits' Jacobian, ``Tensor[n]``
    (float64): :math:`\operatorname{tr}\nabla_x^2\mathrm{CE} = \sum_k p_k\lVert\nabla_x z_k -
    \bar g\rVert^2` with :math:`\bar g = \sum_k p_k \nabla_x z_k`, the variance of the logit
    gradients under the softmax :math:`p`. One vector-Jacobian product per class (10 for
    Fashion-MNIST), batched with ``torch.func.vmap`` of ``jacrev``; the softmax and the variance are
    taken in float64 from float64 logits, so a confidently classified sample keeps a small but
    distinct value instead of rounding to 0.

    Exact where the logits are piecewise linear in the input (ReLU, max-pooling, linear layers:
    the logits' own Hessians vanish almost everywhere), as for the course's LeNet-5; for smooth
    activations (sigmoid, tanh) it is the Gauss-Newton part of the trace and leaves out
    :math:`\sum_k (p_k - [k=y])\operatorname{tr}\nabla_x^2 z_k`. Members of an overfit model have
    lower curvature: use ``-curvature_scores(...)`` as a membership score."""
    _check_xy(model, x, y)
    batch_size = positive_int(batch_size, "batch_size")
    from torch.func import jacrev, vmap

    device = next(model.parameters()).device
    out = []
    with _EvalMode(model), _quiet():
        def logits_of(xi):
            z = model(xi.unsqueeze(0)).squeeze(0)
            return z, z

        jac = vmap(jacrev(logits_of, has_aux=True))
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).float()
            J, z = jac(xb)                                        # [b, K, ...], [b, K]
            J = J.detach().reshape(len(xb), z.shape[1], -1).double()
            p = torch.softmax(z.detach().double(), dim=1)         # [b, K]
            g_bar = torch.einsum("bk,bkd->bd", p, J)
            out.append((p * ((J - g_bar[:, None]) ** 2).sum(-1)).sum(1).cpu())
    return torch.cat(out)


def _mixed_difference(loss, x, u, v):
    """The authors' mixed finite difference with the (already scaled) steps ``u`` and ``v``,
    per sample: ``|loss(x+v+u) - loss(x-v+u) - loss(x+v-u) + loss(x-v-u)|``."""
    return (loss(x + v + u) - loss(x - v + u) - loss(x + v - u) + loss(x - v - u)).abs()


def zero_order_curvature(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                         h: float = 1e-3, draws: int = 10, seed: int | None = None,
                         batch_size: int = 500) -> torch.Tensor:
    r"""The curvature score of the authors' code (Curvature-Clues, ``get_curvature_for_batch_zo_v2``),
    from loss queries only: for Rademacher directions :math:`u, v` scaled by ``h``, the mixed finite
    difference :math:`\lvert\ell(x+v+u) - \ell(x-v+u) - \ell(x+v-u) + \ell(x-v-u)\rvert`,
    averaged over ``draws`` pairs, divided by :math:`4h^2` (our normalisation: it approximates
    :math:`\lvert u^\top H v\rvert` for unit-entry probes; the ranking does not depend on it).
    The expectation of :math:`u^\top H v` over independent probes is 0, so this is not the trace:
    for a loss that is twice differentiable around ``x`` its absolute value measures how large
    :math:`H` is (roughly its Frobenius norm), not the sum of its eigenvalues. On a ReLU or
    max-pooling network it measures neither: the steps cross kinks of the piecewise-linear
    logits, which add first-order changes that do not vanish with ``h``, so the quotient follows
    the loss's gradient more than its Hessian (:func:`zero_order_vs_exact` shows it). Losses in
    float64 (the model is copied to float64) and from the logit margin (:func:`loss_scores`' form), so confident samples do not tie at 0; each sample draws its own
    probes, as the authors' code does (``torch.randint_like`` of the batch). ``Tensor[n]`` float64.
    Members of an overfit model score lower: use its negative as a membership score."""
    seed = resolve_seed(seed)
    _check_xy(model, x, y)
    batch_size = positive_int(batch_size, "batch_size")
    draws = positive_int(draws, "draws")
    if not (isinstance(h, (int, float)) and h > 0):
        raise ValueError(f"h (the finite-difference step) must be a positive number, got {h!r}.")
    import copy

    m64 = copy.deepcopy(model).double()
    device = next(m64.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    out = []
    with _EvalMode(m64), torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).double()
            yb = y[i:i + batch_size].to(device).long()

            def loss(z):
                # log(1 + e^{-margin}): F.cross_entropy's log-sum-exp minus z_y rounds to exactly 0
                # from a margin of about 36 even in float64; this form stays positive
                return F.softplus(-_margin(m64(z), yb))

            total = torch.zeros(len(xb), dtype=torch.float64, device=device)
            for _ in range(draws):          # fresh probes for every sample, as the authors' code
                v = (rademacher(xb.shape, g).double() * h).to(device)
                u = (rademacher(xb.shape, g).double() * h).to(device)
                total += _mixed_difference(loss, xb, u, v)
            out.append((total / (draws * 4 * h * h)).cpu())
    return torch.cat(out)


def zero_order_vs_exact(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                        hs=(1e-2, 1e-3, 1e-4), seed: int | None = None) -> dict:
    r"""What :func:`zero_order_curvature` measures, checked: one pair of Rademacher probes
    :math:`u, v` (entries :math:`\pm 1`) per sample, and with the *same* probes the authors' mixed
    difference :math:`\lvert\ell(x+hv+hu) - \ell(x-hv+hu) - \ell(x+hv-hu) + \ell(x-hv-hu)\rvert
    / (4h^2)` at every step ``h`` in ``hs`` and the exact :math:`\lvert u^\top H v\rvert` (a
    Hessian-vector product through ``torch.func``, float64, the loss from the logit margin as in
    :func:`zero_order_curvature`). Where the loss is twice differentiable around ``x`` the mixed
    difference tends to the exact value as ``h`` shrinks. A ReLU or max-pooling network is
    piecewise linear in ``x``: a box of side :math:`2h` that crosses a kink adds a first-order
    change, which divided by :math:`4h^2` does not vanish as ``h`` shrinks, so the quotient stays
    far from :math:`\lvert u^\top H v\rvert` and follows the loss's gradient more than its
    Hessian. Returns ``{"h": [len(hs)], "zero_order": [len(hs), n], "exact": [n]}`` (NumPy,
    float64)."""
    seed = resolve_seed(seed)
    _check_xy(model, x, y)
    hs = [float(h) for h in hs]
    if not hs or any(not h > 0 for h in hs):
        raise ValueError(f"hs must be positive finite-difference steps, got {hs!r}.")
    import copy

    from torch.func import grad, jvp

    m64 = copy.deepcopy(model).double()
    device = next(m64.parameters()).device
    xb, yb = x.to(device).double(), y.to(device).long()
    g = torch.Generator().manual_seed(int(seed))
    u = rademacher(xb.shape, g).double().to(device)
    v = rademacher(xb.shape, g).double().to(device)

    def loss(z):                                  # summed: the samples' Hessians are separate
        return F.softplus(-_margin(m64(z), yb)).sum()

    with _EvalMode(m64):
        hv = jvp(grad(loss), (xb,), (v,))[1]
        exact = (u * hv).flatten(1).sum(1).abs()
        with torch.no_grad():
            def per_sample(z):
                return F.softplus(-_margin(m64(z), yb))
            zo = [_mixed_difference(per_sample, xb, h * u, h * v) / (4 * h * h) for h in hs]
    return {"h": np.array(hs), "zero_order": torch.stack(zo).cpu().numpy(),
            "exact": exact.detach().cpu().numpy()}


def hutchinson_variance(H: torch.Tensor) -> torch.Tensor:
    r"""The variance of a *single* Rademacher probe's :math:`v^\top H v` for symmetric ``H``
    ``[..., d, d]``: :math:`2(\lVert H\rVert_F^2 - \sum_i H_{ii}^2)`; the mean of ``K`` probes has
    this divided by ``K``."""
    if not torch.is_tensor(H) or H.ndim < 2 or H.shape[-1] != H.shape[-2]:
        raise ValueError("H must be a tensor [..., d, d] of square matrices.")
    Hs = 0.5 * (H + H.transpose(-1, -2))
    return 2 * ((Hs ** 2).sum((-1, -2)) - (torch.diagonal(Hs, dim1=-2, dim2=-1) ** 2).sum(-1))


# ------------------------------------------------------------------------------ scoring ----
def _scores_pair(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, s in (("member_scores", member_scores), ("nonmember_scores", nonmember_scores)):
        a = s.detach().cpu().numpy() if torch.is_tensor(s) else np.asarray(s, dtype=float)
        a = np.asarray(a, dtype=float)
        if a.ndim != 1 or len(a) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array of scores, got shape {a.shape}.")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values; check the model and inputs.")
        out.append(a)
    return out[0], out[1]


def _labelled(member_scores, nonmember_scores):
    m, n = _scores_pair(member_scores, nonmember_scores)
    return np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n]


def attack_auc(member_scores, nonmember_scores) -> float:
    """The area under the ROC curve of the attack "member if score > t": the probability that a
    random member scores higher than a random non-member (ties count one half). 0.5 is guessing.
    Scores are oriented so that members score higher; flip a score's sign where members score lower."""
    from sklearn.metrics import roc_auc_score

    labels, scores = _labelled(member_scores, nonmember_scores)
    return float(roc_auc_score(labels, scores))


def roc_curve(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the threshold attack "member if score >= t" (scikit-learn's
    ``roc_curve``): fpr is the share of non-members flagged, tpr the share of members flagged."""
    from sklearn.metrics import roc_curve as sk_roc

    labels, scores = _labelled(member_scores, nonmember_scores)
    fpr, tpr, thr = sk_roc(labels, scores)
    return fpr, tpr, thr


def tpr_at_fpr(member_scores, nonmember_scores, fpr: float = 0.01) -> float:
    """The share of members flagged by the threshold that flags at most ``fpr`` of the non-members:
    the low-false-positive operating point that says whether *some* members are exposed with
    confidence. The threshold is the ``(floor(fpr * n) + 1)``-th highest of the ``n`` non-member
    scores and a member is flagged only *strictly* above it, so a block of members tied with a
    non-member is never counted as found. This is the book's one definition:
    :func:`mixcon_lite.stats.tpr_interval` uses the same rule and adds a bootstrap interval."""
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr!r}.")
    from .stats import _tpr_rows

    m, n = _scores_pair(member_scores, nonmember_scores)
    return float(_tpr_rows(m[None], n[None], fpr)[0])


def rank_average(*scores) -> np.ndarray:
    """Combine scores for the same samples without labels: each score is replaced by its rank
    (0..n-1, ties averaged) and the ranks are averaged. Pass the members and non-members together,
    each score oriented so that members score higher."""
    from scipy.stats import rankdata

    if not scores:
        raise ValueError("rank_average needs at least one score array.")
    arrays = [np.asarray(s.detach().cpu().numpy() if torch.is_tensor(s) else s, dtype=float)
              for s in scores]
    n = len(arrays[0])
    if any(a.ndim != 1 or len(a) != n for a in arrays):
        raise ValueError(f"every score must be 1-D with the same length ({n}); got shapes "
                         f"{[a.shape for a in arrays]}.")
    return np.mean([rankdata(a) - 1 for a in arrays], axis=0)


# ------------------------------------------------------------------------- privacy ceiling ----
def dp_roc_bound(fpr, epsilon: float, delta: float = 0.0) -> np.ndarray:
    r"""The highest true-positive rate any membership test can reach at false-positive rate ``fpr``
    against an :math:`(\varepsilon,\delta)`-DP algorithm:
    :math:`\min\{1,\ e^\varepsilon\,\mathrm{fpr} + \delta,\ 1 - e^{-\varepsilon}(1 - \delta - \mathrm{fpr})\}`.

    Derivation: a test flags "member" on a set :math:`S` of outputs. DP says
    :math:`P[M(D)\in S] \le e^\varepsilon P[M(D')\in S] + \delta` for neighbouring datasets (with and
    without the sample), i.e. tpr :math:`\le e^\varepsilon` fpr :math:`+\delta`; the same applied to the
    complement with the roles swapped gives :math:`1-\mathrm{fpr} \le e^\varepsilon(1-\mathrm{tpr})+\delta`."""
    eps, delta = _check_privacy(epsilon, delta)
    f = np.clip(np.asarray(fpr, dtype=float), 0.0, 1.0)
    return np.minimum.reduce([np.ones_like(f), math.exp(eps) * f + delta,
                              1.0 - math.exp(-eps) * (1.0 - delta - f)]).clip(0.0, 1.0)


def dp_auc_bound(epsilon: float, delta: float = 0.0) -> float:
    r"""The largest AUC of a membership test against an :math:`(\varepsilon,\delta)`-DP algorithm: the
    area under :func:`dp_roc_bound`. For :math:`\delta = 0` it is exactly
    :math:`e^\varepsilon/(1+e^\varepsilon)`; with :math:`\delta > 0` it is integrated numerically."""
    eps, delta = _check_privacy(epsilon, delta)
    if delta == 0.0:
        return float(1.0 / (1.0 + math.exp(-eps)))
    f = np.linspace(0.0, 1.0, 200_001)
    return float(np.trapezoid(dp_roc_bound(f, eps, delta), f) if hasattr(np, "trapezoid")
                 else np.trapz(dp_roc_bound(f, eps, delta), f))


def _check_privacy(epsilon, delta) -> tuple[float, float]:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not epsilon >= 0:
        raise ValueError(f"epsilon must be a number >= 0, got {epsilon!r}.")
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or not 0 <= delta < 1:
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}.")
    return float(epsilon), float(delta)
