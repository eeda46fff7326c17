import random

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


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        config.seed_everything(bad)


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
