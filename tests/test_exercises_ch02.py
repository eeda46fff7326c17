"""Chapter 02 checkers: right answers pass, plausible wrong answers are rejected."""
import torch

from mixcon_lite import exercises


def test_check_clause_gadget():
    def right(clause, n):
        w = torch.zeros(n)
        for lit in clause:
            w[abs(lit) - 1] += -1.0 if lit > 0 else 1.0
        return w, -(len(clause) - 1)

    assert exercises.check_clause_gadget(right)
    wrong_bias = exercises.check_clause_gadget(lambda c, n: (right(c, n)[0], -2.0))   # only right for 3 literals
    assert not wrong_bias and "expected" in wrong_bias.message
    assert not exercises.check_clause_gadget(lambda c, n: (torch.zeros(n + 1), 0.0))


def test_check_soundness_counterexample_and_restarts():
    from mixcon_lite import sat

    cnf = sat.CNF(3, [[1, 2, 3], [-1, 2, 3]])
    x = torch.tensor([-2 / 3, -2 / 3, -2 / 3])            # violates clause 0 after rounding, its unit is off
    assert exercises.check_soundness_counterexample(cnf, x, copies=1)
    assert not exercises.check_soundness_counterexample(cnf, torch.tensor([-1.0, -1.0, -1.0]), copies=1)
    assert not exercises.check_soundness_counterexample(cnf, torch.zeros(2))
    assert exercises.check_restarts_needed(0.5, 4)          # 1 - 0.5^4 = 0.94 >= 0.9 > 1 - 0.5^3
    assert not exercises.check_restarts_needed(0.5, 3)
    assert not exercises.check_restarts_needed(1.5, 3)
