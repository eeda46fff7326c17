r"""MixCon §4.2 on synthetic data: Tables 1 (accuracy) and 2 (inversion MSE / MCS), for both
readings of the consistency loss (:mod:`mixcon_lite.mixcon`), with baselines and a convergence check.

What the paper gives: two Gaussian classes with identity covariance, 800 training and 200 test
samples, label flips, a 4-layer fully connected net with a 2-unit second layer where :math:`L_c`
is applied, 20 epochs of SGD with cross-entropy, deeper = two more 100-unit layers after the
third, wider = a 2048-unit third layer, and the attack of App. C.1: SGD with learning rate 0.01
and weight decay for 500 iterations on :math:`\lVert f(x)-h\rVert_2^2`, on every test sample.

What is **ours** (the paper does not give it): input dimension 10, class means
:math:`\pm\mu` with :math:`\lVert 2\mu\rVert_2 = 4`, 10 % label flips (:func:`~mixcon_lite.data.two_gaussians`);
widths 100-2-100; PyTorch's default initialisation; training learning rate 0.01 and batch 32; the
attack's weight decay :math:`10^{-4}` and its start at :math:`x = 0`; :math:`\varepsilon`
(0.05 raw, 0.01 normalised).

Measured for each setting and seed: train / test accuracy; the paper's attack (MSE, MCS and the
final feature residual :math:`\lVert f(\hat x)-h\rVert_2^2`, so that a high MSE cannot hide an
optimiser that stopped early) and a convergence check (Adam, learning rate 0.05, same objective);
:math:`\delta` over all test points and, over MixCon's test pairs :math:`S`, the smallest,
median and largest (:math:`\Delta_S`) distance. Beside them: the zero-vector and class-mean
(label-only) baselines, MixCon at :math:`\varepsilon = 0.01`, and a sweep of the cut's width that
shows why a size-independent loss (``distance="per_entry"``, ``reduction="mean"``) matters.

    python -m mixcon_lite.experiments.mixcon_synthetic --mode full
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..attacks.features import invert
from ..config import get_mode, get_seed
from ..data import two_gaussians
from ..metrics import cosine, mse
from ..mixcon import DEFAULT_EPS, consistency_loss, mixcon_loss_fn
from ..models import MLP
from ..separability import max_pair_distance, min_pairwise_distance, mixcon_pairs
from ..train import evaluate, train
from ..utils import progress_bar

CUT = "fc2"
NETS = {"default": [100, 2, 100], "deeper": [100, 2, 100, 100, 100], "wider": [100, 2, 2048]}
FORMS = ("raw", "normalised")
# (setting, net, lam, beta); the vanilla deeper / wider nets are our control (not in the paper)
SETTINGS = [("vanilla", "default", None, None), ("vanilla", "deeper", None, None),
            ("vanilla", "wider", None, None),
            ("MixCon (0.1, 0.01)", "default", 0.1, 0.01), ("MixCon (0.1, 0.01)", "deeper", 0.1, 0.01),
            ("MixCon (0.1, 0.01)", "wider", 0.1, 0.01),
            ("MixCon (0.1, 0)", "default", 0.1, 0.0), ("MixCon (0.1, 0)", "deeper", 0.1, 0.0),
            ("MixCon (0.1, 0)", "wider", 0.1, 0.0)]
PAPER = {  # MixCon Tables 1 and 2: train / test accuracy (%), inversion MSE and MCS
    ("vanilla", "default"): {"train": 91.5, "test": 91.5, "mse": 1.92, "mcs": 0.169},
    ("vanilla", "deeper"): {},
    ("vanilla", "wider"): {},
    ("MixCon (0.1, 0.01)", "default"): {"train": 88.9, "test": 88.0, "mse": 2.08, "mcs": 0.118},
    ("MixCon (0.1, 0.01)", "deeper"): {"train": 89.5, "test": 88.5},
    ("MixCon (0.1, 0.01)", "wider"): {"train": 91.5, "test": 90.5},
    ("MixCon (0.1, 0)", "default"): {"train": 50.0, "test": 50.0, "mse": 2.35, "mcs": 0.161},
    ("MixCon (0.1, 0)", "deeper"): {"train": 50.0, "test": 50.0},
    ("MixCon (0.1, 0)", "wider"): {"train": 50.0, "test": 50.0},
}
SCALINGS = {"squared, sum": {"distance": "squared", "reduction": "sum"},
            "per-entry, mean": {"distance": "per_entry", "reduction": "mean"}}


def get_settings(mode: str | None = None, seeds=None) -> dict:
    """Every size and hyperparameter of the experiment, resolved once from the mode
    (fast: 3 seeds, the attacks on the default nets only, one seed in the width sweep;
    full: 10 seeds, every net attacked, three seeds in the sweep). Pass the result down.
    The default seeds are the course seed and the next ones (``get_seed(0), get_seed(1), ...``,
    i.e. 0, 1, 2 unless ``MIXCON_LITE_SEED`` is set); the data are drawn from the course seed."""
    mode = get_mode(mode)
    full = mode == "full"
    seeds = [get_seed(k) for k in range(10 if full else 3)] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed.")
    return {
        "mode": mode, "seeds": seeds, "forms": list(FORMS), "cut": CUT, "nets": NETS,
        "data": {"n_train": 800, "n_test": 200, "dim": 10, "separation": 4.0, "flip": 0.1,
                 "seed": get_seed()},
        "train": {"epochs": 20, "lr": 0.01, "batch_size": 32},
        "eps": dict(DEFAULT_EPS),
        "attack": {"optimizer": "sgd", "lr": 0.01, "steps": 500, "weight_decay": 1e-4,
                   "reduction": "sum", "init": "zeros"},
        "check_attack": {"optimizer": "adam", "lr": 0.05, "steps": 500, "weight_decay": 1e-4,
                         "reduction": "sum", "init": "zeros"},
        "attack_nets": list(NETS) if full else ["default"],
        "eps_check": {"eps": 0.01, "form": "raw", "setting": "MixCon (0.1, 0.01)", "net": "default"},
        "width_sweep": {"widths": [2, 16, 128], "seeds": seeds[:3] if full else seeds[:1],
                        "lam": 0.1, "beta": 0.01},
    }


def make_data(settings: dict):
    """``(x_train, y_train, x_test, y_test)`` of the synthetic task described by ``settings``."""
    return two_gaussians(**settings["data"])


def train_net(widths, lam, beta, seed: int, data, settings: dict, form: str = "raw", eps=None,
              **loss_options):
    """Train ``MLP(dim, widths, 2)`` (``lam=None``: vanilla, cross-entropy only) with the settings'
    recipe; ``loss_options`` (``distance``, ``reduction``) go to :func:`mixcon_loss_fn`.
    Returns ``(model, history)``."""
    x_tr, y_tr = data[0], data[1]
    torch.manual_seed(seed)
    model = MLP(x_tr.shape[1], widths, 2)
    loss_fn = None if lam is None else mixcon_loss_fn(settings["cut"], lam, beta, eps=eps, form=form,
                                                      **loss_options)
    hist = train(model, (x_tr, y_tr), loss_fn=loss_fn, seed=seed, progress=False, **settings["train"])
    return model, hist


def attack(model, h: torch.Tensor, x_true: torch.Tensor, params: dict, cut: str = CUT) -> dict:
    """White-box inversion of ``h`` with :func:`~mixcon_lite.attacks.features.invert` and ``params``;
    MSE and MCS against ``x_true`` and the final feature residual
    :math:`\\lVert f(\\hat x)-h\\rVert_2^2` (mean over samples) beside the mean :math:`\\lVert h\\rVert_2^2`."""
    x_hat = invert(model, cut, h, progress=False, **params)
    with torch.no_grad():
        residual = (model.forward_to(x_hat, cut) - h).pow(2).flatten(1).sum(1).mean().item()
    return {"mse": float(mse(x_true, x_hat).mean()), "mcs": float(cosine(x_true, x_hat).mean()),
            "residual": residual, "h_sq": h.pow(2).flatten(1).sum(1).mean().item(), "x_hat": x_hat}


def separation(h: torch.Tensor, labels: torch.Tensor) -> dict:
    """The paper's Q1 quantities for representations ``h`` of labelled points: :math:`\\delta` over
    all pairs, and over MixCon's pairs :math:`S` the smallest (``delta_S``), median (``median_S``,
    the lower middle value for an even count, as ``torch.median``) and largest (:math:`\\Delta_S`)
    Euclidean distance; ``at_origin`` = share of points mapped exactly to 0."""
    pairs = mixcon_pairs(labels)
    d = (h[pairs[:, 0]] - h[pairs[:, 1]]).norm(dim=1)
    return {"delta": min_pairwise_distance(h), "delta_S": d.min().item(), "median_S": d.median().item(),
            "Delta_S": max_pair_distance(h, pairs),
            "at_origin": (h.flatten(1) == 0).all(1).float().mean().item()}


def run_setting(net: str, lam, beta, seed: int, data, settings: dict, form: str = "raw", eps=None,
                attacks: bool = True) -> dict:
    """Train one network of ``settings["nets"][net]`` (``lam=None``: vanilla), then measure its
    ``cut`` representation of the test set: accuracies (%), :func:`separation`, and with ``attacks``
    the paper's attack (``mse``, ``mcs``, ``residual``, ``h_sq``) and the convergence check
    (``check_mse``, ``check_mcs``, ``check_residual``). Also returns ``model``, ``h`` and ``x_hat``."""
    if net not in settings["nets"]:
        raise ValueError(f"Unknown net {net!r}; expected one of {tuple(settings['nets'])}.")
    x_te, y_te = data[2], data[3]
    model, hist = train_net(settings["nets"][net], lam, beta, seed, data, settings, form, eps)
    with torch.no_grad():
        h = model.forward_to(x_te, settings["cut"])
    out = {"train": 100 * hist["train_accuracy"][-1],
           "test": 100 * evaluate(model, x_te, y_te)["accuracy"], **separation(h, y_te),
           "model": model, "h": h, "x_hat": None}
    if attacks:
        paper = attack(model, h, x_te, settings["attack"], settings["cut"])
        check = attack(model, h, x_te, settings["check_attack"], settings["cut"])
        out.update({k: paper[k] for k in ("mse", "mcs", "residual", "h_sq", "x_hat")})
        out.update({"check_" + k: check[k] for k in ("mse", "mcs", "residual")})
    return out


def baselines(data) -> dict:
    """Reconstructions that need no attack, scored like one (MSE, MCS over the test set):
    ``zero`` (:math:`\\hat x = 0`); ``class_mean`` (the mean training input of the test sample's
    label: what knowing the label alone gives); ``best_mean`` (an oracle: whichever of the two class
    means is nearer the true input, the best any guess worth one bit can do)."""
    x_tr, y_tr, x_te, y_te = data
    means = torch.stack([x_tr[y_tr == c].mean(0) for c in (0, 1)])
    nearer = torch.cdist(x_te, means).argmin(1)
    out = {}
    for name, x_hat in (("zero", torch.zeros_like(x_te)), ("class_mean", means[y_te]),
                        ("best_mean", means[nearer])):
        out[name] = {"mse": float(mse(x_te, x_hat).mean()), "mcs": float(cosine(x_te, x_hat).mean())}
    return out


METRICS = ("train", "test", "delta", "delta_S", "median_S", "Delta_S", "at_origin",
           "mse", "mcs", "residual", "h_sq", "check_mse", "check_mcs", "check_residual")


def summarise(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds (``key`` and ``key_std``) of every metric present,
    and the values per seed (``key_per_seed``, for :mod:`mixcon_lite.stats` comparisons)."""
    row = {}
    for key in METRICS:
        if key in runs[0]:
            vals = np.array([r[key] for r in runs], dtype=float)
            row[key], row[key + "_std"] = float(vals.mean()), float(vals.std())
            row[key + "_per_seed"] = [float(v) for v in vals]
    return row


def eps_check(data, settings: dict) -> dict:
    """The setting ``settings["eps_check"]`` trained with that smaller :math:`\\varepsilon`, over the
    seeds, with the attacks: does MixCon's effect on accuracy and inversion depend on it?"""
    spec = settings["eps_check"]
    lam, beta = next((lam, beta) for s, n, lam, beta in SETTINGS
                     if s == spec["setting"] and n == spec["net"])
    runs = [run_setting(spec["net"], lam, beta, s, data, settings, spec["form"], spec["eps"])
            for s in settings["seeds"]]
    return {**spec, "seeds": len(runs), **summarise(runs)}


def width_sweep(data, settings: dict) -> list[dict]:
    """Test accuracy (%) of MixCon with ``(lam, beta)`` of ``settings["width_sweep"]`` when the cut
    layer is 2, 16 or 128 wide, for the loss summed over pairs on squared distances (the default)
    and averaged over pairs on per-entry distances, beside vanilla; with the size of
    :math:`L_c` on the first training batch at initialisation."""
    spec = settings["width_sweep"]
    x_tr, y_tr = data[0], data[1]
    rows = []
    for width in spec["widths"]:
        widths = [100, int(width), 100]
        for scaling, opts in [("vanilla", None), *SCALINGS.items()]:
            accs, sizes = [], []
            for seed in spec["seeds"]:
                if opts is not None:
                    torch.manual_seed(seed)
                    with torch.no_grad():
                        h0 = MLP(x_tr.shape[1], widths, 2).forward_to(x_tr[:32], settings["cut"])
                    sizes.append(consistency_loss(h0, y_tr[:32], spec["lam"], spec["beta"], **opts).item())
                lam = None if opts is None else spec["lam"]
                model, _ = train_net(widths, lam, spec["beta"], seed, data, settings, **(opts or {}))
                accs.append(100 * evaluate(model, data[2], data[3])["accuracy"])
            rows.append({"width": int(width), "scaling": scaling, "test": float(np.mean(accs)),
                         "test_std": float(np.std(accs)),
                         "lc_init": float(np.mean(sizes)) if sizes else None})
    return rows


def run(mode: str | None = None, seeds=None, progress: bool | None = None, settings: dict | None = None,
        extras: bool = True) -> dict:
    """Every setting of Tables 1-2 for both forms of :math:`L_c`, over the seeds.

    Returns ``{"settings", "rows", "baselines", "eps_check", "width_sweep", "models"}``: one row per
    (form, setting, net) with ``form``, ``setting``, ``net``, ``lam``, ``beta``, ``seeds``, the
    paper's values and the mean / std over seeds of :data:`METRICS` (vanilla rows have form
    ``"none"``); ``models`` holds the seed-0 networks by ``(form, setting, net)`` (not saved).
    ``extras=False`` skips the ε check and the width sweep."""
    settings = settings if settings is not None else get_settings(mode, seeds)
    data = make_data(settings)
    jobs = [("none", s, n, lam, beta) for s, n, lam, beta in SETTINGS if lam is None]
    jobs += [(form, s, n, lam, beta) for form in settings["forms"]
             for s, n, lam, beta in SETTINGS if lam is not None]
    rows, models = [], {}
    for form, name, net, lam, beta in progress_bar(jobs, desc="settings", progress=progress):
        runs = [run_setting(net, lam, beta, s, data, settings, "raw" if form == "none" else form,
                            attacks=net in settings["attack_nets"]) for s in settings["seeds"]]
        models[(form, name, net)] = runs[0]["model"]
        rows.append({"form": form, "setting": name, "net": net, "lam": lam, "beta": beta,
                     "seeds": len(runs), "paper": PAPER[(name, net)], **summarise(runs)})
    out = {"settings": settings, "rows": rows, "baselines": baselines(data), "models": models,
           "eps_check": None, "width_sweep": None}
    if extras:
        out["eps_check"] = eps_check(data, settings)
        out["width_sweep"] = width_sweep(data, settings)
    return out


def find_row(rows: list[dict], setting: str, net: str = "default", form: str = "raw") -> dict:
    """The row of ``rows`` for ``setting`` on ``net`` (vanilla rows match any ``form``)."""
    for r in rows:
        if r["setting"] == setting and r["net"] == net and (r["form"] == form or r["form"] == "none"):
            return r
    raise ValueError(f"No row for setting={setting!r}, net={net!r}, form={form!r}.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "full"], default=None)
    parser.add_argument("--out", default=None, help="folder for the JSON record (default book/results)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = run(args.mode, progress=True)
    from . import save_record

    results = {k: result[k] for k in ("rows", "baselines", "eps_check", "width_sweep")}
    results["wall_s"] = round(time.perf_counter() - start, 1)
    path = save_record("mixcon_synthetic", result["settings"]["mode"], result["settings"], results,
                       args.out)
    for r in result["rows"]:
        attack_text = (f" MSE {r['mse']:.3f} MCS {r['mcs']:.3f} residual {r['residual']:.1e}"
                       if "mse" in r else "")
        print(f"{r['form']:<11}{r['setting']:<20}{r['net']:<9} test {r['test']:5.1f}{attack_text}")
    print("wrote", path)


if __name__ == "__main__":
    main()
