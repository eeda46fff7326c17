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
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import SEED_ENV, resolve_seed
from .utils import positive_int

__all__ = ["run_notebook", "main"]


def _kernel_env(seed: int, threads: int | None) -> dict:
    env = dict(os.environ)
    env[SEED_ENV] = str(seed)
    env.setdefault("MIXCON_LITE_PROGRESS", "0")     # no widget redraws in a headless kernel
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_notebook(path: str | os.PathLike, seed: int = 1, threads: int | None = None,
                 timeout: int = 900, out_dir: str | os.PathLike | None = None) -> dict:
    """Execute one notebook in a fresh kernel at ``seed`` (and ``threads`` CPU threads, if given).

    Returns ``{"notebook", "seed", "threads", "seconds", "ok", "error"}``; ``error`` names the
    first cell that raised and the exception's last line. The notebook itself is never written;
    with ``out_dir`` the executed copy (outputs up to the failing cell) is saved there as
    ``<name>.seed<S>.ipynb``, to read what another seed printed.
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
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{path.stem}.seed{seed}.ipynb")
    return {"notebook": path.name, "seed": seed, "threads": threads,
            "seconds": time.perf_counter() - t0, "ok": error is None, "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixcon_lite.chapters",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="chapter notebooks to run")
    parser.add_argument("--seed", type=int, action="append",
                        help="MIXCON_LITE_SEED for the run (repeat for several; default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per kernel (OMP_NUM_THREADS); default: the machine's")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--budget", type=float, default=180.0,
                        help="a chapter's run-time budget in seconds, reported (default 180)")
    parser.add_argument("--out", default=None,
                        help="folder for the executed copies (default: none are kept)")
    parser.add_argument("--strict-budget", action="store_true",
                        help="fail a chapter that runs over --budget")
    args = parser.parse_args(argv)
    seeds = args.seed or [1]
    for s in seeds:
        if s < 0:
            parser.error(f"--seed must be >= 0, got {s}")
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    paths = sorted(Path(p) for p in args.notebooks)
    for p in paths:
        if not p.is_file() or p.suffix != ".ipynb":
            parser.error(f"{p} is not a notebook file")
    jobs = [(p, s) for s in seeds for p in paths]
    failed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_notebook, p, s, args.threads, args.timeout, args.out)
                   for p, s in jobs]
        for fut in futures:
            r = fut.result()
            over = r["seconds"] > args.budget
            status = "ok" if r["ok"] else f"FAILED ({r['error']})"
            if over:
                status += f"; over the {args.budget:.0f} s budget"
            print(f"{r['notebook']:<34} seed {r['seed']:<3} threads {r['threads'] or 'default':<8}"
                  f"{r['seconds']:7.1f} s  {status}", flush=True)
            failed += (not r["ok"]) or (over and args.strict_budget)
    print(f"{len(jobs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
