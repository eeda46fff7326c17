r"""MixCon's consistency loss :math:`L_c` (Li et al., §3.2 with footnote 3, and §4.3), in two readings.

Let :math:`S` be MixCon's set of pairs that should be close: the :math:`k`-th sample of class
:math:`c` with the :math:`k`-th sample of every other class :math:`c'`
(:func:`mixcon_lite.separability.mixcon_pairs`), and :math:`h_i` the representation of sample
:math:`i` at the cut, flattened to :math:`D_h` numbers. The paper states the two terms (one
punishes pairs that are far apart, the other pairs that are too close), that in general a pair's
penalty may be any convex function of its distance that goes to infinity at both ends of
:math:`[0, \infty)`, and, in footnote 3, that in practice the
distance is *normalised to 1* and *thresholded to a range* starting at a small positive
:math:`\varepsilon` to avoid division by zero; §4.3 says :math:`\beta` bounds the minimal pairwise
distance and :math:`\lambda` sets the penalty's power. Two formulas fit that text. Both penalise a
pair's distance :math:`d_{ij}` as :math:`L_c` measures it: the squared distance
:math:`\lVert h_i-h_j\rVert_2^2` (``distance="squared"``) or the per-entry
:math:`\lVert h_i-h_j\rVert_2^2/D_h` (``distance="per_entry"``).

``form="raw"`` (the default: it reproduces the paper's synthetic experiment better, chapter 03)
    .. math:: L_c = \sum_{(i,j)\in S}\Bigl(\lambda\,d_{ij} + \frac{\beta}{d_{ij}+\varepsilon}\Bigr),
              \qquad d_{ij} = \lVert h_i-h_j\rVert_2^2 \text{ by default};

    one pair's penalty is smallest at :math:`d^* = \max(0, \sqrt{\beta/\lambda}-\varepsilon)`.

``form="normalised"``
    .. math:: L_c = \lambda\sum_{(i,j)\in S}\Bigl(\bar d_{ij} + \frac{\beta}{\bar d_{ij}}\Bigr),
              \qquad \bar d_{ij} = \operatorname{clip}\bigl(\lVert h_i-h_j\rVert_2^2/D_h,\
              \varepsilon,\ 1\bigr);

    :math:`\lambda` sets the power of the whole penalty and :math:`\beta` alone where it is
    smallest, :math:`d^* = \sqrt\beta` (for :math:`\varepsilon\le\sqrt\beta\le1`); :math:`\varepsilon`
    is the floor of the clip. A pair outside :math:`[\varepsilon, 1]` gets no gradient, so with
    :math:`\beta = 0` nothing pulls a pair closer than :math:`\varepsilon`. This form always uses
    the per-entry distance.

Pairs are summed (``reduction="sum"``; Eq. (1) is a sum) or averaged (``"mean"``). ``pairs="across"``
(the default) is MixCon's :math:`S`, pairs from *different* classes; ``pairs="within"`` applies the
same penalty to every pair from the *same* class instead
(:func:`~mixcon_lite.separability.within_class_pairs`), the alternative of the paper's App. D.1
(the pairing within a class is our reading).

**Scale.** With ``distance="squared"`` and ``reduction="sum"`` (the default) the loss grows with
the size :math:`D_h` of the representation and with the number of pairs in a batch, so one
:math:`(\lambda,\beta)` means something different at every cut and batch size. With
``distance="per_entry"`` and ``reduction="mean"`` (either form) it depends on neither: use that to
compare cuts of different sizes (chapter 03 measures what happens otherwise). Training minimises
``cross-entropy + L_c``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .models import SplitNet
from .separability import mixcon_pairs, within_class_pairs

FORMS = ("raw", "normalised")
DISTANCES = ("squared", "per_entry")
REDUCTIONS = ("sum", "mean")
PAIR_SETS = ("across", "within")
DEFAULT_FORM = "raw"
DEFAULT_EPS = {"raw": 0.05, "normalised": 0.01}


def resolve_options(form: str = DEFAULT_FORM, eps=None, distance=None,
                    reduction: str = "sum") -> dict:
    """Check and complete the loss's options; returns ``{"form", "eps", "distance", "reduction"}``.

    ``eps=None`` takes the form's default (:data:`DEFAULT_EPS`: 0.05 raw, 0.01 normalised, both
    ours); ``distance=None`` takes ``"squared"`` for the raw form and ``"per_entry"`` for the
    normalised one. Raises ``ValueError`` naming the bad option and the accepted values."""
    if form not in FORMS:
        raise ValueError(f"Unknown form {form!r}; expected 'raw' (lam * d + beta / (d + eps)) or "
                         "'normalised' (lam * (d + beta / d) with d clipped to [eps, 1]).")
    eps = DEFAULT_EPS[form] if eps is None else eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}.")
    distance = ("squared" if form == "raw" else "per_entry") if distance is None else distance
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distance {distance!r}; expected 'squared' (||h_a - h_b||^2) or "
                         "'per_entry' (the same divided by the size of one representation).")
    if form == "normalised" and distance != "per_entry":
        raise ValueError("form='normalised' clips the per-entry distance to [eps, 1]; use "
                         "distance='per_entry' (or None) with it.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")
    return {"form": form, "eps": float(eps), "distance": distance, "reduction": reduction}


def check_weights(lam, beta) -> None:
    """Raise ``ValueError`` unless ``lam`` and ``beta`` are numbers ``>= 0``."""
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lam, beta))
    if not ok or lam < 0 or beta < 0:
        raise ValueError(f"lam and beta must be numbers >= 0, got lam={lam!r}, beta={beta!r}.")


def pair_distances(h: torch.Tensor, pairs: torch.Tensor, distance: str = "squared") -> torch.Tensor:
    r"""``[P]`` distances :math:`d_{ij}` as :math:`L_c` measures them, for the index pairs ``pairs``
    (``[P, 2]``) of ``h`` (``[b, ...]``, flattened per sample): ``"squared"``
    :math:`\lVert h_i-h_j\rVert_2^2` or ``"per_entry"`` the same divided by :math:`D_h`.
    (No square root is taken, so the gradient is finite where two representations coincide.)"""
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.")
    flat = h.reshape(h.shape[0], -1)
    d = (flat[pairs[:, 0]] - flat[pairs[:, 1]]).pow(2).sum(1)
    return d / flat.shape[1] if distance == "per_entry" else d


def pair_penalty(d, lam: float, beta: float, eps: float | None = None, form: str = DEFAULT_FORM):
    r"""One pair's penalty as a function of its distance ``d`` (a number or tensor, before any
    clipping): ``"raw"`` :math:`\lambda d + \beta/(d+\varepsilon)`, ``"normalised"``
    :math:`\lambda(\bar d + \beta/\bar d)` with :math:`\bar d = \operatorname{clip}(d, \varepsilon, 1)`."""
    check_weights(lam, beta)
    eps = resolve_options(form, eps)["eps"]
    if form == "raw":
        return lam * d + beta / (d + eps)
    d = d.clamp(eps, 1.0) if torch.is_tensor(d) else min(max(float(d), eps), 1.0)
    return lam * (d + beta / d)


def consistency_loss(h: torch.Tensor, labels: torch.Tensor, lam: float, beta: float,
                     eps: float | None = None, reduction: str = "sum", form: str = DEFAULT_FORM,
                     distance: str | None = None, pairs: str = "across") -> torch.Tensor:
    r"""MixCon's :math:`L_c` on a batch (see the module docstring). Differentiable scalar tensor.

    Parameters
    ----------
    h : ``[b, ...]`` representations at the cut (flattened per sample).
    labels : ``[b]`` integer class labels; the batch needs at least two classes.
    lam, beta : :math:`\lambda\ge0` and :math:`\beta\ge0`.
    eps : :math:`\varepsilon\in(0,1)`; ``None`` = the form's default (0.05 raw, 0.01 normalised).
    reduction : ``"sum"`` over pairs (the paper's Eq. (1)) or ``"mean"``.
    form : ``"raw"`` (default) or ``"normalised"``.
    distance : ``"squared"`` or ``"per_entry"``; ``None`` = the form's own (see module docstring).
    pairs : ``"across"`` (MixCon's :math:`S`, different classes) or ``"within"`` (same class).
    """
    if not torch.is_tensor(h) or h.ndim < 2:
        raise ValueError(f"h must be a tensor [b, ...] of representations, got "
                         f"{tuple(h.shape) if torch.is_tensor(h) else type(h).__name__}.")
    if not torch.is_tensor(labels) or labels.shape != (h.shape[0],):
        raise ValueError(f"labels must be a tensor of shape [{h.shape[0]}] (one per representation).")
    check_weights(lam, beta)
    opts = resolve_options(form, eps, distance, reduction)
    index = pair_index(labels, pairs).to(h.device)
    penalty = pair_penalty(pair_distances(h, index, opts["distance"]), lam, beta, opts["eps"], form)
    return penalty.sum() if reduction == "sum" else penalty.mean()


def pair_index(labels: torch.Tensor, pairs: str = "across") -> torch.Tensor:
    """The ``[P, 2]`` index pairs :math:`L_c` penalises for a batch with ``labels``: ``"across"``
    (:func:`~mixcon_lite.separability.mixcon_pairs`; needs two classes) or ``"within"``
    (:func:`~mixcon_lite.separability.within_class_pairs`; needs a class seen twice)."""
    if pairs not in PAIR_SETS:
        raise ValueError(f"Unknown pairs {pairs!r}; expected 'across' (MixCon: different classes) or "
                         "'within' (the same class, the paper's App. D.1 alternative).")
    return mixcon_pairs(labels) if pairs == "across" else within_class_pairs(labels)


def optimal_pair_distance(lam: float, beta: float, eps: float | None = None,
                          form: str = DEFAULT_FORM) -> float:
    r"""The distance :math:`d^*` (in the units :math:`L_c` measures :math:`d_{ij}` in) at which one
    pair's penalty is smallest; needs :math:`\lambda > 0`.

    ``"raw"``: :math:`\max(0, \sqrt{\beta/\lambda}-\varepsilon)`. ``"normalised"``:
    :math:`\sqrt\beta` clipped to :math:`[\varepsilon, 1]`, the same for every :math:`\lambda>0`.
    For the squared distance the Euclidean pair distance there is :math:`\sqrt{d^*}`."""
    check_weights(lam, beta)
    if lam <= 0:
        raise ValueError(f"Need lam > 0 for a finite minimiser, got lam={lam!r}.")
    eps = resolve_options(form, eps)["eps"]
    if form == "raw":
        return max(0.0, math.sqrt(beta / lam) - eps)
    return min(max(math.sqrt(beta), eps), 1.0)


def mixcon_loss_fn(cut: str, lam: float, beta: float, eps: float | None = None,
                   reduction: str = "sum", form: str = DEFAULT_FORM, distance: str | None = None,
                   pairs: str = "across"):
    """A ``loss_fn(model, x, y)`` for :func:`mixcon_lite.train.train`: cross-entropy of the logits plus
    :func:`consistency_loss` of the representation after ``cut`` (one forward pass for both).
    Batches without a pair of the kind asked for (a single class for ``"across"``, no repeated class
    for ``"within"``) contribute only the cross-entropy. The returned function carries ``cut``,
    ``lam``, ``beta``, ``pairs`` and the resolved ``eps``, ``reduction``, ``form``, ``distance``."""
    check_weights(lam, beta)
    opts = resolve_options(form, eps, distance, reduction)
    if pairs not in PAIR_SETS:
        pair_index(torch.zeros(2, dtype=torch.long), pairs)        # raises the clear error

    def loss_fn(model: SplitNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h, logits = model.forward_with(x, cut)
        loss = F.cross_entropy(logits, y)
        n_classes = torch.unique(y).numel()
        has_pairs = n_classes > 1 if pairs == "across" else n_classes < len(y)
        if has_pairs and (lam > 0 or beta > 0):
            loss = loss + consistency_loss(h, y, lam, beta, pairs=pairs, **opts)
        return loss

    loss_fn.cut, loss_fn.lam, loss_fn.beta, loss_fn.pairs = cut, lam, beta, pairs
    for key, value in opts.items():
        setattr(loss_fn, key, value)
    return loss_fn
