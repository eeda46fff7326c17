import itertools

import numpy as np
import pytest
import torch

from mixcon_lite import sat

UNSAT_3 = [[a * 1, b * 2, c * 3] for a, b, c in itertools.product([1, -1], repeat=3)]   # all 8 sign patterns


def _all_assignments(n):
    return [tuple(bool(b) for b in bits) for bits in itertools.product([False, True], repeat=n)]


@pytest.mark.parametrize("seed", range(6))
def test_random_3cnf_respects_bound_and_shape(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 30))
    b = int(rng.integers(2, 8))
    m = int(rng.integers(1, b * n // 3 + 1))
    cnf = sat.random_3cnf(n, m, b, seed=seed)
    assert cnf.n_clauses == m and cnf.max_occurrence <= b
    assert all(len(c) == 3 and len({abs(v) for v in c}) == 3 for c in cnf.clauses)
    assert all(1 <= abs(v) <= n for c in cnf.clauses for v in c)
    assert sat.random_3cnf(n, m, b, seed=seed) == cnf


@pytest.mark.parametrize("seed", range(5))
def test_completeness_on_every_satisfying_assignment(seed):
    cnf = sat.random_3cnf(7, 12, 6, seed=seed, planted=True)
    net, target = sat.reduction(cnf)
    solutions = [a for a in _all_assignments(7) if sat.unsatisfied(cnf, a) == 0]
    assert solutions, "planted instances are satisfiable"
    out = net(torch.stack([sat.encode(a) for a in solutions]))
    assert torch.equal(out, target.expand_as(out))                 # exactly, not approximately


@pytest.mark.parametrize("seed", range(4))
def test_binary_inputs_error_equals_unsatisfied_count(seed):
    cnf = sat.random_3cnf(6, 10, 6, seed=seed)
    net, target = sat.reduction(cnf)
    assignments = _all_assignments(6)
    err = (net(torch.stack([sat.encode(a) for a in assignments])) - target).pow(2).sum(1)
    assert err.tolist() == [float(sat.unsatisfied(cnf, a)) for a in assignments]


@pytest.mark.parametrize("seed", range(4))
def test_soundness_bound_on_random_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    cnf = sat.random_3cnf(10, 30, 9, seed=seed)
    for copies in (None, 1, 5):
        net, target = sat.reduction(cnf, copies=copies)
        c = sat.soundness_constant(cnf, copies)
        x = torch.randn(3000, 10, generator=g) * torch.rand(3000, 1, generator=g) * 2
        err = (net(x) - target).pow(2).sum(1)
        uns = torch.tensor([sat.unsatisfied(cnf, a) for a in sat.round_to_assignment(x)], dtype=torch.float32)
        assert torch.all(uns <= c * err + 1e-4)
    assert sat.soundness_constant(cnf) == 4.0
    assert sat.soundness_constant(cnf, copies=1) == 12.0 * cnf.max_occurrence


def test_unsatisfiable_formula_never_reaches_target():
    cnf = sat.CNF(3, UNSAT_3)
    net, target = sat.reduction(cnf)
    binary = torch.stack([sat.encode(a) for a in _all_assignments(3)])
    assert ((net(binary) - target).pow(2).sum(1) >= 1).all()
    # soundness: no real input comes closer than 1 / C either
    x = torch.randn(20000, 3) * 1.5
    assert (net(x) - target).pow(2).sum(1).min() >= 1 / sat.soundness_constant(cnf) - 1e-6
    assert sat.solve_pysat(cnf)[0] is None and sat.brute_force(cnf)[0] is None
    assert not sat.gradient_inversion(cnf, restarts=8, steps=100)["satisfied"]


@pytest.mark.parametrize("seed", range(3))
def test_lipschitz_bounds_hold(seed):
    cnf = sat.random_3cnf(12, 20, 5, seed=seed)
    net, _ = sat.reduction(cnf)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5000, 12, generator=g) * 2
    dx = torch.randn(5000, 12, generator=g) * torch.logspace(-3, 1, 5000)[:, None]
    ratio = (net(x + dx) - net(x)).norm(dim=1) / dx.norm(dim=1)
    analytic = sat.lipschitz_constant_analytic(cnf)
    assert ratio.max() <= analytic + 1e-4 and analytic <= sat.lipschitz_bound(net) + 1e-9
    assert ratio.max() > 0.5 * analytic          # the analytic bound is not vacuous


def test_encode_round_trip_and_general_n():
    for n in (1, 2, 5, 40):
        a = tuple(bool(v) for v in np.random.default_rng(n).random(n) < 0.5)
        x = sat.encode(a)
        assert x.shape == (n,) and x.dtype == torch.float32 and set(x.tolist()) <= {-1.0, 1.0}
        assert sat.round_to_assignment(x) == a
        assert sat.round_to_assignment(torch.stack([x, -x])) == [a, tuple(not v for v in a)]
        net, target = sat.reduction(sat.CNF(n, [[1]]))
        assert net(x[None]).shape == (1, target.numel())
    assert sat.round_to_assignment(torch.tensor([0.0, -0.0, -1e-9])) == (True, True, False)


def test_small_clauses_and_list_input():
    cnf = [[1], [-1, 2]]                     # x1 and (not x1 or x2): only (True, True)
    net, target = sat.reduction(cnf)
    for a in _all_assignments(2):
        hit = torch.equal(net(sat.encode(a)[None])[0], target)
        assert hit == (a == (True, True))


def test_solvers_agree_with_brute_force():
    for seed in range(5):
        cnf = sat.random_3cnf(8, 30, 12, seed=seed)
        a, _ = sat.solve_pysat(cnf)
        b, _, tried = sat.brute_force(cnf)
        assert (a is None) == (b is None)
        if a is not None:
            assert sat.unsatisfied(cnf, a) == 0 and sat.unsatisfied(cnf, b) == 0
            assert tried <= 2 ** 8
        else:
            assert tried == 2 ** 8


def test_gradient_inversion_report():
    cnf = sat.random_3cnf(6, 3, 3, seed=0, planted=True)
    r = sat.gradient_inversion(cnf, restarts=8, steps=50, seed=1)
    assert len(r["residuals"]) == len(r["counts"]) == 8
    assert r["unsatisfied"] == min(r["counts"]) and r["satisfied"] == (r["unsatisfied"] == 0)
    assert r["runs_satisfying"] == sum(c == 0 for c in r["counts"])
    for res, cnt in zip(r["residuals"], r["counts"]):
        assert cnt <= 4 * res + 1e-4


@pytest.mark.parametrize("clauses,n,match", [
    ([[0, 1]], 2, "contains 0"), ([[1, 3]], 2, "beyond n_vars"), ([[]], 2, "empty"),
    ([[1, 2, 3, 4]], 4, "at most 3"), ([], 2, "at least one clause")])
def test_cnf_bad_input(clauses, n, match):
    with pytest.raises(ValueError, match=match):
        sat.CNF(n, clauses)


def test_bad_sizes_and_bounds():
    with pytest.raises(ValueError, match="more than the bound"):
        sat.CNF(3, [[1, 2], [1, 3], [-1, 2]], max_occurrence=2)
    with pytest.raises(ValueError, match="positive integer"):
        sat.CNF(0, [[1]])
    with pytest.raises(ValueError, match="positive integer"):
        sat.random_3cnf(5, 0, 3)
    with pytest.raises(ValueError, match="variable slots"):
        sat.random_3cnf(6, 10, 2)
    with pytest.raises(ValueError, match="n_vars >= 3"):
        sat.random_3cnf(2, 1, 3)
    with pytest.raises(ValueError, match="n_vars"):
        sat.unsatisfied(sat.CNF(3, [[1]]), [True])
    with pytest.raises(ValueError, match="booleans"):
        sat.encode([1, -1])
    with pytest.raises(ValueError, match="shape"):
        sat.round_to_assignment(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="copies"):
        sat.reduction([[1]], copies=0)
    with pytest.raises(ValueError, match="too slow"):
        sat.brute_force(sat.CNF(30, [[1]]))


def test_count_solutions_matches_enumeration():
    for seed in range(4):
        cnf = sat.random_3cnf(7, 14, 6, seed=seed)
        want = sum(sat.unsatisfied(cnf, a) == 0 for a in _all_assignments(7))
        assert sat.count_solutions(cnf, chunk=5) == want
    assert sat.count_solutions(sat.CNF(3, UNSAT_3)) == 0
    assert sat.count_solutions(sat.CNF(4, [[1, -1]])) == 16
