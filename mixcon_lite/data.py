"""Datasets for the course, read offline through torchvision from ``MIXCON_LITE_DATA``.

All image loaders return ``(images, labels)``: ``images`` a float32 tensor in [0, 1] of shape
``[N, 1, 28, 28]``, ``labels`` an int64 tensor of shape ``[N]``.

* ``"fashion-mnist"``: train 60,000 / test 10,000 through :class:`torchvision.datasets.FashionMNIST`.
* ``"mnist"``: through torchvision's idx readers. The offline mirror holds only the *test* split
  (10,000 images); the train split is used when its files are there (or ``download=True`` on a
  connected machine fetches them through :class:`torchvision.datasets.MNIST`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .config import DATA_ENV, data_root
from .utils import positive_int

DATASETS = ("fashion-mnist", "mnist")
SPLITS = ("train", "test")
_FILES = {
    ("fashion-mnist", "train"): ("FashionMNIST", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("fashion-mnist", "test"): ("FashionMNIST", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ("mnist", "train"): ("MNIST", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("mnist", "test"): ("MNIST", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))


def _normalise_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "fashion": "fashion-mnist"}
    key = aliases.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}.")
    return key


def class_names(name: str) -> tuple[str, ...]:
    """Human-readable class names of dataset ``name`` (index = label)."""
    return FASHION_CLASSES if _normalise_name(name) == "fashion-mnist" else MNIST_CLASSES


def _missing(root: Path, folder: str, files: tuple[str, str], what: str) -> FileNotFoundError:
    layout = "\n".join(f"    {root}/{folder}/raw/{f}" for f in files)
    return FileNotFoundError(
        f"{what} not found under the data root {root}.\n"
        f"Expected the torchvision layout:\n{layout}\n"
        f"Set the environment variable {DATA_ENV} to the folder that holds '{folder}/raw/' "
        f"(the course's offline mirror is shared/data), or pass download=True on a machine with internet."
    )


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split as tensors.

    Parameters
    ----------
    name : ``"fashion-mnist"`` or ``"mnist"``.
    split : ``"train"`` or ``"test"``.
    root : data folder; default :func:`mixcon_lite.config.data_root` (``$MIXCON_LITE_DATA``).
    download : let torchvision fetch missing files (needs internet).

    Returns
    -------
    images : float32 ``[N, 1, 28, 28]`` in [0, 1];  labels : int64 ``[N]``.

    Raises ``ValueError`` for an unknown name or split and ``FileNotFoundError`` (naming
    ``MIXCON_LITE_DATA`` and the expected files) when the files are not there.
    """
    key = _normalise_name(name)
    split = str(split).strip().lower()
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    base = data_root(root)
    folder, img_file, lbl_file = _FILES[(key, split)]
    raw = base / folder / "raw"
    have_files = (raw / img_file).is_file() and (raw / lbl_file).is_file()

    import torchvision
    from torchvision.datasets.mnist import read_image_file, read_label_file

    if key == "fashion-mnist":
        if not have_files and not download:
            raise _missing(base, folder, (img_file, lbl_file), f"Fashion-MNIST ({split} split)")
        ds = torchvision.datasets.FashionMNIST(str(base), train=(split == "train"), download=download)
        images, labels = ds.data, ds.targets
    else:
        if not have_files:
            if not download:
                extra = (" The course's offline mirror holds only MNIST's test split; use split='test' "
                         "(and subset() it) or Fashion-MNIST's train split.") if split == "train" else ""
                err = _missing(base, folder, (img_file, lbl_file), f"MNIST ({split} split)")
                raise FileNotFoundError(str(err) + extra)
            torchvision.datasets.MNIST(str(base), train=(split == "train"), download=True)
        images, labels = read_image_file(str(raw / img_file)), read_label_file(str(raw / lbl_file))
    images = images.to(torch.float32).div_(255.0).unsqueeze(1).contiguous()
    return images, labels.to(torch.int64).contiguous()


def subset(images: torch.Tensor, labels: torch.Tensor, n_per_class: int,
           classes=None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic class-balanced subset: ``n_per_class`` samples of each class.

    ``classes`` (default: every label present) selects and orders the classes; samples are drawn
    without replacement with a NumPy generator seeded by ``seed`` and returned grouped by class in
    that order. Raises ``ValueError`` if a class has fewer than ``n_per_class`` samples.
    """
    if not torch.is_tensor(images) or not torch.is_tensor(labels):
        raise ValueError("images and labels must be torch tensors (as returned by load_dataset).")
    if labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"Expected labels of shape [N] matching images [N, ...]; got images "
                         f"{tuple(images.shape)} and labels {tuple(labels.shape)}.")
    n_per_class = positive_int(n_per_class, "n_per_class")
    present = torch.unique(labels).tolist()
    classes = present if classes is None else [int(c) for c in classes]
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        idx = torch.nonzero(labels == c).flatten().numpy()
        if len(idx) < n_per_class:
            raise ValueError(f"Class {c} has {len(idx)} samples, fewer than n_per_class={n_per_class}.")
        chosen.append(np.sort(rng.choice(idx, size=n_per_class, replace=False)))
    order = torch.from_numpy(np.concatenate(chosen))
    return images[order].clone(), labels[order].clone()


def two_gaussians(n_train: int = 800, n_test: int = 200, dim: int = 10, separation: float = 4.0,
                  flip: float = 0.1, seed: int = 0):
    r"""The MixCon paper's synthetic task: two Gaussian classes with label-flip noise (§5.1).

    Class 1 samples come from :math:`\mathcal N(+\mu, I_d)`, class 0 from :math:`\mathcal N(-\mu, I_d)`
    with :math:`\mu = \tfrac{s}{2\sqrt d}\mathbf 1`, so the two means are ``separation`` = s apart.
    Classes are balanced; then a fraction ``flip`` of labels (train and test alike) is flipped.
    (The seed text lost the paper's means and noise rate; these defaults are ours and stated here.)

    Returns ``(x_train, y_train, x_test, y_test)``: float32 ``[n, dim]`` and int64 ``[n]``.
    """
    n_train, n_test, dim = (positive_int(v, nm) for nm, v in (("n_train", n_train), ("n_test", n_test),
                                                              ("dim", dim)))
    if n_train < 2 or n_test < 2:
        raise ValueError("n_train and n_test must be at least 2 (one sample per class).")
    if not 0.0 <= float(flip) < 0.5:
        raise ValueError(f"flip must be in [0, 0.5), got {flip!r}; at 0.5 the labels carry no signal.")
    if float(separation) < 0:
        raise ValueError(f"separation must be >= 0, got {separation!r}.")
    g = torch.Generator().manual_seed(int(seed))
    mu = torch.full((dim,), float(separation) / (2.0 * dim ** 0.5))

    def draw(n):
        y = torch.arange(n) % 2
        y = y[torch.randperm(n, generator=g)]
        x = torch.randn(n, dim, generator=g) + (2.0 * y - 1.0)[:, None] * mu
        flipped = torch.rand(n, generator=g) < flip
        return x.to(torch.float32), torch.where(flipped, 1 - y, y).to(torch.int64)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return x_tr, y_tr, x_te, y_te
