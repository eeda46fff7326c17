"""Chapter 09 checkers accept a right answer and reject plausible wrong ones."""
import math

import numpy as np
import torch

from mixcon_lite import exercises


def hutchinson(hvp, d, probes, generator):
    total = 0.0
    for _ in range(probes):
        v = torch.randint(0, 2, (d,), generator=generator).double() * 2 - 1
        total += float(v @ hvp(v))
    return total / probes


def test_hutchinson_right_and_wrong():
    assert exercises.check_hutchinson(hutchinson)

    def gaussian(hvp, d, probes, generator):
        vs = torch.randn(probes, d, generator=generator, dtype=torch.float64)
        return float(sum(v @ hvp(v) for v in vs) / probes)

    def per_dim(hvp, d, probes, generator):
        return hutchinson(hvp, d, probes, generator) / d

    def exact(hvp, d, probes, generator):
        return float(sum(hvp(torch.eye(d, dtype=torch.float64)[i])[i] for i in range(d)))

    def reused(hvp, d, probes, generator):           # one probe drawn, counted `probes` times
        v = torch.randint(0, 2, (d,), generator=generator).double() * 2 - 1
        return float(sum(v @ hvp(v) for _ in range(probes)) / probes)

    def first_four(hvp, d, probes, generator):       # ignores all but four probes
        return hutchinson(hvp, d, min(probes, 4), generator)

    def half(hvp, d, probes, generator):             # half the probes: still shrinks like 1/sqrt(K)
        return hutchinson(hvp, d, max(1, probes // 2), generator)

    def twice(hvp, d, probes, generator):            # each drawn probe used twice
        total = 0.0
        for i in range(probes):
            if i % 2 == 0:
                v = torch.randint(0, 2, (d,), generator=generator).double() * 2 - 1
            total += float(v @ hvp(v))
        return total / probes

    def antithetic(hvp, d, probes, generator):       # pairs v, -v: the same v^T H v twice
        total = 0.0
        for i in range(probes):
            if i % 2 == 0:
                v = torch.randint(0, 2, (d,), generator=generator).double() * 2 - 1
            else:
                v = -v
            total += float(v @ hvp(v))
        return total / probes

    def global_rng(hvp, d, probes, generator):       # ignores the generator it is given
        total = 0.0
        for _ in range(probes):
            v = torch.randint(0, 2, (d,)).double() * 2 - 1
            total += float(v @ hvp(v))
        return total / probes

    for wrong, word in ((gaussian, "Rademacher"), (per_dim, "36"), (exact, "random probes"),
                        (reused, "1/sqrt"), (first_four, "1/sqrt"), (half, "every probe"),
                        (twice, "fresh vector"), (antithetic, "pairs v and -v"),
                        (global_rng, "generator"),
                        (lambda *a: 1 / 0, "ZeroDivisionError"), (lambda *a: [1, 2], "one number")):
        verdict = exercises.check_hutchinson(wrong)
        assert not verdict and word in verdict.message, verdict.message


def test_auc_right_and_wrong():
    def auc(m, n):
        diff = m[:, None] - n[None, :]
        return float(((diff > 0) + 0.5 * (diff == 0)).mean())
    assert exercises.check_auc(auc)
    no_ties = lambda m, n: float((m[:, None] > n[None, :]).mean())  # noqa: E731
    reversed_ = lambda m, n: 1 - auc(m, n)  # noqa: E731
    v = exercises.check_auc(no_ties)
    assert not v and "ties" in v.message
    v = exercises.check_auc(reversed_)
    assert not v and "orientation" in v.message


def test_dp_auc_bound_right_and_wrong():
    assert exercises.check_dp_auc_bound(lambda e: math.exp(e) / (1 + math.exp(e)))
    assert not exercises.check_dp_auc_bound(lambda e: min(1.0, 0.5 + e / 2))
    assert not exercises.check_dp_auc_bound(lambda e: 1 - math.exp(-e) / 2)   # right at 0, wrong after
    assert not exercises.check_dp_auc_bound(lambda e: np.tanh(e))
