r"""L-BFGS for many independent problems at once (the restarts of a gradient-inversion attack).

:class:`BatchedLBFGS` keeps one curvature history per row of a ``[K, dim]`` iterate and returns the
next iterate of every row from one call. It follows ``torch.optim.LBFGS`` with ``line_search_fn=None``
(the setting of DLG's code): the first step after a (re)start is ``-g`` scaled by
``lr * min(1, 1 / |g|_1)``, later steps are ``-lr * H g``; a pair ``(s, y)`` enters the history only
when ``s^T y > 1e-10``; the initial inverse Hessian is ``gamma * I`` with ``gamma = s^T y / y^T y`` of the
newest accepted pair.

Why not ``torch.optim.LBFGS`` on the stacked tensor? Its history, its curvature test and its step
scaling are *global*: K stacked restarts would share one Hessian model, so one diverging restart would
steer all others. Running K optimisers sequentially keeps them apart but costs K Python-level loops.
Here the histories are separate and the product ``H g`` uses the *compact representation* of
Byrd, Nocedal and Schnabel (1994) instead of the two-loop recursion:

.. math:: H = \gamma I + [S \;\; \gamma Y]
          \begin{bmatrix} R^{-T}(D + \gamma Y^T Y) R^{-1} & -R^{-T} \\ -R^{-1} & 0 \end{bmatrix}
          \begin{bmatrix} S^T \\ \gamma Y^T \end{bmatrix},

with :math:`S, Y` the last ``m`` pairs (oldest first), :math:`R` the upper triangle of
:math:`S^T Y` and :math:`D` its diagonal. It is the same matrix the two-loop recursion applies (unit
tests compare both), but it costs a fixed dozen batched tensor operations per step whatever the
history length, instead of ``2m`` dependent small ones. The ``m x m`` products are updated one row
and one column per step and solved in float64.
"""
from __future__ import annotations

import torch

from ..utils import positive_int


class BatchedLBFGS:
    """L-BFGS state for ``K`` independent problems of dimension ``dim``.

    Use: ``x = opt.step(x, g)`` with the current iterates ``x`` and their gradients ``g`` (both
    ``[K, dim]``) returns the next iterates; :meth:`reset` forgets the history of chosen rows (after a
    restart is re-initialised). ``history_size`` (``m``, torch's default 100) and ``lr`` (1, DLG's)
    as in ``torch.optim.LBFGS``.
    """

    def __init__(self, K: int, dim: int, history_size: int = 100, lr: float = 1.0,
                 max_step: float | None = None, dtype: torch.dtype = torch.float32, device=None):
        self.K, self.dim = positive_int(K, "K"), positive_int(dim, "dim")
        self.m = positive_int(history_size, "history_size")
        if not float(lr) > 0:
            raise ValueError(f"lr must be positive, got {lr!r}.")
        self.lr = float(lr)
        if max_step is not None and not float(max_step) > 0:
            raise ValueError(f"max_step must be positive or None, got {max_step!r}.")
        self.max_step = None if max_step is None else float(max_step)
        opts = dict(dtype=dtype, device=device)
        self.S = torch.zeros(self.K, self.m, self.dim, **opts)       # ring buffers, slot order
        self.Y = torch.zeros(self.K, self.m, self.dim, **opts)
        small = dict(dtype=torch.float64, device=device)
        self.SY = torch.zeros(self.K, self.m, self.m, **small)        # SY[k, i, j] = s_i . y_j
        self.YY = torch.zeros(self.K, self.m, self.m, **small)
        self.gamma = torch.ones(self.K, **small)
        self.count = torch.zeros(self.K, dtype=torch.long, device=device)   # pairs held
        self.head = torch.zeros(self.K, dtype=torch.long, device=device)    # next slot to write
        self.fresh = torch.ones(self.K, dtype=torch.bool, device=device)    # no previous iterate
        self.x_prev = torch.zeros(self.K, self.dim, **opts)
        self.g_prev = torch.zeros(self.K, self.dim, **opts)
        self._rows = torch.arange(self.K, device=device)
        self._slots = torch.arange(self.m, device=device)

    def reset(self, rows) -> None:
        """Forget the history of the restarts selected by ``rows`` (a bool mask ``[K]`` or indices)."""
        rows = torch.as_tensor(rows, device=self.count.device)
        if rows.dtype == torch.bool:
            rows = rows.nonzero().flatten()
        self.count[rows] = 0
        self.head[rows] = 0
        self.fresh[rows] = True
        self.gamma[rows] = 1.0
        self.S[rows] = 0.0
        self.Y[rows] = 0.0
        self.SY[rows] = 0.0
        self.YY[rows] = 0.0

    def _remember(self, s: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> None:
        """Write the pairs ``(s[rows], y[rows])`` into the histories of ``rows`` (indices)."""
        slot = self.head[rows]
        self.S[rows, slot] = s[rows]
        self.Y[rows, slot] = y[rows]
        S, Y = self.S[rows], self.Y[rows]                               # [k, m, dim]
        s_Y = torch.bmm(Y, s[rows, :, None]).squeeze(-1).double()       # s . y_j  -> row of SY
        S_y = torch.bmm(S, y[rows, :, None]).squeeze(-1).double()       # s_i . y  -> column of SY
        Y_y = torch.bmm(Y, y[rows, :, None]).squeeze(-1).double()
        SY, YY = self.SY[rows], self.YY[rows]
        k = torch.arange(len(rows), device=slot.device)
        SY[k, slot, :] = s_Y
        SY[k, :, slot] = S_y
        YY[k, slot, :] = Y_y
        YY[k, :, slot] = Y_y
        self.SY[rows], self.YY[rows] = SY, YY
        ys, yy = S_y[k, slot], Y_y[k, slot]
        self.gamma[rows] = ys / yy
        self.head[rows] = (slot + 1) % self.m
        self.count[rows] = torch.clamp(self.count[rows] + 1, max=self.m)

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """``-H g`` for every row (``-g`` where a row holds no pair yet). ``g``: ``[K, dim]``."""
        m, K = self.m, self.K
        # chronological order: position j holds slot (head - count + j) mod m; j >= count is unused
        order = (self.head[:, None] - self.count[:, None] + self._slots[None, :]) % m       # [K, m]
        valid = self._slots[None, :] < self.count[:, None]                                  # [K, m]
        a = torch.bmm(self.S, g[:, :, None]).squeeze(-1).double().gather(1, order)          # S^T g
        b = torch.bmm(self.Y, g[:, :, None]).squeeze(-1).double().gather(1, order)          # Y^T g
        a, b = a * valid, b * valid
        idx_r = order[:, :, None].expand(K, m, m)
        idx_c = order[:, None, :].expand(K, m, m)
        SY = self.SY.gather(1, idx_r).gather(2, idx_c)
        YY = self.YY.gather(1, idx_r).gather(2, idx_c)
        pair = valid[:, :, None] & valid[:, None, :]
        eye = torch.eye(m, dtype=torch.float64, device=g.device)[None]
        R = torch.where(pair, SY, 0.0).triu() + eye * (~valid)[:, None, :]   # unused: identity rows
        D = torch.where(valid, torch.diagonal(SY, dim1=1, dim2=2), 1.0)
        YY = torch.where(pair, YY, 0.0)
        gamma = self.gamma[:, None]
        r = torch.linalg.solve_triangular(R, a[:, :, None], upper=True).squeeze(-1)         # R^-1 S^T g
        w = D * r + gamma * torch.bmm(YY, r[:, :, None]).squeeze(-1) - gamma * b
        p = torch.linalg.solve_triangular(R.transpose(1, 2), w[:, :, None], upper=False).squeeze(-1)
        # back to slot order, then H g = gamma g + S p - gamma Y r
        p_slot = torch.zeros_like(p).scatter(1, order, p * valid).to(g.dtype)
        r_slot = torch.zeros_like(r).scatter(1, order, r * valid * gamma).to(g.dtype)
        Hg = (gamma.to(g.dtype) * g + torch.bmm(p_slot[:, None, :], self.S).squeeze(1)
              - torch.bmm(r_slot[:, None, :], self.Y).squeeze(1))
        return -Hg

    @torch.no_grad()
    def step(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The next iterates ``[K, dim]`` from the current iterates ``x`` and gradients ``g``."""
        if x.shape != (self.K, self.dim) or g.shape != x.shape:
            raise ValueError(f"step expects x and g of shape [{self.K}, {self.dim}], got "
                             f"{tuple(x.shape)} and {tuple(g.shape)}.")
        old = ~self.fresh
        if old.any():
            s, y = x - self.x_prev, g - self.g_prev
            ys = (s * y).sum(1)
            accept = old & (ys > 1e-10)
            if accept.any():
                self._remember(s, y, accept.nonzero().flatten())
        d = self.direction(g)
        t = torch.full((self.K, 1), self.lr, dtype=x.dtype, device=x.device)
        first = self.fresh[:, None]
        t = torch.where(first, self.lr * torch.clamp(1.0 / g.abs().sum(1, keepdim=True), max=1.0), t)
        self.x_prev.copy_(x)
        self.g_prev.copy_(g)
        self.fresh.zero_()
        step = t * d
        if self.max_step is not None:
            norm = step.norm(dim=1, keepdim=True)
            step = step * torch.clamp(self.max_step / norm.clamp_min(1e-30), max=1.0)
        return x + step
