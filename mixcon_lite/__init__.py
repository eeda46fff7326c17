"""mixcon_lite: the helper package of the course *Recovering private data from neural networks*.

Each chapter notebook first builds an idea by hand, then uses the tested version from here.

* set-up: :mod:`~mixcon_lite.config` (mode, seeds, device, data folder), :mod:`~mixcon_lite.data`,
  :mod:`~mixcon_lite.utils`;
* networks and training: :mod:`~mixcon_lite.models`, :mod:`~mixcon_lite.train`,
  :mod:`~mixcon_lite.mixcon` (the consistency loss);
* theory: :mod:`~mixcon_lite.separability`, :mod:`~mixcon_lite.sat` (the 3SAT reduction);
* attacks and their scores: :mod:`~mixcon_lite.attacks`, :mod:`~mixcon_lite.metrics`;
* showing results: :mod:`~mixcon_lite.viz`, :mod:`~mixcon_lite.widgets`;
* experiments and the book: :mod:`~mixcon_lite.experiments` (``python -m
  mixcon_lite.experiments.<name> --mode full``), :mod:`~mixcon_lite.reproducibility`;
* teaching: :mod:`~mixcon_lite.exercises` (checkers), :mod:`~mixcon_lite.classroom` (student
  versions, ``python -m mixcon_lite.classroom student notebooks/ student/``).
"""
from .config import data_root, get_device, get_mode, get_seed, pick, resolve_seed, seed_everything

__version__ = "0.1.0"
__all__ = ["data_root", "get_device", "get_mode", "get_seed", "pick", "resolve_seed", "seed_everything",
           "__version__"]
