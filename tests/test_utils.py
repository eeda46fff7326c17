import io
import sys

import numpy as np
import pytest

from mixcon_lite.utils import positive_int, progress_bar, show_progress


def test_positive_int_accepts_integers_and_rejects_the_rest():
    assert positive_int(3, "steps") == 3
    assert positive_int(np.int64(2), "steps") == 2
    assert positive_int(0, "steps", minimum=0) == 0
    for bad in (0, -1, 3.0, True, "3", None):
        with pytest.raises(ValueError, match="steps must be"):
            positive_int(bad, "steps")


def test_progress_argument_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("MIXCON_LITE_PROGRESS", "0")
    assert show_progress(True) is True
    monkeypatch.setenv("MIXCON_LITE_PROGRESS", "1")
    assert show_progress(False) is False


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("OFF ", False),
                                             ("1", True), ("on", True), ("yes", True)])
def test_environment_switches_bars(monkeypatch, value, expected):
    monkeypatch.setenv("MIXCON_LITE_PROGRESS", value)
    assert show_progress() is expected
    assert progress_bar(range(3)).disable is (not expected)


def test_unknown_environment_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MIXCON_LITE_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="MIXCON_LITE_PROGRESS must be one of"):
        show_progress()


def test_without_the_environment_bars_follow_the_session(monkeypatch):
    monkeypatch.delenv("MIXCON_LITE_PROGRESS", raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())    # a CI log: not a terminal
    assert show_progress() is False
    monkeypatch.setitem(sys.modules, "ipykernel", object())    # inside a notebook kernel
    assert show_progress() is True
