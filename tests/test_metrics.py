import math

import numpy as np
import pytest
import torch

from mixcon_lite import metrics


def test_ssim_identity_symmetry_and_order():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 16, 16, generator=g)
    assert np.allclose(metrics.ssim(x, x), 1.0)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.4 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    s1, s2 = metrics.ssim(x, noisy), metrics.ssim(x, noisier)
    assert s1.shape == (3,) and np.all(s1 < 1) and np.all(s2 < s1)
    assert np.allclose(metrics.ssim(noisy, x), s1)
    assert np.allclose(metrics.normalized_ssim(x, noisy), (s1 + 1) / 2)


def test_ssim_matches_skimage_on_colour():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 20, 20)), rng.random((2, 3, 20, 20))
    want = [structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0) for i in range(2)]
    assert np.allclose(metrics.ssim(a, b), want)


@pytest.mark.parametrize("fn", [metrics.ssim, metrics.psnr])
def test_image_metrics_bad_input(fn):
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        fn(x, torch.rand(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        fn(x[0], x[0])
    with pytest.raises(ValueError, match=r"clamp"):
        fn(x * 2, x)
    with pytest.raises(ValueError, match="torch tensor or NumPy"):
        fn([[1.0]], x)


def test_ssim_small_image():
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5))


def test_psnr_mse_cosine_values():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.full((2, 1, 4, 4), 0.1)
    y[1] = 0.0
    assert np.allclose(metrics.mse(x, y), [0.01, 0.0])
    p = metrics.psnr(x, y)
    assert p[0] == pytest.approx(20.0) and math.isinf(p[1])
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    assert np.allclose(metrics.cosine(a, b), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="batch"):
        metrics.cosine(torch.ones(3), torch.ones(3))


def test_lpips_refuses_without_pretrained_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert not metrics.lpips_available("alex")
    with pytest.raises(RuntimeError, match="not in the local torch cache"):
        metrics.lpips_distance(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="Unknown LPIPS backbone"):
        metrics.lpips_distance(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), net="resnet")


def test_lpips_plumbing_with_a_stand_in_backbone(monkeypatch, tmp_path):
    """With a checkpoint file where torchvision looks for it, lpips_distance runs the lpips package.
    The stand-in weights are random (this tests the code path, not perceptual quality)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = metrics.lpips_backbone_file("alex")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    monkeypatch.setattr(metrics, "_lpips_cache", {})
    x = torch.rand(2, 1, 32, 32)
    d_same = metrics.lpips_distance(x, x)
    d_diff = metrics.lpips_distance(x, torch.rand(2, 1, 32, 32))
    assert d_same.shape == (2,) and np.allclose(d_same, 0.0, atol=1e-6)
    assert np.all(d_diff > 0)
