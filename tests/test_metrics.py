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
    want = [structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for i in range(2)]
    assert np.allclose(metrics.ssim(a, b), want)
    # the published convention (Gaussian window) is not scikit-image's default uniform 7x7 window
    uniform = [structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0) for i in range(2)]
    assert not np.allclose(metrics.ssim(a, b), uniform)


def test_ssim_gaussian_window_by_hand():
    """SSIM of Wang et al. written out: Gaussian-weighted local means, variances and covariance
    (sigma 1.5, truncated at 3.5 sigma as scikit-image does), averaged over the valid region."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    a = rng.random((24, 24))
    b = np.clip(a + 0.2 * rng.standard_normal((24, 24)), 0, 1)
    f = lambda z: gaussian_filter(z, sigma=1.5, truncate=3.5)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    var_a, var_b = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2
    cov = f(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    pad = 5  # (11 - 1) // 2: scikit-image averages away from the border
    want = s[pad:-pad, pad:-pad].mean()
    got = metrics.ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])[0]
    assert got == pytest.approx(want, abs=1e-6)


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
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(torch.rand(1, 1, 9, 9), torch.rand(1, 1, 9, 9))


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


def test_ssim_matrix_equals_pairwise_ssim():
    from mixcon_lite.metrics import ssim, ssim_matrix

    g = torch.Generator().manual_seed(3)
    for shape in ((1, 28, 28), (3, 16, 20)):
        a, b = torch.rand(6, *shape, generator=g), 0.5 * torch.rand(4, *shape, generator=g)
        b[1] = a[2]
        got = ssim_matrix(a, b, chunk=5)     # several chunks
        want = ssim(a.repeat_interleave(4, 0), b.repeat(6, 1, 1, 1)).reshape(6, 4)
        assert got.shape == (6, 4) and np.allclose(got, want, atol=1e-6)
        assert np.isclose(got[2, 1], 1.0)
    with pytest.raises(ValueError, match="same image shape"):
        ssim_matrix(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 13, 12))
    with pytest.raises(ValueError, match="11x11"):
        ssim_matrix(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
