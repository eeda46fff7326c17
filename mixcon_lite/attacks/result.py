"""The one result type every attack returns, so plots, metrics and the defence chapters consume
feature, gradient and weight attacks alike."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AttackResult:
    """What an attack recovered and what it cost.

    Attributes
    ----------
    reconstruction : ``[n, C, H, W]`` (or ``[n, d]`` for vector inputs) tensor, detached, on the CPU.
    labels : ``LongTensor[n]`` the attack's labels (recovered or given), or ``None`` if it has none.
    loss : ``Tensor[n]`` the attack's final objective per item (e.g. the gradient distance; lower is
        better). It needs no ground truth, so an attacker can rank its own candidates by it.
    history : per-step curves, ``name -> list of floats`` (e.g. ``{"loss": [...]}``), and optional
        snapshots under ``"snapshots"`` as ``[(step, tensor [n, ...]), ...]``.
    seconds : wall-clock time of the attack.
    extras : anything attack-specific (restarts' losses, λ of a KKT attack, settings used...).
    """

    reconstruction: torch.Tensor
    labels: torch.Tensor | None
    loss: torch.Tensor
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        if not torch.is_tensor(self.reconstruction) or self.reconstruction.ndim < 2:
            raise ValueError("AttackResult.reconstruction must be a tensor [n, ...] with n >= 1.")
        n = self.reconstruction.shape[0]
        if self.labels is not None and (not torch.is_tensor(self.labels) or self.labels.shape != (n,)):
            raise ValueError(f"AttackResult.labels must be a LongTensor of shape [{n}] or None.")
        if not torch.is_tensor(self.loss) or self.loss.shape != (n,):
            raise ValueError(f"AttackResult.loss must be a tensor of shape [{n}] (one value per item).")

    def __len__(self) -> int:
        return self.reconstruction.shape[0]
