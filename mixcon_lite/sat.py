r"""Inverting a two-layer ReLU network is as hard as 3SAT (MixCon, Appendix B), in code.

Formulas are CNFs in the DIMACS convention: variables are ``1..n_vars``, a literal is ``+v`` or ``-v``,
a clause is a list of literals (at most three here). An *assignment* is a sequence of ``n_vars``
booleans; entry ``i`` is variable ``i + 1``. Inputs encode it as :math:`x_i = +1` (true) / :math:`-1` (false).

**The reduction** (:func:`reduction`). For a CNF with ``m`` clauses and every variable in at most
``B`` clauses, build :math:`f(x) = W_2\,\mathrm{ReLU}(W_1x+b_1)` with

* one hidden unit per clause :math:`C_j` with ``k`` literals:
  :math:`z_j = \mathrm{ReLU}\bigl(-\sum_{\ell\in C_j} s_\ell(x) - (k-1)\bigr)`, where
  :math:`s_\ell(x)=x_v` for :math:`\ell=+v` and :math:`-x_v` for :math:`\ell=-v`. On :math:`x\in\{\pm1\}^n`,
  :math:`z_j = 1` if the clause is unsatisfied and :math:`0` if it is satisfied;
* two hidden units per variable, :math:`\mathrm{ReLU}(x_i)` and :math:`\mathrm{ReLU}(-x_i)`, whose sum is
  :math:`|x_i|`, copied to ``K`` outputs each;
* outputs :math:`(z_1,\dots,z_m,\ |x_1|\ (K\text{ times}),\dots,|x_n|\ (K\text{ times}))`, target
  :math:`y = (0,\dots,0,1,\dots,1)`.

**Completeness.** A satisfying assignment ``a`` gives ``net(encode(a)) == target`` exactly.

**Soundness.** For *any* real ``x``, rounding by sign (:func:`round_to_assignment`) leaves at most
:math:`C\,\lVert f(x)-y\rVert_2^2` clauses unsatisfied with :math:`C=\max(4,\,12B/K)`, so :math:`C = 4`
for the default ``K = 3B``. Proof sketch (the chapter has it in full): write :math:`t_i=|x_i|-1`. If the
rounding leaves :math:`C_j` unsatisfied, every literal of :math:`C_j` has :math:`s_\ell(x)=-|x_v|`, so
:math:`z_j(x)\ge 1+\sum_{\ell\in C_j}t_v`. Either :math:`z_j\ge\tfrac12` (the clause costs
:math:`\ge\tfrac14` of the error), or :math:`\sum_{\ell}|t_v|\ge\tfrac12`, hence
:math:`\sum_\ell t_v^2\ge\tfrac1{12}`; each variable is in at most ``B`` clauses and its ``K`` copies
contribute :math:`K t_i^2` to the error.

**Lipschitz.** :math:`\lVert f(x)-f(x')\rVert\le L\lVert x-x'\rVert` with
:math:`L\le\lVert W_2\rVert_2\lVert W_1\rVert_2` (:func:`lipschitz_bound`) and :math:`L\le\sqrt{3B+K}`
(:func:`lipschitz_constant_analytic`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .utils import positive_int


@dataclass(frozen=True)
class CNF:
    """A CNF formula: ``n_vars`` variables and clauses of signed ints (DIMACS). Validated on creation."""

    n_vars: int
    clauses: tuple

    def __init__(self, n_vars: int, clauses, max_occurrence: int | None = None):
        n_vars = positive_int(n_vars, "n_vars")
        cleaned = []
        for j, clause in enumerate(clauses):
            lits = tuple(int(v) for v in clause)
            if not lits:
                raise ValueError(f"Clause {j} is empty; an empty clause can never be satisfied. Remove it.")
            if len(lits) > 3:
                raise ValueError(f"Clause {j} has {len(lits)} literals; this reduction takes at most 3 per clause.")
            for v in lits:
                if v == 0:
                    raise ValueError(f"Clause {j} contains 0; DIMACS literals are +v or -v with v in 1..n_vars.")
                if abs(v) > n_vars:
                    raise ValueError(f"Clause {j} mentions variable {abs(v)} beyond n_vars = {n_vars}.")
            cleaned.append(lits)
        if not cleaned:
            raise ValueError("A CNF needs at least one clause.")
        object.__setattr__(self, "n_vars", int(n_vars))
        object.__setattr__(self, "clauses", tuple(cleaned))
        if max_occurrence is not None:
            max_occurrence = positive_int(max_occurrence, "max_occurrence")
            counts = self.occurrences()
            if counts.max() > max_occurrence:
                v = int(counts.argmax()) + 1
                raise ValueError(f"Variable {v} occurs {counts.max()} times, more than the bound "
                                 f"B = {max_occurrence}.")

    @property
    def n_clauses(self) -> int:
        return len(self.clauses)

    def occurrences(self) -> np.ndarray:
        """How often each variable occurs as a literal (index ``i`` = variable ``i + 1``); a variable
        twice in one clause counts twice. With distinct variables per clause this is the number of
        clauses it appears in."""
        counts = np.zeros(self.n_vars, dtype=int)
        for clause in self.clauses:
            for lit in clause:
                counts[abs(lit) - 1] += 1
        return counts

    @property
    def max_occurrence(self) -> int:
        """B: the largest number of occurrences of any variable."""
        return int(self.occurrences().max())

    def to_dimacs(self) -> str:
        lines = [f"p cnf {self.n_vars} {self.n_clauses}"] + [" ".join(map(str, c)) + " 0" for c in self.clauses]
        return "\n".join(lines) + "\n"


def as_cnf(cnf) -> CNF:
    """Accept a :class:`CNF` or a list of clauses (``n_vars`` = largest variable mentioned)."""
    if isinstance(cnf, CNF):
        return cnf
    try:
        clauses = [list(c) for c in cnf]
    except TypeError as err:
        raise ValueError("Expected a CNF or a list of clauses (lists of signed ints).") from err
    if not clauses:
        raise ValueError("A CNF needs at least one clause.")
    n_vars = max((abs(int(v)) for c in clauses for v in c), default=0)
    if n_vars == 0:
        raise ValueError("No variables found; clauses must hold non-zero signed ints.")
    return CNF(n_vars, clauses)


def random_3cnf(n_vars: int, n_clauses: int, max_occurrence: int, seed: int = 0, planted: bool = False) -> CNF:
    """A random 3-CNF: each clause has 3 distinct variables with random signs, and every variable is in
    at most ``max_occurrence`` (B) clauses. With ``planted=True`` a hidden random assignment satisfies
    every clause (so the formula is satisfiable; the assignment is not returned).

    Raises ``ValueError`` when the sizes cannot work (``3 n_clauses > B n_vars`` or ``n_vars < 3``).
    """
    n_vars, n_clauses, max_occurrence = (positive_int(v, name) for name, v in (
        ("n_vars", n_vars), ("n_clauses", n_clauses), ("max_occurrence", max_occurrence)))
    if n_vars < 3:
        raise ValueError(f"A 3-CNF with distinct variables per clause needs n_vars >= 3, got {n_vars}.")
    if 3 * n_clauses > max_occurrence * n_vars:
        raise ValueError(f"{n_clauses} clauses need {3 * n_clauses} variable slots but B * n_vars = "
                         f"{max_occurrence * n_vars}; lower n_clauses or raise max_occurrence.")
    rng = np.random.default_rng(seed)
    hidden = rng.random(n_vars) < 0.5
    for _attempt in range(200):
        counts = np.zeros(n_vars, dtype=int)
        clauses = []
        for _ in range(n_clauses):
            free = np.flatnonzero(counts < max_occurrence)
            if len(free) < 3:
                break
            # prefer rarely used variables a little, so tight bounds still fill up
            weights = (max_occurrence - counts[free]).astype(float)
            chosen = rng.choice(free, size=3, replace=False, p=weights / weights.sum())
            signs = rng.random(3) < 0.5
            if planted:
                while not any(signs[k] == hidden[chosen[k]] for k in range(3)):
                    signs = rng.random(3) < 0.5
            counts[chosen] += 1
            clauses.append([int(v + 1) if s else -int(v + 1) for v, s in zip(chosen, signs)])
        if len(clauses) == n_clauses:
            return CNF(n_vars, clauses, max_occurrence=max_occurrence)
    raise ValueError("Could not place the clauses within the occurrence bound; raise max_occurrence.")


def _check_assignment(cnf: CNF, assignment) -> np.ndarray:
    a = np.asarray(assignment)
    if a.shape != (cnf.n_vars,):
        raise ValueError(f"An assignment must have n_vars = {cnf.n_vars} entries, got shape {a.shape}.")
    if a.dtype != bool:
        if not np.isin(a, [0, 1]).all():
            raise ValueError("An assignment holds booleans (True/False or 1/0); for ±1 inputs use round_to_assignment.")
        a = a.astype(bool)
    return a


def unsatisfied(cnf, assignment) -> int:
    """Number of clauses of ``cnf`` that ``assignment`` (``n_vars`` booleans) leaves unsatisfied."""
    cnf = as_cnf(cnf)
    a = _check_assignment(cnf, assignment)
    return sum(not any(a[abs(v) - 1] == (v > 0) for v in clause) for clause in cnf.clauses)


def encode(assignment) -> torch.Tensor:
    """Assignment (``n_vars`` booleans) -> input ``x`` of shape ``[n_vars]``: +1 for true, -1 for false."""
    a = np.asarray(assignment)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"An assignment is a 1-D sequence of n_vars >= 1 booleans, got shape {a.shape}.")
    if a.dtype != bool and not np.isin(a, [0, 1]).all():
        raise ValueError("An assignment holds booleans (True/False or 1/0).")
    return torch.from_numpy(np.where(a.astype(bool), 1.0, -1.0).astype(np.float32))


def round_to_assignment(x):
    """Sign rounding: ``x_i >= 0`` -> True. ``x`` of shape ``[n_vars]`` gives a tuple of booleans;
    ``[B, n_vars]`` gives a list of B tuples."""
    t = torch.as_tensor(x)
    if t.ndim not in (1, 2) or t.shape[-1] == 0:
        raise ValueError(f"x must have shape [n_vars] or [B, n_vars], got {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise ValueError("x contains NaN or inf; there is no sign to round.")
    signs = (t >= 0).cpu().numpy()
    return tuple(bool(s) for s in signs) if t.ndim == 1 else [tuple(bool(s) for s in row) for row in signs]


def default_copies(cnf) -> int:
    """K = 3B copies of each variable's |x_i| output, which makes the soundness constant 4."""
    return 3 * max(1, as_cnf(cnf).max_occurrence)


def soundness_constant(cnf, copies: int | None = None) -> float:
    """C = max(4, 12 B / K): #unsatisfied(round(x)) <= C * ||f(x) - y||^2 for every real x."""
    cnf = as_cnf(cnf)
    k = default_copies(cnf) if copies is None else copies
    return max(4.0, 12.0 * cnf.max_occurrence / k)


def reduction(cnf, copies: int | None = None) -> tuple[nn.Sequential, torch.Tensor]:
    """Build the two-layer ReLU network ``net`` and ``target`` of the reduction (see module docstring).

    ``net`` maps ``[batch, n_vars]`` to ``[batch, m + K n_vars]``: ``Linear(n, m + 2n) -> ReLU ->
    Linear(m + 2n, m + K n, bias=False)``. ``copies`` = K (default 3B).
    """
    cnf = as_cnf(cnf)
    n, m = cnf.n_vars, cnf.n_clauses
    k = default_copies(cnf) if copies is None else copies
    k = positive_int(k, "copies")
    w1 = torch.zeros(m + 2 * n, n)
    b1 = torch.zeros(m + 2 * n)
    for j, clause in enumerate(cnf.clauses):
        for lit in clause:
            w1[j, abs(lit) - 1] -= 1.0 if lit > 0 else -1.0     # -s_l(x)
        b1[j] = -(len(clause) - 1)
    eye = torch.eye(n)
    w1[m:m + n] = eye            # ReLU(x_i)
    w1[m + n:] = -eye            # ReLU(-x_i)
    w2 = torch.zeros(m + k * n, m + 2 * n)
    w2[:m, :m] = torch.eye(m)
    for i in range(n):
        rows = slice(m + k * i, m + k * (i + 1))
        w2[rows, m + i] = 1.0
        w2[rows, m + n + i] = 1.0
    net = nn.Sequential(nn.Linear(n, m + 2 * n), nn.ReLU(), nn.Linear(m + 2 * n, m + k * n, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[0].bias.copy_(b1)
        net[2].weight.copy_(w2)
    for p in net.parameters():
        p.requires_grad_(False)
    target = torch.cat([torch.zeros(m), torch.ones(k * n)])
    return net, target


def lipschitz_bound(net: nn.Sequential) -> float:
    """||W2||_2 * ||W1||_2, an upper bound on the Lipschitz constant of ``Linear -> ReLU -> Linear``."""
    linears = [mod for mod in net if isinstance(mod, nn.Linear)]
    if len(linears) != 2:
        raise ValueError("lipschitz_bound expects the two-layer network returned by reduction().")
    return float(np.prod([torch.linalg.matrix_norm(mod.weight.double(), ord=2).item() for mod in linears]))


def lipschitz_constant_analytic(cnf, copies: int | None = None) -> float:
    """sqrt(3B + K): each clause output moves by at most the sum of its 3 inputs' moves, each variable
    feeds at most B clauses, and |x_i| moves at most as much as x_i in each of its K copies."""
    cnf = as_cnf(cnf)
    k = default_copies(cnf) if copies is None else copies
    return math.sqrt(3 * cnf.max_occurrence + k)


# ------------------------------------------------------------------ solving ------------------------
def solve_pysat(cnf, solver: str = "minisat22"):
    """Solve with a real SAT solver (python-sat). Returns ``(assignment or None, seconds)``."""
    from pysat.solvers import Solver

    cnf = as_cnf(cnf)
    start = time.perf_counter()
    with Solver(name=solver, bootstrap_with=[list(c) for c in cnf.clauses]) as s:
        ok = s.solve()
        model = s.get_model() if ok else None
    seconds = time.perf_counter() - start
    if model is None:
        return None, seconds
    a = np.zeros(cnf.n_vars, dtype=bool)
    for lit in model:
        if abs(lit) <= cnf.n_vars:
            a[abs(lit) - 1] = lit > 0
    return tuple(bool(v) for v in a), seconds


def _assignment_chunks(cnf: CNF, chunk: int, max_vars: int):
    """Yield (values [c, n] bool, satisfied [c] bool) over all 2^n assignments, in order 0..2^n - 1
    (bit i of the code is variable i + 1)."""
    n = cnf.n_vars
    if n > max_vars:
        raise ValueError(f"Enumerating 2^{n} assignments is too slow; max_vars = {max_vars}.")
    var_idx = [np.array([abs(v) - 1 for v in c]) for c in cnf.clauses]
    want = [np.array([v > 0 for v in c]) for c in cnf.clauses]
    bits = np.arange(n, dtype=np.int64)
    for lo in range(0, 1 << n, chunk):
        codes = np.arange(lo, min(lo + chunk, 1 << n), dtype=np.int64)
        values = ((codes[:, None] >> bits[None, :]) & 1).astype(bool)       # [chunk, n]
        ok = np.ones(len(codes), dtype=bool)
        for idx, w in zip(var_idx, want):
            ok &= (values[:, idx] == w[None, :]).any(1)
        yield values, ok


def brute_force(cnf, chunk: int = 1 << 16, max_vars: int = 26):
    """Try all 2^n assignments (vectorised, in chunks) in order until one satisfies ``cnf``.

    Returns ``(first satisfying assignment or None, seconds, assignments tried)``.
    """
    cnf = as_cnf(cnf)
    start, tried = time.perf_counter(), 0
    for values, ok in _assignment_chunks(cnf, chunk, max_vars):
        hit = np.flatnonzero(ok)
        if hit.size:
            tried += int(hit[0]) + 1
            return tuple(bool(v) for v in values[hit[0]]), time.perf_counter() - start, tried
        tried += len(ok)
    return None, time.perf_counter() - start, tried


def count_solutions(cnf, chunk: int = 1 << 16, max_vars: int = 26) -> int:
    """The number of satisfying assignments among all 2^n (exhaustive; the brute-force worst case)."""
    cnf = as_cnf(cnf)
    return int(sum(ok.sum() for _, ok in _assignment_chunks(cnf, chunk, max_vars)))


def gradient_inversion(cnf, restarts: int = 16, steps: int = 300, lr: float = 0.05, seed: int = 0,
                       copies: int | None = None):
    """Invert the reduction's network by gradient descent: minimise ||net(x) - target||^2 from
    ``restarts`` random starts at once (a batch), then round every run by sign.

    Returns a dict: ``assignment`` (best rounded; satisfying if any run found one), ``satisfied``
    (bool), ``unsatisfied`` (count for that assignment), ``residual`` (its ||f(x) - y||^2),
    ``seconds``, ``runs_satisfying`` (how many restarts rounded to a satisfying assignment), and per run
    ``residuals`` and ``counts`` (unsatisfied clauses after rounding).
    """
    cnf = as_cnf(cnf)
    restarts, steps = positive_int(restarts, "restarts"), positive_int(steps, "steps")
    net, target = reduction(cnf, copies)
    start = time.perf_counter()
    g = torch.Generator().manual_seed(int(seed))
    x = torch.empty(restarts, cnf.n_vars).uniform_(-1, 1, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        loss = (net(x) - target).pow(2).sum(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        residual = (net(x) - target).pow(2).sum(1)
    rounded = round_to_assignment(x.detach())
    counts = [unsatisfied(cnf, a) for a in rounded]
    best = int(np.lexsort((residual.numpy(), counts))[0])
    return {"assignment": rounded[best], "satisfied": counts[best] == 0, "unsatisfied": counts[best],
            "residual": float(residual[best]), "seconds": time.perf_counter() - start,
            "runs_satisfying": int(sum(c == 0 for c in counts)),
            "residuals": residual.tolist(), "counts": counts}
