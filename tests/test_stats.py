import numpy as np
import pytest
from scipy import stats as st

from mixcon_lite import stats


def test_paired_matches_scipy_bootstrap_directly():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 12)
    b = a - 0.05 + rng.normal(0, 0.02, 12)
    c = stats.paired(a, b, seed=3)
    ref = st.bootstrap((a - b,), np.mean, n_resamples=9999, method="BCa",
                       rng=np.random.default_rng(3))
    assert c.low == pytest.approx(ref.confidence_interval.low)
    assert c.high == pytest.approx(ref.confidence_interval.high)
    assert c.difference == pytest.approx(np.mean(a - b))
    assert c.n == 12 and c.paired and c.a_better and not c.b_better
    assert c.verdict == "A better than B"


def test_independent_matches_scipy_two_sample_bootstrap():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.2, 9), rng.normal(0.4, 0.2, 7)

    def diff(x, y, axis=-1):
        return x.mean(axis=axis) - y.mean(axis=axis)

    ref = st.bootstrap((a, b), diff, n_resamples=9999, method="BCa", vectorized=True,
                       rng=np.random.default_rng(0))
    c = stats.independent(a, b, names=("wide", "narrow"))
    assert c.low == pytest.approx(ref.confidence_interval.low)
    assert c.high == pytest.approx(ref.confidence_interval.high)
    assert (c.n_a, c.n_b, c.n) == (9, 7, 16) and not c.paired
    assert c.verdict == "wide better than narrow"


@pytest.mark.parametrize("draw", range(5))
def test_same_distribution_is_within_noise(draw):
    # two samples from one distribution: no winner (the 95 % interval covers 0 here)
    rng = np.random.default_rng(100 + draw)
    a, b = rng.normal(0.3, 0.1, 20), rng.normal(0.3, 0.1, 20)
    ci = st.ttest_ind(a, b).confidence_interval()
    if ci.low > 0 or ci.high < 0:          # a 1-in-20 draw that even the t-test calls a winner
        pytest.skip("this draw is one of the 5 % a 95 % interval misses")
    c = stats.independent(a, b)
    assert c.verdict == stats.WITHIN_NOISE and not c.a_better and not c.b_better
    with pytest.raises(AssertionError, match="not shown beyond the noise"):
        stats.assert_better(c, "A beats B")


def test_same_distribution_paired_within_noise_rate():
    # over many draws from one distribution, the verdict names a winner about 5 % of the time
    rng = np.random.default_rng(7)
    winners = sum(stats.paired(rng.normal(0, 1, 15), rng.normal(0, 1, 15),
                               n_resamples=999).verdict != stats.WITHIN_NOISE
                  for _ in range(200))
    assert winners <= 25        # 5 % of 200 is 10; BCa at n = 15 runs a little liberal


def test_lower_is_better_and_assert_better():
    mse_ours = [0.010, 0.012, 0.011, 0.009, 0.013]
    mse_theirs = [0.050, 0.061, 0.048, 0.055, 0.052]
    c = stats.paired(mse_ours, mse_theirs, names=("ours", "theirs"), higher_is_better=False)
    assert c.a_better and c.verdict == "ours better than theirs"
    assert stats.assert_better(c) is None
    assert repr(c).startswith("<Comparison ours − theirs")
    flipped = stats.paired(mse_theirs, mse_ours, names=("theirs", "ours"), higher_is_better=False)
    assert flipped.b_better
    with pytest.raises(AssertionError, match="theirs − ours"):
        stats.assert_better(flipped, "theirs")
    assert "ours better than theirs" in stats.claim(c) and "n = 5 paired" in str(c)


def test_no_spread_gives_a_point_interval():
    c = stats.paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert c.low == c.high == pytest.approx(0.5) and c.a_better
    c0 = stats.paired([1.0, 2.0], [1.0, 2.0])
    assert c0.low == c0.high == 0 and c0.verdict == stats.WITHIN_NOISE


def test_mean_and_proportion_intervals():
    m, lo, hi = stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0 and lo < 3.0 < hi
    ref = st.binomtest(7, 10).proportion_ci(method="wilson")
    p, lo, hi = stats.proportion_interval(7, 10)
    assert p == 0.7 and lo == pytest.approx(ref.low) and hi == pytest.approx(ref.high)
    assert stats.proportion_interval(0, 8)[1] == 0.0


@pytest.mark.parametrize("a, b, match", [
    ([1.0], [2.0], "at least two draws"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "one score of each side"),
    ([1.0, float("nan")], [1.0, 2.0], "NaN"),
    ([[1.0, 2.0]], [1.0, 2.0], "1-D"),
    ("ab", [1.0, 2.0], "sequence of numbers"),
])
def test_paired_rejects_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.paired(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        stats.independent([1, 2], [3, 4], confidence=95)
    with pytest.raises(ValueError, match="two labels"):
        stats.paired([1, 2], [3, 4], names=("only",))
    with pytest.raises(ValueError, match="successes"):
        stats.proportion_interval(11, 10)
    with pytest.raises(ValueError, match="non-negative integer"):
        stats.proportion_interval(1.5, 10)
    with pytest.raises(ValueError, match="Comparison"):
        stats.assert_better(0.3)


def test_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    m = np.round(rng.normal(0.4, 1, 60), 1)       # rounded: many ties
    n = np.round(rng.normal(0.0, 1, 80), 1)
    want = roc_auc_score(np.r_[np.ones(60), np.zeros(80)], np.r_[m, n])
    assert stats.auc(m, n) == pytest.approx(want)
    a, lo, hi = stats.auc_interval(m, n)
    assert a == pytest.approx(want) and lo < a < hi


def test_auc_difference_is_paired_and_within_noise_for_one_attack():
    rng = np.random.default_rng(3)
    m, n = rng.normal(0.5, 1, 300), rng.normal(0, 1, 300)
    same = stats.auc_difference(m, n, m + 1e-9, n + 1e-9)      # the same ranking
    assert same.difference == 0 and same.low == same.high == 0
    assert same.verdict == stats.WITHIN_NOISE
    noisy = stats.auc_difference(m, n, m + rng.normal(0, 3, 300), n + rng.normal(0, 3, 300),
                                 names=("clean", "noisy"))
    assert noisy.a_better and noisy.verdict == "clean better than noisy"
    with pytest.raises(ValueError, match="same samples"):
        stats.auc_difference(m, n, m[:-1], n)


def test_auc_standard_error_matches_the_bootstrap_roughly():
    rng = np.random.default_rng(4)
    m, n = rng.normal(0.4, 1, 400), rng.normal(0, 1, 400)
    a, lo, hi = stats.auc_interval(m, n)
    se = stats.auc_standard_error(a, 400, 400)
    assert 0.7 < (hi - lo) / (2 * 1.96 * se) < 1.3
    with pytest.raises(ValueError, match="AUC"):
        stats.auc_standard_error(1.5, 10, 10)
    with pytest.raises(ValueError, match="n_members"):
        stats.auc_standard_error(0.6, 0, 10)


def test_verb_words_the_verdict():
    c = stats.independent([1.2, 1.3, 1.25], [1.0, 1.05, 1.02], names=("MixCon", "vanilla"),
                          verb="harder to invert than")
    assert c.verdict == "MixCon harder to invert than vanilla"


def test_tpr_interval_matches_the_roc_and_brackets_it():
    from mixcon_lite import membership as mb
    rng = np.random.default_rng(0)
    m, n = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 400)
    for fpr in (0.01, 0.05, 0.2):
        t, lo, hi = stats.tpr_interval(m, n, fpr, n_resamples=500)
        assert t == pytest.approx(mb.tpr_at_fpr(m, n, fpr)), fpr
        assert lo <= t <= hi and hi - lo > 0
    # a perfect separation: every member flagged with no false positive
    assert stats.tpr_interval(m + 100, n, 0.001, n_resamples=200)[:1] == (1.0,)
    # ties at the threshold are not flagged (a saturated score cannot claim members)
    assert stats.tpr_interval(np.zeros(50), np.zeros(50), 0.01, n_resamples=200)[0] == 0.0
    with pytest.raises(ValueError, match="fpr"):
        stats.tpr_interval(m, n, 1.5)
