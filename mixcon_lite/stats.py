"""Comparisons stated with their uncertainty, on top of :mod:`scipy.stats`.

Every comparison a chapter draws ("A recovers more than B", "b = 16 is harder", "the loss attack
beats label-only") is a difference of two scores measured on a finite sample: a few images, seeds
or batches. This module turns the two samples into a :class:`Comparison`: the difference of the
means, a bootstrap confidence interval for it (:func:`scipy.stats.bootstrap`, BCa by default), the
sample sizes, and a verdict that names a winner only when the interval excludes zero:

* :func:`paired`: two scores over the *same* items (the same images attacked two ways, the same
  seeds run with and without a defence); the interval resamples items, so what the items share
  cancels.
* :func:`independent`: two groups of independent runs (seeds, batches, models), resampled
  separately.
* :func:`assert_better`: the notebook form of a claim: raises ``AssertionError`` with the interval
  unless A is better than B beyond the noise; :func:`claim` returns the verdict as text instead.
* :func:`mean_interval` and :func:`proportion_interval` give one sample's mean or success rate with
  its interval (a success count uses the Wilson interval of :func:`scipy.stats.binomtest`).
* :func:`auc_interval` and :func:`auc_difference` do the same for a membership attack's ROC AUC:
  members and non-members are resampled separately (stratified bootstrap), and two attacks on the
  same samples are resampled together, so the difference of their AUCs is paired.

One draw has no interval: the functions refuse samples of size one, and a chapter that can afford
only one draw says so and draws no ordering from it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["Comparison", "paired", "independent", "assert_better", "claim", "mean_interval",
           "proportion_interval", "auc", "auc_interval", "auc_difference", "auc_standard_error"]

WITHIN_NOISE = "within noise"


def _sample(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got {type(x).__name__}.") from err
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per item or run), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values; drop or fix those items first.")
    if len(arr) < 2:
        raise ValueError(
            f"{name} has {len(arr)} value(s): an interval needs at least two draws. With one draw, "
            f"state the number as one draw and draw no ordering from it."
        )
    return arr


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}.")
    return float(confidence)


def _interval(data: tuple, statistic, paired_: bool, confidence: float, n_resamples: int,
              seed: int) -> tuple[float, float]:
    """Bootstrap interval of ``statistic``; BCa, or the percentile interval where BCa degenerates."""
    if all(np.ptp(d) == 0 for d in data):
        value = float(statistic(*data, axis=-1))   # no spread at all: every resample is the same
        return value, value
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # BCa's degenerate-sample warning: handled below
            try:
                res = _bootstrap(data, statistic, seed, n_resamples=n_resamples, paired=paired_,
                                 vectorized=True, confidence_level=confidence, method=method)
            except ValueError:                     # an older scipy without multi-sample BCa
                if method == "percentile":
                    raise
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high
    raise RuntimeError("the bootstrap interval could not be computed")  # pragma: no cover


def _bootstrap(data, statistic, seed: int, **kw):
    """scipy.stats.bootstrap with a seeded generator (``rng`` from scipy 1.15, before that
    ``random_state``)."""
    try:
        return _st.bootstrap(data, statistic, rng=np.random.default_rng(seed), **kw)
    except TypeError:                                   # scipy < 1.15
        return _st.bootstrap(data, statistic, random_state=np.random.default_rng(seed), **kw)


def _mean_diff(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _mean(a, axis=-1):
    return np.mean(a, axis=axis)


@dataclass(frozen=True, repr=False)
class Comparison:
    """A − B: the difference of mean scores, its confidence interval, and what it lets one say.

    ``higher_is_better`` says which direction is "better" for the score (SSIM: higher is better
    for the attacker; MSE: lower). :attr:`verdict` names the better side only when the interval
    excludes zero, else it is ``"within noise"``.
    """

    name_a: str
    name_b: str
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    n_a: int
    n_b: int
    paired: bool
    confidence: float
    higher_is_better: bool = True
    verb: str = "better than"

    @property
    def a_better(self) -> bool:
        """True when the whole interval lies on A's side of zero."""
        return self.low > 0 if self.higher_is_better else self.high < 0

    @property
    def b_better(self) -> bool:
        """True when the whole interval lies on B's side of zero."""
        return self.high < 0 if self.higher_is_better else self.low > 0

    @property
    def verdict(self) -> str:
        if self.a_better:
            return f"{self.name_a} {self.verb} {self.name_b}"
        if self.b_better:
            return f"{self.name_b} {self.verb} {self.name_a}"
        return WITHIN_NOISE

    @property
    def n(self) -> int:
        return self.n_a if self.paired else self.n_a + self.n_b

    def describe(self, fmt: str = ".3f") -> str:
        sizes = f"n = {self.n_a} paired" if self.paired else f"n = {self.n_a} vs {self.n_b}"
        pct = f"{100 * self.confidence:g} %"
        return (f"{self.name_a} − {self.name_b} = {self.difference:+{fmt}} "
                f"[{self.low:+{fmt}}, {self.high:+{fmt}}] ({pct} bootstrap CI, {sizes}): "
                f"{self.verdict}")

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"<Comparison {self.describe()}>"


def _compare(a, b, *, paired_: bool, names, higher_is_better: bool, confidence: float,
             n_resamples: int, seed: int, verb: str = "better than") -> Comparison:
    confidence = _check_confidence(confidence)
    if len(names) != 2:
        raise ValueError(f"names must be two labels (A, B), got {names!r}.")
    a, b = _sample(a, f"scores of {names[0]!r}"), _sample(b, f"scores of {names[1]!r}")
    if paired_:
        if len(a) != len(b):
            raise ValueError(
                f"a paired comparison needs one score of each side per item: {names[0]!r} has "
                f"{len(a)}, {names[1]!r} has {len(b)}. Use stats.independent for unpaired runs."
            )
        low, high = _interval((a - b,), _mean, False, confidence, n_resamples, seed)
    else:
        low, high = _interval((a, b), _mean_diff, False, confidence, n_resamples, seed)
    return Comparison(str(names[0]), str(names[1]), float(a.mean()), float(b.mean()),
                      float(a.mean() - b.mean()), low, high, len(a), len(b), paired_, confidence,
                      bool(higher_is_better), str(verb))


def paired(a, b, *, names=("A", "B"), higher_is_better: bool = True, confidence: float = 0.95,
           n_resamples: int = 9999, seed: int = 0, verb: str = "better than") -> Comparison:
    """Compare two scores measured on the same items (``a[i]`` and ``b[i]`` on item ``i``).

    The interval is the bootstrap (BCa) interval of the mean of ``a - b``, resampling items.
    ``seed`` seeds the resampling only (the interval is then reproducible). ``verb`` words the
    verdict ("A harder to invert than B" reads better than "better" for a defence's score).
    """
    return _compare(a, b, paired_=True, names=names, higher_is_better=higher_is_better,
                    confidence=confidence, n_resamples=n_resamples, seed=seed, verb=verb)


def independent(a, b, *, names=("A", "B"), higher_is_better: bool = True,
                confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0,
                verb: str = "better than") -> Comparison:
    """Compare two groups of independent runs (seeds, batches, models) of possibly unequal size.

    The interval is the two-sample bootstrap interval of ``mean(a) - mean(b)``, each group
    resampled on its own.
    """
    return _compare(a, b, paired_=False, names=names, higher_is_better=higher_is_better,
                    confidence=confidence, n_resamples=n_resamples, seed=seed, verb=verb)


def claim(comparison: Comparison) -> str:
    """The sentence a summary may draw: the verdict with its interval."""
    if not isinstance(comparison, Comparison):
        raise ValueError(f"expected a stats.Comparison, got {type(comparison).__name__}.")
    return comparison.describe()


def assert_better(comparison: Comparison, message: str = "") -> None:
    """Assert that A is better than B beyond the noise (the interval excludes zero on A's side).

    The error states the interval, so a failing claim says by how much it failed. Returns
    nothing, so a notebook cell that ends with it shows no output.
    """
    if not isinstance(comparison, Comparison):
        raise ValueError(f"expected a stats.Comparison, got {type(comparison).__name__}.")
    if not comparison.a_better:
        prefix = f"{message}: " if message else ""
        raise AssertionError(f"{prefix}not shown beyond the noise: {comparison.describe()}")


def mean_interval(x, *, confidence: float = 0.95, n_resamples: int = 9999,
                  seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: one sample's mean with its bootstrap (BCa) confidence interval."""
    confidence = _check_confidence(confidence)
    arr = _sample(x, "x")
    low, high = _interval((arr,), _mean, False, confidence, n_resamples, seed)
    return float(arr.mean()), low, high


def proportion_interval(successes: int, trials: int, *,
                        confidence: float = 0.95) -> tuple[float, float, float]:
    """``(rate, low, high)``: a success rate with its Wilson score interval (scipy's binomtest)."""
    confidence = _check_confidence(confidence)
    for name, v in (("successes", successes), ("trials", trials)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}.")
    if trials < 1 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1; got {successes} of {trials}.")
    ci = _st.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence,
                                                                  method="wilson")
    return successes / trials, float(ci.low), float(ci.high)


def auc(members, nonmembers) -> float:
    """ROC AUC of scores where *higher means member*: P(member score > non-member score), ties
    counted one half (the Mann-Whitney statistic; equal to scikit-learn's ``roc_auc_score``)."""
    m, n = _sample(members, "members"), _sample(nonmembers, "nonmembers")
    return float(_auc_rows(m[None], n[None])[0])


def _auc_rows(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """AUC of each row pair (``m [k, n_m]``, ``n [k, n_n]``) from average ranks."""
    both = np.concatenate([m, n], axis=-1)
    ranks = _st.rankdata(both, axis=-1)
    n_m, n_n = m.shape[-1], n.shape[-1]
    return (ranks[..., :n_m].sum(-1) - n_m * (n_m + 1) / 2) / (n_m * n_n)


def _auc_bootstrap(groups_m: np.ndarray, groups_n: np.ndarray, combine, confidence: float,
                   n_resamples: int, seed: int) -> tuple[float, float]:
    """Stratified bootstrap of ``combine(AUC of each row)``: scipy resamples the *indices* of the
    members and of the non-members (two independent samples); every row (attack) is scored on the
    same resampled samples."""
    def statistic(im, inn, axis=-1):
        im, inn = im.astype(np.intp), inn.astype(np.intp)        # [..., n_m], [..., n_n]
        rows = [_auc_rows(gm[im], gn[inn]) for gm, gn in zip(groups_m, groups_n)]
        return combine(rows)

    idx = (np.arange(groups_m.shape[-1]), np.arange(groups_n.shape[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _bootstrap(idx, statistic, seed, n_resamples=n_resamples, vectorized=True,
                         confidence_level=confidence, method="percentile")
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def auc_interval(members, nonmembers, *, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(auc, low, high)``: a membership attack's AUC with its stratified bootstrap interval
    (members and non-members resampled separately; percentile interval)."""
    confidence = _check_confidence(confidence)
    m, n = _sample(members, "members"), _sample(nonmembers, "nonmembers")
    low, high = _auc_bootstrap(m[None], n[None], lambda rows: rows[0], confidence, n_resamples,
                               seed)
    return auc(m, n), low, high


def auc_difference(members_a, nonmembers_a, members_b, nonmembers_b, *, names=("A", "B"),
                   confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Comparison:
    """AUC of attack A minus AUC of attack B, both scored on the same members and non-members
    (``members_a[i]`` and ``members_b[i]`` belong to the same sample). The bootstrap resamples the
    samples once for both attacks, so the interval is that of a paired difference."""
    confidence = _check_confidence(confidence)
    if len(names) != 2:
        raise ValueError(f"names must be two labels (A, B), got {names!r}.")
    ma, na = _sample(members_a, "members_a"), _sample(nonmembers_a, "nonmembers_a")
    mb, nb = _sample(members_b, "members_b"), _sample(nonmembers_b, "nonmembers_b")
    if len(ma) != len(mb) or len(na) != len(nb):
        raise ValueError(
            f"both attacks must score the same samples: members {len(ma)} vs {len(mb)}, "
            f"non-members {len(na)} vs {len(nb)}."
        )
    gm, gn = np.stack([ma, mb]), np.stack([na, nb])
    low, high = _auc_bootstrap(gm, gn, lambda rows: rows[0] - rows[1], confidence, n_resamples,
                               seed)
    auc_a, auc_b = _auc_rows(gm, gn)
    return Comparison(str(names[0]), str(names[1]), float(auc_a), float(auc_b),
                      float(auc_a - auc_b), low, high, len(ma) + len(na), len(mb) + len(nb),
                      True, confidence, True)


def _tpr_rows(m: np.ndarray, n: np.ndarray, fpr: float) -> np.ndarray:
    """TPR at ``fpr`` of each row pair: the threshold is the smallest score that flags at most
    ``fpr`` of the non-members (strictly above the ``floor(fpr * n_n) + 1``-th highest one)."""
    n_n = n.shape[-1]
    j = int(math.floor(fpr * n_n + 1e-9))              # non-members allowed above the threshold
    top = -np.sort(-n, axis=-1)                          # descending
    thr = top[..., j] if j < n_n else np.full(n.shape[:-1], -np.inf)
    return (m > thr[..., None]).mean(-1)


def tpr_interval(members, nonmembers, fpr: float = 0.01, *, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(tpr, low, high)``: the share of members flagged while at most ``fpr`` of the non-members
    are (members score higher; a tie with the threshold is not flagged), with a stratified
    bootstrap interval (members and non-members resampled separately; percentile). With ``n``
    non-members, an ``fpr`` below ``1 / n`` allows no false positive at all: the estimate then
    rests on the single highest non-member score, and the interval says how little that is."""
    confidence = _check_confidence(confidence)
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must lie in [0, 1), got {fpr!r}.")
    m, n = _sample(members, "members"), _sample(nonmembers, "nonmembers")

    def statistic(im, inn, axis=-1):
        return _tpr_rows(m[im.astype(np.intp)], n[inn.astype(np.intp)], fpr)

    idx = (np.arange(len(m)), np.arange(len(n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _bootstrap(idx, statistic, seed, n_resamples=n_resamples, vectorized=True,
                         confidence_level=confidence, method="percentile")
    return (float(_tpr_rows(m[None], n[None], fpr)[0]), float(res.confidence_interval.low),
            float(res.confidence_interval.high))


def auc_standard_error(auc_value: float, n_members: int, n_nonmembers: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUC from its value and the group sizes,
    for a record that kept the AUC but not the scores (the bootstrap of :func:`auc_interval`
    needs the scores)."""
    a = float(auc_value)
    if not 0 <= a <= 1:
        raise ValueError(f"an AUC lies in [0, 1], got {auc_value!r}.")
    for name, v in (("n_members", n_members), ("n_nonmembers", n_nonmembers)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_members - 1) * (q1 - a * a) + (n_nonmembers - 1) * (q2 - a * a))
    return float(math.sqrt(max(var, 0.0) / (n_members * n_nonmembers)))
