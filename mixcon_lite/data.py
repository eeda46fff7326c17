"""Datasets for the course, read through torchvision's formats from one data folder.

All image loaders return ``(images, labels)``: ``images`` a float32 tensor in [0, 1] of shape
``[N, 1, 28, 28]``, ``labels`` an int64 tensor of shape ``[N]``.

* ``"fashion-mnist"``: train 60,000 / test 10,000 (:class:`torchvision.datasets.FashionMNIST`).
* ``"mnist"``: train 60,000 / test 10,000 (:class:`torchvision.datasets.MNIST`).

Where the files come from (see :func:`load_dataset`):

* **Online, nothing set:** the first call downloads the split through torchvision into
  ``~/.cache/mixcon_lite/data`` (a few tens of MB, once); later calls read it from there.
* **Offline:** set ``MIXCON_LITE_DATA`` to a folder in torchvision's layout
  (``<folder>/FashionMNIST/raw/train-images-idx3-ubyte`` ...); nothing is downloaded then, and a
  missing file raises ``FileNotFoundError`` naming the variable and the files expected. Some offline
  copies (the course's classroom mirror among them) hold only MNIST's *test* split.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from .config import DATA_ENV, data_root, resolve_seed
from .utils import positive_int

DATASETS = ("fashion-mnist", "mnist")
SPLITS = ("train", "test")
_FILES = {
    ("fashion-mnist", "train"): ("FashionMNIST", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("fashion-mnist", "test"): ("FashionMNIST", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ("mnist", "train"): ("MNIST", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("mnist", "test"): ("MNIST", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
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


def _shown(path: Path) -> str:
    """``path`` as the reader would type it: under the home folder it is written ``~/...``."""
    try:
        return "~/" + Path(path).expanduser().resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def _missing(key: str, split: str, base: Path, source: str, download_error: Exception | None = None
             ) -> FileNotFoundError:
    """The error for a split whose files are not in the data folder: which folder was searched and
    why, the layout expected (relative to ``MIXCON_LITE_DATA``), and how to fix it."""
    folder, img_file, lbl_file = _FILES[(key, split)]
    what = f"{_TITLES[key]} ({split} split)"
    layout = "\n".join(f"    ${DATA_ENV}/{folder}/raw/{f}" for f in (img_file, lbl_file))
    where = {"env": f"the folder named by {DATA_ENV} ({base})",
             "argument": f"the folder passed as root= ({base})",
             "default": f"the default data folder {_shown(base)} ({DATA_ENV} is not set)"}[source]
    lines = [f"{what} not found in {where}.",
             f"The course reads datasets from the folder named by the environment variable {DATA_ENV}, "
             f"in torchvision's layout:", layout]
    if download_error is not None:
        lines.append(f"Downloading it into {_shown(base)} failed ({type(download_error).__name__}: "
                     f"{download_error}).")
    if source == "env":
        lines.append(f"Fix: set {DATA_ENV} to the folder that holds '{folder}/raw/' (check the layout "
                     f"above), or unset {DATA_ENV} on a machine with internet to download it automatically.")
    elif source == "argument":
        lines.append(f"Fix: pass root= the folder that holds '{folder}/raw/', or add download=True on a "
                     f"machine with internet.")
    elif download_error is None:
        lines.append(f"Fix: call it without download=False on a machine with internet (it downloads "
                     f"once), or set {DATA_ENV} to a folder that holds '{folder}/raw/'.")
    else:
        lines.append(f"Fix: check the internet connection and run again, or, offline, copy the files "
                     f"from a machine that has them and set {DATA_ENV} to the folder that holds "
                     f"'{folder}/raw/'.")
    if key == "mnist" and split == "train":
        lines.append("Some offline copies (the course's classroom mirror among them) hold only MNIST's "
                     "test split: then use split='test' (and subset() it) or Fashion-MNIST's train split.")
    return FileNotFoundError("\n".join(lines))


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split as tensors.

    Parameters
    ----------
    name : ``"fashion-mnist"`` or ``"mnist"``.
    split : ``"train"`` or ``"test"``.
    root : data folder; default :func:`mixcon_lite.config.data_root` (``$MIXCON_LITE_DATA``, else
        ``~/.cache/mixcon_lite/data``).
    download : ``None`` (default) downloads missing files through torchvision only when no folder
        was chosen (no ``root`` and no ``MIXCON_LITE_DATA``), i.e. into ``~/.cache/mixcon_lite/data``
        on first use; a folder you chose is never written to unless ``download=True``.
        ``False`` never downloads.

    Returns
    -------
    images : float32 ``[N, 1, 28, 28]`` in [0, 1];  labels : int64 ``[N]``.

    Raises ``ValueError`` for an unknown name or split and ``FileNotFoundError`` (naming
    ``MIXCON_LITE_DATA``, the expected layout and the fix) when the files are not there and cannot
    be downloaded.
    """
    key = _normalise_name(name)
    split = str(split).strip().lower()
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if download not in (None, True, False):
        raise ValueError(f"download must be None (automatic), True or False, got {download!r}.")
    source = "argument" if root is not None else "env" if os.environ.get(DATA_ENV) else "default"
    base = data_root(root)
    folder, img_file, lbl_file = _FILES[(key, split)]
    raw = base / folder / "raw"

    import torchvision
    from torchvision.datasets.mnist import read_image_file, read_label_file

    def have_files() -> bool:
        return (raw / img_file).is_file() and (raw / lbl_file).is_file()

    if not have_files():
        if not (download or (download is None and source == "default")):
            raise _missing(key, split, base, source)
        cls = torchvision.datasets.FashionMNIST if key == "fashion-mnist" else torchvision.datasets.MNIST
        print(f"{_TITLES[key]} ({split} split) is not on this machine yet: downloading it once into "
              f"{_shown(base)} ...", file=sys.stderr)
        try:
            cls(str(base), train=(split == "train"), download=True)
        except Exception as err:  # no internet, a proxy, a mirror down: say how to go on offline
            raise _missing(key, split, base, source, download_error=err) from err
        if not have_files():
            raise _missing(key, split, base, source, download_error=RuntimeError("files not written"))
    images, labels = read_image_file(str(raw / img_file)), read_label_file(str(raw / lbl_file))
    images = images.to(torch.float32).div_(255.0).unsqueeze(1).contiguous()
    return images, labels.to(torch.int64).contiguous()


def subset(images: torch.Tensor, labels: torch.Tensor, n_per_class: int,
           classes=None, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic class-balanced subset: ``n_per_class`` samples of each class.

    ``classes`` (default: every label present) selects and orders the classes; samples are drawn
    without replacement with a NumPy generator seeded by ``seed`` and returned grouped by class in
    that order. Raises ``ValueError`` if a class has fewer than ``n_per_class`` samples.
    """
    seed = resolve_seed(seed)
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
                  flip: float = 0.1, seed: int | None = None):
    r"""The MixCon paper's synthetic task: two Gaussian classes with label-flip noise (§4.2).

    Class 1 samples come from :math:`\mathcal N(+\mu, I_d)`, class 0 from :math:`\mathcal N(-\mu, I_d)`
    with :math:`\mu = \tfrac{s}{2\sqrt d}\mathbf 1`, so the two means are ``separation`` = s apart.
    Classes are balanced; then a fraction ``flip`` of labels (train and test alike) is flipped.
    The paper draws both classes from Gaussians with identity covariance, 800 training and 200 test
    samples, and flips a fraction of the labels; the means (``separation``) and the flip rate used
    here are ours.

    Returns ``(x_train, y_train, x_test, y_test)``: float32 ``[n, dim]`` and int64 ``[n]``.
    """
    seed = resolve_seed(seed)
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


# ---------------------------------------------------------------- colour images (ch. 06) --------
#: Colour pictures shipped with scikit-image (no download), usable by :func:`skimage_crops`.
SKIMAGE_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "colorwheel", "immunohistochemistry",
                  "hubble_deep_field", "retina")


def skimage_crops(names=("astronaut", "coffee", "chelsea", "rocket"), size: int = 32) -> torch.Tensor:
    """Small colour images for gradient inversion when CIFAR is not at hand (offline).

    Each picture from ``skimage.data`` (:data:`SKIMAGE_COLOUR`) is cropped to its central square
    and resized to ``size`` x ``size`` with anti-aliasing (``skimage.transform.resize``).
    Returns float32 ``[N, 3, size, size]`` in [0, 1], in the order of ``names``.
    """
    import skimage.data
    from skimage.transform import resize

    names = [names] if isinstance(names, str) else list(names)
    size = positive_int(size, "size", minimum=4)
    unknown = [n for n in names if n not in SKIMAGE_COLOUR]
    if not names or unknown:
        raise ValueError(f"Unknown picture(s) {unknown}; expected a non-empty list drawn from {SKIMAGE_COLOUR}.")
    out = []
    for name in names:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64) / 255.0
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = img[top:top + side, left:left + side, :3]
        small = resize(square, (size, size), anti_aliasing=True, preserve_range=True)
        out.append(torch.from_numpy(small.clip(0.0, 1.0)).permute(2, 0, 1))
    return torch.stack(out).to(torch.float32).contiguous()
