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
from .experiments.gradient_inversion import steps_to
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


#: DLG's budget: 300 ``LBFGS.step`` calls of up to 20 evaluations each.
EVALUATIONS = 6000
REFERENCE_CALLS = 300


def torch_lbfgs_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int = 0,
                    line_search: str | None = None, evaluations: int = EVALUATIONS,
                    calls: int = REFERENCE_CALLS, mse_goal: float = MSE_GOAL) -> dict:
    """DLG's published loop on one picture: ``torch.optim.LBFGS`` (lr 1, history 100, up to 20
    iterations per ``step``; ``line_search="strong_wolfe"`` adds torch's line search), dummy image
    and label logits N(0, 1) from ``seed``, at most ``calls`` ``step`` calls; it also stops once
    ``evaluations`` closure calls have run (the ``step`` call in progress finishes, so a line search
    may overrun by a few). It stops as soon as the private picture's MSE is below ``mse_goal``, checked
    after every ``step`` call: an *oracle* an attacker does not have, which can only help it.
    Returns ``solved``, ``calls``, ``evaluations`` (closure calls run), ``evaluations_to_goal``
    (``None`` when unsolved), ``seconds``, ``mse``."""
    model, target = _victim(picture, label, num_classes)
    params = list(model.parameters())
    gt = picture[None]
    gen = torch.Generator().manual_seed(int(seed))
    dummy = torch.randn(gt.shape, generator=gen).requires_grad_(True)
    dummy_label = torch.randn(1, num_classes, generator=gen).requires_grad_(True)
    opt = torch.optim.LBFGS([dummy, dummy_label], line_search_fn=line_search)
    count = [0]

    def closure():
        count[0] += 1
        opt.zero_grad()
        pred = model(dummy)
        dummy_loss = -(F.softmax(dummy_label, -1) * F.log_softmax(pred, -1)).sum(-1).mean()
        dummy_grad = torch.autograd.grad(dummy_loss, params, create_graph=True)
        diff = sum(((gx - gy) ** 2).sum() for gx, gy in zip(dummy_grad, target))
        diff.backward()
        return diff

    t0 = time.perf_counter()
    mse, it, to_goal = float("nan"), 0, None
    for it in range(1, calls + 1):
        opt.step(closure)
        mse = float(((dummy.detach() - gt) ** 2).mean())
        if mse < mse_goal:
            to_goal = count[0]
            break
        if count[0] >= evaluations:
            break
    return {"solved": to_goal is not None, "calls": it, "evaluations": count[0],
            "evaluations_to_goal": to_goal, "seconds": time.perf_counter() - t0, "mse": mse}


def reference_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int = 0, **kw) -> dict:
    """The reference: DLG's loop as published (no line search), see :func:`torch_lbfgs_dlg`."""
    return torch_lbfgs_dlg(picture, label, num_classes, seed=seed, line_search=None, **kw)


def strong_wolfe_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int = 0, **kw) -> dict:
    """DLG's loop with ``torch.optim.LBFGS(line_search_fn="strong_wolfe")``, see :func:`torch_lbfgs_dlg`."""
    return torch_lbfgs_dlg(picture, label, num_classes, seed=seed, line_search="strong_wolfe", **kw)


#: Our attack and its two ablations: name -> settings of :func:`~mixcon_lite.attacks.gradients.dlg`
#: (beyond the package defaults: mid-grey start, steps capped at 5). ``dlg_randn`` takes DLG's
#: N(0, 1) start and keeps the cap; ``dlg_nocap`` keeps the grey start and drops the cap.
DLG_VARIANTS = {
    "dlg": dict(),
    "dlg_randn": dict(init="randn"),
    "dlg_nocap": dict(max_step=None),
}


def ours_dlg(picture: torch.Tensor, label: int, num_classes: int = 100, seed: int = 0,
             evaluations: int = EVALUATIONS, mse_goal: float = MSE_GOAL, **settings) -> dict:
    """:func:`~mixcon_lite.attacks.gradients.dlg` on one picture, one start, at most ``evaluations``
    steps (one evaluation each). No oracle: it stops on the gradient distance alone (relative
    tolerance 1e-7) and returns its best iterate by gradient distance, scored afterwards: ``solved``
    when that returned image has MSE below ``mse_goal``. ``evaluations_to_goal``: the first step at
    which the best iterate so far was below the goal (the cost an oracle stop would have paid).
    ``seconds`` is the whole run (including the steps past the goal that a stop without oracle
    needs)."""
    model, grads = _victim(picture, label, num_classes)
    t0 = time.perf_counter()
    res = dlg(model, grads, tuple(picture.shape), num_classes, steps=evaluations, seed=seed,
              snapshot_every=1, progress=False, **settings)
    seconds = time.perf_counter() - t0
    curve = [float(((snap - picture) ** 2).mean()) for _, snap in res.history["snapshots"]]
    first = steps_to(curve, mse_goal)
    mse = float(((res.reconstruction[0] - picture) ** 2).mean())
    return {"solved": bool(mse < mse_goal), "evaluations": res.extras["steps"],
            "evaluations_to_goal": None if first is None else first + 1, "seconds": seconds, "mse": mse,
            "label_ok": int(res.labels[0]) == label}


def contestants() -> dict:
    """Every contestant of the race: prefix -> function ``(picture, label, classes, seed) -> dict``."""
    out = {name: (lambda kw: lambda *a, **k: ours_dlg(*a, **kw, **k))(kw) for name, kw in DLG_VARIANTS.items()}
    out["reference"] = reference_dlg
    out["strong_wolfe"] = strong_wolfe_dlg
    return out


def summarise(rows: list[dict]) -> dict:
    """Success count with its 95 % Wilson interval, and the costs of the solved trials."""
    from .stats import proportion_interval

    solved = [r for r in rows if r["solved"]]
    k, n = len(solved), len(rows)
    _, low, high = proportion_interval(k, n)
    to_goal = [r["evaluations_to_goal"] for r in solved if r["evaluations_to_goal"] is not None]
    return {"solved": k, "trials": n, "solved_low": low, "solved_high": high,
            "median_evaluations": statistics.median(to_goal) if to_goal else None,
            "median_evaluations_run": statistics.median(r["evaluations"] for r in rows),
            "median_seconds": statistics.median(r["seconds"] for r in rows),
            "median_seconds_solved": statistics.median(r["seconds"] for r in solved) if solved else None}


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


def race(pictures=PICTURES, seeds: int = 8, size: int = 32, num_classes: int = 100,
         evaluations: int = EVALUATIONS, calls: int = REFERENCE_CALLS, which=None,
         progress: bool | None = None) -> dict:
    """Every contestant on ``seeds`` x ``pictures`` trials (label ``i`` for picture ``i``; DLG's
    network from seed 1234 for every trial, the seed draws the dummy start). Returns
    ``{prefix: {"runs": [...], **summarise(runs)}}``."""
    from .utils import progress_bar

    images = skimage_crops(list(pictures), size=size)
    funcs = contestants()
    which = list(funcs) if which is None else list(which)
    jobs = [(name, i, s) for s in range(int(seeds)) for i in range(len(pictures)) for name in which]
    runs = {name: [] for name in which}
    for name, i, s in progress_bar(jobs, desc="race", progress=progress):
        kw = {"evaluations": evaluations}
        if name in ("reference", "strong_wolfe"):
            kw["calls"] = calls
        row = funcs[name](images[i], i, num_classes, seed=s, **kw)
        runs[name].append({"picture": pictures[i], "seed": s, **row})
    return {name: {"runs": rows, **summarise(rows)} for name, rows in runs.items()}


def gradients_bench(tiny: bool = False, pictures=PICTURES, seeds: int = 8, progress: bool | None = None) -> dict:
    """Step costs (:func:`step_ratios`) and the race (:func:`race`), flattened to
    ``<prefix>solved``, ``<prefix>trials``, ``<prefix>median_evaluations``, ... keys; ``tiny`` uses
    8x8 inputs, 10 classes, one picture, two seeds and a budget of 40 evaluations."""
    size, classes = (8, 10) if tiny else (32, 100)
    pictures = list(pictures)[:1] if tiny else list(pictures)
    out = step_ratios(size, classes, steps=4 if tiny else 40, repeats=1 if tiny else 5)
    budget = dict(evaluations=40, calls=3) if tiny else {}
    results = race(pictures, seeds=2 if tiny else seeds, size=size, num_classes=classes, progress=progress,
                   **budget)
    for prefix, summary in results.items():
        for key, value in summary.items():
            out[f"{prefix}_{key}"] = value
    from .stats import paired

    for other in [p for p in results if p != "dlg"]:     # paired over the same (picture, seed) trials
        a = [float(r["solved"]) for r in results["dlg"]["runs"]]
        b = [float(r["solved"]) for r in results[other]["runs"]]
        c = paired(a, b, names=("dlg", other), n_resamples=2000)
        out[f"dlg_minus_{other}_solved_rate"] = [c.difference, c.low, c.high]
    out["pictures"] = len(pictures)
    out["seeds"] = 2 if tiny else int(seeds)
    out["evaluation_budget"] = budget.get("evaluations", EVALUATIONS)
    out["reference_call_budget"] = budget.get("calls", REFERENCE_CALLS)
    out["dlg_variants"] = {k: dict(v) for k, v in DLG_VARIANTS.items()}
    return out


TOPICS = {"gradients": gradients_bench}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.bench", description=__doc__.splitlines()[0])
    parser.add_argument("topic", choices=sorted(TOPICS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run on tiny inputs (plumbing check)")
    parser.add_argument("--save", action="store_true", help="also write book/results/<topic>_bench.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seeds", type=int, default=8, help="dummy starts per picture in the race (default 8)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    results = TOPICS[args.topic](tiny=args.tiny, seeds=args.seeds, progress=not args.json)
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
            if not key.endswith("_runs") and key != "dlg_variants":
                print(f"{key:>40}: {value:.3f}" if isinstance(value, float) else f"{key:>40}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
