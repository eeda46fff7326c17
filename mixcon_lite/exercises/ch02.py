"""Checkers for chapter 02 (the 3SAT reduction): ``check_clause_gadget``,
``check_soundness_counterexample``, ``check_restarts_needed``.

Each recomputes from what the student built: the gadget is evaluated on every +-1 input and its
weights are inspected; the counterexample's ratio is recomputed from the reduction's network; the
fraction of satisfying assignments is recounted by enumerating all of them.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from ..utils import positive_int
from .core import CheckResult, call_student

GADGET_CLAUSES = [[1], [-2], [1, -3], [-1, -2], [2, 3, -4], [-1, -2, -3], [4, 1, 3], [-3, 5, -1]]


def _gadget_clauses():
    rng = np.random.default_rng(5)
    clauses = [list(c) for c in GADGET_CLAUSES]
    for _ in range(5):
        k = int(rng.integers(1, 4))
        vs = rng.choice(np.arange(1, 6), size=k, replace=False)
        clauses.append([int(v) * (1 if rng.random() < 0.5 else -1) for v in vs])
    return clauses


def check_clause_gadget(fn) -> CheckResult:
    """Chapter 02: ``fn(clause, n_vars) -> (w, b)``, ``w`` a tensor ``[n_vars]`` and ``b`` a number,
    such that ``relu(w @ x + b)`` is 1 on every +-1 input that leaves ``clause`` unsatisfied and 0 on
    the others, **and** every weight has magnitude at most 1, with weight 0 on variables outside
    the clause. The last two conditions are what the soundness proof (a violated clause has
    ``1 <= z_j(x) + sum |t_v|``) and the Lipschitz bound ``sqrt(3B + K)`` use: a gadget scaled up
    to ``relu(2 w @ x + 1 - 2k)`` is exact on +-1 inputs but breaks both, so it is rejected."""
    for clause in _gadget_clauses():
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
            return CheckResult(False, f"For clause {clause} with n_vars = {n}, w needs {n} entries, "
                                      f"got {tuple(w.shape)}.")
        if not (torch.isfinite(w).all() and math.isfinite(b)):
            return CheckResult(False, f"Clause {clause}: w and b must be finite numbers.")
        for bits in itertools.product([-1.0, 1.0], repeat=n):
            x = torch.tensor(bits, dtype=torch.float64)
            unsat = not any((x[abs(v) - 1] > 0) == (v > 0) for v in clause)
            got = torch.relu(w @ x + b).item()
            if not math.isclose(got, float(unsat), abs_tol=1e-6):
                state = "unsatisfied" if unsat else "satisfied"
                return CheckResult(False, f"Clause {clause}, x = {list(bits)} ({state}): expected "
                                          f"{float(unsat)}, got {got:.3f}.")
        inside = {abs(v) - 1 for v in clause}
        outside = [i for i in range(n) if i not in inside and abs(w[i].item()) > 1e-9]
        if outside:
            return CheckResult(False, f"Clause {clause}: variable {outside[0] + 1} is not in the clause "
                                      f"but has weight {w[outside[0]].item():.3g}; the unit may only "
                                      "read its own literals (the occurrence bound B counts on it).")
        big = int(w.abs().argmax())
        if w[big].abs().item() > 1 + 1e-9:
            return CheckResult(False, f"Clause {clause}: weight {w[big].item():.3g} on variable "
                                      f"{big + 1}. It is exact on +-1 inputs, but a weight above 1 in "
                                      "magnitude makes the unit steeper than the chapter's: a violated "
                                      "clause can then be silenced more cheaply (the soundness "
                                      "constant C grows) and the Lipschitz bound sqrt(3B + K) fails. "
                                      "Keep every |w_i| <= 1.")
        # the property the soundness proof uses, checked on real inputs that round to a violation
        g = torch.Generator().manual_seed(len(clause) * 7 + n)
        mags = torch.rand(256, n, generator=g, dtype=torch.float64) * 2
        false_sign = torch.ones(n, dtype=torch.float64)
        for v in clause:
            false_sign[abs(v) - 1] = -1.0 if v > 0 else 1.0   # the sign that makes literal v false
        x = mags * false_sign
        z = torch.relu(x @ w + b)
        slack = (mags[:, sorted(inside)] - 1).abs().sum(1)
        if (z + slack < 1 - 1e-9).any():
            return CheckResult(False, f"Clause {clause}: on a real input that rounds to a violation, "
                                      "the unit is below 1 - sum_l ||x_l| - 1|, which the soundness "
                                      "proof needs.")
    return CheckResult(True, "the unit outputs 1 exactly on the assignments that violate the clause "
                             "(1, 2 and 3 literals, either sign), reads only its own literals with "
                             "weights of magnitude <= 1, and satisfies 1 <= z + sum |t| on real inputs.")


def check_soundness_counterexample(cnf, x, copies: int = 1) -> CheckResult:
    """Chapter 02: an input ``x`` ``[n_vars]`` for the reduction of ``cnf`` with ``copies`` = K whose
    ratio ``#violated(round(x)) / ||f(x) - y||^2`` is at least ``1 + B/K`` (``B + 1`` for
    ``K = 1``), with ``B`` the formula's largest occurrence count. The ratio is recomputed from the
    network; the sharp constant ``C = 1 + 3B/K`` must (and does) still hold."""
    from .. import sat

    try:
        cnf = sat.as_cnf(cnf)
        xt = torch.as_tensor(x, dtype=torch.float64).detach().reshape(-1)
        k = positive_int(copies, "copies")
    except (TypeError, ValueError) as err:
        return CheckResult(False, f"Pass the formula, an input x of n_vars numbers and copies >= 1 "
                                  f"({err}).")
    if xt.numel() != cnf.n_vars:
        return CheckResult(False, f"x needs n_vars = {cnf.n_vars} entries, got {xt.numel()}.")
    if not torch.isfinite(xt).all():
        return CheckResult(False, "x contains NaN or inf.")
    net, target = sat.reduction(cnf, copies=k)
    net, target = net.double(), target.double()
    with torch.no_grad():
        err = (net(xt[None])[0] - target).pow(2).sum().item()
    uns = sat.unsatisfied(cnf, sat.round_to_assignment(xt))
    b = cnf.max_occurrence
    want = 1 + b / k
    bound = sat.soundness_constant(cnf, k)
    if uns == 0:
        return CheckResult(False, "Rounding x by sign satisfies every clause, so the ratio is 0. "
                                  "Start from an assignment that violates every clause containing "
                                  "the most frequent variable.")
    if uns > bound * err * (1 + 1e-9):      # would be a bug in the package, not in the answer
        raise AssertionError(f"soundness theorem violated: {uns} > {bound} * {err}")
    ratio = uns / err
    if ratio < want * (1 - 1e-6):
        return CheckResult(False, f"Rounding leaves {uns} clause(s) violated at ||f(x) - y||^2 = "
                                  f"{err:.4f}: ratio {ratio:.3f}, below 1 + B/K = {want:g} "
                                  f"(B = {b}, K = {k}). Move only the shared variable's |x_v| "
                                  "towards 0 and find the best amount.")
    return CheckResult(True, f"ratio {uns}/{err:.4f} = {ratio:.3f} >= 1 + B/K = {want:g} (B = {b}, "
                             f"K = {k}), above the constant 2 that K = 3B copies give and growing "
                             f"with B; the sharp bound C = 1 + 3B/K = {bound:g} still holds.")


@functools.lru_cache(maxsize=1)
def _exercise_formula():
    from .. import sat

    return sat.random_3cnf(20, 40, 6, seed=0, planted=True)


def check_restarts_needed(p, restarts, cnf=None) -> CheckResult:
    """Chapter 02: ``p``, the fraction of all assignments of ``cnf`` that satisfy it (default: the
    exercise's ``sat.random_3cnf(20, 40, 6, seed=0, planted=True)``), and ``restarts``, the
    smallest number R of independent uniform random guesses that finds a satisfying assignment with
    probability at least 0.9. The checker recounts the satisfying assignments itself."""
    from .. import sat

    try:
        p = float(p)
        r = int(restarts)
        if r != restarts:
            raise ValueError("restarts must be a whole number")
    except (TypeError, ValueError) as err:
        return CheckResult(False, f"Pass p (a fraction) and your number of restarts (an integer); "
                                  f"{err}.")
    formula = _exercise_formula() if cnf is None else sat.as_cnf(cnf)
    if formula.n_vars > 26:
        return CheckResult(False, "The checker enumerates all assignments: use at most 26 variables.")
    count = sat.count_solutions(formula)
    p_true = count / 2 ** formula.n_vars
    if not 0 < p_true < 1:
        return CheckResult(False, f"This formula has p = {p_true:g}; guessing is trivial. Use the "
                                  "exercise's formula.")
    if not math.isclose(p, p_true, rel_tol=1e-6):
        return CheckResult(False, f"p = {p:.6g} is not the fraction of satisfying assignments: "
                                  f"counting all 2^{formula.n_vars} gives {count} / 2^"
                                  f"{formula.n_vars} = {p_true:.6g}.")
    want = max(1, math.ceil(math.log(0.1) / math.log1p(-p_true)))
    while 1 - (1 - p_true) ** want < 0.9:          # guard the ceil against rounding
        want += 1
    while want > 1 and 1 - (1 - p_true) ** (want - 1) >= 0.9:
        want -= 1
    if r != want:
        hint = (" (1/p is the expected number of guesses, not the number for 90 %)"
                if r == round(1 / p_true) else "")
        return CheckResult(False, f"Expected the smallest R with 1 - (1 - p)^R >= 0.9, i.e. R = "
                                  f"{want}; got {r}{hint}.")
    return CheckResult(True, f"p = {p_true:.6g} ({count} of 2^{formula.n_vars} assignments) and R = "
                             f"{want}: 1 - (1 - p)^{want} = {1 - (1 - p_true) ** want:.5f} >= 0.9 > "
                             f"1 - (1 - p)^{want - 1} = {1 - (1 - p_true) ** (want - 1):.5f}.")
