import struct

import numpy as np
import pytest
import torch

from pathlib import Path

from mixcon_lite import config, data


def _write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.astype(np.uint8).tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mirror(tmp_path):
    """A tiny mirror in torchvision's layout: 12 'train' and 6 'test' images per dataset."""
    rng = np.random.default_rng(0)
    for folder in ("FashionMNIST", "MNIST"):
        for prefix, n in (("train", 12), ("t10k", 6)):
            _write_idx(tmp_path / folder / "raw", prefix, rng.integers(0, 256, (n, 28, 28)), np.arange(n) % 3)
    return tmp_path


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "FashionMNIST"])
@pytest.mark.parametrize("split,n", [("train", 12), ("test", 6)])
def test_load_dataset_tiny_mirror(tiny_mirror, name, split, n):
    x, y = data.load_dataset(name, split, root=tiny_mirror)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw = (tiny_mirror / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw" /
           f"{'train' if split == 'train' else 't10k'}-images-idx3-ubyte").read_bytes()[16:]
    assert torch.allclose(x.flatten(), torch.tensor(list(raw), dtype=torch.float32) / 255.0)


def test_load_dataset_reads_env(monkeypatch, tiny_mirror):
    monkeypatch.setenv("MIXCON_LITE_DATA", str(tiny_mirror))
    assert len(data.load_dataset("mnist", "test")[0]) == 6


def test_load_dataset_bad_name_and_split(tiny_mirror):
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_dataset("cifar10", "train", root=tiny_mirror)
    with pytest.raises(ValueError, match="Unknown split"):
        data.load_dataset("mnist", "validation", root=tiny_mirror)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_missing_root_names_env_and_layout(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset(name, "test", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert "MIXCON_LITE_DATA" in msg and "raw/t10k-images-idx3-ubyte" in msg
    assert "root=" in msg and "download=True" in msg


class _FakeTorchvisionDataset:
    """Stands in for torchvision's FashionMNIST / MNIST: 'downloads' by writing a tiny split."""
    calls = []

    def __init__(self, root, train, download):
        type(self).calls.append((root, train, download))
        folder = "MNIST" if type(self).__name__.endswith("Mnist") else "FashionMNIST"
        _write_idx(Path(root) / folder / "raw", "train" if train else "t10k",
                   np.zeros((4, 28, 28)), np.arange(4) % 2)


class _FakeMnist(_FakeTorchvisionDataset):
    pass


class _Offline:
    def __init__(self, root, train, download):
        raise RuntimeError("Error downloading t10k-images-idx3-ubyte.gz: no network")


@pytest.fixture
def fake_home(monkeypatch, tmp_path):
    """No MIXCON_LITE_DATA, and the default data folder inside tmp_path."""
    import torchvision
    monkeypatch.delenv("MIXCON_LITE_DATA", raising=False)
    monkeypatch.setattr(config, "DEFAULT_DATA_ROOT", tmp_path / "cache")
    _FakeTorchvisionDataset.calls = []
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", _FakeTorchvisionDataset)
    monkeypatch.setattr(torchvision.datasets, "MNIST", _FakeMnist)
    return tmp_path / "cache"


@pytest.mark.parametrize("name,folder", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_downloads_on_first_use_when_nothing_is_set(fake_home, name, folder, capsys):
    x, y = data.load_dataset(name, "test")
    assert x.shape == (4, 1, 28, 28) and y.tolist() == [0, 1, 0, 1]
    assert (fake_home / folder / "raw" / "t10k-images-idx3-ubyte").is_file()
    assert _FakeTorchvisionDataset.calls == [(str(fake_home), False, True)]
    assert "downloading it once" in capsys.readouterr().err
    data.load_dataset(name, "test")                       # second call: read, no new download
    assert len(_FakeTorchvisionDataset.calls) == 1


def test_chosen_folder_is_never_downloaded_into(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("MIXCON_LITE_DATA", str(tmp_path / "mirror"))
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset("fashion-mnist", "train")
    msg = str(err.value)
    assert "folder named by MIXCON_LITE_DATA" in msg and "$MIXCON_LITE_DATA/FashionMNIST/raw/" in msg
    assert "unset MIXCON_LITE_DATA" in msg
    with pytest.raises(FileNotFoundError):
        data.load_dataset("mnist", "test", root=tmp_path / "elsewhere")
    assert _FakeTorchvisionDataset.calls == []
    data.load_dataset("mnist", "test", root=tmp_path / "elsewhere", download=True)  # explicit: allowed
    assert len(_FakeTorchvisionDataset.calls) == 1


def test_download_false_and_bad_download(fake_home):
    with pytest.raises(FileNotFoundError, match="without download=False"):
        data.load_dataset("fashion-mnist", "test", download=False)
    with pytest.raises(ValueError, match="download must be"):
        data.load_dataset("fashion-mnist", "test", download="yes")
    assert _FakeTorchvisionDataset.calls == []


def test_failed_download_says_how_to_work_offline(fake_home, monkeypatch):
    import torchvision
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", _Offline)
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset("fashion-mnist", "test")
    msg = str(err.value)
    assert "failed (RuntimeError" in msg and "set MIXCON_LITE_DATA" in msg
    assert "$MIXCON_LITE_DATA/FashionMNIST/raw/t10k-labels-idx1-ubyte" in msg


def test_mnist_train_missing_says_some_copies_have_test_only(tiny_mirror):
    for f in (tiny_mirror / "MNIST" / "raw").glob("train-*"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match="only MNIST's test split"):
        data.load_dataset("mnist", "train", root=tiny_mirror)


def test_real_mirror_sizes(data_dir):
    x, y = data.load_dataset("fashion-mnist", "train")
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,)
    assert torch.equal(torch.bincount(y), torch.full((10,), 6000))
    x, y = data.load_dataset("mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and y.dtype == torch.int64
    assert x.min() == 0.0 and x.max() == 1.0


def test_subset_balanced_and_deterministic():
    labels = torch.arange(100) % 4
    images = torch.arange(100, dtype=torch.float32).view(100, 1, 1, 1)
    a = data.subset(images, labels, 5, seed=1)
    b = data.subset(images, labels, 5, seed=1)
    c = data.subset(images, labels, 5, seed=2)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert torch.equal(torch.bincount(a[1]), torch.full((4,), 5))
    assert torch.equal(labels[a[0].flatten().long()], a[1])            # images stay with their labels
    assert len(set(a[0].flatten().tolist())) == 20                       # no repeats
    x, y = data.subset(images, labels, 3, classes=[2, 0])
    assert y.tolist() == [2, 2, 2, 0, 0, 0]


def test_subset_bad_input():
    labels = torch.arange(10) % 2
    images = torch.zeros(10, 1, 2, 2)
    with pytest.raises(ValueError, match="fewer than n_per_class"):
        data.subset(images, labels, 6)
    with pytest.raises(ValueError, match="positive integer"):
        data.subset(images, labels, 0)
    with pytest.raises(ValueError, match="matching"):
        data.subset(images[:5], labels, 1)
    with pytest.raises(ValueError, match="torch tensors"):
        data.subset(images.numpy(), labels, 1)


def test_two_gaussians_shapes_balance_noise():
    x_tr, y_tr, x_te, y_te = data.two_gaussians(seed=3)
    assert x_tr.shape == (800, 10) and x_te.shape == (200, 10)
    assert y_tr.dtype == torch.int64 and set(y_tr.tolist()) == {0, 1}
    again = data.two_gaussians(seed=3)
    assert torch.equal(again[0], x_tr) and torch.equal(again[1], y_tr)
    # without flips, the class means sit at +-mu with |2 mu| = separation
    x, y, _, _ = data.two_gaussians(n_train=4000, dim=5, separation=4.0, flip=0.0, seed=0)
    gap = (x[y == 1].mean(0) - x[y == 0].mean(0)).norm().item()
    assert abs(gap - 4.0) < 0.2
    assert abs((y == 1).float().mean().item() - 0.5) < 1e-9
    # a flip rate of 0.2 flips about 20% of the labels
    x, y, _, _ = data.two_gaussians(n_train=4000, dim=5, separation=40.0, flip=0.2, seed=0)
    side = (x.sum(1) > 0).long()
    assert abs((side != y).float().mean().item() - 0.2) < 0.03


@pytest.mark.parametrize("kwargs,match", [({"n_train": 0}, "positive integer"), ({"dim": 2.5}, "positive integer"),
                                          ({"flip": 0.5}, "flip"), ({"separation": -1}, "separation"),
                                          ({"n_test": 1}, "at least 2")])
def test_two_gaussians_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.two_gaussians(**kwargs)


def test_class_names():
    assert data.class_names("fashion-mnist")[9] == "Ankle boot"
    assert data.class_names("mnist")[3] == "3"
