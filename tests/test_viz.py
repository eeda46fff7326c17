import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mixcon_lite import viz  # noqa: E402


def test_image_grid_grey_and_colour():
    fig = viz.image_grid(torch.rand(12, 1, 8, 8), titles=[str(i) for i in range(12)], ncols=5)
    assert len(fig.axes) == 15 and fig.axes[0].get_title() == "0"
    fig2 = viz.image_grid(torch.rand(2, 3, 8, 8).numpy(), suptitle="colour")
    assert len(fig2.axes) == 2
    plt.close("all")


def test_compare_rows_and_history():
    x = torch.rand(3, 1, 8, 8)
    fig = viz.compare_rows({"a": x, "b": x}, scores={"b": [0.5, 0.6, 0.7]})
    assert len(fig.axes) == 6 and fig.axes[3].get_xlabel() == "SSIM 0.50"
    assert fig._suptitle is None
    titled = viz.compare_rows({"a": x}, title="Recovered images")
    assert titled._suptitle.get_text() == "Recovered images"
    ax = viz.plot_history({"loss": [1.0, 0.5], "train_accuracy": [0.5, 0.8], "eval_accuracy": []})
    assert len(ax.get_lines()) == 1
    plt.close("all")


def test_viz_bad_input():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        viz.image_grid(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="titles"):
        viz.image_grid(torch.rand(2, 1, 8, 8), titles=["one"])
    with pytest.raises(ValueError, match="same number"):
        viz.compare_rows({"a": torch.rand(2, 1, 8, 8), "b": torch.rand(3, 1, 8, 8)})
    with pytest.raises(ValueError, match="history"):
        viz.plot_history({})


def test_inversion_explorer_updates():
    from mixcon_lite.models import LeNet5
    from mixcon_lite.widgets import inversion_explorer

    torch.manual_seed(0)
    box = inversion_explorer(LeNet5().eval(), torch.rand(2, 1, 28, 28))
    cut, tv, steps = box.children[0].children
    assert cut.options == ("block1", "block2")
    steps.value = 20            # an observed change re-runs the attack
    scores = box.update()
    assert scores.shape == (2,)
    with pytest.raises(ValueError, match="1 <= N"):
        inversion_explorer(LeNet5(), torch.rand(9, 1, 28, 28))
    with pytest.raises(ValueError, match="Unknown cut"):
        inversion_explorer(LeNet5(), torch.rand(1, 1, 28, 28), cuts=["nope"])
    plt.close("all")


def test_grid_explorer_switches_points():
    from mixcon_lite.widgets import grid_explorer

    victims = torch.rand(3, 1, 28, 28)
    points = [{"lam": lam, "beta": 0.0, "pairs": "across", "accuracy": acc, "delta": 1.0,
               "whitebox": {"images": torch.rand(3, 1, 28, 28), "ssim": s, "ssim_max": s + 0.1}}
              for lam, acc, s in ((0.0, 0.8, 0.3), (1.0, 0.81, 0.1))]
    box = grid_explorer(points, victims, show=2)
    pick = box.children[0]
    assert [label for label, _ in pick.options] == ["lam 0, beta 0", "lam 1, beta 0"]
    odd = [dict(points[1], pairs="within"), dict(points[1], form="normalised")]
    assert [lb for lb, _ in grid_explorer(odd, victims, show=2).children[0].options] == [
        "lam 1, beta 0 (within)", "lam 1, beta 0 (normalised form)"]
    pick.value = 1
    assert box.update() is points[1]
    with pytest.raises(ValueError, match="decoder"):
        grid_explorer(points, victims, attack="decoder")
    plt.close("all")
