r"""Labels from a shared gradient (chapters 06-07): the output layer's weight and bias gradients say
which classes a batch holds.

* :func:`final_linear` — the output layer and the index of its weight gradient.
* :func:`idlg_label` — iDLG's sign rule for a batch of one.
* :func:`restore_labels` — GradInversion's row-minimum rule for a batch with distinct labels.
* :func:`count_labels` with :func:`label_calibration` — a count-aware label multiset when labels
  repeat.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..config import resolve_seed
from ..utils import positive_int
from .matching import check_gradients


def final_linear(model: nn.Module) -> tuple[nn.Linear, int]:
    """The model's last ``nn.Linear`` (last in ``model.modules()`` order, which for the usual
    classifiers is the output layer) and the position of its weight in ``model.parameters()``.
    ``ValueError`` if the model has no ``nn.Linear``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("The label tricks read the gradient of the final nn.Linear layer (the classifier's "
                         "output layer), but this model has no nn.Linear.")
    layer = linears[-1]
    index = next(i for i, p in enumerate(model.parameters()) if p is layer.weight)
    return layer, index


def idlg_label(model: nn.Module, gradients) -> int:
    r"""iDLG's label (Zhao et al. 2020) of a batch of **one** image, read off the shared gradient.

    For logits :math:`z = Wa + c` and cross-entropy with a one-hot label :math:`y`,
    :math:`\partial\ell/\partial z_i = p_i - y_i`, negative only at the true class, and
    :math:`\partial\ell/\partial W_{i,:} = (p_i - y_i)\,a^\top`. If :math:`a \ge 0` (sigmoid or
    ReLU outputs before the last linear layer), the row sums :math:`(p_i - y_i)\sum_j a_j` are
    negative exactly at the true class, so the label is the row with the smallest sum.

    Valid when: the loss is cross-entropy against a one-hot label; the activations entering the
    final ``nn.Linear`` are non-negative; the batch holds one image (for ``b > 1`` the rows mix
    several images, see :func:`restore_labels`). The bias gradient alone,
    :math:`p_i - y_i`, gives the label without the sign condition on :math:`a`; iDLG uses the weights.
    Raises ``ValueError`` if the gradients do not match the model or it has no ``nn.Linear``.
    """
    grads = check_gradients(model, gradients)
    _, index = final_linear(model)
    return int(torch.argmin(grads[index].reshape(grads[index].shape[0], -1).sum(1)))


def restore_labels(model: nn.Module, gradients, n: int) -> torch.Tensor:
    r"""GradInversion's batch label restoration for a batch of ``n`` images with **distinct** labels.

    Let the output layer be :math:`z = Wa + c` with :math:`a \ge 0` (the penultimate activations
    after a ReLU, pooling of ReLUs, or a sigmoid). For the mean cross-entropy over the batch,
    :math:`\partial L/\partial W_{k,m} = \frac1b\sum_i (p_{i,k} - [y_i = k])\,a_{i,m}`. A class
    :math:`k` absent from the batch has only terms :math:`p_{i,k}a_{i,m} \ge 0`, so its row of the
    weight gradient has minimum :math:`\ge 0`; a class present in the batch gets the negative term
    :math:`(p_{i,k}-1)a_{i,m}` of its own image, which dominates at the features that image
    activates most, so its row minimum is negative. Sorting the per-row minima in ascending order
    and keeping the first ``n`` gives the batch's classes. (iDLG's row *sum* mixes the one negative
    term with all other images' positive ones, and fails as ``n`` grows.)

    What breaks it: **repeated labels.** If a class occurs twice, the batch has fewer than ``n``
    classes, the ``n`` smallest minima then include absent classes, and the repeated class is
    returned once: the multiset is wrong (the set of present classes is still found when all of
    their rows are negative). It also fails when an image is classified with near certainty
    (:math:`p_{i,y_i}\to 1` leaves no negative term) or when the penultimate activations can be
    negative. When the softmax saturates in float32 (:math:`p_{i,y_i} = 1` exactly) the true
    class's row is exactly 0, as an absent class's minimum can be; ties are broken by the row sum,
    which is positive for an absent class and 0 for the saturated one.

    Parameters
    ----------
    model : any classifier whose output layer is its last ``nn.Linear`` (see
        :func:`final_linear`).
    gradients : the shared gradients, one per parameter in ``model.parameters()`` order.
    n : the batch size ``b``; at most the number of classes.

    Returns ``LongTensor[n]``: the recovered classes, sorted ascending (a batch's mean gradient
    does not reveal the order of its images).
    """
    grads = check_gradients(model, gradients)
    n = positive_int(n, "n")
    layer, index = final_linear(model)
    if n > layer.out_features:
        raise ValueError(f"restore_labels recovers n distinct labels, but n={n} exceeds the "
                         f"{layer.out_features} classes of the output layer: a batch that large must repeat "
                         "labels. Restore at most that many classes, or give the labels.")
    w = grads[index].detach().double()
    row_min, row_sum = w.min(dim=1).values, w.sum(dim=1)
    # ties at 0 (a saturated softmax makes the true class's row exactly 0, as an absent class's
    # minimum can be): the row sum breaks them, positive for an absent class, 0 for the true one
    order = np.lexsort((row_sum.cpu().numpy(), row_min.cpu().numpy()))
    return torch.sort(torch.as_tensor(order[:n].copy())).values.long()


def label_calibration(model: nn.Module, x_aux: torch.Tensor, y_aux: torch.Tensor, n: int,
                      seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`count_labels` needs to know about the network, measured on the attacker's own
    labelled images: per class :math:`k`, ``confidence[k]`` = the mean softmax probability of
    :math:`k` on images of class :math:`k`, and ``leak[k]`` = its mean on images of other classes.
    The images are run through a copy of the model in its current mode, in batches of ``n``
    (BatchNorm in train mode normalises with each batch's statistics, as the client's did)."""
    seed = resolve_seed(seed)
    n = positive_int(n, "n")
    if not torch.is_tensor(x_aux) or not torch.is_tensor(y_aux) or len(x_aux) != len(y_aux) or len(x_aux) < 2 * n:
        raise ValueError(f"label_calibration needs the attacker's images x_aux [N, ...] and labels y_aux [N] with "
                         f"N >= 2n = {2 * n}.")
    probe = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(x_aux), generator=gen)
    order = order[:len(order) - len(order) % n]
    probs = []
    with torch.no_grad():
        for chunk in order.view(-1, n):
            probs.append(probe(x_aux[chunk]).softmax(1))
    p = torch.cat(probs).double()
    y = y_aux[order].long()
    k = p.shape[1]
    confidence = torch.stack([p[y == c, c].mean() if (y == c).any() else p[:, c].mean() for c in range(k)])
    leak = torch.stack([p[y != c, c].mean() for c in range(k)])
    return confidence, leak


def count_labels(model: nn.Module, gradients, n: int, calibration) -> torch.Tensor:
    r"""A batch's label *multiset* when labels may repeat (count-aware; ours, in the spirit of the
    bias-based strategies of later work).

    Two facts of the output layer :math:`z = Wa + c` under the mean cross-entropy:

    * **which classes are present**: a class absent from the batch has a weight-gradient row with
      only non-negative entries (see :func:`restore_labels`), so the present classes are the rows
      whose minimum is negative;
    * **how many of each**: the bias gradient is
      :math:`\partial L/\partial c_k = \frac1b\big(\sum_i p_{i,k} - n_k\big)`, with :math:`n_k`
      the count of class :math:`k`. The attacker does not know the private :math:`p_{i,k}`; it
      models :math:`\sum_i p_{i,k} \approx n_k\,\mathrm{conf}_k + (b - n_k)\,\mathrm{leak}_k`
      with both rates measured on its own images (:func:`label_calibration`), which gives
      :math:`n_k \approx b(\mathrm{leak}_k - \partial L/\partial c_k) / (1 - \mathrm{conf}_k + \mathrm{leak}_k)`.

    Every present class gets at least one image, the estimates are rounded by largest remainder so
    that the counts sum to ``n``. ``calibration``: ``(confidence, leak)`` from
    :func:`label_calibration`. Returns ``LongTensor[n]``, sorted ascending. Needs the output
    layer's bias; raises ``ValueError`` otherwise."""
    grads = check_gradients(model, gradients)
    n = positive_int(n, "n")
    layer, index = final_linear(model)
    if layer.bias is None:
        raise ValueError("count_labels reads the output layer's bias gradient, but its nn.Linear has no bias.")
    confidence, leak = (torch.as_tensor(t, dtype=torch.float64) for t in calibration)
    k = layer.out_features
    if confidence.shape != (k,) or leak.shape != (k,):
        raise ValueError(f"calibration must be (confidence [{k}], leak [{k}]) from label_calibration.")
    w, bias = grads[index].detach().double(), grads[index + 1].detach().double()
    # present: a negative row minimum, or (a saturated softmax zeroes the true class's row) a
    # non-positive bias gradient, which an absent class's strictly positive p_{i,k} cannot give
    present = (w.min(dim=1).values < 0) | (bias <= 0)
    estimate = n * (leak - bias) / (1 - confidence + leak).clamp_min(1e-6)
    estimate = torch.where(present, estimate.clamp_min(1.0), torch.zeros_like(estimate))
    if not bool(present.any()):
        estimate = torch.zeros_like(estimate)
        estimate[int(w.min(dim=1).values.argmin())] = 1.0
    counts = torch.floor(estimate).long()
    counts = torch.where(present, counts.clamp_min(1), counts)
    while int(counts.sum()) > n:                         # too many: drop from the smallest remainders
        over = torch.where(counts > torch.where(present, 1, 0), estimate - counts, torch.full_like(estimate, math.inf))
        counts[int(over.argmin())] -= 1
    remainder = estimate - counts
    while int(counts.sum()) < n:                         # too few: add to the largest remainders
        c = int(torch.where(present | (counts > 0), remainder, torch.full_like(remainder, -math.inf)).argmax())
        counts[c] += 1
        remainder[c] -= 1
    return torch.repeat_interleave(torch.arange(k), counts).long()
