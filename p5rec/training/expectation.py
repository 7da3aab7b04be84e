"""The squared error of a numeric target's expected value, as a training loss.

A rating family is evaluated by the expectation of its score tokens' distribution
(``tasks.rating``), but cross-entropy alone treats 1 to 5 stars as unordered classes: it
pays as much for a 4 given to a 5 as for a 1. With ``train.expectation_loss`` = w, at the
label position of a numeric target's value token the model's probabilities restricted to
the value tokens give ``E = sum_v p_v * v``, and ``w * (E - y) ** 2`` is added to that
position's cross-entropy, so training optimises the quantity that is evaluated
(regression-aware fine-tuning, Lukasik et al. 2025).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from p5rec.config import ConfigError
from p5rec.tasks import TaskContext, TaskFamily

__all__ = ["ExpectationLoss", "expectation_loss"]


class ExpectationLoss(torch.nn.Module):
    """Per label position, ``weight * (E - y) ** 2`` for value tokens of numeric families
    (0 elsewhere). ``token_ids[i]`` is the one token of the value ``values[i]``. Its
    tensors are buffers: move it to the training device once (``.to(device)``)."""

    def __init__(
        self,
        weight: float,
        families: Sequence[int],
        token_ids: Sequence[int],
        values: Sequence[float],
        vocab_size: int,
    ) -> None:
        super().__init__()
        self.weight = weight
        ids = torch.tensor(list(token_ids))
        lookup = torch.full((vocab_size,), float("nan"))
        lookup[ids] = torch.tensor(list(values), dtype=torch.float32)
        self.register_buffer("families", torch.tensor(list(families)), persistent=False)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("values", lookup[ids], persistent=False)
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, families: torch.Tensor
    ) -> torch.Tensor:
        """``logits`` (positions, vocab) at the label positions, their ``labels`` and each
        position's family index; returns the added loss per position (float32)."""
        y = self.lookup[labels]
        picked = ~torch.isnan(y) & torch.isin(families, self.families)
        extra = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
        if picked.any():
            probs = torch.softmax(logits[picked][:, self.ids].float(), dim=-1)
            extra[picked] = self.weight * (probs @ self.values - y[picked]) ** 2
        return extra


def expectation_loss(
    weight: float, families: Sequence[TaskFamily], ctx: TaskContext, tokenizer
) -> ExpectationLoss | None:
    """The run's expectation loss, or None when ``weight`` is 0 or no trained family has
    numeric targets. Each value's target text must be one token of its own after the
    tokens that every value's text starts with (a leading word boundary)."""
    if not weight:
        return None
    indices, texts, values = [], [], []
    for f, family in enumerate(families):
        numeric = family.numeric_targets(ctx)
        if numeric:
            indices.append(f)
            for text, value in numeric.items():
                texts.append(text)
                values.append(value)
    if not indices:
        names = [f.name for f in families]
        raise ConfigError(
            f"train.expectation_loss: none of the trained families {names} has numeric "
            "targets (rating has)"
        )
    encoded = tokenizer(texts, add_special_tokens=False).input_ids
    # the tokens every text starts with (a word boundary), as long as each keeps one
    lead = 0
    while lead < min(map(len, encoded)) - 1 and len({ids[lead] for ids in encoded}) == 1:
        lead += 1
    value_ids: dict[int, float] = {}
    for text, ids, value in zip(texts, encoded, values):
        own = ids[lead:]
        if len(own) != 1:
            raise ConfigError(
                f"train.expectation_loss needs each numeric target to be one token; {text!r} "
                f"is {tokenizer.convert_ids_to_tokens(ids)}"
            )
        if value_ids.get(own[0], value) != value:
            raise ConfigError(f"train.expectation_loss: two values share the token of {text!r}")
        value_ids[own[0]] = value
    return ExpectationLoss(
        weight, indices, list(value_ids), list(value_ids.values()), len(tokenizer)
    )
