r"""Feature inversion: recover an input from the representation a client sends (split learning).

White-box *regularised maximum likelihood* (rMLE, He, Zhang & Lee 2019): knowing the client's
layers :math:`f` (here ``model.forward_to(., cut)``) and an observed representation :math:`h`, solve

.. math::  \hat x = \arg\min_{x \in [0,1]^{C\times H\times W}}
           \lVert f(x) - h\rVert_2^2 + \lambda_{TV}\,\mathrm{TV}(x)

by gradient descent, projecting onto the pixel box after every step. The feature term is the
paper's *sum* of squares with ``reduction="sum"``; ``reduction="mean"`` divides it by the size
:math:`|h|` of one representation. The minimiser is the same without a prior, but the gradient
is :math:`|h|` times smaller with ``"mean"``, so an SGD step size (the paper's App. C uses
lr 10 on the sum) means something different under each; Adam is nearly insensitive to the scale.
A batch of representations is inverted at once; each image's objective involves only its own
pixels, so the batch is just many independent problems solved together.
"""
from __future__ import annotations

import torch

from ..models import SplitNet
from ..config import resolve_seed
from ..utils import positive_int, progress_bar


def total_variation(x: torch.Tensor) -> torch.Tensor:
    r"""Anisotropic total variation per image: mean :math:`|x_{i+1,j}-x_{i,j}|` plus mean
    :math:`|x_{i,j+1}-x_{i,j}|` over channels and pixels. ``x``: ``[N, C, H, W]`` -> ``[N]``."""
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(f"total_variation expects a tensor of shape [N, C, H, W], got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}.")
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


REDUCTIONS = ("mean", "sum")


def check_reduction(reduction) -> str:
    """Return ``reduction`` if it is ``"mean"`` or ``"sum"``; raise ``ValueError`` otherwise."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; expected 'sum' (the paper's "
                         "||f(x) - h||^2) or 'mean' (the same divided by the size of h).")
    return reduction


def tv_weights(tv_weight, n: int) -> torch.Tensor | float:
    """``tv_weight`` checked: a float ``>= 0``, or one weight ``>= 0`` per image (a tensor ``[n]``,
    e.g. to grid-search :math:`\\lambda_{TV}` in one batch). Raises ``ValueError`` otherwise."""
    if torch.is_tensor(tv_weight):
        if tv_weight.shape != (n,) or not torch.isfinite(tv_weight).all() or (tv_weight < 0).any():
            raise ValueError(f"tv_weight as a tensor needs shape [{n}] (one weight per image) with "
                             f"finite values >= 0, got shape {tuple(tv_weight.shape)}.")
        return tv_weight.detach().float()
    try:
        value = float(tv_weight)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"tv_weight must be a number >= 0 or a tensor [{n}], got {tv_weight!r}.")
    return value


DISTANCES = ("squared", "cosine")


def rmle_objective(model: SplitNet, cut: str, x: torch.Tensor, h: torch.Tensor,
                   tv_weight: float = 0.0, return_feature_error: bool = False,
                   reduction: str = "mean", distance: str = "squared"):
    r"""Per-sample rMLE objective, shape ``[N]``: the feature term plus
    :math:`\lambda_{TV}\mathrm{TV}(x)` (TV only when some ``tv_weight > 0``, image inputs;
    ``tv_weight`` a float or a tensor ``[N]`` with one weight per image).

    ``reduction="sum"``: feature term :math:`\lVert f(x)-h\rVert_2^2` (the paper's objective);
    ``"mean"`` (default): the same divided by :math:`|h|`, the number of entries of one
    representation. ``distance="cosine"`` replaces the feature term by the scale-free
    :math:`1 - \cos(f(x), h)` (``reduction`` then does not matter), which a defence that shrinks the
    representation cannot rescale away. With ``return_feature_error`` also the feature term alone.
    """
    check_reduction(reduction)
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.")
    tv_weight = tv_weights(tv_weight, len(x))
    f = model.forward_to(x, cut)
    if distance == "cosine":
        feat_err = 1 - torch.nn.functional.cosine_similarity(f.flatten(1), h.flatten(1), dim=1, eps=1e-12)
    else:
        sq = (f - h).pow(2).flatten(1)
        feat_err = sq.sum(1) if reduction == "sum" else sq.mean(1)
    use_tv = bool((tv_weight > 0).any()) if torch.is_tensor(tv_weight) else tv_weight > 0
    loss = feat_err + tv_weight * total_variation(x) if use_tv else feat_err
    return (loss, feat_err) if return_feature_error else loss


def invert(model: SplitNet, cut: str, h: torch.Tensor, steps: int = 500, lr: float = 0.05,
           tv_weight: float = 0.0, optimizer: str = "adam", init: str = "auto", box="auto",
           weight_decay: float = 0.0, seed: int | None = None, progress: bool | None = None,
           return_history: bool = False, reduction: str = "mean", distance: str = "squared",
           restarts: int = 1):
    """Recover inputs from representations ``h`` taken after block ``cut`` of ``model`` (white-box rMLE).

    Parameters
    ----------
    model : a :class:`~mixcon_lite.models.SplitNet`; it is put in eval mode and not changed.
    cut : block name whose output ``h`` is (``model.block_names`` lists them).
    h : ``[N, *model.representation_shape(cut)]`` observed representations.
    steps, lr : iterations and step size. ``optimizer``: ``"adam"`` or ``"sgd"`` (the paper's App. C
        uses SGD with lr 10 on the sum-of-squares objective, i.e. ``reduction="sum"``).
    reduction : feature term ``"sum"`` (:math:`\\lVert f(x)-h\\rVert^2`, the paper's) or ``"mean"``
        (default; the sum divided by :math:`|h|`, which divides every SGD step by :math:`|h|`).
    tv_weight : :math:`\\lambda_{TV}` (0 = plain MLE), or a tensor ``[N]``: one weight per image
        (the images are independent problems, so this grid-searches the weight in one batch).
    init : ``"constant"`` (all entries 0.5), ``"uniform"`` (U[0,1], seeded), ``"normal"`` (N(0,1), seeded),
        ``"zeros"``, or ``"auto"``: ``"constant"`` for images, ``"zeros"`` for vectors.
    box : ``(low, high)`` to clamp the estimate to after each step, ``None`` for no clamping, or ``"auto"``:
        ``(0, 1)`` for images, ``None`` for vectors.
    weight_decay : the optimiser's L2 penalty on the estimate (the paper's "decayed weight").
    distance : feature term ``"squared"`` (above) or ``"cosine"`` (:math:`1-\cos(f(x), h)`, scale-free;
        see :func:`rmle_objective`).
    restarts : starts per image, all optimised in one batch: the first from ``init``, the others from
        U[0, 1] noise (seeded). Each image keeps the start whose final relative feature error
        :math:`\lVert f(\hat x)-h\rVert/\lVert h\rVert` is smallest, a choice the attacker can make
        without seeing the image.

    Returns ``x_hat`` ``[N, *model.input_shape]`` in [0, 1] (detached); with ``return_history`` also
    a dict ``{"loss": [...], "feature_mse": [...]}`` of batch means per step (``loss`` in the chosen
    reduction; ``feature_mse`` always the mean squared feature error per entry, so runs with either
    reduction compare; with ``distance="cosine"`` it is :math:`1-\cos`), and with ``restarts > 1``
    ``start``, the start each image kept (0 = ``init``).
    """
    seed = resolve_seed(seed)
    if not isinstance(model, SplitNet):
        raise ValueError("invert needs a mixcon_lite SplitNet (e.g. LeNet5) so it knows where the cut is.")
    expected = model.representation_shape(cut)  # also validates the cut name
    if not torch.is_tensor(h) or tuple(h.shape[1:]) != expected or h.shape[0] == 0:
        got = tuple(h.shape) if torch.is_tensor(h) else type(h).__name__
        raise ValueError(f"h must have shape [N, {', '.join(map(str, expected))}] for cut {cut!r}, got {got}.")
    steps = positive_int(steps, "steps")
    restarts = positive_int(restarts, "restarts")
    check_reduction(reduction)
    if distance not in DISTANCES:
        raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.")
    size_h = h[0].numel()
    if not lr > 0:
        raise ValueError(f"Need lr > 0, got lr={lr!r}.")
    tv_weight = tv_weights(tv_weight, h.shape[0])
    images = len(model.input_shape) == 3
    if not images and (bool((tv_weight > 0).any()) if torch.is_tensor(tv_weight) else tv_weight > 0):
        raise ValueError(f"tv_weight > 0 needs image inputs [C, H, W]; this model takes {model.input_shape}. "
                         "Use tv_weight=0 for vector inputs.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    h = h.detach().to(device)
    if torch.is_tensor(tv_weight):
        tv_weight = tv_weight.to(device)
    n_images = h.shape[0]
    if restarts > 1:
        h = h.repeat(restarts, *([1] * (h.ndim - 1)))
        if torch.is_tensor(tv_weight):
            tv_weight = tv_weight.repeat(restarts)
    shape = (h.shape[0], *model.input_shape)
    if init == "auto":
        init = "constant" if images else "zeros"
    gen = torch.Generator().manual_seed(int(seed))
    if init == "constant":
        x = torch.full(shape, 0.5, device=device)
    elif init == "uniform":
        x = torch.rand(shape, generator=gen).to(device)
    elif init == "normal":
        x = torch.randn(shape, generator=gen).to(device)
    elif init == "zeros":
        x = torch.zeros(shape, device=device)
    else:
        raise ValueError(f"Unknown init {init!r}; expected 'auto', 'constant', 'uniform', 'normal' or 'zeros'.")
    if restarts > 1:
        x[n_images:] = torch.rand((len(x) - n_images, *model.input_shape), generator=gen).to(device)
    if box == "auto":
        box = (0.0, 1.0) if images else None
    if box is not None and (len(box) != 2 or not box[0] < box[1]):
        raise ValueError(f"box must be (low, high) with low < high, None or 'auto'; got {box!r}.")
    x.requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([x], lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected 'adam' or 'sgd'.")
    history = {"loss": [], "feature_mse": []}
    for _ in (bar := progress_bar(range(steps), desc="inverting", progress=progress)):
        loss, feat_err = rmle_objective(model, cut, x, h, tv_weight, return_feature_error=True,
                                        reduction=reduction, distance=distance)  # [N] each
        if reduction == "sum" and distance == "squared":
            feat_err = feat_err / size_h
        grad, = torch.autograd.grad(loss.sum(), x)  # per-sample objectives are independent
        opt.zero_grad(set_to_none=True)
        x.grad = grad
        opt.step()
        if box is not None:
            with torch.no_grad():
                x.clamp_(*box)
        history["loss"].append(loss.mean().item())
        history["feature_mse"].append(feat_err.mean().item())
        if hasattr(bar, "set_postfix") and len(history["loss"]) % 25 == 0:
            bar.set_postfix(feature_mse=f"{history['feature_mse'][-1]:.2e}")
    x_hat = x.detach()
    if restarts > 1:
        with torch.no_grad():
            err = ((model.forward_to(x_hat, cut) - h).flatten(1).norm(dim=1)
                   / h.flatten(1).norm(dim=1).clamp_min(1e-12)).reshape(restarts, n_images)
        best = err.argmin(0)
        x_hat = x_hat.reshape(restarts, n_images, *model.input_shape)[best, torch.arange(n_images)]
        history["start"] = best.tolist()
    model.train(was_training)
    return (x_hat, history) if return_history else x_hat


# ------------------------------------------------------------- black-box: learned decoders -------
class Decoder(torch.nn.Module):
    """An MLP from a representation back to an image: flatten -> [Linear -> ReLU] x 2 -> Linear -> sigmoid.

    ``in_shape``: representation shape (without batch); ``out_shape``: image shape, e.g. ``(1, 28, 28)``.
    """

    def __init__(self, in_shape, out_shape, hidden: int = 512):
        super().__init__()
        hidden = positive_int(hidden, "hidden")
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        d_in = int(torch.tensor(self.in_shape).prod())
        d_out = int(torch.tensor(self.out_shape).prod())
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d_in, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, d_out), torch.nn.Sigmoid())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if tuple(h.shape[1:]) != self.in_shape:
            raise ValueError(f"Decoder expects representations [N, {', '.join(map(str, self.in_shape))}], "
                             f"got {tuple(h.shape)}.")
        return self.net(h).view(h.shape[0], *self.out_shape)


class LabelDecoder(Decoder):
    """A :class:`Decoder` that also sees the label the server's own layers predict from ``h``.

    In split learning the server computes the logits from the representation it receives
    (``model.forward_from(h, cut)``), so it knows the predicted class of every image without asking
    the client. A defence that hides class differences inside ``h`` (MixCon's :math:`L_c` pulls
    pairs of different classes together) leaves that prediction intact; this decoder appends its
    one-hot code to the flattened representation. ``classify`` maps ``h`` to logits (frozen)."""

    def __init__(self, in_shape, out_shape, classify, n_classes: int, hidden: int = 512):
        n_classes = positive_int(n_classes, "n_classes")
        d_in = int(torch.tensor(tuple(in_shape)).prod())
        super().__init__((d_in + n_classes,), out_shape, hidden)
        self.in_shape, self.n_classes = tuple(in_shape), n_classes
        self.classify = classify

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if tuple(h.shape[1:]) != self.in_shape:
            raise ValueError(f"Decoder expects representations [N, {', '.join(map(str, self.in_shape))}], "
                             f"got {tuple(h.shape)}.")
        with torch.no_grad():
            label = self.classify(h).argmax(1)
        code = torch.nn.functional.one_hot(label, self.n_classes).to(h.dtype)
        return self.net(torch.cat([h.flatten(1), code], 1)).view(h.shape[0], *self.out_shape)


class Critic(torch.nn.Module):
    """A small convolutional discriminator for the adversarial decoder: images ``[N, C, H, W]`` ->
    one logit each (real image vs decoded). Two strided 4x4 convolutions (32, 64 channels, leaky
    ReLU), global average pooling, a linear layer. Our architecture."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 32, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(32, 64, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def train_decoder(model: SplitNet, cut: str, x_aux: torch.Tensor, epochs: int = 5, lr: float = 1e-3,
                  batch_size: int = 128, hidden: int = 512, seed: int | None = None, adversarial: float = 0.0,
                  progress: bool | None = None, condition: str | None = None) -> Decoder:
    r"""The black-box attack: query the client's layers with the attacker's own images ``x_aux``
    (``[N, *model.input_shape]``, same distribution, disjoint from the victims'), and fit a
    :class:`Decoder` from representations back to images. ``model`` is only queried
    (``forward_to`` under ``no_grad``), never differentiated. Returns the trained decoder in eval mode.

    With ``adversarial = 0`` (default) the decoder minimises the pixel MSE with Adam. With
    ``adversarial = w > 0`` it is trained as the generator of a GAN with a supervised term, as the
    MixCon paper's App. D.2 describes: a :class:`Critic` learns to tell the attacker's images from
    decoded ones (binary cross-entropy), and the decoder minimises
    :math:`\mathrm{MSE}(G(h), x) + w\,\mathrm{BCE}(D(G(h)), \text{real})`, the two updated in
    turn on every batch, both with Adam at ``lr`` and betas (0.5, 0.999). The paper's Eq. (7) is
    not legible to us; this form, the critic and ``w`` are ours.

    ``condition="label"`` trains a :class:`LabelDecoder` instead: it also sees the class that the
    server's own layers predict from each representation (an attacker who knows that MixCon hides
    class differences in ``h``, and that the server predicts the class anyway).
    """
    seed = resolve_seed(seed)
    if not isinstance(model, SplitNet):
        raise ValueError("train_decoder needs a mixcon_lite SplitNet so it can query the cut.")
    model.check_input(x_aux)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    adversarial = float(adversarial)
    if not adversarial >= 0 or adversarial == float("inf"):
        raise ValueError(f"adversarial is the weight of the GAN term: a finite number >= 0, got "
                         f"{adversarial!r}.")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        h_aux = torch.cat([model.forward_to(x_aux[i:i + 1000], cut) for i in range(0, len(x_aux), 1000)])
    model.train(was_training)
    if condition not in (None, "label"):
        raise ValueError(f"Unknown condition {condition!r}; expected None (the representation only) or "
                         "'label' (also the class the server's layers predict).")
    torch.manual_seed(int(seed))
    if condition == "label":
        def classify(h):
            return model.forward_from(h, cut)

        with torch.no_grad():
            n_classes = classify(h_aux[:1]).shape[1]
        decoder = LabelDecoder(h_aux.shape[1:], x_aux.shape[1:], classify, n_classes, hidden)
    else:
        decoder = Decoder(h_aux.shape[1:], x_aux.shape[1:], hidden)
    betas = (0.5, 0.999) if adversarial > 0 else (0.9, 0.999)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr, betas=betas)
    if adversarial > 0:
        critic = Critic(x_aux.shape[1])
        opt_c = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
    g = torch.Generator().manual_seed(int(seed))
    n_batches = (len(x_aux) + batch_size - 1) // batch_size
    bar = progress_bar(total=epochs * n_batches, desc=f"decoder for {cut}", progress=progress)
    for _ in range(epochs):
        order = torch.randperm(len(x_aux), generator=g)
        for i in range(0, len(x_aux), batch_size):
            idx = order[i:i + batch_size]
            fake = decoder(h_aux[idx])
            loss = (fake - x_aux[idx]).pow(2).mean()
            if adversarial > 0:
                real_logit, fake_logit = critic(x_aux[idx]), critic(fake.detach())
                loss_c = (bce(real_logit, torch.ones_like(real_logit))
                          + bce(fake_logit, torch.zeros_like(fake_logit)))
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                opt_c.step()
                fooled = critic(fake)
                loss = loss + adversarial * bce(fooled, torch.ones_like(fooled))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
    bar.close()
    return decoder.eval()
