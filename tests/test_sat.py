import itertools

import numpy as np
import pytest
import torch

from mixcon_lite import sat



@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one torch thread is faster, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def _ratios(cnf, copies, x):
    """#violated after rounding / ||f(x) - y||^2 for each row of x (float64)."""
    net, target = sat.reduction(cnf, copies=copies)
    net, target = net.double(), target.double()
    x = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        err = (net(x) - target).pow(2).sum(1)
    uns = torch.tensor([sat.unsatisfied(cnf, a) for a in sat.round_to_assignment(x)],
                       dtype=torch.float64)
    return uns, err


@pytest.mark.parametrize("seed", range(2))
def test_soundness_bound_on_random_and_adversarial_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    cnf = sat.random_3cnf(10, 30, 9, seed=seed)
    for copies in (None, 1, 5, 60):
        c = sat.soundness_constant(cnf, copies)
        x = torch.randn(1000, 10, generator=g) * torch.rand(1000, 1, generator=g) * 2
        x = torch.cat([x.double(), sat.adversarial_inputs(cnf, copies, starts=128, steps=150,
                                                          seed=seed)])
        uns, err = _ratios(cnf, copies, x)
        assert torch.all(uns <= c * err + 1e-9)
        # the adversarial inputs refute C = 1 at every K (the extremal test below shows C is sharp)
        assert (uns / err.clamp_min(1e-12)).max() > 1.0
        assert c <= sat.soundness_constant(cnf, copies, form="paper")
    b = cnf.max_occurrence
    assert sat.soundness_constant(cnf) == 2.0 == sat.soundness_constant(cnf, form="paper")
    assert sat.soundness_constant(cnf, copies=1) == 1 + 3 * b
    assert sat.soundness_constant(cnf, copies=1, form="paper") == 6 * b


@pytest.mark.parametrize("b,copies", [(1, 1), (2, 5), (3, None), (4, 1), (6, 18), (6, 2), (8, 3)])
def test_soundness_constant_is_attained(b, copies):
    """The extremal formula and input reach #violated / error = 1 + 3B/K: no smaller C is valid."""
    cnf, x = sat.soundness_extremal(12, b, copies)
    assert cnf.max_occurrence == b and (cnf.occurrences() == b).all()
    assert all(len(c) == 3 and len(set(c)) == 3 for c in cnf.clauses)
    uns, err = _ratios(cnf, copies, x[None])
    c = sat.soundness_constant(cnf, copies)
    assert uns.item() == cnf.n_clauses                      # every clause violated
    assert abs(uns.item() / err.item() - c) < 1e-9 * c
    # a constant 1 % smaller would be violated by this input
    assert uns.item() > 0.99 * c * err.item()


def test_soundness_bad_input():
    with pytest.raises(ValueError, match="form"):
        sat.soundness_constant([[1, 2, 3]], form="tight-ish")
    with pytest.raises(ValueError, match="copies"):
        sat.soundness_constant([[1, 2, 3]], copies=0)
    with pytest.raises(ValueError, match="multiple of 3"):
        sat.soundness_extremal(10, 3)
    with pytest.raises(ValueError, match="multiple of 3"):
        sat.soundness_extremal(3, 6)


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
    c = sat.soundness_constant(cnf)
    for res, cnt in zip(r["residuals"], r["counts"]):
        assert cnt <= c * res + 1e-4
    assert len(r["sign_flips"]) == 8 and all(0 <= f <= 6 for f in r["sign_flips"])


def test_gradient_inversion_keeps_signs_and_counts_flips():
    """Zero is repelling for each |x_i| (its K copies pull it back to 1); a huge step size can
    still jump across, and the flip count must then see it."""
    cnf = sat.random_3cnf(10, 20, 6, seed=2, planted=True)
    assert sum(sat.gradient_inversion(cnf, restarts=16, steps=100, seed=0)["sign_flips"]) == 0
    wild = sat.gradient_inversion(cnf, restarts=16, steps=20, lr=5.0, seed=0)
    assert sum(wild["sign_flips"]) > 0
    with pytest.raises(ValueError, match="lr"):
        sat.gradient_inversion(cnf, lr=0)


def _fake_solver_successes(p_runs, factor, seed):
    rng = np.random.default_rng(seed)
    return int((rng.random(len(p_runs)) < np.minimum(1.0, factor * np.asarray(p_runs))).sum())


def test_compare_with_guessing_catches_a_solver_twice_as_good():
    # per-run success chances like the chapter's: 10 formulas per n, 32 runs each, p from 0.2 down
    rng = np.random.default_rng(0)
    p_runs = np.repeat(rng.uniform(0.002, 0.25, size=80), 32)
    for seed in range(20):
        guessing = _fake_solver_successes(p_runs, 1.0, seed)
        assert sat.consistent_with_guessing(guessing, p_runs)
        assert not sat.consistent_with_guessing(_fake_solver_successes(p_runs, 2.0, seed), p_runs)
        assert not sat.consistent_with_guessing(_fake_solver_successes(p_runs, 0.5, seed), p_runs)
    report = sat.compare_with_guessing(int(p_runs.sum()), p_runs)
    assert abs(report["z"]) < 0.1 and report["power_2x"] > 8


def test_compare_with_guessing_bad_input():
    with pytest.raises(ValueError, match="probabilities"):
        sat.compare_with_guessing(1, [0.5, 1.5])
    with pytest.raises(ValueError, match="probabilities"):
        sat.compare_with_guessing(0, [])
    with pytest.raises(ValueError, match="successes"):
        sat.compare_with_guessing(3, [0.5, 0.5])
    with pytest.raises(ValueError, match="deterministic"):
        sat.compare_with_guessing(1, [1.0, 0.0])
    with pytest.raises(ValueError, match="z_max"):
        sat.consistent_with_guessing(1, [0.5], z_max=0)


@pytest.mark.parametrize("h,n", [(300, 100), (40, 100), (20, 5)])
def test_invert_relu_layer_recovers_a_preimage(h, n):
    g = torch.Generator().manual_seed(h + n)
    w = torch.randn(h, n, generator=g, dtype=torch.float64)
    b = torch.randn(h, generator=g, dtype=torch.float64)
    x0 = torch.randn(n, generator=g, dtype=torch.float64)
    u = torch.relu(w @ x0 + b)
    x, slack = sat.invert_relu_layer(w, b, u)
    assert slack < 1e-8 and torch.allclose(torch.relu(w @ x + b), u, atol=1e-7)
    if h >= 3 * n:                       # enough active units: the preimage is unique
        assert torch.allclose(x, x0, atol=1e-6)


def test_invert_relu_layer_reduction_and_unreachable_targets():
    cnf = sat.random_3cnf(8, 14, 6, seed=3, planted=True)
    net, _ = sat.reduction(cnf)
    a, _ = sat.solve_pysat(cnf)
    x_star = sat.encode(a).double()
    u = torch.relu(net[0].weight.double() @ x_star + net[0].bias.double())
    x, slack = sat.invert_relu_layer(net[0].weight, net[0].bias, u)
    assert slack < 1e-9 and torch.allclose(x, x_star, atol=1e-9)
    # ReLU(x) = 1 and ReLU(x) = 2 at once: no preimage, the slack says how far
    _, slack = sat.invert_relu_layer(torch.ones(2, 1), torch.zeros(2), torch.tensor([1.0, 2.0]))
    assert abs(slack - 1.0) < 1e-9
    with pytest.raises(ValueError, match="shapes"):
        sat.invert_relu_layer(torch.ones(2, 1), torch.zeros(3), torch.ones(2))
    with pytest.raises(ValueError, match="negative"):
        sat.invert_relu_layer(torch.ones(2, 1), torch.zeros(2), torch.tensor([1.0, -2.0]))


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
