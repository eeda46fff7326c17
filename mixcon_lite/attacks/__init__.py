"""Attacks that recover private data. Every attack returns one :class:`AttackResult`.

* :mod:`.features` — from the representation a split-learning client sends (chapters 00, 04, 05);
* :mod:`.gradients` — from the gradient a federated-learning client sends (chapters 06, 07);
* :mod:`.weights` — from the trained weights alone (chapter 08), when that chapter lands.
"""
from . import features
from . import gradients
from .result import AttackResult

__all__ = ["AttackResult", "features", "gradients"]
