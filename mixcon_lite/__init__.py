"""mixcon_lite: the helper package of the course *Recovering private data from neural networks*.

Each chapter notebook first builds an idea by hand, then uses the tested version from here.
Modules: :mod:`~mixcon_lite.config`, :mod:`~mixcon_lite.data`, :mod:`~mixcon_lite.models`,
:mod:`~mixcon_lite.train`, :mod:`~mixcon_lite.metrics`, :mod:`~mixcon_lite.viz`,
:mod:`~mixcon_lite.attacks`, :mod:`~mixcon_lite.widgets`, :mod:`~mixcon_lite.exercises`,
:mod:`~mixcon_lite.classroom`.
"""
from .config import data_root, get_device, get_mode, pick, seed_everything

__version__ = "0.1.0"
__all__ = ["data_root", "get_device", "get_mode", "pick", "seed_everything", "__version__"]
