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
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, activation: str = "relu"):
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"Need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}.")
        act = lambda: _activation(activation)  # noqa: E731
        blocks = OrderedDict(
            block1=nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), act(), nn.MaxPool2d(2)),
            block2=nn.Sequential(nn.Conv2d(6, 16, 5), act(), nn.MaxPool2d(2)),
            fc1=nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act()),
            fc2=nn.Sequential(nn.Linear(120, 84), act()),
            logits=nn.Linear(84, num_classes),
        )
        super().__init__(blocks, (in_channels, 28, 28))


class MLP(SplitNet):
    """Fully connected net: blocks ``fc1 .. fcK`` (linear + activation) then ``logits`` (linear).

    ``MLP(10, [100, 100, 100], 2)`` is the MixCon paper's 4-layer FC net on the synthetic task
    (three hidden layers and the output layer); its second layer is cut ``"fc2"``.
    """

    def __init__(self, in_dim: int, widths, num_classes: int = 2, activation: str = "relu",
                 bias: bool = True):
        widths = list(widths)
        if in_dim < 1 or num_classes < 1 or not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"Need in_dim >= 1, num_classes >= 1 and positive widths; got "
                             f"in_dim={in_dim}, widths={widths}, num_classes={num_classes}.")
        blocks = OrderedDict()
        prev = int(in_dim)
        for i, w in enumerate(widths, start=1):
            blocks[f"fc{i}"] = nn.Sequential(nn.Linear(prev, int(w), bias=bias), _activation(activation))
            prev = int(w)
        blocks["logits"] = nn.Linear(prev, num_classes, bias=bias)
        super().__init__(blocks, (int(in_dim),))
