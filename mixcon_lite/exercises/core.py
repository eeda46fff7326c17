"""The core of the exercise checkers: ``check_<name>(answer)`` returns a :class:`CheckResult`.

A checker never raises because an answer is wrong: it returns a verdict whose message says what
was expected and what was found, so a student can act on it. In a notebook the verdict shows as
``PASS: ...`` or ``NOT YET: ...``; ``bool(result)`` is ``result.passed``, so instructor notebooks
``assert`` it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CheckResult:
    """Verdict of a checker: ``passed`` and a message saying why."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"{'PASS' if self.passed else 'NOT YET'}: {self.message}"

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#b35900"
        word = "&#10004; PASS" if self.passed else "&#10008; NOT YET"
        return f'<p style="color:{color}"><b>{word}</b>: {self.message}</p>'


def call_student(fn, *args):
    """Call a student's function; return ``(value, None)``, or ``(None, failing CheckResult)`` if it raised."""
    if not callable(fn):
        return None, CheckResult(False, f"Expected a function, got {type(fn).__name__}.")
    try:
        return fn(*args), None
    except Exception as err:  # the student's code raised: report it, do not crash the checker
        return None, CheckResult(False, f"Your function raised {type(err).__name__}: {err}")


def as_number(value, what: str):
    """``value`` as one float: ``(number, None)``, or ``(None, failing CheckResult)`` naming ``what``
    (e.g. ``"your function"``) and what it returned instead."""
    try:
        return float(value), None
    except (TypeError, ValueError, RuntimeError):
        shape = getattr(value, "shape", None)
        got = type(value).__name__ + ("" if shape is None else f" of shape {tuple(shape)}")
        return None, CheckResult(False, f"{what} should return one number (a float or 0-d tensor), "
                                        f"got {got}.")


def as_1d(value, n: int, what: str):
    """``value`` as a float64 array of shape ``[n]``; ``(array, None)`` or ``(None, failing CheckResult)``."""
    if torch.is_tensor(value):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, CheckResult(False, f"{what} should return numbers, got {type(value).__name__}.")
    if arr.shape != (n,):
        return None, CheckResult(False, f"{what} should return one value per image: shape [{n}], got {arr.shape}.")
    return arr, None
