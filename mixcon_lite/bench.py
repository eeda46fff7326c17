"""Cost ratios measured in one run: ``python -m mixcon_lite.bench <topic> [--json] [--save]``.

Topic ``gradients`` (chapter 06), on DLG's LeNet (sigmoid, 3x32x32 inputs, 100 classes, U(-0.5, 0.5)
weights from seed 1234) on this machine's CPU:

``step_over_forward_backward``
    one step of :func:`~mixcon_lite.attacks.gradients.dlg` (one gradient-distance evaluation with
    its gradient, and one L-BFGS update) divided by one plain forward+backward of the model on one
    image. ``reference_step_over_forward_backward``: the same ratio for the reference loop (DLG's
    closure and ``torch.optim.LBFGS`` with ``max_iter=1``).
``batched_restarts_speedup``
    the time of 8 sequential single-start runs divided by the time of one run with the 8 starts
    batched (same steps).
``reference_*`` / ``dlg_*``
    on four 32x32 ``skimage.data`` pictures (astronaut, coffee, chelsea, rocket; label ``i`` for
    picture ``i``, one-hot over 100 classes): how many reach pixel MSE < 1e-3 and the median wall
    time per picture. The *reference* is DLG's script as published: ``torch.optim.LBFGS`` with
    its defaults (lr 1, history 100, up to 20 iterations per ``step``), dummy data and label from
    ``torch.randn`` after seeding 1234, up to 300 ``step`` calls; it stops as soon as the true
    picture's MSE is below 1e-3, an oracle an attacker does not have. Ours stops on the gradient
    distance alone and is scored afterwards.

Ratios are taken within one run (timings interleaved, best of several repeats), so a shared,
busy machine inflates both sides alike. ``--json`` prints the numbers as JSON; ``--save`` also
writes ``book/results/gradients_bench.json`` (command, date, hardware, settings, results).
``--tiny`` shrinks everything (8x8 inputs, one picture) to check the plumbing in seconds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from .attacks.gradients import dlg, shared_gradients
from .data import skimage_crops
from .models import DLGLeNet

PICTURES = ("astronaut", "coffee", "chelsea", "rocket")
MSE_GOAL = 1e-3


def _best_time(fn, repeats: int, number: int) -> float:
    """Smallest mean time of ``number`` calls of ``fn`` over ``repeats`` tries (seconds per call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _victim(picture: torch.Tensor, label: int, num_classes: int, seed: int = 1234):
    model = DLGLeNet(in_channels=picture.shape[0], num_classes=num_classes, input_size=picture.shape[-1], seed=seed)
    grads = shared_gradients(model, picture[None], torch.tensor([label]))
    return model, grads


def reference_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, iterations: int = 300,
                  seed: int = 1234, mse_goal: float = MSE_GOAL) -> dict:
    """DLG's published loop on one picture, stopped by the oracle ``MSE(dummy, picture) < mse_goal``
    checked after every ``LBFGS.step``. Returns ``solved``, ``iterations`` (``step`` calls),
    ``evaluations`` (closure calls), ``seconds``, ``mse``."""
    model = DLGLeNet(in_channels=picture.shape[0], num_classes=num_classes, input_size=picture.shape[-1], seed=None)
    torch.manual_seed(seed)                                   # as DLG's main.py: seed, init, gradient, dummies
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    params = list(model.parameters())
    gt = picture[None]
    onehot = F.one_hot(torch.tensor([label]), num_classes).float()
    loss = -(onehot * F.log_softmax(model(gt), -1)).sum(-1).mean()
    target = [g.detach().clone() for g in torch.autograd.grad(loss, params)]
    dummy = torch.randn(gt.shape).requires_grad_(True)
    dummy_label = torch.randn(onehot.shape).requires_grad_(True)
    opt = torch.optim.LBFGS([dummy, dummy_label])
    calls = [0]

    def closure():
        calls[0] += 1
        opt.zero_grad()
        pred = model(dummy)
        dummy_loss = -(F.softmax(dummy_label, -1) * F.log_softmax(pred, -1)).sum(-1).mean()
        dummy_grad = torch.autograd.grad(dummy_loss, params, create_graph=True)
        diff = sum(((gx - gy) ** 2).sum() for gx, gy in zip(dummy_grad, target))
        diff.backward()
        return diff

    t0 = time.perf_counter()
    mse, it = float("nan"), 0
    for it in range(1, iterations + 1):
        opt.step(closure)
        mse = float(((dummy.detach() - gt) ** 2).mean())
        if mse < mse_goal:
            break
    return {"solved": bool(mse < mse_goal), "iterations": it, "evaluations": calls[0],
            "seconds": time.perf_counter() - t0, "mse": mse}


#: The settings of our attack in the comparison (ours: see chapter 06 for why these).
DLG_SETTINGS = dict(steps=3000, restarts=1)


def ours_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int = 0, **settings) -> dict:
    """:func:`~mixcon_lite.attacks.gradients.dlg` on one picture (no oracle: it stops on the gradient
    distance); scored afterwards. Returns ``solved``, ``steps``, ``seconds`` (including the attack's
    setup), ``mse``, ``label_ok``."""
    kw = {**DLG_SETTINGS, **settings}
    model, grads = _victim(picture, label, num_classes)
    t0 = time.perf_counter()
    res = dlg(model, grads, tuple(picture.shape), num_classes, seed=seed, progress=False, **kw)
    seconds = time.perf_counter() - t0
    mse = float(((res.reconstruction[0] - picture) ** 2).mean())
    return {"solved": bool(mse < MSE_GOAL), "steps": res.extras["steps"], "seconds": seconds, "mse": mse,
            "label_ok": int(res.labels[0]) == label, "restarts": kw["restarts"]}


def step_ratios(size: int = 32, num_classes: int = 100, steps: int = 40, repeats: int = 5) -> dict:
    """Per-step cost of DLG (ours and the reference loop) over one forward+backward, and the speed-up of
    8 batched restarts over 8 sequential runs, timed interleaved in this process."""
    picture = skimage_crops(PICTURES[:1], size=size)[0]
    model, grads = _victim(picture, 0, num_classes)
    params = list(model.parameters())
    x, y = picture[None], torch.tensor([0])

    def forward_backward():
        torch.autograd.grad(F.cross_entropy(model(x), y), params)

    dummy = torch.randn(1, *picture.shape, requires_grad=True)
    dummy_label = torch.randn(1, num_classes, requires_grad=True)
    ref_opt = torch.optim.LBFGS([dummy, dummy_label], max_iter=1)

    def ref_closure():
        ref_opt.zero_grad()
        loss = -(F.softmax(dummy_label, -1) * F.log_softmax(model(dummy), -1)).sum(-1).mean()
        g = torch.autograd.grad(loss, params, create_graph=True)
        diff = sum(((a - b) ** 2).sum() for a, b in zip(g, grads))
        diff.backward()
        return diff

    def run(k, n_steps):
        return dlg(model, grads, tuple(picture.shape), num_classes, steps=n_steps, restarts=k, tol=0,
                   progress=False).seconds

    fb, ref, one, eight, seq = [], [], [], [], []
    for _ in range(repeats):                     # interleaved, so load changes hit every quantity
        fb.append(_best_time(forward_backward, 3, 20))
        ref.append(_best_time(lambda: ref_opt.step(ref_closure), 1, steps))
        long_run, short_run = run(1, 2 * steps), run(1, steps)      # the difference drops the setup
        one.append((long_run - short_run) / steps if long_run > short_run else long_run / (2 * steps))
        eight.append(run(8, steps))
        seq.append(sum(run(1, steps) for _ in range(8)))
    fb_s, one_s, ref_s = min(fb), min(one), min(ref)
    return {"forward_backward_ms": 1e3 * fb_s, "dlg_step_ms": 1e3 * one_s, "reference_step_ms": 1e3 * ref_s,
            "step_over_forward_backward": one_s / fb_s, "reference_step_over_forward_backward": ref_s / fb_s,
            "batched_restarts_speedup": min(seq) / min(eight), "restarts_batched": 8, "timing_steps": steps}


def gradients_bench(tiny: bool = False, pictures=PICTURES) -> dict:
    """Everything above; ``tiny`` uses 8x8 inputs, 10 classes, one picture and few steps."""
    size, classes = (8, 10) if tiny else (32, 100)
    pictures = list(pictures)[:1] if tiny else list(pictures)
    out = step_ratios(size, classes, steps=4 if tiny else 40, repeats=1 if tiny else 5)
    images = skimage_crops(pictures, size=size)
    ref_iters = 3 if tiny else 300
    extra = dict(steps=20) if tiny else {}
    ref_rows, our_rows = [], []
    for i, name in enumerate(pictures):
        ref_rows.append({"picture": name, **reference_dlg(images[i], i, classes, iterations=ref_iters)})
        our_rows.append({"picture": name, **ours_dlg(images[i], i, classes, **extra)})
    for key, rows in (("reference", ref_rows), ("dlg", our_rows)):
        solved = [r for r in rows if r["solved"]]
        out[f"{key}_solved"] = len(solved)
        out[f"{key}_median_seconds"] = statistics.median(r["seconds"] for r in rows)
        out[f"{key}_median_seconds_solved"] = (statistics.median(r["seconds"] for r in solved) if solved
                                               else None)
        out[f"{key}_runs"] = rows
    out["pictures"] = len(pictures)
    out["dlg_settings"] = dict(DLG_SETTINGS, **extra)
    return out


TOPICS = {"gradients": gradients_bench}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.bench", description=__doc__.splitlines()[0])
    parser.add_argument("topic", choices=sorted(TOPICS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run on tiny inputs (plumbing check)")
    parser.add_argument("--save", action="store_true", help="also write book/results/<topic>_bench.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    results = TOPICS[args.topic](tiny=args.tiny)
    if args.save:
        from .experiments import hardware, results_dir

        out = results_dir()
        out.mkdir(parents=True, exist_ok=True)
        record = {"benchmark": args.topic, "command": "python -m mixcon_lite.bench " + " ".join(sys.argv[1:] if argv is None else argv),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "hardware": hardware(), "seconds": round(time.perf_counter() - t0, 1), "results": results}
        (out / f"{args.topic}_bench.json").write_text(json.dumps(record, indent=1))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, value in results.items():
            if not key.endswith("_runs"):
                print(f"{key:>40}: {value:.3f}" if isinstance(value, float) else f"{key:>40}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
