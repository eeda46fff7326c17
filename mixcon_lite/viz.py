"""Figures the chapters share: image grids, original-vs-recovered rows, training curves."""
from __future__ import annotations

import numpy as np
import torch


def _images_np(images) -> np.ndarray:
    if torch.is_tensor(images):
        images = images.detach().cpu().float().numpy()
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Expected images of shape [N, C, H, W] with C = 1 or 3, got {images.shape}.")
    return np.clip(images, 0.0, 1.0)


def image_grid(images, titles=None, ncols: int | None = None, axes=None, size: float = 1.4,
               suptitle: str | None = None):
    """Show ``[N, C, H, W]`` images in [0, 1] in a grid (``ncols`` wide, default N up to 10).

    ``titles``: optional list of N strings. Returns the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    imgs = _images_np(images)
    n = len(imgs)
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} images.")
    ncols = min(n, 10) if ncols is None else int(ncols)
    nrows = (n + ncols - 1) // ncols
    if axes is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                                 squeeze=False)
    else:
        axes = np.asarray(axes).reshape(nrows, ncols)
        fig = axes.flat[0].figure
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            img = imgs[k]
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img.transpose(1, 2, 0))
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def compare_rows(rows: dict, scores: dict | None = None, size: float = 1.3, score_name: str = "SSIM",
                 title: str | None = None):
    """Rows of images aligned by column, e.g. ``{"original": x, "recovered": x_hat}``.

    ``scores``: optional ``{row name: per-image scores}`` printed under each image of that row.
    ``title``: optional figure title. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("compare_rows needs at least one row of images.")
    arrays = {k: _images_np(v) for k, v in rows.items()}
    n = {len(v) for v in arrays.values()}
    if len(n) != 1:
        raise ValueError(f"All rows must hold the same number of images, got {sorted(n)}.")
    n = n.pop()
    fig, axes = plt.subplots(len(arrays), n, figsize=(size * n + 1.2, size * len(arrays) + 0.2), squeeze=False)
    for r, (name, imgs) in enumerate(arrays.items()):
        for c in range(n):
            ax = axes[r, c]
            img = imgs[c]
            ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0),
                      cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if scores and name in scores:
                ax.set_xlabel(f"{score_name} {scores[name][c]:.2f}", fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_history(history: dict, ax=None, title: str | None = None):
    """Training curves from :func:`mixcon_lite.train.train`'s history: loss (left axis) and
    accuracies (right axis) per epoch. Returns the ``Axes``."""
    import matplotlib.pyplot as plt

    if "loss" not in history or not history["loss"]:
        raise ValueError("history must be the dict returned by mixcon_lite.train.train (with a 'loss' list).")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], "o-", color="C0", label="train loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel("loss", color="C0")
    ax2 = ax.twinx()
    for key, color in (("train_accuracy", "C1"), ("eval_accuracy", "C2")):
        if history.get(key):
            ax2.plot(epochs, history[key], "s--", color=color, label=key.replace("_", " "))
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax
