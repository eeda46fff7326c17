r"""Inverting a two-layer ReLU network is as hard as 3SAT (MixCon, Appendix B), in code.

Formulas are CNFs in the DIMACS convention: variables are ``1..n_vars``, a literal is ``+v`` or
``-v``, a clause is a list of literals (at most three here). An *assignment* is a sequence of
``n_vars`` booleans; entry ``i`` is variable ``i + 1``. Inputs encode it as :math:`x_i = +1` (true)
/ :math:`-1` (false).

**The reduction** (:func:`reduction`). For a CNF with ``m`` clauses and every variable in at most
``B`` clauses, build :math:`f(x) = W_2\,\mathrm{ReLU}(W_1x+b_1)` with

* one hidden unit per clause :math:`c_j` with ``k`` literals:
  :math:`z_j = \mathrm{ReLU}\bigl(-\sum_{\ell\in c_j} s_\ell(x) - (k-1)\bigr)`, where
  :math:`s_\ell(x)=x_v` for :math:`\ell=+v` and :math:`-x_v` for :math:`\ell=-v`. On
  :math:`x\in\{\pm1\}^n`, :math:`z_j = 1` if the clause is unsatisfied and :math:`0` if satisfied;
* two hidden units per variable, :math:`\mathrm{ReLU}(x_i)` and :math:`\mathrm{ReLU}(-x_i)`, whose
  sum is :math:`|x_i|`, copied to ``K`` outputs each;
* outputs :math:`(z_1,\dots,z_m,\ |x_1|\ (K\text{ times}),\dots,|x_n|\ (K\text{ times}))`, target
  :math:`y = (0,\dots,0,1,\dots,1)`.

**Completeness.** A satisfying assignment ``a`` gives ``net(encode(a)) == target`` exactly.

**Soundness** (:func:`soundness_constant`). For *any* real ``x``, rounding by sign
(:func:`round_to_assignment`) leaves at most :math:`C\,\lVert f(x)-y\rVert_2^2` clauses
unsatisfied, with the sharp constant :math:`C = 1 + 3B/K` (so :math:`C = 2` for the default
``K = 3B``). Proof: write :math:`t_i=|x_i|-1`. A clause left unsatisfied by the rounding has
every literal at :math:`s_\ell(x)=-|x_v|`, so :math:`1 \le z_j(x) + \sum_{\ell\in c_j}|t_v|`;
square with :math:`(a+b)^2\le(1+\mu)a^2+(1+1/\mu)b^2`, use Cauchy-Schwarz over the
:math:`k\le3` literals and the bound ``B`` on occurrences, and take :math:`\mu = 3B/K`.
:math:`\mu = 1` is the paper's route, :math:`C=\max(2, 6B/K)`. :func:`soundness_extremal`
builds a formula and input that attain :math:`1 + 3B/K` exactly, so no smaller constant holds.

**Lipschitz.** :math:`\lVert f(x)-f(x')\rVert\le \mathrm{Lip}(f)\lVert x-x'\rVert` with
:math:`\mathrm{Lip}(f)\le\lVert W_2\rVert_2\lVert W_1\rVert_2` (:func:`lipschitz_bound`) and
:math:`\mathrm{Lip}(f)\le\sqrt{3B+K}` (:func:`lipschitz_constant_analytic`).

**One layer is easy** (:func:`invert_relu_layer`): :math:`\mathrm{ReLU}(Wx+b)=u` is a set of
linear equalities (active units) and inequalities (inactive units), a linear program.

**Inverters** for the chapter's race: :func:`solve_pysat` (a CDCL SAT solver), :func:`brute_force`,
:func:`gradient_inversion` (Adam on :math:`\lVert f(x)-y\rVert^2`), and
:func:`compare_with_guessing` to test a solver's success count against uniform random guessing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .config import resolve_seed
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


def random_3cnf(n_vars: int, n_clauses: int, max_occurrence: int, seed: int | None = None, planted: bool = False) -> CNF:
    """A random 3-CNF: each clause has 3 distinct variables with random signs, and every variable is in
    at most ``max_occurrence`` (B) clauses. With ``planted=True`` a hidden random assignment satisfies
    every clause (so the formula is satisfiable; the assignment is not returned).

    Raises ``ValueError`` when the sizes cannot work (``3 n_clauses > B n_vars`` or ``n_vars < 3``).
    """
    seed = resolve_seed(seed)
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
    """K = 3B copies of each variable's |x_i| output: the soundness constant is then 2, and
    K = 3B minimises C * Lip(f)^2 = (1 + 3B/K)(3B + K) (see :func:`soundness_constant`)."""
    return 3 * max(1, as_cnf(cnf).max_occurrence)


SOUNDNESS_FORMS = ("sharp", "paper")


def soundness_constant(cnf, copies: int | None = None, form: str = "sharp") -> float:
    """The constant C in #unsatisfied(round(x)) <= C * ||f(x) - y||^2, for every real x.

    ``form="sharp"`` (default): C = 1 + 3B/K, the best possible (attained by
    :func:`soundness_extremal`). ``form="paper"``: C = max(2, 6B/K), what the paper's route gives
    (the same inequality with (a + b)^2 <= 2a^2 + 2b^2); equal to the sharp one at K = 3B.
    """
    cnf = as_cnf(cnf)
    k = positive_int(default_copies(cnf) if copies is None else copies, "copies")
    b = cnf.max_occurrence
    if form == "sharp":
        return 1.0 + 3.0 * b / k
    if form == "paper":
        return max(2.0, 6.0 * b / k)
    raise ValueError(f"form must be one of {SOUNDNESS_FORMS}, got {form!r}.")


def soundness_extremal(n_vars: int, max_occurrence: int, copies: int | None = None):
    """A formula and an input at which the soundness bound is an equality.

    Returns ``(cnf, x)``: ``cnf`` has ``m = B n / 3`` all-positive 3-literal clauses, every variable
    in exactly ``B = max_occurrence`` of them (cyclic triples ``(i, i+r, i+2r)`` for each
    ``r = 1..B//3``, plus ``B % 3`` partitions of the variables into triples); ``x`` is the constant
    vector ``-(1 - B/(3B + K))``, which rounds to all-false (every clause violated) and has
    ``#violated / ||f(x) - y||^2 = 1 + 3B/K`` exactly. Needs ``n_vars`` a multiple of 3 and
    ``n_vars > 2 (B // 3)``.
    """
    n = positive_int(n_vars, "n_vars")
    b = positive_int(max_occurrence, "max_occurrence")
    k = positive_int(3 * b if copies is None else copies, "copies")
    if n % 3 or n <= 2 * (b // 3):
        raise ValueError(f"n_vars must be a multiple of 3 and larger than 2 * (B // 3) = "
                         f"{2 * (b // 3)}, got {n}; e.g. n_vars = {3 * (b // 3 + 1)}.")
    clauses = [[i + 1, (i + r) % n + 1, (i + 2 * r) % n + 1]
               for r in range(1, b // 3 + 1) for i in range(n)]
    third = n // 3
    partitions = ([[i + 1, i + third + 1, i + 2 * third + 1] for i in range(third)],
                  [[i + 1, i + 2, i + 3] for i in range(0, n, 3)])
    for part in partitions[:b % 3]:
        clauses += part
    cnf = CNF(n, clauses, max_occurrence=b)
    shrink = b / (3 * b + k)
    return cnf, torch.full((n,), -(1.0 - shrink), dtype=torch.float64)


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


def gradient_inversion(cnf, restarts: int = 16, steps: int = 300, lr: float = 0.05, seed: int | None = None,
                       copies: int | None = None):
    """Invert the reduction's network by gradient descent: minimise ||net(x) - target||^2 from
    ``restarts`` random starts at once (a batch; each start uniform in [-1, 1]^n, so its signs are
    a uniformly random assignment), then round every run by sign.

    Returns a dict: ``assignment`` (best rounded; satisfying if any run found one), ``satisfied``
    (bool), ``unsatisfied`` (count for that assignment), ``residual`` (its ||f(x) - y||^2),
    ``seconds``, ``runs_satisfying`` (how many restarts rounded to a satisfying assignment), and per
    run ``residuals``, ``counts`` (unsatisfied clauses after rounding) and ``sign_flips`` (how many
    variables end with a different sign than they started with).
    """
    seed = resolve_seed(seed)
    cnf = as_cnf(cnf)
    restarts, steps = positive_int(restarts, "restarts"), positive_int(steps, "steps")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    net, target = reduction(cnf, copies)
    start = time.perf_counter()
    g = torch.Generator().manual_seed(int(seed))
    x = torch.empty(restarts, cnf.n_vars).uniform_(-1, 1, generator=g)
    start_signs = x >= 0
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        loss = (net(x) - target).pow(2).sum(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        residual = (net(x) - target).pow(2).sum(1)
    flips = ((x.detach() >= 0) != start_signs).sum(1)
    rounded = round_to_assignment(x.detach())
    counts = [unsatisfied(cnf, a) for a in rounded]
    best = int(np.lexsort((residual.numpy(), counts))[0])
    return {"assignment": rounded[best], "satisfied": counts[best] == 0, "unsatisfied": counts[best],
            "residual": float(residual[best]), "seconds": time.perf_counter() - start,
            "runs_satisfying": int(sum(c == 0 for c in counts)),
            "residuals": residual.tolist(), "counts": counts, "sign_flips": flips.tolist()}


def adversarial_inputs(cnf, copies: int | None = None, starts: int = 1024, steps: int = 300,
                       lr: float = 0.02, seed: int | None = None) -> torch.Tensor:
    """Inputs that stress the soundness bound: for ``starts`` random sign patterns, the magnitudes
    ``|x_i|`` are optimised (Adam, signs held fixed) to make ||f(x) - y||^2 small while the rounding
    stays the same assignment. Returns ``x`` of shape ``[starts, n_vars]`` (float64)."""
    seed = resolve_seed(seed)
    cnf = as_cnf(cnf)
    starts, steps = positive_int(starts, "starts"), positive_int(steps, "steps")
    net, target = reduction(cnf, copies)
    net, target = net.double(), target.double()
    g = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, (starts, cnf.n_vars), generator=g).double() * 2 - 1
    mag = torch.rand(starts, cnf.n_vars, generator=g, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([mag], lr=lr)
    for _ in range(steps):
        loss = (net(signs * mag.abs()) - target).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return signs * mag.detach().abs()


def compare_with_guessing(successes: int, probabilities) -> dict:
    """Is a solver's success count what uniform random guessing would give?

    ``probabilities`` holds, for each run the solver made, the chance that a uniformly random
    assignment satisfies that run's formula (the fraction ``p`` of satisfying assignments). Under
    guessing the number of successes is a sum of independent Bernoulli(p) draws, with mean
    ``expected = sum p`` and standard deviation ``sd = sqrt(sum p (1 - p))``. Returns
    ``{"successes", "expected", "sd", "z"}`` with ``z = (successes - expected) / sd``, and
    ``"power_2x"``: the z a solver twice as good as guessing would score on average
    (``expected / sd``), so a caller can check the comparison is able to detect one.
    """
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    if p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must be a non-empty sequence of numbers in [0, 1], "
                         "one per run (the fraction of satisfying assignments of its formula).")
    if isinstance(successes, bool) or not isinstance(successes, (int, np.integer)) \
            or not 0 <= successes <= p.size:
        raise ValueError(f"successes must be an integer between 0 and the number of runs "
                         f"({p.size}), got {successes!r}.")
    expected, sd = float(p.sum()), float(np.sqrt((p * (1 - p)).sum()))
    if sd == 0:
        raise ValueError("Every probability is 0 or 1: guessing is deterministic, nothing to test.")
    return {"successes": int(successes), "expected": expected, "sd": sd,
            "z": (int(successes) - expected) / sd, "power_2x": expected / sd}


def consistent_with_guessing(successes: int, probabilities, z_max: float = 4.0) -> bool:
    """True when ``|z| <= z_max`` in :func:`compare_with_guessing`: the success count is within
    ``z_max`` standard deviations of what uniform random guessing gives."""
    if not z_max > 0:
        raise ValueError(f"z_max must be positive, got {z_max!r}.")
    return abs(compare_with_guessing(successes, probabilities)["z"]) <= z_max


def invert_relu_layer(weight, bias, u, tol: float = 1e-6):
    """Invert one ReLU layer by linear programming: find ``x`` with ``ReLU(weight @ x + bias) = u``.

    Where ``u_i > tol`` the unit is active, so ``w_i . x + b_i = u_i`` (an equality); where
    ``u_i <= tol`` it is off, so ``w_i . x + b_i <= 0`` (an inequality). With slacks ``e >= 0`` the
    linear program ``min sum(e)`` s.t. ``|w_i . x + b_i - u_i| <= e_i`` (active) and
    ``w_i . x + b_i <= e_i`` (off) has optimum 0 exactly when an exact preimage exists (the
    footnote-6 remark of the MixCon paper: one ReLU layer is invertible in polynomial time).

    ``weight`` ``[h, n]``, ``bias`` ``[h]``, ``u`` ``[h]`` (tensors or arrays). Returns
    ``(x, slack)``: ``x`` a float64 tensor ``[n]`` and ``slack`` the optimum ``sum(e)`` (0 up to
    solver tolerance when ``u`` is in the layer's range).
    """
    from scipy.optimize import linprog

    w = np.asarray(torch.as_tensor(weight).detach().cpu().double())
    b = np.asarray(torch.as_tensor(bias).detach().cpu().double()).reshape(-1)
    u = np.asarray(torch.as_tensor(u).detach().cpu().double()).reshape(-1)
    if w.ndim != 2 or b.shape != (w.shape[0],) or u.shape != (w.shape[0],):
        raise ValueError(f"Expected weight [h, n], bias [h] and u [h]; got shapes {w.shape}, "
                         f"{b.shape}, {u.shape}.")
    if not (np.isfinite(w).all() and np.isfinite(b).all() and np.isfinite(u).all()):
        raise ValueError("weight, bias and u must be finite.")
    if (u < -tol).any():
        raise ValueError("u has negative entries, which no ReLU outputs: it is not a ReLU layer's output.")
    h, n = w.shape
    on = u > tol
    eye = np.eye(h)
    # variables: [x (n, free), e (h, >= 0)]; rows A @ [x, e] <= rhs
    rows = [np.hstack([w, -eye]),                     # w x + b - u <= e    (every unit; u = 0 if off)
            np.hstack([-w[on], eye[on]])]             # -(w x + b - u) <= e (active units only)
    rhs = [np.where(on, u, 0.0) - b, b[on] - u[on]]
    res = linprog(c=np.r_[np.zeros(n), np.ones(h)], A_ub=np.vstack(rows), b_ub=np.concatenate(rhs),
                  bounds=[(None, None)] * n + [(0, None)] * h, method="highs")
    if res.status != 0:
        raise RuntimeError(f"The linear program did not solve: {res.message}")
    return torch.from_numpy(res.x[:n].copy()), float(res.fun)
