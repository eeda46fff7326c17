"""Attacks that recover private data: from features (:mod:`.features`); gradient and weight
attacks arrive with their chapters."""
from . import features

__all__ = ["features"]
