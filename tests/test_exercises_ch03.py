"""Chapter 03 checkers: right answers pass, plausible wrong answers are rejected."""

from mixcon_lite import exercises


def test_chapter03_checkers():
    from mixcon_lite import mixcon

    assert exercises.check_consistency_loss(mixcon.consistency_loss)
    mean = exercises.check_consistency_loss(lambda h, y, l, b, e: mixcon.consistency_loss(h, y, l, b, e, "mean"))
    assert not mean and "mean over pairs" in mean.message
    assert exercises.check_optimal_distance(0.1, 0.01, 0.05, 0.1 ** 0.5 - 0.05)
    assert not exercises.check_optimal_distance(0.1, 0.01, 0.05, 0.1 ** 0.5)
    assert exercises.check_collapse(0.9, 0.0)
    assert not exercises.check_collapse(0.9, 0.5)
    assert not exercises.check_collapse(0.0, 0.0)
