"""Small helpers every module uses: argument checks and progress bars.

* :func:`positive_int` — validate a count (steps, epochs, restarts...) with a clear ``ValueError``.
* :func:`show_progress` / :func:`progress_bar` — tqdm bars that appear in notebooks and terminals
  but not in CI logs.
"""
from __future__ import annotations

import os
import sys

import numpy as np


def positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum`` (default 1).

    Raises ``ValueError`` naming the argument otherwise (booleans and floats such as ``3.0`` are
    rejected, so a typo does not silently truncate).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return int(value)


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw tqdm bars.

    ``progress`` wins when given. Otherwise the environment variable ``MIXCON_LITE_PROGRESS``
    (``1``/``on`` or ``0``/``off``) decides, and without it bars are drawn only in an interactive
    session (a notebook kernel or a terminal), never in CI logs. ``notebooks/conftest.py`` sets it to
    ``0`` so that nbval's kernels do not flood their output channel with widget updates.
    """
    if progress is not None:
        return bool(progress)
    env = os.environ.get("MIXCON_LITE_PROGRESS", "").strip().lower()
    if env:
        if env in _ON:
            return True
        if env in _OFF:
            return False
        raise ValueError(f"MIXCON_LITE_PROGRESS must be one of {sorted(_ON | _OFF)} (or unset), "
                         f"got {env!r}.")
    if "ipykernel" in sys.modules:
        return True
    return sys.stderr.isatty()


_ON = {"1", "on", "true", "yes"}
_OFF = {"0", "off", "false", "no"}


def progress_bar(iterable=None, total: int | None = None, desc: str | None = None,
                 progress: bool | None = None, leave: bool = False):
    """A ``tqdm.auto`` bar over ``iterable`` (or a manual one of ``total`` steps), shown only when
    :func:`show_progress` says so. It redraws at most twice a second: in a notebook every redraw is
    a widget message, and thousands of them slow the browser (and time out nbval)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, mininterval=0.5,
                disable=not show_progress(progress))
