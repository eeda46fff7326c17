r"""Data separability of representations (MixCon, Definition 3.1).

For representations :math:`h_1,\dots,h_N` (rows of ``h``, flattened):

* :func:`min_pairwise_distance` — :math:`\delta = \min_{i\ne j}\lVert h_i-h_j\rVert_2`, the smallest pairwise distance;
* :func:`max_pair_distance` — :math:`\Delta_S = \max_{(i,j)\in S}\lVert h_i-h_j\rVert_2` over a given set ``S`` of
  pairs that *should* be close (e.g. MixCon's cross-class pairs, :func:`mixcon_pairs`);
* :func:`layer_report` — both, at every cut of a :class:`~mixcon_lite.models.SplitNet`;
* :func:`geometry_kept` — how well a representation keeps the input's geometry: the Spearman rank
  correlation of pair distances in the input and in ``h``, over disjoint pairs, with its interval;
* :func:`closest_pairs` — the ``k`` closest pairs of rows, closest first;
* :func:`twin_points` and :func:`steps_to_fit` — a synthetic set with a chosen δ, and how long a net
  of a given width takes to fit it (Theorem 3.2 made tangible).

``min_pairwise_distance`` is exact and runs in chunks: the squared distances of a block of rows to all later rows
come from one matrix product in float64 (:math:`\lVert a-b\rVert^2=\lVert a\rVert^2+\lVert b\rVert^2-2a\cdot b`),
and the winning pairs are recomputed directly, so duplicate rows give exactly 0. Memory stays at
``chunk x N`` numbers.
"""
from __future__ import annotations

import numpy as np
import torch

from .models import SplitNet
from .config import resolve_seed
from .utils import positive_int


def _as_matrix(h, name: str = "h") -> torch.Tensor:
    if isinstance(h, np.ndarray):
        h = torch.from_numpy(h)
    if not torch.is_tensor(h):
        raise ValueError(f"{name} must be a tensor or array of shape [N, d] (or [N, ...]), got {type(h).__name__}.")
    if h.ndim < 2:
        raise ValueError(f"{name} must have shape [N, d] (one representation per row), got {tuple(h.shape)}.")
    h = h.detach().reshape(h.shape[0], -1).to(torch.float64)
    if not torch.isfinite(h).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return h


def min_pairwise_distance(h, chunk: int = 1024, return_pair: bool = False):
    r"""The paper's data separability :math:`\delta = \min_{i\ne j}\lVert h_i-h_j\rVert_2`: the smallest
    Euclidean distance between two distinct rows of ``h`` (``[N, d]``, N >= 2).

    Duplicate rows give exactly ``0.0`` (no error: a δ of 0 means two inputs are indistinguishable
    after this layer). With ``return_pair=True`` also returns the indices ``(i, j)``, ``i < j``.
    Cost: N²d/2 multiply-adds in ``chunk``-row blocks (N = 10,000, d = 1,000 takes seconds).
    """
    h = _as_matrix(h)
    n = h.shape[0]
    if n < 2:
        raise ValueError(f"min_pairwise_distance needs at least two rows, got N = {n}.")
    chunk = positive_int(chunk, "chunk")
    sq = (h * h).sum(1)
    scale = sq.max().item()
    best = (float("inf"), 0, 1)
    candidates: list[tuple[int, int]] = []
    for start in range(0, n - 1, chunk):
        stop = min(start + chunk, n)
        block = h[start:stop]
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * block @ h[start:].T   # [b, n - start]
        d2[torch.arange(stop - start)[:, None] >= torch.arange(n - start)[None, :]] = float("inf")  # keep j > i
        value, flat = torch.min(d2.reshape(-1), 0)
        i, j = divmod(flat.item(), n - start)
        if value.item() < best[0]:
            best = (value.item(), start + i, start + j)
        # every pair within the float64 rounding error of the block minimum is re-checked exactly
        tol = 1e-9 * scale
        near = torch.nonzero(d2 <= value + 2 * tol)
        candidates.extend((start + a, start + b) for a, b in near[:64].tolist())
    candidates.append((best[1], best[2]))
    exact = [((h[i] - h[j]).norm().item(), i, j) for i, j in set(candidates)]
    dist, i, j = min(exact)
    return (dist, (min(i, j), max(i, j))) if return_pair else dist


def max_pair_distance(h, pairs, chunk: int = 65536) -> float:
    r"""The paper's :math:`\Delta_S = \max_{(i,j)\in S}\lVert h_i-h_j\rVert_2`: the largest Euclidean distance
    over the index pairs ``pairs`` = S (``[P, 2]`` ints or a list of tuples), e.g. pairs that should be close."""
    h = _as_matrix(h)
    p = torch.as_tensor(pairs, dtype=torch.long) if not torch.is_tensor(pairs) else pairs.long()
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise ValueError(f"pairs must have shape [P, 2] with P >= 1, got {tuple(p.shape)}.")
    if p.min() < 0 or p.max() >= h.shape[0]:
        raise ValueError(f"pair indices must lie in [0, {h.shape[0] - 1}], got range [{p.min()}, {p.max()}].")
    best = 0.0
    for s in range(0, len(p), chunk):
        q = p[s:s + chunk]
        best = max(best, (h[q[:, 0]] - h[q[:, 1]]).norm(dim=1).max().item())
    return best


def pairwise_distances(h) -> torch.Tensor:
    """All Euclidean distances ``[N, N]`` (float64) for small N (plots, histograms)."""
    h = _as_matrix(h)
    if h.shape[0] > 5000:
        raise ValueError(f"pairwise_distances builds an N x N matrix; N = {h.shape[0]} is too large "
                         f"(use min_pairwise_distance / max_pair_distance, which run in chunks).")
    return torch.cdist(h, h)


def closest_pairs(h, k: int) -> torch.Tensor:
    """The ``k`` closest pairs ``(i, j)``, ``i < j``, of the rows of ``h`` (N at most 5,000), as a
    ``[k, 2]`` long tensor ordered from the closest. Ties are broken by index, so the order does
    not depend on the platform's sort."""
    k = positive_int(k, "k")
    d = pairwise_distances(h)
    n = d.shape[0]
    if k > n * (n - 1) // 2:
        raise ValueError(f"k = {k} pairs asked for, but {n} rows have only {n * (n - 1) // 2}.")
    i, j = torch.triu_indices(n, n, offset=1)
    dist = d[i, j].numpy()
    order = np.lexsort((j.numpy(), i.numpy(), dist))[:k]
    return torch.stack([i[order], j[order]], 1)


def geometry_kept(x, h, n_pairs: int = 1000, seed: int | None = None,
                  confidence: float = 0.95) -> dict:
    """Spearman rank correlation between pair distances in ``x`` and in ``h`` (same rows).

    The rows are shuffled by ``seed`` and split into ``n_pairs`` *disjoint* pairs, so the pairs are
    independent and the interval is Fisher's for Spearman's rho (standard error
    ``1.06 / sqrt(n - 3)``). 1 means ``h`` orders the pairs exactly as ``x`` does; 0, not at all.
    Returns ``{"rho", "low", "high", "n_pairs"}``.
    """
    from scipy import stats as st

    x, h = _as_matrix(x, "x"), _as_matrix(h, "h")
    if x.shape[0] != h.shape[0]:
        raise ValueError(f"x and h must have one row per sample each: {x.shape[0]} vs {h.shape[0]}.")
    n_pairs = positive_int(n_pairs, "n_pairs")
    if 2 * n_pairs > x.shape[0] or n_pairs < 4:
        raise ValueError(f"n_pairs = {n_pairs} disjoint pairs need 2 n_pairs <= N = {x.shape[0]} "
                         f"rows and n_pairs >= 4.")
    order = torch.from_numpy(np.random.default_rng(resolve_seed(seed)).permutation(x.shape[0]))
    a, b = order[:n_pairs], order[n_pairs:2 * n_pairs]
    dx = (x[a] - x[b]).norm(dim=1).numpy()
    dh = (h[a] - h[b]).norm(dim=1).numpy()
    rho = float(st.spearmanr(dx, dh).statistic)
    z, se = np.arctanh(np.clip(rho, -0.999999, 0.999999)), 1.06 / np.sqrt(n_pairs - 3)
    q = st.norm.ppf(0.5 + confidence / 2)
    return {"rho": rho, "low": float(np.tanh(z - q * se)), "high": float(np.tanh(z + q * se)),
            "n_pairs": n_pairs}


def mixcon_pairs(labels) -> torch.Tensor:
    """MixCon's pairs that should be close: the k-th sample of class c with the k-th sample of every
    other class c' (k runs up to the smaller class size). Returns ``[P, 2]`` indices into ``labels``."""
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(y.shape)}.")
    classes = torch.unique(y).tolist()
    if len(classes) < 2:
        raise ValueError("mixcon_pairs needs at least two classes.")
    members = [torch.nonzero(y == c).flatten() for c in classes]
    out = []
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            k = min(len(members[a]), len(members[b]))
            out.append(torch.stack([members[a][:k], members[b][:k]], 1))
    return torch.cat(out)


def within_class_pairs(labels) -> torch.Tensor:
    """The opposite choice (the MixCon paper's App. D.1 alternative, "within-class" pairs): every
    pair ``i < j`` of samples with the same label. Returns ``[P, 2]`` indices into ``labels``;
    raises ``ValueError`` when no class has two samples."""
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(y.shape)}.")
    i, j = torch.triu_indices(len(y), len(y), offset=1)
    same = y[i] == y[j]
    if not bool(same.any()):
        raise ValueError("within_class_pairs needs a class with at least two samples.")
    return torch.stack([i[same], j[same]], 1)


@torch.no_grad()
def layer_report(model: SplitNet, x: torch.Tensor, pairs=None, cuts=None, include_input: bool = True) -> list[dict]:
    """δ and Δ_S at each cut of ``model`` (default: every block) for inputs ``x``.

    Returns one dict per layer: ``{"layer", "dim", "delta", "Delta_S", "median"}``, where ``median`` is the
    median pairwise distance of (up to) 500 rows, a scale to compare layers of different size by; ``Delta_S``
    is ``None`` without ``pairs``. ``include_input`` adds the raw input as layer ``"input"``.
    """
    if not isinstance(model, SplitNet):
        raise ValueError("layer_report needs a mixcon_lite SplitNet (e.g. LeNet5 or MLP).")
    cuts = model.block_names if cuts is None else list(cuts)
    model.eval()
    reps = [("input", x)] if include_input else []
    reps += [(c, model.forward_to(x, c)) for c in cuts]
    rows = []
    for name, h in reps:
        hm = _as_matrix(h)
        sample = hm[: min(500, len(hm))]
        d = torch.pdist(sample) if len(sample) > 1 else torch.zeros(1)
        rows.append({"layer": name, "dim": hm.shape[1], "delta": min_pairwise_distance(hm),
                     "Delta_S": max_pair_distance(hm, pairs) if pairs is not None else None,
                     "median": d.median().item()})
    return rows


def twin_points(n_pairs: int, dim: int, gap: float, seed: int | None = None):
    """A binary task with separability ``gap``: ``n_pairs`` random points on the unit sphere, each with
    a *twin* at distance exactly ``gap`` carrying the opposite label.

    Returns ``(x [2 n_pairs, dim], y [2 n_pairs])``. Points of different pairs are kept more than
    ``gap`` apart (a draw that breaks this is redrawn, up to 200 times), so for gaps small enough
    to allow it (all of chapter 01's) δ equals ``gap`` at every seed (check with
    :func:`min_pairwise_distance`); fitting it means separating each point from its twin.
    """
    seed = resolve_seed(seed)
    if not isinstance(n_pairs, int) or n_pairs < 1 or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"Need integers n_pairs >= 1 and dim >= 2, got {n_pairs!r}, {dim!r}.")
    if not 0 < gap <= 2:
        raise ValueError(f"gap must be in (0, 2] (points on the unit sphere), got {gap!r}.")
    g = torch.Generator().manual_seed(int(seed))
    not_twin = ~torch.eye(2 * n_pairs, dtype=torch.bool)
    idx = torch.arange(n_pairs)
    not_twin[idx, idx + n_pairs] = not_twin[idx + n_pairs, idx] = False
    for _ in range(200):
        base = torch.randn(n_pairs, dim, generator=g, dtype=torch.float64)
        base /= base.norm(dim=1, keepdim=True)
        step = torch.randn(n_pairs, dim, generator=g, dtype=torch.float64)
        step -= (step * base).sum(1, keepdim=True) * base          # tangent direction
        step /= step.norm(dim=1, keepdim=True)
        twin = base * (1 - gap ** 2 / 2) + step * gap * (1 - gap ** 2 / 4) ** 0.5   # on the sphere, |twin - base| = gap
        # redraw (rarely needed) until no two points of different pairs are closer than the gap,
        # so that delta is the gap at every seed; for a gap too large to keep every other pair
        # apart, the last draw is kept (then delta can be below the gap)
        both = torch.cat([base, twin])
        if torch.cdist(both, both)[not_twin].min() > gap * (1 + 1e-2):
            break
    y = torch.randint(0, 2, (n_pairs,), generator=g)
    x = torch.cat([base, twin]).to(torch.float32)
    return x, torch.cat([y, 1 - y])


def steps_to_fit(width: int, x: torch.Tensor, y: torch.Tensor, max_steps: int = 2000, lr: float = 0.01,
                 seed: int | None = None) -> int | None:
    """Full-batch Adam on a two-layer ReLU net of hidden ``width`` until every training label is right.

    Returns the number of steps taken, or ``None`` if ``max_steps`` did not suffice.
    """
    seed = resolve_seed(seed)
    from .models import MLP

    width = positive_int(width, "width")
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"Expected x [N, d] and y [N], got {tuple(x.shape)} and {tuple(y.shape)}.")
    torch.manual_seed(int(seed))
    net = MLP(x.shape[1], [width], int(y.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for step in range(1, max_steps + 1):
        logits = net(x)
        if (logits.argmax(1) == y).all():
            return step - 1
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return max_steps if (net(x).argmax(1) == y).all() else None
