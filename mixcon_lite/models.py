"""Models with a named *cut*: the split-learning view used throughout the course.

Every model here is a :class:`SplitNet`: an ordered list of named blocks. The client computes the
blocks up to and including the cut (:meth:`SplitNet.forward_to`) and sends that representation;
the server computes the rest (:meth:`SplitNet.forward_from`).

* :class:`LeNet5` (blocks ``block1, block2, fc1, fc2, logits``) for 28x28 images.
* :class:`MLP` (blocks ``fc1, ..., fcK, logits``) for vectors, e.g. the MixCon synthetic task.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .config import resolve_seed

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {tuple(ACTIVATIONS)}.")
    return ACTIVATIONS[key]()


class SplitNet(nn.Module):
    """A sequence of named blocks that can be cut after any of them.

    Parameters
    ----------
    blocks : ordered mapping name -> module.
    input_shape : shape of one input without the batch dimension (e.g. ``(1, 28, 28)``).
    """

    def __init__(self, blocks: "OrderedDict[str, nn.Module]", input_shape: tuple[int, ...]):
        super().__init__()
        if not blocks:
            raise ValueError("A SplitNet needs at least one block.")
        self.blocks = nn.ModuleDict(blocks)
        self.input_shape = tuple(int(s) for s in input_shape)

    @property
    def block_names(self) -> list[str]:
        """Names of the blocks, in order; any of them is a valid cut."""
        return list(self.blocks.keys())

    def cut_index(self, name: str) -> int:
        """Position of block ``name`` in :attr:`block_names`; ``ValueError`` for an unknown cut."""
        names = self.block_names
        if name not in names:
            raise ValueError(f"Unknown cut {name!r}; this model's blocks are {names}.")
        return names.index(name)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a batch ``[B, *input_shape]``."""
        if not torch.is_tensor(x) or tuple(x.shape[1:]) != self.input_shape:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"Expected a batch of shape [B, {', '.join(map(str, self.input_shape))}], got {got}.")

    def forward_to(self, x: torch.Tensor, cut: str) -> torch.Tensor:
        """The client's side: the representation after block ``cut`` (inclusive)."""
        stop = self.cut_index(cut)
        self.check_input(x)
        for i, block in enumerate(self.blocks.values()):
            x = block(x)
            if i == stop:
                break
        return x

    def forward_from(self, h: torch.Tensor, cut: str) -> torch.Tensor:
        """The server's side: logits from the representation ``h`` taken after block ``cut``."""
        start = self.cut_index(cut)
        for block in list(self.blocks.values())[start + 1:]:
            h = block(h)
        return h

    def forward_with(self, x: torch.Tensor, cut: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at once: ``(representation after cut, logits)`` in one pass."""
        h = self.forward_to(x, cut)
        return h, self.forward_from(h, cut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.forward_to(x, self.block_names[0]), self.block_names[0])

    def representation_shape(self, cut: str) -> tuple[int, ...]:
        """Shape (without batch) of the representation after ``cut``."""
        with torch.no_grad():
            return tuple(self.forward_to(torch.zeros(1, *self.input_shape), cut).shape[1:])


class LeNet5(SplitNet):
    """LeNet-5 (LeCun et al.) for ``in_channels`` x 28 x 28 images, as in the MixCon experiments.

    ``block1``: conv 5x5 (pad 2) -> act -> max-pool 2   -> ``[6, 14, 14]``
    ``block2``: conv 5x5 -> act -> max-pool 2           -> ``[16, 5, 5]``
    ``fc1``: flatten -> linear 400->120 -> act; ``fc2``: 120->84 -> act; ``logits``: 84->num_classes.

    ``batch_norm=True`` (chapter 10) puts a BatchNorm layer after each convolution and each hidden
    linear layer, before the activation (``BatchNorm2d(6)``, ``BatchNorm2d(16)``, ``BatchNorm1d(120)``,
    ``BatchNorm1d(84)``): their running statistics are what BN-statistics synthesis matches.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, activation: str = "relu",
                 batch_norm: bool = False):
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"Need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}.")
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False, got {batch_norm!r}.")
        act = lambda: _activation(activation)  # noqa: E731
        bn2 = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())  # noqa: E731
        bn1 = (lambda c: nn.BatchNorm1d(c)) if batch_norm else (lambda c: nn.Identity())  # noqa: E731
        blocks = OrderedDict(
            block1=nn.Sequential(*_drop_identity([nn.Conv2d(in_channels, 6, 5, padding=2), bn2(6), act(),
                                                  nn.MaxPool2d(2)])),
            block2=nn.Sequential(*_drop_identity([nn.Conv2d(6, 16, 5), bn2(16), act(), nn.MaxPool2d(2)])),
            fc1=nn.Sequential(*_drop_identity([nn.Flatten(), nn.Linear(16 * 5 * 5, 120), bn1(120), act()])),
            fc2=nn.Sequential(*_drop_identity([nn.Linear(120, 84), bn1(84), act()])),
            logits=nn.Linear(84, num_classes),
        )
        super().__init__(blocks, (in_channels, 28, 28))


def _drop_identity(layers: list) -> list:
    """Leave out placeholder layers, so a LeNet-5 without BatchNorm keeps its original layer indices
    (and saved state dicts keep loading)."""
    return [m for m in layers if not isinstance(m, nn.Identity)]


class MLP(SplitNet):
    """Fully connected net: blocks ``fc1 .. fcK`` (linear + activation) then ``logits`` (linear).

    ``MLP(10, [100, 100, 100], 2)`` is the MixCon paper's 4-layer FC net on the synthetic task
    (three hidden layers and the output layer); its second layer is cut ``"fc2"``.

    ``bias``: ``True`` (every layer), ``False`` (none) or ``"first"`` (only ``fc1``, as the network of
    Haim et al. in chapter 08, which stays homogeneous in its parameters).
    """

    def __init__(self, in_dim: int, widths, num_classes: int = 2, activation: str = "relu",
                 bias: bool | str = True):
        widths = list(widths)
        if in_dim < 1 or num_classes < 1 or not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"Need in_dim >= 1, num_classes >= 1 and positive widths; got "
                             f"in_dim={in_dim}, widths={widths}, num_classes={num_classes}.")
        if bias not in (True, False, "first"):
            raise ValueError(f"bias must be True, False or 'first', got {bias!r}.")
        blocks = OrderedDict()
        prev = int(in_dim)
        for i, w in enumerate(widths, start=1):
            has_bias = bias is True or (bias == "first" and i == 1)
            blocks[f"fc{i}"] = nn.Sequential(nn.Linear(prev, int(w), bias=has_bias), _activation(activation))
            prev = int(w)
        blocks["logits"] = nn.Linear(prev, num_classes, bias=bias is True)
        super().__init__(blocks, (int(in_dim),))


class BNConvNet(SplitNet):
    """A small ConvNet with BatchNorm for ``in_channels`` x 28 x 28 images (chapter 07).

    ``block1``: conv 5x5, stride 2 (pad 2) -> BatchNorm -> ReLU  -> ``[channels, 14, 14]``
    ``logits``: flatten -> linear ``channels*196 -> num_classes``.

    The BatchNorm layer holds running statistics that a gradient-inversion attacker can use as a
    prior; the ReLU before ``logits`` makes the last layer's inputs non-negative, which the
    label-restoration trick relies on. One convolution keeps gradient inversion within a CPU
    budget; a deeper network is harder to invert in the same number of steps.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 16):
        if in_channels < 1 or num_classes < 2 or channels < 1:
            raise ValueError(f"Need in_channels >= 1, num_classes >= 2 and channels >= 1; got "
                             f"{in_channels}, {num_classes}, {channels}.")
        blocks = OrderedDict(
            block1=nn.Sequential(nn.Conv2d(in_channels, channels, 5, stride=2, padding=2),
                                 nn.BatchNorm2d(channels), nn.ReLU()),
            logits=nn.Sequential(nn.Flatten(), nn.Linear(channels * 14 * 14, num_classes)),
        )
        super().__init__(blocks, (in_channels, 28, 28))


# ---------------------------------------------------------------- gradient inversion (ch. 06) ----
class DLGLeNet(SplitNet):
    """The LeNet of Deep Leakage from Gradients (Zhu et al. 2019, and iDLG): three 5x5 convolutions
    with sigmoid activations and one linear layer, no pooling.

    ``conv1``: conv ``in_channels -> 12``, stride 2, pad 2 -> sigmoid;  ``conv2``: ``12 -> 12``,
    stride 2 -> sigmoid;  ``conv3``: ``12 -> 12``, stride 1 -> sigmoid;  ``logits``: flatten ->
    linear ``12 * (s/4)^2 -> num_classes``. For 3x32x32 inputs and 100 classes (DLG's CIFAR-100
    setting) the linear layer is 768 -> 100; for 1x28x28 (iDLG's MNIST) it is 588 -> 10.

    ``seed``: if given, every weight and bias is drawn from U(-0.5, 0.5) by :func:`uniform_init_`
    (DLG's ``weights_init``); ``None`` keeps PyTorch's default initialisation.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 100, input_size: int = 32,
                 activation: str = "sigmoid", seed: int | None = 1234):
        if in_channels < 1 or num_classes < 2 or input_size < 4:
            raise ValueError(f"Need in_channels >= 1, num_classes >= 2 and input_size >= 4; got "
                             f"{in_channels}, {num_classes}, {input_size}.")
        act = lambda: _activation(activation)  # noqa: E731
        side = (int(input_size) + 3) // 4          # ceil(ceil(s / 2) / 2): two stride-2 convs, pad 2
        blocks = OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(in_channels, 12, 5, stride=2, padding=2), act()),
            conv2=nn.Sequential(nn.Conv2d(12, 12, 5, stride=2, padding=2), act()),
            conv3=nn.Sequential(nn.Conv2d(12, 12, 5, stride=1, padding=2), act()),
            logits=nn.Sequential(nn.Flatten(), nn.Linear(12 * side * side, num_classes)),
        )
        super().__init__(blocks, (in_channels, int(input_size), int(input_size)))
        if seed is not None:
            uniform_init_(self, seed=seed)


def uniform_init_(model: nn.Module, low: float = -0.5, high: float = 0.5, seed: int = 1234) -> nn.Module:
    """DLG's initialisation: every parameter of ``model`` drawn from U(``low``, ``high``), in
    ``model.parameters()`` order, from a generator seeded with ``seed``. (DLG's code calls
    ``torch.manual_seed(1234)`` and then draws each module's weight, then bias, in the same order,
    so a :class:`DLGLeNet` gets exactly the reference's weights.) Returns ``model``."""
    if not low < high:
        raise ValueError(f"Need low < high, got {low}, {high}.")
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.empty(p.shape).uniform_(low, high, generator=g).to(p))
    return model


TORCHVISION_ARCHITECTURES = ("resnet18", "densenet121", "inception_v3")
MIN_INPUT_SIZE = {"resnet18": 8, "densenet121": 32, "inception_v3": 75}


def torchvision_model(name: str, num_classes: int = 10, in_channels: int = 3, activation: str = "relu",
                      seed: int | None = None) -> nn.Module:
    """A torchvision architecture at random initialisation (no pretrained weights), seeded.

    ``name``: ``"resnet18"``, ``"densenet121"`` or ``"inception_v3"`` (built without its auxiliary
    classifier and without ImageNet input re-normalisation). ``in_channels`` replaces the first
    convolution when it is not 3. ``activation="sigmoid"`` swaps every ``nn.ReLU`` *module* for
    ``nn.Sigmoid`` (what the DLG slides did to ResNet-18); it is refused for Inception-v3, whose
    ReLUs are functional calls a module swap cannot reach. Smallest input sides:
    :data:`MIN_INPUT_SIZE`. The model is returned in eval mode (BatchNorm then uses its initial
    running statistics, an identity), so a batch of one image works for every architecture.
    """
    seed = resolve_seed(seed)
    import torchvision

    key = str(name).lower().replace("-", "").replace("_", "")
    names = {n.replace("_", ""): n for n in TORCHVISION_ARCHITECTURES}
    if key not in names:
        raise ValueError(f"Unknown architecture {name!r}; expected one of {TORCHVISION_ARCHITECTURES}.")
    name = names[key]
    if activation not in ("relu", "sigmoid"):
        raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}.")
    if activation == "sigmoid" and name == "inception_v3":
        raise ValueError("Inception-v3 applies ReLU as a function inside every convolution block; "
                         "activation='sigmoid' cannot be applied to it. Use activation='relu'.")
    if num_classes < 2 or in_channels < 1:
        raise ValueError(f"Need num_classes >= 2 and in_channels >= 1, got {num_classes}, {in_channels}.")
    torch.manual_seed(int(seed))
    if name == "inception_v3":
        model = torchvision.models.inception_v3(weights=None, num_classes=num_classes, aux_logits=False,
                                                transform_input=False, init_weights=True)
    else:
        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        parent, attr = {"resnet18": (model, "conv1"), "densenet121": (model.features, "conv0"),
                        "inception_v3": (model.Conv2d_1a_3x3, "conv")}[name]
        old = getattr(parent, attr)
        setattr(parent, attr, nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                                        old.padding, bias=old.bias is not None))
    if activation == "sigmoid":
        for module in list(model.modules()):
            for child_name, child in module.named_children():
                if isinstance(child, nn.ReLU):
                    setattr(module, child_name, nn.Sigmoid())
    return model.eval()
