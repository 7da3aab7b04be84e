"""An exponential moving average of the trainable weights (``train.ema_decay``).

After every optimizer step each average moves towards the current weight:
``avg += (1 - d) * (w - avg)`` with ``d = min(decay, (1 + n) / (10 + n))`` at the n-th
update, so the first updates follow the weights closely instead of remembering the random
initialisation. Validation and the saved best model use the averaged weights (``swapped``),
which are less noisy than the last step's; training continues from the raw ones. The
average is part of a checkpoint (``state_dict``), so a resumed run keeps it.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average of ``model``'s trainable parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.average = {n: p.detach().clone() for n, p in self.params.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move every average towards its parameter's current value."""
        weight = 1.0 - self.current_decay()
        for name, param in self.params.items():
            self.average[name].lerp_(param.detach(), weight)
        self.updates += 1

    @contextlib.contextmanager
    def swapped(self):
        """The model holds the averaged weights inside the block, its own ones after."""
        with torch.no_grad():
            kept = {n: p.detach().clone() for n, p in self.params.items()}
            for name, param in self.params.items():
                param.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self.params.items():
                    param.copy_(kept[name])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "average": {n: t.cpu() for n, t in self.average.items()}}

    def load_state_dict(self, state: dict) -> None:
        mismatched = sorted(set(self.average) ^ set(state["average"]))
        if mismatched:
            raise ValueError(f"the saved weight average does not match the model: {mismatched[:5]}")
        self.updates = int(state["updates"])
        for name, tensor in state["average"].items():
            self.average[name].copy_(tensor)
