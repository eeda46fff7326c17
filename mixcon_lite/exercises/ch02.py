"""Checkers for chapter 02 (The 3SAT reduction): ``check_clause_gadget``, ``check_soundness_counterexample``, ``check_restarts_needed``."""
from __future__ import annotations

import math

import numpy as np
import torch

from .core import CheckResult, call_student


def check_clause_gadget(fn) -> CheckResult:
    """Chapter 02: ``fn(clause, n_vars) -> (w, b)`` with ``w`` a tensor ``[n_vars]`` and ``b`` a number, such
    that ``relu(w @ x + b)`` is 1 on every ±1 input that leaves ``clause`` unsatisfied and 0 on the others."""
    import itertools

    rng = np.random.default_rng(5)
    clauses = [[1], [-2], [1, -3], [-1, -2], [2, 3, -4], [-1, -2, -3], [4, 1, 3]]
    for _ in range(5):
        k = int(rng.integers(1, 4))
        vs = rng.choice(np.arange(1, 6), size=k, replace=False)
        clauses.append([int(v) * (1 if rng.random() < 0.5 else -1) for v in vs])
    for clause in clauses:
        n = max(abs(v) for v in clause)
        out, fail = call_student(fn, list(clause), n)
        if fail is not None:
            return fail
        try:
            w, b = out
            w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
            b = float(b)
        except (TypeError, ValueError):
            return CheckResult(False, "Return a pair (w, b): w a tensor of n_vars weights, b a number.")
        if w.shape != (n,):
            return CheckResult(False, f"For clause {clause} with n_vars = {n}, w needs {n} entries, got {tuple(w.shape)}.")
        for bits in itertools.product([-1.0, 1.0], repeat=n):
            x = torch.tensor(bits, dtype=torch.float64)
            unsat = not any((x[abs(v) - 1] > 0) == (v > 0) for v in clause)
            got = torch.relu(w @ x + b).item()
            if not math.isclose(got, float(unsat), abs_tol=1e-6):
                state = "unsatisfied" if unsat else "satisfied"
                return CheckResult(False, f"Clause {clause}, x = {list(bits)} ({state}): expected "
                                          f"{float(unsat)}, got {got:.3f}.")
    return CheckResult(True, "the unit outputs 1 exactly on the assignments that violate the clause, for clauses "
                             "of 1, 2 and 3 literals of either sign.")


def check_soundness_counterexample(cnf, x, copies: int = 1) -> CheckResult:
    """Chapter 02: an input ``x`` ``[n_vars]`` for the reduction with ``copies`` K whose sign rounding leaves
    MORE clauses unsatisfied than ||f(x) - y||^2 (so the constant C = 1 would be wrong), while the proven
    C = max(4, 12B/K) still holds."""
    from .. import sat

    try:
        cnf = sat.as_cnf(cnf)
        xt = torch.as_tensor(x, dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        return CheckResult(False, f"Pass the formula and an input x of n_vars numbers ({err}).")
    if xt.numel() != cnf.n_vars:
        return CheckResult(False, f"x needs n_vars = {cnf.n_vars} entries, got {xt.numel()}.")
    net, target = sat.reduction(cnf, copies=copies)
    with torch.no_grad():
        err = (net(xt[None])[0] - target).pow(2).sum().item()
    uns = sat.unsatisfied(cnf, sat.round_to_assignment(xt))
    bound = sat.soundness_constant(cnf, copies)
    if uns <= err:
        return CheckResult(False, f"Rounding leaves {uns} clause(s) unsatisfied, not more than ||f(x) - y||^2 = "
                                  f"{err:.3f}. Try an x whose variables sit strictly between 0 and ±1.")
    assert uns <= bound * err + 1e-6, "soundness theorem violated"  # would be a bug in the package
    return CheckResult(True, f"{uns} unsatisfied > ||f(x) - y||^2 = {err:.3f}, yet {uns} <= C·err = {bound * err:.3f} "
                             f"(C = {bound:g}): the constant in the soundness bound is needed.")


def check_restarts_needed(p: float, restarts) -> CheckResult:
    """Chapter 02: the number of independent uniform random guesses needed to find a satisfying assignment
    with probability at least 0.9, when a fraction ``p`` of all assignments satisfies the formula."""
    try:
        p, r = float(p), int(restarts)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass p (a fraction) and your number of restarts (an integer).")
    if not 0 < p < 1:
        return CheckResult(False, f"p must be strictly between 0 and 1, got {p}.")
    want = math.ceil(math.log(0.1) / math.log(1 - p))
    if r != want:
        return CheckResult(False, f"Expected the smallest R with 1 - (1 - p)^R >= 0.9, i.e. R = {want}; got {r}.")
    return CheckResult(True, f"R = {want}: with p = {p:.4g}, 1 - (1 - p)^{want} = {1 - (1 - p) ** want:.3f}.")
