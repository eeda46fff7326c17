"""Checkers for chapter 09 (Membership from input-loss curvature): ``check_hutchinson``,
``check_auc``, ``check_dp_auc_bound``."""
from __future__ import annotations

import math

import numpy as np
import torch

from .core import CheckResult, as_number, call_student


def _symmetric(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return (a + a.T) / 2 + d * torch.eye(d, dtype=torch.float64) * 0.2


def check_hutchinson(fn) -> CheckResult:
    """Chapter 09: ``fn(hvp, d, probes, generator)`` must return Hutchinson's estimate of ``tr H`` from
    ``probes`` Rademacher vectors ``v`` (entries ±1, drawn with ``generator``), using only the
    Hessian-vector product ``hvp(v) -> H v`` (``v``, ``H v``: float64 tensors ``[d]``).

    The checker (1) gives a diagonal ``H``, on which every Rademacher probe is exact (v_i^2 = 1), so
    even one probe must return the trace (Gaussian probes fail this); (2) gives symmetric matrices,
    where 3,000 probes must land within 5 % of the trace; (3) checks that one probe is *not* always
    exact on them (the answer must be an estimate from probes, not the trace by other means); (4) over
    24 generator seeds, checks that 64 probes spread about 4x less than 4 (1/sqrt(K): a probe drawn
    once and reused does not shrink); (5) over 200 seeds, checks that 64 probes spread as 64
    independent probes do (a probe used twice, or antithetic pairs v, -v, spread sqrt(2) more);
    (6) checks that the same generator state gives the same estimate (probes drawn from the global
    random state instead are rejected); and (2) also checks that ``hvp`` was called once per probe
    (half the probes would still shrink like 1/sqrt(K)). Checks run in the order (1), (3), (4),
    (5), (6), (2)."""
    def run(H, probes, seed):
        calls = []

        def hvp(v):
            if not torch.is_tensor(v) or v.shape != (H.shape[0],):
                raise ValueError(f"hvp expects a tensor of shape [{H.shape[0]}], got "
                                 f"{tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}")
            calls.append(1)
            return H @ v.to(H.dtype)
        out, fail = call_student(fn, hvp, H.shape[0], probes, torch.Generator().manual_seed(seed))
        if fail is not None:
            return None, fail
        val, fail = as_number(out, "your function")
        return (val, len(calls)), fail

    D = torch.diag(torch.arange(1.0, 9.0, dtype=torch.float64))
    res, fail = run(D, 1, 0)
    if fail is not None:
        return fail
    if abs(res[0] - 36.0) > 1e-6:
        return CheckResult(False, f"On a diagonal H with trace 36 one Rademacher probe must give exactly 36 "
                                  f"(v_i^2 = 1); you returned {res[0]:.4g}. Draw entries from {{-1, +1}} "
                                  "(e.g. torch.randint(0, 2, ...) * 2 - 1), not from a Gaussian.")
    H = _symmetric(10, 7)
    singles = [run(H, 1, s)[0][0] for s in range(5)]
    if all(abs(v - float(torch.trace(H))) < 1e-9 for v in singles):
        return CheckResult(False, "One probe returned the exact trace every time on a non-diagonal matrix: "
                                  "the estimate must come from random probes (it is noisy with few of them).")
    # (4) the spread over generator seeds shrinks like 1/sqrt(probes): 16x the probes, about 4x
    # less spread (a probe drawn once and reused, or a fixed subset, does not shrink at all)
    spread = {}
    for probes in (4, 64):
        vals = []
        for s in range(24):
            res, fail = run(H, probes, 100 + s)
            if fail is not None:
                return fail
            vals.append(res[0])
        spread[probes] = float(np.std(vals))
    ratio = spread[4] / max(spread[64], 1e-300)
    if not 2.0 <= ratio <= 8.0:
        return CheckResult(False, f"Over 24 generator seeds, 64 probes should spread about 4x less than 4 "
                                  f"probes (the standard deviation falls like 1/sqrt(probes)); yours spread "
                                  f"{spread[4]:.3g} and {spread[64]:.3g} ({ratio:.2g}x). Draw a new "
                                  "Rademacher vector for every probe and average all of them.")
    # (5) the spread itself: over 200 generator seeds, 64 probes must spread as independent
    # Rademacher probes do, sqrt(hutchinson_variance(H) / 64) within the sampling error of a
    # standard deviation from 200 draws (about 5 %); a probe used twice, or the antithetic pair
    # v, -v (the same v^T H v twice), spreads sqrt(2) times more
    from ..membership import hutchinson_variance

    vals = []
    for s in range(200):
        res, fail = run(H, 64, 1000 + s)
        if fail is not None:
            return fail
        vals.append(res[0])
    expected = math.sqrt(float(hutchinson_variance(H)) / 64)
    ratio = float(np.std(vals, ddof=1)) / expected
    if not 0.8 <= ratio <= 1.25:
        return CheckResult(False, f"Over 200 generator seeds your 64-probe estimates spread {ratio:.2f} times "
                                  f"what 64 independent Rademacher probes give ({expected:.3g}). Use every probe, "
                                  "each a fresh vector: no vector used twice, no pairs v and -v (they give "
                                  "the same v^T H v).")
    # (6) the generator: the same generator state must give the same estimate
    first, again = run(H, 8, 7)[0], run(H, 8, 7)[0]
    if first is None or again is None or first[0] != again[0]:
        return CheckResult(False, "Two calls with generators seeded alike gave different estimates: draw the "
                                  "probes from the generator you are given (torch.randint(..., "
                                  "generator=generator)), not from the global random state.")
    for seed, d in enumerate((6, 15)):
        H = _symmetric(d, seed)
        tr = float(torch.trace(H))
        res, fail = run(H, 3000, seed)
        if fail is not None:
            return fail
        est, calls = res
        if calls == 0:
            return CheckResult(False, "Your function never called hvp: Hutchinson's estimator only sees H "
                                      "through Hessian-vector products.")
        if calls != 3000:
            return CheckResult(False, f"Asked for 3,000 probes, your function called hvp {calls} times: use "
                                      "every probe, one Hessian-vector product each.")
        if abs(est - tr) > 0.05 * abs(tr) + 0.05:
            return CheckResult(False, f"With 3,000 probes on a {d}x{d} matrix of trace {tr:.3f} you returned "
                                      f"{est:.3f}. Average v^T (H v) over the probes (do not divide by d).")
    return CheckResult(True, "exact on diagonal matrices with one probe, unbiased on symmetric ones, and noisy "
                             "with few probes: Hutchinson's estimator.")


def check_auc(fn) -> CheckResult:
    """Chapter 09: ``fn(member_scores, nonmember_scores)`` (NumPy arrays) must return the AUC by its
    definition: the share of (member, non-member) pairs in which the member scores higher, ties counting
    one half. Compared with scikit-learn's ``roc_auc_score`` on data with many ties."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    cases = [(np.array([3.0, 4, 5]), np.array([0.0, 1, 2])),
             (rng.integers(0, 4, 30).astype(float), rng.integers(0, 4, 25).astype(float)),
             (rng.normal(0.3, 1, 50), rng.normal(0, 1, 40))]
    for i, (m, n) in enumerate(cases):
        out, fail = call_student(fn, m.copy(), n.copy())
        if fail is not None:
            return fail
        val, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        want = roc_auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n])
        if abs(val - want) > 1e-9:
            hint = ""
            if abs((1 - val) - want) < 1e-9:
                hint = " You have the orientation reversed: count pairs where the *member* scores higher."
            elif i == 1:
                hint = " Scores here have ties: a tied pair counts one half."
            return CheckResult(False, f"Case {i}: expected AUC {want:.4f}, you returned {val:.4f}.{hint}")
    return CheckResult(True, "your AUC equals scikit-learn's, ties included: it is the probability that a random "
                             "member outscores a random non-member.")


def check_dp_auc_bound(fn) -> CheckResult:
    """Chapter 09: ``fn(epsilon)`` must return the largest AUC any membership test can reach against an
    ε-DP training algorithm (δ = 0): the area under tpr = min(e^ε fpr, 1 - e^-ε (1 - fpr)).
    Compared at ε in {0, 0.1, 0.5, 1, 2, 5}."""
    for eps in (0.0, 0.1, 0.5, 1.0, 2.0, 5.0):
        out, fail = call_student(fn, eps)
        if fail is not None:
            return fail
        val, fail = as_number(out, "your function")
        if fail is not None:
            return fail
        want = math.exp(eps) / (1 + math.exp(eps))
        if abs(val - want) > 1e-3:
            hint = (" At ε = 0 no test beats guessing: AUC 0.5." if eps == 0 else
                    " Integrate the two lines: they cross at fpr = 1 / (1 + e^ε).")
            return CheckResult(False, f"At ε = {eps} the bound is {want:.4f}; you returned {val:.4f}.{hint}")
    return CheckResult(True, "AUC ≤ e^ε / (1 + e^ε): 0.5 at ε = 0, 0.73 at ε = 1, and close to 1 from ε ≈ 5 on; "
                             "DP's guarantee says little about AUC at the ε that practice often uses.")
