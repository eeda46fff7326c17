import ast
import importlib.metadata
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mixcon_lite import config


def test_mode_default_env_and_argument(monkeypatch):
    monkeypatch.delenv("MIXCON_LITE_MODE", raising=False)
    assert config.get_mode() == "fast"
    monkeypatch.setenv("MIXCON_LITE_MODE", " FULL ")
    assert config.get_mode() == "full"
    assert config.get_mode("fast") == "fast"          # the argument wins over the environment
    assert config.pick(1, 2) == 2 and config.pick(1, 2, mode="fast") == 1


@pytest.mark.parametrize("bad", ["quick", "", "paper"])
def test_mode_rejects_unknown(monkeypatch, bad):
    monkeypatch.setenv("MIXCON_LITE_MODE", bad)
    with pytest.raises(ValueError, match="MIXCON_LITE_MODE"):
        config.get_mode()
    with pytest.raises(ValueError, match="expected one of"):
        config.get_mode(bad or "x")


def test_seed_everything_reproduces_all_generators():
    g = config.seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(1, generator=g))
    g = config.seed_everything(5)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(1, generator=g))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        config.seed_everything(bad)


def test_seed_knob_default_env_and_offset(monkeypatch):
    monkeypatch.delenv("MIXCON_LITE_SEED", raising=False)
    assert config.get_seed() == 0 and config.get_seed(3) == 3
    assert config.resolve_seed(None) == 0 and config.resolve_seed(7) == 7
    monkeypatch.setenv("MIXCON_LITE_SEED", " 11 ")
    assert config.get_seed() == 11 and config.get_seed(2) == 13
    assert config.resolve_seed(None) == 11 and config.resolve_seed(4) == 4   # argument wins
    # seed_everything() without an argument reads the knob
    g = config.seed_everything()
    a = torch.rand(2, generator=g)
    assert torch.equal(a, torch.rand(2, generator=torch.Generator().manual_seed(11)))


@pytest.mark.parametrize("bad", ["one", "-2", "1.5"])
def test_seed_knob_rejects_bad_env(monkeypatch, bad):
    monkeypatch.setenv("MIXCON_LITE_SEED", bad)
    with pytest.raises(ValueError, match="MIXCON_LITE_SEED"):
        config.get_seed()
    with pytest.raises(ValueError, match="MIXCON_LITE_SEED"):
        config.seed_everything()


def test_get_seed_rejects_bad_offset(monkeypatch):
    monkeypatch.delenv("MIXCON_LITE_SEED", raising=False)
    with pytest.raises(ValueError, match="offset"):
        config.get_seed(-1)


def test_device():
    assert config.get_device("cpu").type == "cpu"
    assert config.get_device().type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        config.get_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            config.get_device("cuda")


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("MIXCON_LITE_DATA", raising=False)
    assert config.data_root() == config.DEFAULT_DATA_ROOT
    monkeypatch.setenv("MIXCON_LITE_DATA", str(tmp_path))
    assert config.data_root() == tmp_path
    assert config.data_root(tmp_path / "x") == tmp_path / "x"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_pyproject_declares_every_import():
    """`pip install .` must give every third-party module the package imports (lazily or not):
    each one's distribution is in pyproject's dependencies or an optional extra that says why."""
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    optional = {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0])
                for deps in project.get("optional-dependencies", {}).values() for d in deps}
    dists = importlib.metadata.packages_distributions()
    missing = []
    for path in sorted((root / "mixcon_lite").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("mixcon_lite", "__future__"):
                    continue
                wanted = {_norm(d) for d in dists.get(top, [top])}
                if not wanted & (declared | optional):
                    missing.append(f"{path.relative_to(root)}: import {name} (distribution "
                                   f"{' or '.join(sorted(wanted))}) is not in pyproject.toml")
    assert not missing, "Add to [project] dependencies in pyproject.toml:\n" + "\n".join(missing)
    assert "lpips" in optional and "lpips" not in declared     # optional: needs pretrained weights
