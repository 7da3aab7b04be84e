"""A learning rate for some rows of one parameter (``train.embedding_lr_rows``).

The token embedding matrix trains in its own parameter group at ``lr * embedding_lr_scale``,
which new item tokens need in a short run from scratch. With ``embedding_lr_rows: added``
the vocabulary's own rows (words) keep ``lr``: each optimizer step moves them ``factor``
times as far as the optimizer did. AdamW's step, decoupled weight decay included, is
proportional to the learning rate, and the optimizer's moment estimates depend on the
gradients alone, so this is the same as training those rows at ``factor`` times the rate.
"""

from __future__ import annotations

import torch

__all__ = ["RowRate"]


class RowRate:
    """Scale the optimizer's update of ``rows`` of ``param`` by ``factor``: call ``before``
    ahead of ``optimizer.step()`` and ``after`` once it returns."""

    def __init__(self, param: torch.nn.Parameter, rows: list[int], factor: float) -> None:
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        bad = [r for r in rows if not 0 <= r < param.shape[0]]
        if bad:
            raise ValueError(f"rows {bad[:5]} outside the parameter's {param.shape[0]} rows")
        self.param, self.factor = param, factor
        self.rows = torch.tensor(sorted(set(rows)), dtype=torch.long, device=param.device)
        self._before: torch.Tensor | None = None

    @torch.no_grad()
    def before(self) -> None:
        self._before = self.param.index_select(0, self.rows)

    @torch.no_grad()
    def after(self) -> None:
        if self._before is None:
            raise RuntimeError("RowRate.after() without a before() ahead of the step")
        moved = self.param.index_select(0, self.rows)
        self.param.index_copy_(0, self.rows, self._before.lerp_(moved, self.factor))
        self._before = None
