"""Run chapter notebooks top to bottom at a chosen seed and thread count, without storing outputs.

The stored outputs of the chapters are seed 0. This command checks that no chapter depends on that
draw: it executes each notebook in a fresh kernel with ``MIXCON_LITE_SEED`` and the thread count
set, and fails if any cell raises (an asserted claim that flips with the seed, or with the
rounding of another CPU or thread count, is an exception here). Nothing is compared with the stored
outputs and nothing is written back::

    python -m mixcon_lite.chapters --seed 1 --threads 1 --jobs 2 notebooks/*.ipynb

``--jobs 2 --threads 1`` runs two chapters at once, one thread each, on a 2-core machine (CI does
this after the README's test command). Each chapter's wall time is printed; a chapter over
``--budget`` seconds is reported (and fails with ``--strict-budget``).

How much do the chapter's numbers move? ``--record FILE`` keeps every value each run glued
(:func:`mixcon_lite.reproducibility.glued_values`) and writes them, with the spread of each number
over the runs and the largest change between thread counts at the same seed, to a JSON record
(command, date, hardware) that the reproducibility page can read::

    python -m mixcon_lite.chapters --seed 0 --seed 1 --seed 2 --threads 1 --threads 2 \
        --record book/results/chapter07_spread_fast.json notebooks/07_gradinversion_batches.ipynb
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import SEED_ENV, resolve_seed
from .utils import positive_int

__all__ = ["run_notebook", "spread", "main"]


def _kernel_env(seed: int, threads: int | None) -> dict:
    env = dict(os.environ)
    env[SEED_ENV] = str(seed)
    env.setdefault("MIXCON_LITE_PROGRESS", "0")     # no widget redraws in a headless kernel
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_notebook(path: str | os.PathLike, seed: int = 1, threads: int | None = None,
                 timeout: int = 900, out_dir: str | os.PathLike | None = None,
                 values: bool = False) -> dict:
    """Execute one notebook in a fresh kernel at ``seed`` (and ``threads`` CPU threads, if given).

    Returns ``{"notebook", "seed", "threads", "seconds", "ok", "error"}``; ``error`` names the
    first cell that raised and the exception's last line. The notebook itself is never written;
    with ``out_dir`` the executed copy (outputs up to the failing cell) is saved there as
    ``<name>.seed<S>.ipynb``, to read what another seed printed. With ``values=True`` the result
    also holds ``"values"``: what the run glued (name -> value), read from the executed copy.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    if not path.is_file() or path.suffix != ".ipynb":
        raise ValueError(f"{path} is not a notebook file (expected an existing NN_name.ipynb).")
    seed = resolve_seed(seed)
    if threads is not None:
        threads = positive_int(threads, "threads")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    env = _kernel_env(seed, threads)
    t0 = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        cell = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                     and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        last = [ln for ln in str(err).strip().splitlines() if ln.strip()]
        error = f"cell {cell}: {last[-1] if last else type(err).__name__}"
    except Exception as err:  # a timeout or a dead kernel
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - t0
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{path.stem}.seed{seed}.ipynb")
    result = {"notebook": path.name, "seed": seed, "threads": threads,
              "seconds": seconds, "ok": error is None, "error": error}
    if values:
        from .reproducibility import glued_values
        result["values"] = glued_values(nb)
    return result


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def spread(runs: list[dict], skip: tuple[str, ...] = ("runtime_s",),
           skip_prefixes: tuple[str, ...] = ("full_",)) -> dict:
    """How each glued number moved over ``runs`` (results of :func:`run_notebook` with
    ``values=True``), per notebook: ``{"numbers": {name: {"min", "max", "range"}}, "threads":
    {seed: {"max_abs_change", "name"}}}``. ``threads`` compares the runs of one seed at different
    thread counts (the rounding of another CPU, in small): the largest absolute change of any
    number and where it was. Names in ``skip`` (timings), names starting with one of
    ``skip_prefixes`` (``full_``: values a chapter reads from a full-mode record, which no seed of
    the chapter changes) and non-numbers are left out; a number that a run did not glue is left
    out of that run."""
    out: dict = {}
    for nb in sorted({r["notebook"] for r in runs}):
        mine = [r for r in runs if r["notebook"] == nb and r.get("values")]
        names = sorted({k for r in mine for k, v in r["values"].items()
                        if _number(v) and k not in skip and not k.startswith(skip_prefixes)})
        numbers = {}
        for k in names:
            vals = [float(r["values"][k]) for r in mine if _number(r["values"].get(k))]
            numbers[k] = {"min": min(vals), "max": max(vals), "range": max(vals) - min(vals)}
        by_seed = {}
        for seed in sorted({r["seed"] for r in mine}):
            same = [r for r in mine if r["seed"] == seed]
            if len({r["threads"] for r in same}) < 2:
                continue
            worst, where = 0.0, None
            for k in names:
                vals = [float(r["values"][k]) for r in same if _number(r["values"].get(k))]
                if len(vals) > 1 and max(vals) - min(vals) > worst:
                    worst, where = max(vals) - min(vals), k
            by_seed[str(seed)] = {"max_abs_change": worst, "name": where}
        out[nb] = {"runs": len(mine), "numbers": numbers, "threads": by_seed}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.chapters",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="chapter notebooks to run")
    parser.add_argument("--seed", type=int, action="append",
                        help="MIXCON_LITE_SEED for the run (repeat for several; default 1)")
    parser.add_argument("--threads", type=int, action="append",
                        help="CPU threads per kernel (OMP_NUM_THREADS; repeat for several); "
                             "default: the machine's")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--budget", type=float, default=180.0,
                        help="a chapter's run-time budget in seconds, reported (default 180)")
    parser.add_argument("--out", default=None,
                        help="folder for the executed copies (default: none are kept)")
    parser.add_argument("--strict-budget", action="store_true",
                        help="fail a chapter that runs over --budget")
    parser.add_argument("--record", default=None,
                        help="write every run's glued values and their spread to this JSON file")
    args = parser.parse_args(argv)
    seeds = args.seed or [1]
    for s in seeds:
        if s < 0:
            parser.error(f"--seed must be >= 0, got {s}")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    threads = args.threads or [None]
    if any(t < 1 for t in threads if t is not None):
        parser.error(f"--threads must be >= 1, got {threads}")
    paths = sorted(Path(p) for p in args.notebooks)
    for p in paths:
        if not p.is_file() or p.suffix != ".ipynb":
            parser.error(f"{p} is not a notebook file")
    jobs = [(p, s, t) for s in seeds for t in threads for p in paths]
    failed = 0
    runs = []
    t_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_notebook, p, s, t, args.timeout, args.out,
                               args.record is not None) for p, s, t in jobs]
        for fut in futures:
            r = fut.result()
            runs.append(r)
            over = r["seconds"] > args.budget
            status = "ok" if r["ok"] else f"FAILED ({r['error']})"
            if over:
                status += f"; over the {args.budget:.0f} s budget"
            print(f"{r['notebook']:<34} seed {r['seed']:<3} threads {r['threads'] or 'default':<8}"
                  f"{r['seconds']:7.1f} s  {status}", flush=True)
            failed += (not r["ok"]) or (over and args.strict_budget)
    print(f"{len(jobs) - failed} passed, {failed} failed")
    if args.record is not None:
        from .experiments import hardware
        record = {"command": " ".join(["python -m mixcon_lite.chapters"] + list(
                      argv if argv is not None else sys.argv[1:])),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds"),
                  "hardware": hardware(), "mode": os.environ.get("MIXCON_LITE_MODE", "fast"),
                  "seconds": round(time.perf_counter() - t_start, 1),
                  "settings": {"seeds": seeds, "threads": threads, "jobs": args.jobs},
                  "runs": runs, "spread": spread(runs)}
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(json.dumps(record, indent=1, default=str))
        print(f"record written to {args.record}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
