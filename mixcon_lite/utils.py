"""Small helpers every module uses: argument checks and progress bars.

* :func:`positive_int` — validate a count (steps, epochs, restarts...) with a clear ``ValueError``.
* :func:`show_progress` / :func:`progress_bar` — tqdm bars that appear in notebooks and terminals
  but not in CI logs.
"""
from __future__ import annotations

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
    """Whether to draw tqdm bars: ``progress`` if given, else only in an interactive session
    (a notebook kernel or a terminal), never in CI logs."""
    if progress is not None:
        return bool(progress)
    if "ipykernel" in sys.modules:
        return True
    return sys.stderr.isatty()


def progress_bar(iterable=None, total: int | None = None, desc: str | None = None,
                 progress: bool | None = None, leave: bool = False):
    """A ``tqdm.auto`` bar over ``iterable`` (or a manual one of ``total`` steps), shown only when
    :func:`show_progress` says so."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, disable=not show_progress(progress))
