"""ipywidgets explorers for the notebooks: move a slider, rerun a small experiment, see the result."""
from __future__ import annotations

import torch

from .attacks.features import invert
from .metrics import ssim
from .models import SplitNet


def inversion_explorer(model: SplitNet, images: torch.Tensor, cuts=None, max_images: int = 8):
    """Sliders for the feature-inversion attack on ``images`` (``[N, C, H, W]`` in [0, 1], N <= ``max_images``):
    the cut (``cuts``, default the model's convolutional/first blocks), the TV weight (log scale) and the
    number of Adam steps. Each change re-runs :func:`mixcon_lite.attacks.features.invert` and redraws
    originals, reconstructions and SSIM. Returns the ``ipywidgets.VBox`` (display it, or leave it last in a cell).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from .viz import compare_rows

    if not isinstance(model, SplitNet):
        raise ValueError("inversion_explorer needs a mixcon_lite SplitNet such as LeNet5.")
    if not torch.is_tensor(images) or images.ndim != 4 or not 1 <= len(images) <= max_images:
        raise ValueError(f"images must be a tensor [N, C, H, W] with 1 <= N <= {max_images}.")
    cuts = list(cuts) if cuts is not None else model.block_names[:2]
    for c in cuts:
        model.cut_index(c)  # validates every cut name
    cut = w.Dropdown(options=cuts, value=cuts[0], description="cut")
    tv = w.FloatLogSlider(value=1e-2, base=10, min=-4, max=0, step=0.25, description="TV weight")
    steps = w.IntSlider(value=200, min=20, max=600, step=20, description="steps")
    out = w.Output()

    def update(*_):
        with torch.no_grad():
            h = model.forward_to(images, cut.value)
        x_hat = invert(model, cut.value, h, steps=steps.value, lr=0.05, tv_weight=tv.value, progress=False)
        scores = ssim(images, x_hat)
        with out:
            out.clear_output(wait=True)
            compare_rows({"original": images, f"from {cut.value}": x_hat}, scores={f"from {cut.value}": scores})
            plt.show()
            print(f"mean SSIM {scores.mean():.3f}")
        return scores

    for control in (cut, tv, steps):
        control.observe(update, names="value")
    box = w.VBox([w.HBox([cut, tv, steps]), out])
    box.update = update  # lets tests and notebooks trigger a redraw
    update()
    return box


def grid_explorer(points: list[dict], victims: torch.Tensor, attack: str = "whitebox",
                  show: int = 6):
    """A dropdown over precomputed MixCon grid points (from
    :func:`mixcon_lite.experiments.mixcon_images.run_grid`): pick :math:`(\\lambda, \\beta)` and see
    its test accuracy, :math:`\\delta`, the attack's mean SSIM and the first ``show`` victims above
    what ``attack`` recovered from them. Nothing is recomputed, so it is instant. Returns the
    ``ipywidgets.VBox`` (its ``update()`` redraws and returns the chosen point)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from .viz import compare_rows

    if not points or any(attack not in p or "images" not in p[attack] for p in points):
        raise ValueError(f"points must be run_grid points that carry {attack!r} recoveries.")
    n = min(int(show), len(victims))
    def label(p):
        notes = [p["pairs"]] if p.get("pairs", "across") != "across" else []
        notes += [f"{p['form']} form"] if p.get("form", "raw") != "raw" else []
        return f"lam {p['lam']:g}, beta {p['beta']:g}" + (f" ({', '.join(notes)})" if notes else "")

    labels = [(label(p), i) for i, p in enumerate(points)]
    pick = w.Dropdown(options=labels, value=0, description="(λ, β)")
    out = w.Output()

    def update(*_):
        p = points[pick.value]
        with out:
            out.clear_output(wait=True)
            print(f"test accuracy {p['accuracy']:.3f}   delta {p['delta']:.3f}   "
                  f"{attack} SSIM {p[attack]['ssim']:.3f} (best victim {p[attack]['ssim_max']:.3f})")
            compare_rows({"private": victims[:n], attack: p[attack]["images"][:n]})
            plt.show()
        return p

    pick.observe(update, names="value")
    update()
    box = w.VBox([pick, out])
    box.update = update          # for tests: redraw and return the chosen point
    return box
