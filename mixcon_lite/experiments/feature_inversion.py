"""Feature inversion on LeNet-5 / Fashion-MNIST at every cut: white-box rMLE and a black-box decoder.

The client's LeNet-5 is trained on Fashion-MNIST training images. The attacker's own images (for the
decoder) are the first half of the test split; the victims are class-balanced images from the second half,
so the three sets are disjoint. For each cut the attacker recovers the victims' images

* white-box, the paper's settings (App. C.2): SGD, learning rate 10, 500 steps, TV prior;
* white-box with Adam (learning rate 0.05) and the same TV prior;
* black-box: a decoder trained on the attacker's images' representations (:func:`train_decoder`).

Similarity: SSIM per image (mean, std, best); LPIPS only where its pretrained backbone is available.

    python -m mixcon_lite.experiments.feature_inversion --mode full
"""
from __future__ import annotations

import argparse

import torch

from ..attacks.features import invert, train_decoder
from ..config import get_mode, pick
from ..data import load_dataset, subset
from ..metrics import lpips_available, lpips_distance, ssim
from ..models import LeNet5
from ..train import evaluate, train

ATTACKS = ("white-box SGD (paper)", "white-box Adam", "decoder (black-box)")
TV_WEIGHT = 0.01


def attack_settings(mode: str | None = None) -> dict:
    """The attacks' sizes in ``mode``: white-box steps, decoder epochs and the TV weight."""
    return {"tv_weight": TV_WEIGHT, "white_box_steps": pick(300, 500, mode), "decoder_epochs": pick(5, 20, mode)}


def prepare(mode: str | None = None, seed: int = 0):
    """Data and a trained client model. Fast: 10,000 training images, 3 epochs of SGD with momentum
    (chapter 00's recipe); full: all 60,000, 20 epochs of plain SGD at learning rate 0.01 (the paper's §5.2).
    Returns ``(model, test_accuracy, (x_aux, y_aux), (x_victims, y_victims))``."""
    mode = get_mode(mode)
    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    x_te, y_te = load_dataset("fashion-mnist", "test")
    torch.manual_seed(seed)
    model = LeNet5()
    if mode == "fast":
        xs, ys = subset(x_tr, y_tr, 1000, seed=seed)
        train(model, (xs, ys), epochs=3, lr=0.05, momentum=0.9, seed=seed)
    else:
        train(model, (x_tr, y_tr), epochs=20, lr=0.01, batch_size=64, seed=seed)
    acc = evaluate(model, x_te, y_te)["accuracy"]
    half = len(x_te) // 2
    victims = subset(x_te[half:], y_te[half:], pick(3, 10, mode), seed=seed)
    n_aux = pick(5000, half, mode)
    return model, acc, (x_te[:n_aux], y_te[:n_aux]), victims


def attack_cut(model, cut: str, victims: torch.Tensor, x_aux: torch.Tensor, mode: str | None = None,
               tv_weight: float = TV_WEIGHT, seed: int = 0) -> dict:
    """Run the three attacks on the representations of ``victims`` after ``cut``.
    Returns ``{attack name: recovered images [N, 1, 28, 28]}``."""
    mode = get_mode(mode)
    with torch.no_grad():
        h = model.forward_to(victims, cut)
    sizes = attack_settings(mode)
    steps = sizes["white_box_steps"]
    out = {ATTACKS[0]: invert(model, cut, h, steps=steps, lr=10.0, optimizer="sgd", tv_weight=tv_weight),
           ATTACKS[1]: invert(model, cut, h, steps=steps, lr=0.05, optimizer="adam", tv_weight=tv_weight)}
    decoder = train_decoder(model, cut, x_aux, epochs=sizes["decoder_epochs"], seed=seed)
    with torch.no_grad():
        out[ATTACKS[2]] = decoder(h)
    return out


def class_mean_baseline(x_victims, y_victims, x_aux, y_aux) -> torch.Tensor:
    """What an attacker gets from the label alone: for each victim, the mean of the attacker's images of
    its class. Returns images ``[N, 1, 28, 28]``; their SSIM is the bar a recovery must clear to show
    more than the class."""
    means = {int(c): x_aux[y_aux == c].mean(0) for c in torch.unique(y_victims)}
    return torch.stack([means[int(c)] for c in y_victims])


def score(victims: torch.Tensor, recovered: dict) -> dict:
    """SSIM (mean, std, max) and LPIPS (mean, or the reason it was not computed) per attack."""
    rows = {}
    for name, rec in recovered.items():
        s = ssim(victims, rec)
        row = {"ssim": float(s.mean()), "ssim_std": float(s.std()), "ssim_max": float(s.max())}
        if lpips_available("alex"):
            row["lpips"] = float(lpips_distance(victims, rec).mean())
        else:
            row["lpips"] = "not computed: no pretrained AlexNet in the local torch cache"
        rows[name] = row
    return rows


def run(mode: str | None = None, cuts=None, seed: int = 0, progress: bool | None = None, prepared=None):
    """All cuts and attacks. Returns ``(model, test_accuracy, (x_victims, y_victims), {cut: recovered},
    {cut: scores})``; ``scores`` also holds the label-only baseline under ``"class mean (label only)"``.
    ``prepared``: the result of :func:`prepare`, to reuse a trained model."""
    from tqdm.auto import tqdm

    from ..train import show_progress

    mode = get_mode(mode)
    model, acc, (x_aux, y_aux), (x_v, y_v) = prepared if prepared is not None else prepare(mode, seed)
    cuts = list(cuts) if cuts is not None else model.block_names
    recovered, scores = {}, {}
    for cut in tqdm(cuts, desc="cuts", disable=not show_progress(progress)):
        recovered[cut] = attack_cut(model, cut, x_v, x_aux, mode, seed=seed)
        scores[cut] = score(x_v, recovered[cut])
    baseline = class_mean_baseline(x_v, y_v, x_aux, y_aux)
    scores["class mean (label only)"] = score(x_v, {"baseline": baseline})["baseline"]
    return model, acc, (x_v, y_v), recovered, scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    mode = get_mode(args.mode)
    model, acc, (x_v, _), recovered, scores = run(mode, progress=True)
    from . import save_record

    settings = {"victims": len(x_v), "attacks": list(ATTACKS), **attack_settings(mode)}
    path = save_record("feature_inversion", mode, settings, {"test_accuracy": acc, "scores": scores}, args.out)
    print(f"LeNet-5 test accuracy {acc:.3f}")
    for cut, rows in scores.items():
        if cut in recovered:
            print(cut, "  ".join(f"{a}: SSIM {r['ssim']:.3f}" for a, r in rows.items()))
        else:
            print(cut, f"SSIM {rows['ssim']:.3f}")
    print("wrote", path)


if __name__ == "__main__":
    main()
