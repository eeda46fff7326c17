"""Full-mode experiment scripts: ``python -m mixcon_lite.experiments.<name> --mode full``.

Each module has a ``run(...)`` that the chapter notebooks call in fast mode, and a ``main()`` that writes
a JSON record (command, hardware, date, settings, results) under ``book/results/``.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch


def hardware() -> dict:
    """What the run was measured on."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}
    try:  # the CPU's model name (Linux): results of chaotic attacks can differ between CPUs
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         None)
        if model:
            info["cpu_model"] = model
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


RESULTS_ENV = "MIXCON_LITE_RESULTS"


def results_dir(out_dir: str | os.PathLike | None = None) -> Path:
    """Where full-mode records live.

    Order: ``out_dir`` if given; else ``$MIXCON_LITE_RESULTS``; else ``book/results/`` of the course
    checkout that contains the working directory (found by walking up from it to the folder holding
    ``_toc.yml`` and ``book/``, so it works from the repository root and from ``notebooks/``, however
    the package was installed); else ``./book/results``.
    """
    if out_dir is not None:
        return Path(out_dir)
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
            return folder / "book" / "results"
    return here / "book" / "results"


def save_record(name: str, mode: str, settings: dict, results, out_dir: str | os.PathLike | None = None,
                seconds: float | None = None, file_stem: str | None = None) -> Path:
    """Write ``<out_dir>/<file_stem>_<mode>.json`` (default folder: :func:`results_dir`; default
    stem: the experiment module's ``name``) with the command, date, hardware, settings, results and,
    when given, the run's wall time ``seconds``."""
    out = results_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"experiment": name, "mode": mode, "command": " ".join(["python -m", f"mixcon_lite.experiments.{name}"]
                                                                   + sys.argv[1:]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware(), "settings": settings, "results": results}
    if seconds is not None:
        record["seconds"] = round(float(seconds), 1)
    path = out / f"{file_stem or name}_{mode}.json"
    path.write_text(json.dumps(record, indent=1))
    return path


def load_record(name: str, mode: str = "full", out_dir: str | os.PathLike | None = None) -> dict | None:
    """The saved record of an experiment, or ``None`` if it has not been run."""
    path = results_dir(out_dir) / f"{name}_{mode}.json"
    return json.loads(path.read_text()) if path.is_file() else None
