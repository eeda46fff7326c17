"""Attacks that recover private data. Every attack returns one :class:`AttackResult`.

* :mod:`.features` — from the representation a split-learning client sends (chapters 00, 04, 05);
* :mod:`.matching` — what a federated-learning client sends (its gradient) and the gradient-matching
  terms every gradient attack minimises (chapters 06, 07);
* :mod:`.labels` — a batch's labels read off the output layer's gradient (chapters 06, 07);
* :mod:`.gradients` — DLG, iDLG and Inverting Gradients, and DLG's two gradient-side defences
  (chapter 06); :mod:`.lbfgs` — the batched L-BFGS behind DLG;
* :mod:`.fedavg` — a FedAvg client's multi-step update and the attack that simulates its local
  steps (chapter 06, section 8);
* :mod:`.gradinversion` — GradInversion's batch attack with fidelity priors (chapter 07);
* :mod:`.weights` — from the trained weights alone (chapter 08).
"""
from . import features
from . import fedavg
from . import gradients
from . import gradinversion
from . import labels
from . import matching
from .result import AttackResult

__all__ = ["AttackResult", "features", "fedavg", "gradients", "gradinversion", "labels", "matching"]
