"""How close is a reconstruction to the original? Per-sample metrics.

Image metrics take two tensors of the same shape ``[N, C, H, W]`` with values in [0, 1] and
return a NumPy array of ``N`` scores (one per image pair), so a chapter can report mean, spread
and the best case.

* :func:`ssim` — structural similarity (scikit-image, Gaussian window as Wang et al.), in [-1, 1], 1 = identical.
  (The MixCon paper reports SSIM rescaled to [0, 1]; use :func:`normalized_ssim` for that.)
* :func:`psnr` — peak signal-to-noise ratio in dB for data range 1 (``inf`` for identical images).
* :func:`mse` — mean squared error per sample (any shape ``[N, ...]``).
* :func:`cosine` — cosine similarity of the flattened samples (any shape ``[N, ...]``).
* :func:`lpips_distance` — the learned perceptual distance of Zhang et al. (lpips package), which
  needs ImageNet-pretrained backbone weights in the local torch cache; without them it raises.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

_RANGE_TOL = 1e-5


def _as_pair(x, y, name: str, images: bool) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for label, t in (("x", x), ("y", y)):
        if torch.is_tensor(t):
            t = t.detach().cpu().to(torch.float64).numpy()
        elif isinstance(t, np.ndarray):
            t = t.astype(np.float64)
        else:
            raise ValueError(f"{name}: {label} must be a torch tensor or NumPy array, got {type(t).__name__}.")
        arrays.append(t)
    a, b = arrays
    if a.shape != b.shape:
        raise ValueError(f"{name}: x and y must have the same shape, got {a.shape} and {b.shape}.")
    if images:
        if a.ndim != 4:
            raise ValueError(f"{name}: expected images of shape [N, C, H, W], got {a.shape}. "
                             f"Add the missing axes, e.g. x[None] for one image or x[:, None] for grey [N, H, W].")
        for label, t in (("x", a), ("y", b)):
            if not np.isfinite(t).all() or t.min() < -_RANGE_TOL or t.max() > 1 + _RANGE_TOL:
                raise ValueError(f"{name}: {label} must hold finite values in [0, 1] (got range "
                                 f"[{np.nanmin(t):.3g}, {np.nanmax(t):.3g}]); clamp a reconstruction with x.clamp(0, 1).")
    elif a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"{name}: expected a batch [N, ...] with N >= 1, got shape {a.shape}.")
    return a, b


def ssim(x, y) -> np.ndarray:
    """Structural similarity per image pair, shape ``[N]``, in [-1, 1].

    Uses ``skimage.metrics.structural_similarity`` with the published convention of Wang et al.
    (2004), as scikit-image's documentation recommends for comparability with papers: an 11x11
    Gaussian window with sigma = 1.5 (``gaussian_weights=True``), population covariances
    (``use_sample_covariance=False``), K1 = 0.01, K2 = 0.03, data range 1; colour channels are
    averaged (``channel_axis``). Images must be at least 11x11 pixels.
    """
    from skimage.metrics import structural_similarity

    a, b = _as_pair(x, y, "ssim", images=True)
    if min(a.shape[2:]) < 11:
        raise ValueError(f"ssim: images must be at least 11x11 pixels (the Gaussian SSIM window), "
                         f"got {a.shape[2:]}.")
    return np.array([structural_similarity(ai, bi, data_range=1.0, channel_axis=0, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False)
                     for ai, bi in zip(a, b)])


def ssim_matrix(x, y, chunk: int = 4096) -> np.ndarray:
    """SSIM of every image of ``x`` ``[N, C, H, W]`` to every image of ``y`` ``[M, C, H, W]``: a matrix
    ``[N, M]``, the numbers :func:`ssim` gives pair by pair (the same Gaussian window, constants and
    channel mean), computed for all pairs at once with ``scipy.ndimage.gaussian_filter`` as
    scikit-image does. Both in [0, 1]; ``chunk`` bounds how many pairs are filtered at a time."""
    from scipy.ndimage import gaussian_filter

    a, _ = _as_pair(x, x, "ssim_matrix", images=True)
    b, _ = _as_pair(y, y, "ssim_matrix", images=True)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"ssim_matrix: x {a.shape[1:]} and y {b.shape[1:]} must have the same image shape.")
    if min(a.shape[2:]) < 11:
        raise ValueError(f"ssim_matrix: images must be at least 11x11 pixels (the Gaussian SSIM window), "
                         f"got {a.shape[2:]}.")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = a.astype(dtype), b.astype(dtype)
    sigma, truncate, pad = (0, 0, 1.5, 1.5), 3.5, 5    # skimage: window 2 * int(3.5 * 1.5 + 0.5) + 1 = 11

    def blur(t):
        return gaussian_filter(t, sigma=sigma, truncate=truncate)

    ua, ub, vaa, vbb = blur(a), blur(b), blur(a * a), blur(b * b)
    vaa, vbb = vaa - ua * ua, vbb - ub * ub
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    n, m = len(a), len(b)
    out = np.empty((n, m))
    rows = max(1, chunk // m)
    for i in range(0, n, rows):
        sl = slice(i, min(n, i + rows))
        uab = blur((a[sl, None] * b[None]).reshape(-1, *a.shape[1:]))
        uab = uab.reshape(-1, m, *a.shape[1:])
        mu = ua[sl, None] * ub[None]
        vab = uab - mu
        s = ((2 * mu + c1) * (2 * vab + c2)) / ((ua[sl, None] ** 2 + ub[None] ** 2 + c1)
                                                 * (vaa[sl, None] + vbb[None] + c2))
        out[sl] = s[..., pad:-pad, pad:-pad].mean(axis=(-2, -1), dtype=np.float64).mean(-1)
    return out


def normalized_ssim(x, y) -> np.ndarray:
    """SSIM rescaled to [0, 1] as ``(ssim + 1) / 2``, the convention of the MixCon paper's tables."""
    return (ssim(x, y) + 1.0) / 2.0


def mse(x, y) -> np.ndarray:
    """Mean squared error of each sample pair over all its entries; shape ``[N]``."""
    a, b = _as_pair(x, y, "mse", images=False)
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)


def psnr(x, y) -> np.ndarray:
    """Peak signal-to-noise ratio ``10 log10(1 / MSE)`` in dB per image pair (data range 1)."""
    a, b = _as_pair(x, y, "psnr", images=True)
    err = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / err)


def cosine(x, y, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity of each flattened sample pair; shape ``[N]``, in [-1, 1] (0 if a sample is 0)."""
    a, b = _as_pair(x, y, "cosine", images=False)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, eps)


# ---------------------------------------------------------------- LPIPS -------------------------
_LPIPS_BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
_lpips_cache: dict = {}


def lpips_backbone_file(net: str = "alex") -> Path:
    """Where torchvision keeps the ImageNet weights that LPIPS's backbone ``net`` needs."""
    import torchvision

    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"Unknown LPIPS backbone {net!r}; expected one of {tuple(_LPIPS_BACKBONES)}.")
    url = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def lpips_available(net: str = "alex") -> bool:
    """True when the pretrained backbone for LPIPS ``net`` is in the local torch cache."""
    return lpips_backbone_file(net).is_file()


def lpips_distance(x, y, net: str = "alex") -> np.ndarray:
    """LPIPS distance per image pair (lower = more similar; 0 for identical images).

    ``x``, ``y``: ``[N, C, H, W]`` in [0, 1] with C = 1 or 3 (grey is repeated to 3 channels).
    Uses the ``lpips`` package with its shipped linear heads and the ImageNet-pretrained
    torchvision backbone. That backbone must already be in ``torch.hub.get_dir()/checkpoints``;
    offline, without it, a ``RuntimeError`` says so: a random backbone would give numbers with
    no perceptual meaning, so none is ever used silently.
    """
    a, b = _as_pair(x, y, "lpips_distance", images=True)
    if a.shape[1] not in (1, 3):
        raise ValueError(f"lpips_distance: expected 1 or 3 channels, got {a.shape[1]}.")
    weights = lpips_backbone_file(net)
    if not weights.is_file():
        raise RuntimeError(
            f"LPIPS needs the ImageNet-pretrained {net} backbone at {weights}, which is not in the local "
            f"torch cache (set TORCH_HOME to where it is, or download it on a connected machine with "
            f"`python -c \"import lpips; lpips.LPIPS(net='{net}')\"`). This course reports LPIPS as "
            f"'not computed' rather than use a random backbone."
        )
    if net not in _lpips_cache:
        import lpips

        _lpips_cache[net] = lpips.LPIPS(net=net, verbose=False).eval()
    model = _lpips_cache[net]
    ta = torch.from_numpy(a).float()
    tb = torch.from_numpy(b).float()
    if ta.shape[1] == 1:
        ta, tb = ta.repeat(1, 3, 1, 1), tb.repeat(1, 3, 1, 1)
    with torch.no_grad():
        d = model(ta * 2 - 1, tb * 2 - 1)  # lpips expects [-1, 1]
    return d.flatten().double().numpy()
