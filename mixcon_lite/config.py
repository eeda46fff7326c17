"""Run-time settings shared by every chapter: mode, seeding, device and the data root.

Two environment variables steer the course:

``MIXCON_LITE_MODE``
    ``"fast"`` (default) keeps every notebook under its CPU budget; ``"full"`` runs paper scale
    (meant for ``python -m mixcon_lite.experiments.<name> --mode full``).
``MIXCON_LITE_DATA``
    Folder laid out the way torchvision expects (``<folder>/FashionMNIST/raw/...``,
    ``<folder>/MNIST/raw/...``); set it to work offline. When unset, :func:`data_root` falls back to
    ``~/.cache/mixcon_lite/data``, where :func:`mixcon_lite.data.load_dataset` downloads a missing
    dataset on first use (on a machine with internet).
``MIXCON_LITE_SEED``
    The one seed knob (default ``0``): :func:`seed_everything` without an argument, every
    experiment's default seed and every seed a chapter passes derive from it through
    :func:`get_seed` (``get_seed(k)`` is the seed plus an offset ``k``, for a chapter that needs
    several independent draws). The stored notebook outputs are seed 0; CI reruns every chapter at
    seed 1 to check that no asserted claim depends on the draw.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

MODES = ("fast", "full")
MODE_ENV = "MIXCON_LITE_MODE"
DATA_ENV = "MIXCON_LITE_DATA"
SEED_ENV = "MIXCON_LITE_SEED"
DEFAULT_DATA_ROOT = Path.home() / ".cache" / "mixcon_lite" / "data"


def get_mode(mode: str | None = None) -> str:
    """Return the run mode: ``mode`` if given, else ``$MIXCON_LITE_MODE``, else ``"fast"``.

    Raises ``ValueError`` for anything other than ``"fast"`` or ``"full"``.
    """
    value = mode if mode is not None else os.environ.get(MODE_ENV, "fast")
    value = str(value).strip().lower()
    if value not in MODES:
        source = "argument `mode`" if mode is not None else f"environment variable {MODE_ENV}"
        raise ValueError(
            f"Unknown mode {value!r} from {source}; expected one of {MODES}. "
            f"Use 'fast' for the CPU-sized runs of the notebooks, 'full' for paper scale."
        )
    return value


def pick(fast, full, mode: str | None = None):
    """Return ``fast`` or ``full`` according to :func:`get_mode` (e.g. ``pick(200, 2000)`` steps)."""
    return fast if get_mode(mode) == "fast" else full


def _check_seed(seed, source: str) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{source} must be a non-negative integer, got {seed!r}.")
    return int(seed)


def get_seed(offset: int = 0) -> int:
    """Return the course seed ``$MIXCON_LITE_SEED`` (default 0) plus ``offset``.

    Every seed a chapter or an experiment uses derives from this one knob: the first draw uses
    ``get_seed()``, a second independent draw ``get_seed(1)``, and so on. Raises ``ValueError``
    for a value of ``MIXCON_LITE_SEED`` that is not a non-negative integer.
    """
    raw = os.environ.get(SEED_ENV, "").strip()
    if raw == "":
        base = 0
    else:
        try:
            base = int(raw)
        except ValueError:
            raise ValueError(
                f"Environment variable {SEED_ENV}={raw!r} is not an integer; set it to a "
                f"non-negative integer such as 0 or 1, or unset it for the default 0."
            ) from None
        base = _check_seed(base, f"Environment variable {SEED_ENV}")
    return base + _check_seed(offset, "offset")


def resolve_seed(seed: int | None = None) -> int:
    """Return ``seed`` if given (checked), else :func:`get_seed` (the course seed).

    Every experiment function takes ``seed=None`` and resolves it here, so its default follows
    ``MIXCON_LITE_SEED``.
    """
    if seed is None:
        return get_seed()
    return _check_seed(seed, "seed")


def seed_everything(seed: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a ``torch.Generator`` seeded alike.

    Without an argument the seed is :func:`get_seed` (``$MIXCON_LITE_SEED``, default 0).

    Also asks torch for deterministic algorithms where that is free (``warn_only=True``), so a
    seeded notebook gives the same numbers on the same machine and library versions.
    """
    seed = resolve_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to run on: ``prefer`` if given (``"cpu"``, ``"cuda"``...), else CUDA when
    available, else CPU. Raises ``ValueError`` if ``"cuda"`` is asked for but not available."""
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(prefer)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {prefer!r}; expected e.g. 'cpu' or 'cuda'.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but torch sees no GPU here; use device 'cpu'.")
    return device


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the folder datasets are read from.

    Order: the ``root`` argument, then ``$MIXCON_LITE_DATA``, then ``~/.cache/mixcon_lite/data``.
    The folder is not checked here; :mod:`mixcon_lite.data` checks each dataset's files.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_ROOT
