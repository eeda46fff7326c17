"""Chapter 02 checkers: right answers pass, plausible wrong answers are rejected."""
import math

import pytest
import torch

from mixcon_lite import exercises, sat


def right_gadget(clause, n):
    w = torch.zeros(n)
    for lit in clause:
        w[abs(lit) - 1] += -1.0 if lit > 0 else 1.0
    return w, -(len(clause) - 1)


def test_check_clause_gadget_accepts_the_gadget_and_its_gentler_variant():
    assert exercises.check_clause_gadget(right_gadget)
    # weights -1/2 with bias 1 - k/2 are also exact on +-1 inputs and only gentler: accepted
    half = exercises.check_clause_gadget(
        lambda c, n: (0.5 * right_gadget(c, n)[0], 1 - len(c) / 2))
    assert half, half.message


def test_check_clause_gadget_rejects_wrong_gadgets():
    wrong_bias = exercises.check_clause_gadget(lambda c, n: (right_gadget(c, n)[0], -2.0))
    assert not wrong_bias and "expected" in wrong_bias.message      # only right for 3 literals
    assert not exercises.check_clause_gadget(lambda c, n: (torch.zeros(n + 1), 0.0))
    # scaled up: exact on +-1 inputs (2k + 1 - 2k = 1; one true literal gives -3), breaks C and Lip
    scaled = exercises.check_clause_gadget(
        lambda c, n: (2 * right_gadget(c, n)[0], 1 - 2 * len(c)))
    assert not scaled and "magnitude" in scaled.message
    # the sign convention flipped: fires on satisfied assignments
    assert not exercises.check_clause_gadget(lambda c, n: (-right_gadget(c, n)[0], -(len(c) - 1)))
    assert not exercises.check_clause_gadget(lambda c, n: 1 / 0)
    assert not exercises.check_clause_gadget(lambda c, n: "w")


STAR = sat.CNF(9, [[1, 2, 3], [1, 4, 5], [1, 6, 7], [1, 8, 9]])          # B = 4, via variable 1


def star_point(b=4, copies=1):
    x = -torch.ones(9, dtype=torch.float64)
    x[0] = -copies / (b + copies)                 # |x_1| = K / (B + K): ratio exactly 1 + B/K
    return x


def test_check_soundness_counterexample_recomputes_the_ratio():
    good = exercises.check_soundness_counterexample(STAR, star_point(), copies=1)
    assert good, good.message
    assert exercises.check_soundness_counterexample(STAR, star_point(copies=2), copies=2)
    # plausible wrong answers: the old "ratio > 1" point (shrink one clause's three variables to
    # 2/3: ratio 3 < B + 1 = 5), an unshrunk assignment (ratio 1), a non-violating point
    third = -torch.ones(9)
    third[[0, 1, 2]] = -2 / 3
    weak = exercises.check_soundness_counterexample(STAR, third, copies=1)
    assert not weak and "below" in weak.message
    assert not exercises.check_soundness_counterexample(STAR, -torch.ones(9), copies=1)
    assert not exercises.check_soundness_counterexample(STAR, torch.ones(9), copies=1)
    # the right point for K = 1 is not enough with K = 4 copies (ratio 1 + B/K needs |x_1| = 1/2)
    assert not exercises.check_soundness_counterexample(STAR, star_point(), copies=4)
    assert not exercises.check_soundness_counterexample(STAR, torch.zeros(2))
    assert not exercises.check_soundness_counterexample(STAR, star_point(), copies=0)


def test_check_restarts_needed_recounts_p():
    f20 = sat.random_3cnf(20, 40, 6, seed=0, planted=True)
    p = sat.count_solutions(f20) / 2 ** 20
    r = math.ceil(math.log(0.1) / math.log(1 - p))
    assert exercises.check_restarts_needed(p, r)
    assert exercises.check_restarts_needed(p, r, cnf=f20)
    wrong_p = exercises.check_restarts_needed(0.5, 4)                 # right R for p = 1/2 only
    assert not wrong_p and "fraction of satisfying" in wrong_p.message
    assert not exercises.check_restarts_needed(p, round(1 / p))       # the mean, not 90 %
    assert not exercises.check_restarts_needed(p, math.ceil(0.9 / p)) # linearised
    assert not exercises.check_restarts_needed(p, r - 1)
    assert not exercises.check_restarts_needed(p * 2, r)
    assert not exercises.check_restarts_needed("p", r)
    assert not exercises.check_restarts_needed(p, 2.5)
    small = sat.CNF(2, [[1, 2]])                                      # p = 3/4: R = 2
    assert exercises.check_restarts_needed(0.75, 2, cnf=small)
    assert not exercises.check_restarts_needed(0.75, 1, cnf=small)


@pytest.mark.parametrize("bad", [None, 3.0])
def test_checkers_never_raise_on_junk(bad):
    assert not exercises.check_soundness_counterexample(STAR, bad)
    assert not exercises.check_clause_gadget(bad)
