"""Checkers for the chapters' exercises: ``check_<name>(answer)`` returns a :class:`CheckResult`.

A checker never raises because an answer is wrong: it returns a verdict whose message says what
was expected and what was found, so a student can act on it. In a notebook the verdict shows as
``PASS: ...`` or ``NOT YET: ...``; ``bool(result)`` is ``result.passed``, so instructor notebooks
``assert`` it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CheckResult:
    """Verdict of a checker: ``passed`` and a message saying why."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"{'PASS' if self.passed else 'NOT YET'}: {self.message}"

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#b35900"
        word = "&#10004; PASS" if self.passed else "&#10008; NOT YET"
        return f'<p style="color:{color}"><b>{word}</b>: {self.message}</p>'


def _call(fn, *args):
    """Call a student's function; return (value, None) or (None, failing CheckResult)."""
    if not callable(fn):
        return None, CheckResult(False, f"Expected a function, got {type(fn).__name__}.")
    try:
        return fn(*args), None
    except Exception as err:  # the student's code raised: report it, do not crash the checker
        return None, CheckResult(False, f"Your function raised {type(err).__name__}: {err}")


def _as_1d(value, n: int, what: str):
    if torch.is_tensor(value):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, CheckResult(False, f"{what} should return numbers, got {type(value).__name__}.")
    if arr.shape != (n,):
        return None, CheckResult(False, f"{what} should return one value per image: shape [{n}], got {arr.shape}.")
    return arr, None


# ----------------------------------------------------------------- chapter 00 --------------------
def check_total_variation(fn) -> CheckResult:
    """Chapter 00: ``fn(x)`` for ``x`` ``[N, C, H, W]`` must return the anisotropic TV per image,
    mean |vertical differences| + mean |horizontal differences| (shape ``[N]``)."""
    from .attacks.features import total_variation

    g = torch.Generator().manual_seed(123)
    cases = [torch.rand(3, 1, 8, 8, generator=g), torch.rand(2, 3, 5, 7, generator=g),
             torch.full((2, 1, 6, 6), 0.3)]
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # vertical stripes: horizontal differences all 1, vertical all 0
    cases.append(stripes)
    for x in cases:
        out, fail = _call(fn, x.clone())
        if fail is not None:
            return fail
        got, fail = _as_1d(out, x.shape[0], "total_variation")
        if fail is not None:
            return fail
        want = total_variation(x).double().numpy()
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            hint = ""
            if np.allclose(got, want * x[0].numel() / 2, rtol=1e-3):
                hint = " It looks like a sum; the course's TV averages each direction."
            return CheckResult(False, f"On a batch of shape {tuple(x.shape)} expected {np.round(want, 4)}, "
                                      f"got {np.round(got, 4)}.{hint}")
    return CheckResult(True, "total variation matches on random, constant and striped images "
                             "(a constant image has TV 0; 4x4 vertical stripes have TV 1).")


def check_psnr(fn) -> CheckResult:
    """Chapter 00: ``fn(x, y)`` for images in [0, 1] must return PSNR in dB per image pair, ``inf``
    for identical images."""
    from .metrics import psnr

    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 1, 10, 10, generator=g)
    y = (x + 0.1 * torch.randn(4, 1, 10, 10, generator=g)).clamp(0, 1)
    out, fail = _call(fn, x.clone(), y.clone())
    if fail is not None:
        return fail
    got, fail = _as_1d(out, 4, "psnr")
    if fail is not None:
        return fail
    want = psnr(x, y)
    if not np.allclose(got, want, rtol=1e-4):
        return CheckResult(False, f"Expected {np.round(want, 3)} dB, got {np.round(got, 3)}. "
                                  "PSNR = 10 log10(1 / MSE) for data range 1, with the MSE of each image.")
    out, fail = _call(fn, x[:1].clone(), x[:1].clone())
    if fail is not None:
        return fail
    same, fail = _as_1d(out, 1, "psnr")
    if fail is not None:
        return fail
    if not math.isinf(same[0]) or same[0] < 0:
        return CheckResult(False, f"Identical images should give PSNR = +inf, got {same[0]}.")
    return CheckResult(True, f"PSNR matches ({np.round(got, 2)} dB) and identical images give +inf.")


def check_deeper_cut(ssim_block1: float, ssim_block2: float) -> CheckResult:
    """Chapter 00: the mean SSIMs you measured inverting after ``block1`` and after ``block2``.
    The check: both are valid SSIM values and the deeper cut leaks less."""
    try:
        s1, s2 = float(ssim_block1), float(ssim_block2)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the two mean SSIMs as numbers, e.g. float(scores.mean()).")
    if not (-1 <= s1 <= 1 and -1 <= s2 <= 1):
        return CheckResult(False, f"SSIM lies in [-1, 1]; got {s1:.3f} and {s2:.3f}. Did you pass SSIM values?")
    if abs(s1 - s2) < 1e-9:
        return CheckResult(False, "The two values are identical: did you invert the block2 representation "
                                  "with cut='block2'?")
    if s2 >= s1:
        return CheckResult(False, f"block2 gave SSIM {s2:.3f} >= block1's {s1:.3f}. With the chapter's settings "
                                  "the deeper cut should leak less; check you used the block2 features and cut.")
    return CheckResult(True, f"block1 {s1:.3f} > block2 {s2:.3f}: the 400 numbers after block2, after two "
                             "poolings, pin the image down less than the 1,176 after block1.")


# ----------------------------------------------------------------- chapter 01 --------------------
def check_delta(fn) -> CheckResult:
    """Chapter 01: ``fn(h)`` for ``h`` ``[N, d]`` must return δ, the smallest Euclidean distance between
    two distinct rows, as a number (0 for duplicate rows)."""
    from .separability import delta

    g = torch.Generator().manual_seed(11)
    dup = torch.randn(12, 3, generator=g)
    dup[7] = dup[2]
    cases = [torch.randn(30, 4, generator=g), torch.randn(2, 5, generator=g) * 3, dup,
             torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])]
    for h in cases:
        out, fail = _call(fn, h.clone())
        if fail is not None:
            return fail
        try:
            got = float(out)
        except (TypeError, ValueError):
            return CheckResult(False, f"Return one number (a float), got {type(out).__name__} of shape "
                                      f"{getattr(out, 'shape', '?')}.")
        want = delta(h)
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
            hint = " (0 is the distance of a row to itself: skip i == j)" if got == 0 and want > 0 else ""
            if math.isclose(got, want ** 2, rel_tol=1e-4):
                hint = " (that is the squared distance: take the square root)"
            return CheckResult(False, f"For {tuple(h.shape)} points expected δ = {want:.5f}, got {got:.5f}{hint}.")
    return CheckResult(True, "δ matches on random points, a 2-point set, duplicates (δ = 0) and a collinear set.")


def check_linear_delta_bound(weight, x, predicted) -> CheckResult:
    """Chapter 01: ``predicted`` should be the Lipschitz upper bound on δ after ``h = x @ weight.T``,
    i.e. ``||weight||_2 * δ(x)`` (largest singular value times the input's δ)."""
    from .separability import delta

    try:
        w = torch.as_tensor(weight, dtype=torch.float64)
        xs = torch.as_tensor(x, dtype=torch.float64)
        p = float(predicted)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the weight matrix, the inputs and your predicted bound (a number).")
    bound = torch.linalg.matrix_norm(w, ord=2).item() * delta(xs)
    measured = delta(xs @ w.T)
    if not math.isclose(p, bound, rel_tol=1e-3):
        return CheckResult(False, f"Expected ||W||_2 * δ(x) = {bound:.4f}, got {p:.4f}. Use the largest singular "
                                  "value (torch.linalg.matrix_norm(W, ord=2)), not the Frobenius norm.")
    return CheckResult(True, f"bound {bound:.4f} >= measured δ after the layer {measured:.4f}: a layer can "
                             "shrink the gap, by at most its Lipschitz constant; it never grows it beyond that.")


def check_unfittable(x, y) -> CheckResult:
    """Chapter 01: a labelled set ``(x [N, d], y [N])`` that no network can fit: δ = 0 with the two
    identical points carrying different labels."""
    try:
        xs = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
        ys = torch.as_tensor(y).reshape(-1)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass a tensor x [N, d] and labels y [N].")
    if len(xs) != len(ys) or len(xs) < 2:
        return CheckResult(False, f"Need N >= 2 points with one label each, got {len(xs)} points and {len(ys)} labels.")
    same = torch.cdist(xs, xs) == 0
    conflict = same & (ys[:, None] != ys[None, :])
    if not conflict.any():
        if same.sum() > len(xs):
            return CheckResult(False, "There are duplicate points, but they share a label, so a network can fit them.")
        return CheckResult(False, "All points are distinct (δ > 0): a wide enough network can fit any labels.")
    i, j = torch.nonzero(conflict)[0].tolist()
    return CheckResult(True, f"points {i} and {j} coincide with labels {int(ys[i])} and {int(ys[j])}: δ = 0, "
                             "so any function gives them the same output and 100% training accuracy is impossible.")


# ----------------------------------------------------------------- chapter 02 --------------------
def check_clause_gadget(fn) -> CheckResult:
    """Chapter 02: ``fn(clause, n_vars) -> (w, b)`` with ``w`` a tensor ``[n_vars]`` and ``b`` a number, such
    that ``relu(w @ x + b)`` is 1 on every ±1 input that leaves ``clause`` unsatisfied and 0 on the others."""
    import itertools

    rng = np.random.default_rng(5)
    clauses = [[1], [-2], [1, -3], [-1, -2], [2, 3, -4], [-1, -2, -3], [4, 1, 3]]
    for _ in range(5):
        k = int(rng.integers(1, 4))
        vs = rng.choice(np.arange(1, 6), size=k, replace=False)
        clauses.append([int(v) * (1 if rng.random() < 0.5 else -1) for v in vs])
    for clause in clauses:
        n = max(abs(v) for v in clause)
        out, fail = _call(fn, list(clause), n)
        if fail is not None:
            return fail
        try:
            w, b = out
            w = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
            b = float(b)
        except (TypeError, ValueError):
            return CheckResult(False, "Return a pair (w, b): w a tensor of n_vars weights, b a number.")
        if w.shape != (n,):
            return CheckResult(False, f"For clause {clause} with n_vars = {n}, w needs {n} entries, got {tuple(w.shape)}.")
        for bits in itertools.product([-1.0, 1.0], repeat=n):
            x = torch.tensor(bits, dtype=torch.float64)
            unsat = not any((x[abs(v) - 1] > 0) == (v > 0) for v in clause)
            got = torch.relu(w @ x + b).item()
            if not math.isclose(got, float(unsat), abs_tol=1e-6):
                state = "unsatisfied" if unsat else "satisfied"
                return CheckResult(False, f"Clause {clause}, x = {list(bits)} ({state}): expected "
                                          f"{float(unsat)}, got {got:.3f}.")
    return CheckResult(True, "the unit outputs 1 exactly on the assignments that violate the clause, for clauses "
                             "of 1, 2 and 3 literals of either sign.")


def check_soundness_counterexample(cnf, x, copies: int = 1) -> CheckResult:
    """Chapter 02: an input ``x`` ``[n_vars]`` for the reduction with ``copies`` K whose sign rounding leaves
    MORE clauses unsatisfied than ||f(x) - y||^2 (so the constant C = 1 would be wrong), while the proven
    C = max(4, 12B/K) still holds."""
    from . import sat

    try:
        cnf = sat.as_cnf(cnf)
        xt = torch.as_tensor(x, dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        return CheckResult(False, f"Pass the formula and an input x of n_vars numbers ({err}).")
    if xt.numel() != cnf.n_vars:
        return CheckResult(False, f"x needs n_vars = {cnf.n_vars} entries, got {xt.numel()}.")
    net, target = sat.reduction(cnf, copies=copies)
    with torch.no_grad():
        err = (net(xt[None])[0] - target).pow(2).sum().item()
    uns = sat.unsatisfied(cnf, sat.round_to_assignment(xt))
    bound = sat.soundness_constant(cnf, copies)
    if uns <= err:
        return CheckResult(False, f"Rounding leaves {uns} clause(s) unsatisfied, not more than ||f(x) - y||^2 = "
                                  f"{err:.3f}. Try an x whose variables sit strictly between 0 and ±1.")
    assert uns <= bound * err + 1e-6, "soundness theorem violated"  # would be a bug in the package
    return CheckResult(True, f"{uns} unsatisfied > ||f(x) - y||^2 = {err:.3f}, yet {uns} <= C·err = {bound * err:.3f} "
                             f"(C = {bound:g}): the constant in the soundness bound is needed.")


def check_restarts_needed(p: float, restarts) -> CheckResult:
    """Chapter 02: the number of independent uniform random guesses needed to find a satisfying assignment
    with probability at least 0.9, when a fraction ``p`` of all assignments satisfies the formula."""
    try:
        p, r = float(p), int(restarts)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass p (a fraction) and your number of restarts (an integer).")
    if not 0 < p < 1:
        return CheckResult(False, f"p must be strictly between 0 and 1, got {p}.")
    want = math.ceil(math.log(0.1) / math.log(1 - p))
    if r != want:
        return CheckResult(False, f"Expected the smallest R with 1 - (1 - p)^R >= 0.9, i.e. R = {want}; got {r}.")
    return CheckResult(True, f"R = {want}: with p = {p:.4g}, 1 - (1 - p)^{want} = {1 - (1 - p) ** want:.3f}.")


# ----------------------------------------------------------------- chapter 03 --------------------
def check_consistency_loss(fn) -> CheckResult:
    """Chapter 03: ``fn(h, labels, lam, beta, eps)`` must return MixCon's L_c: the sum over MixCon pairs
    (k-th sample of a class with the k-th of every other class) of ``lam d + beta / (d + eps)``, with ``d``
    the squared Euclidean distance of the pair's representations."""
    from .mixcon import consistency_loss
    from .separability import mixcon_pairs

    g = torch.Generator().manual_seed(3)
    cases = [(torch.randn(8, 3, generator=g), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]), 0.1, 0.01, 0.05),
             (torch.randn(9, 2, generator=g), torch.tensor([0, 1, 2, 2, 1, 0, 0, 0, 1]), 0.5, 0.2, 0.1),
             (torch.randn(6, 2, 2, generator=g), torch.tensor([1, 1, 0, 0, 1, 0]), 1.0, 0.0, 0.05)]
    for h, y, lam, beta, eps in cases:
        out, fail = _call(fn, h.clone(), y.clone(), lam, beta, eps)
        if fail is not None:
            return fail
        try:
            got = float(out)
        except (TypeError, ValueError):
            return CheckResult(False, f"Return a scalar (a 0-d tensor or float), got {type(out).__name__}.")
        want = consistency_loss(h, y, lam, beta, eps).item()
        if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-7):
            hint = ""
            if math.isclose(got * len(mixcon_pairs(y)), want, rel_tol=1e-4):
                hint = " It looks like a mean over pairs; Eq. (1) sums them."
            return CheckResult(False, f"With {len(torch.unique(y))} classes, lam={lam}, beta={beta}: expected "
                                      f"{want:.6f}, got {got:.6f}.{hint}")
    return CheckResult(True, "L_c matches on two and three classes, uneven class sizes and image-shaped h.")


def check_optimal_distance(lam: float, beta: float, eps: float, d) -> CheckResult:
    """Chapter 03: ``d`` should minimise one pair's penalty ``lam d + beta / (d + eps)`` over d >= 0."""
    from .mixcon import optimal_pair_distance

    try:
        d = float(d)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass your minimiser d as a number.")
    want = optimal_pair_distance(lam, beta, eps)
    if not math.isclose(d, want, rel_tol=1e-3, abs_tol=1e-6):
        return CheckResult(False, f"Expected d* = sqrt(beta / lam) - eps = {want:.4f} (set the derivative "
                                  f"lam - beta / (d + eps)^2 to zero), got {d:.4f}.")
    return CheckResult(True, f"d* = {want:.4f}: pairs closer than this are pushed apart, farther ones pulled in.")


def check_collapse(spread_vanilla: float, spread_beta0: float) -> CheckResult:
    """Chapter 03: the median pairwise distance of the test representations at ``fc2`` for the vanilla and
    the β = 0 network (:func:`mixcon_lite.separability.pairwise_distances`)."""
    try:
        sv, s0 = float(spread_vanilla), float(spread_beta0)
    except (TypeError, ValueError):
        return CheckResult(False, "Pass the two median distances as numbers.")
    if sv < 0 or s0 < 0:
        return CheckResult(False, "A distance cannot be negative.")
    if sv == 0:
        return CheckResult(False, "The vanilla spread is 0: did you pass δ (the minimum) instead of the median?")
    if not s0 < 0.1 * sv:
        return CheckResult(False, f"β = 0 gave a median distance of {s0:.4g}, not far below vanilla's {sv:.4g}: did "
                                  "you take the fc2 representations of the β = 0 model?")
    return CheckResult(True, f"the median distance falls from {sv:.3g} (vanilla) to {s0:.3g} (β = 0): with nothing "
                             "pushing pairs apart, test samples, and the classes with them, become indistinguishable at fc2.")


# ----------------------------------------------------------------- chapter 04 --------------------
def check_rmle_objective(fn) -> CheckResult:
    """Chapter 04: ``fn(model, cut, x, h, tv_weight)`` must return the per-image rMLE objective
    ``mean((f(x) - h)^2) + tv_weight * TV(x)``, shape ``[N]``."""
    from .attacks.features import rmle_objective
    from .models import LeNet5

    torch.manual_seed(0)
    model = LeNet5().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 1, 28, 28, generator=g)
    for cut, tv in (("block1", 0.0), ("block2", 0.05), ("fc1", 1.0)):
        with torch.no_grad():
            h = model.forward_to(torch.rand(3, 1, 28, 28, generator=g), cut)
        out, fail = _call(fn, model, cut, x.clone(), h, tv)
        if fail is not None:
            return fail
        got, fail = _as_1d(out, 3, "your objective")
        if fail is not None:
            return fail
        with torch.no_grad():
            want = rmle_objective(model, cut, x, h, tv).double().numpy()
        if not np.allclose(got, want, rtol=1e-4, atol=1e-7):
            return CheckResult(False, f"At cut {cut!r} with tv_weight={tv}: expected {np.round(want, 5)}, got "
                                      f"{np.round(got, 5)}. Average the squared feature error over each image's "
                                      "representation, then add tv_weight * TV.")
    return CheckResult(True, "the objective matches at block1, block2 and fc1, with and without the TV prior.")


def check_safest_cut(ssim_by_cut: dict) -> CheckResult:
    """Chapter 04: ``{cut: mean SSIM of the white-box attack}`` for LeNet-5's five cuts, as measured."""
    cuts = ["block1", "block2", "fc1", "fc2", "logits"]
    if not isinstance(ssim_by_cut, dict) or sorted(ssim_by_cut) != sorted(cuts):
        return CheckResult(False, f"Pass a dict with exactly the keys {cuts}.")
    try:
        vals = {k: float(v) for k, v in ssim_by_cut.items()}
    except (TypeError, ValueError):
        return CheckResult(False, "Every value must be a number (a mean SSIM).")
    if any(not -1 <= v <= 1 for v in vals.values()):
        return CheckResult(False, "SSIM lies in [-1, 1]; some of your values do not.")
    if max(vals, key=vals.get) != "block1":
        return CheckResult(False, f"The earliest cut should leak most, but {max(vals, key=vals.get)!r} has the "
                                  "highest SSIM: check which representation you inverted for each cut.")
    if vals["block1"] - min(vals.values()) < 0.2:
        return CheckResult(False, "The SSIMs barely differ between cuts: did the attack run long enough?")
    safest = min(vals, key=vals.get)
    return CheckResult(True, f"block1 leaks most (SSIM {vals['block1']:.2f}); {safest} least ({vals[safest]:.2f}) "
                             "against this white-box attack.")


def check_noise_defence(model, sigma: float, images: torch.Tensor, labels: torch.Tensor,
                        cut: str = "block1") -> CheckResult:
    """Chapter 04: does adding Gaussian noise of std ``sigma`` to the representation after ``cut`` push the
    white-box attack's mean SSIM below 0.3? Reports what it costs in accuracy on ``(images, labels)``."""
    from .attacks.features import invert
    from .metrics import ssim as ssim_fn

    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        return CheckResult(False, "sigma must be a number.")
    if sigma < 0:
        return CheckResult(False, "sigma is a standard deviation and cannot be negative.")
    g = torch.Generator().manual_seed(0)
    victims = images[:8]
    with torch.no_grad():
        h = model.forward_to(victims, cut)
        noisy = h + sigma * torch.randn(h.shape, generator=g)
    rec = invert(model, cut, noisy, steps=200, lr=0.05, tv_weight=0.01, progress=False)
    s = float(ssim_fn(victims, rec).mean())
    with torch.no_grad():
        hh = model.forward_to(images, cut)
        logits = model.forward_from(hh + sigma * torch.randn(hh.shape, generator=g), cut)
        clean = model.forward_from(hh, cut)
    acc = float((logits.argmax(1) == labels).float().mean())
    acc0 = float((clean.argmax(1) == labels).float().mean())
    if s >= 0.3:
        return CheckResult(False, f"With sigma = {sigma:g} the attack still reaches SSIM {s:.2f} (>= 0.3); add more noise.")
    return CheckResult(True, f"sigma = {sigma:g}: attack SSIM {s:.2f} < 0.3, at an accuracy of {acc:.3f} "
                             f"(without noise {acc0:.3f}). Is that a price worth paying?")
