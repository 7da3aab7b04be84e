"""The task mixture: which examples an epoch trains on, how they are batched and tokenised,
and the joint loss over task families (fixed alpha weights or uncertainty weighting)."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch

from p5rec.config import ConfigError, ExperimentConfig
from p5rec.prompts import Template
from p5rec.tasks import Example, TaskContext, TaskFamily

__all__ = [
    "Collator",
    "noise_words",
    "Pair",
    "TaskLoss",
    "epoch_batches",
    "family_counts",
    "length_grouped",
    "token_losses",
    "training_templates",
]


class Pair(NamedTuple):
    """One rendered training example."""

    source: str
    target: str
    family: int  # index into the run's families


def family_counts(cfg: ExperimentConfig, pools: dict[str, list]) -> dict[str, int]:
    """How many examples of each family one epoch samples (``tasks.samples`` first, then
    shares of ``train.samples_per_epoch``, or of each family's own size when that is 0)."""
    t = cfg.tasks
    fixed = {f: n for f, n in t.samples.items() if f in pools}
    rest = [f for f in pools if f not in fixed]
    if cfg.train.samples_per_epoch == 0:
        shared = {f: round(len(pools[f]) * t.share(f)) for f in rest}
    else:
        total = sum(t.share(f) for f in rest) or 1.0
        shared = {f: round(cfg.train.samples_per_epoch * t.share(f) / total) for f in rest}
    return {f: (fixed | shared)[f] if pools[f] else 0 for f in pools}


def training_templates(cfg: ExperimentConfig, family: TaskFamily) -> list[Template]:
    """The templates ``family`` trains on: its seen templates, or those of them that
    ``tasks.templates`` names (in the prompt file's order). The selection must keep the
    first seen template, because seen-split evaluation uses it."""
    seen = family.seen_templates()
    ids = cfg.tasks.templates.get(family.name)
    if ids is None:
        return seen
    known = [t.id for t in seen]
    where = f"tasks.templates.{family.name}"
    unseen = [i for i in ids if i in {t.id for t in family.templates} - set(known)]
    if unseen:
        raise ConfigError(f"{where}: {unseen} are unseen templates (held out from training)")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown template id(s) {unknown}; seen ones: {known}")
    if known[0] not in ids:
        raise ConfigError(
            f"{where} must include {known[0]!r}, the template seen-split evaluation uses"
        )
    return [t for t in seen if t.id in ids]


def noise_words(tokenizer) -> list[str]:
    """The words template noise draws from: every plain (not special, not added) token of
    the tokenizer's vocabulary, as text."""
    special = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    words = {
        tokenizer.convert_tokens_to_string([token]).strip()
        for token in tokenizer.get_vocab()
        if token not in special
    }
    return sorted(w for w in words if w)


def _draw(pool: list, n: int, rng: random.Random) -> list:
    """``n`` examples of ``pool``: whole copies of it, then a sample without replacement."""
    return pool * (n // len(pool)) + rng.sample(pool, n % len(pool))


def label_balanced_sample(pool: list, n: int, rng: random.Random) -> list:
    """``n`` examples of ``pool`` in equal numbers per target label (the first labels in
    sorted order take the remainder): a rare label's examples repeat, a frequent one's are
    subsampled."""
    groups: dict[str, list] = {}
    for ex in pool:
        groups.setdefault(ex.target, []).append(ex)
    labels = sorted(groups)
    share, extra = divmod(n, len(labels))
    chosen = []
    for j, label in enumerate(labels):
        chosen += _draw(groups[label], share + (j < extra), rng)
    return chosen


def history_windows(examples: list[Example], max_history: int) -> list[Example]:
    """Of a history family's training examples (every prefix of every user's sequence),
    those whose histories tile each sequence (``train.history_windows``): the user's
    longest prefix, then every ``max_history``-th one before it. With the history loss,
    a kept example supervises its target and its history items after the first, so the
    kept windows supervise every target of the sequence once."""
    last: dict[str, int] = {}
    for ex in examples:
        user, position = ex.meta["user"], ex.meta["position"]
        last[user] = max(last.get(user, position), position)
    return [
        ex for ex in examples if (last[ex.meta["user"]] - ex.meta["position"]) % max_history == 0
    ]


def epoch_pairs(
    cfg: ExperimentConfig,
    ctx: TaskContext,
    families: list[TaskFamily],
    epoch: int,
    words: Sequence[str] = (),
) -> list[Pair]:
    """The epoch's examples: a seeded sample per family (label-balanced for a ``balanced``
    family under ``tasks.balance_labels``), each rendered with a seen template drawn per
    example (with ``tasks.template_noise``, per example up to ``tasks.template_noise_max``
    or within the family's ``tasks.noise_ranges``, ``tasks.template_insert`` and
    ``tasks.template_tail``, noise words from ``words``, and ``tasks.template_shuffle``),
    shuffled together."""
    reorder = cfg.tasks.template_shuffle
    insert, tail = cfg.tasks.template_insert, cfg.tasks.template_tail
    rng = random.Random(f"{cfg.train.seed}-epoch-{epoch}")
    pools = {fam.name: fam.examples(ctx, "train", rng) for fam in families}
    if cfg.train.history_windows:
        for fam in families:
            if fam.history_source:
                pools[fam.name] = history_windows(pools[fam.name], ctx.max_history)
    counts = family_counts(cfg, pools)
    pairs: list[Pair] = []
    for f, fam in enumerate(families):
        pool, n = pools[fam.name], counts[fam.name]
        if not n:
            continue
        if fam.balanced and ctx.balance_labels:
            chosen = label_balanced_sample(pool, n, rng)
        else:
            chosen = _draw(pool, n, rng)
        templates = training_templates(cfg, fam)
        low, high = cfg.tasks.noise_range(fam.name)
        for ex in chosen:
            template = rng.choice(templates)
            rate = rng.uniform(low, high) if high is not None else low
            source, target = template.render_noisy(
                ex.fields, ex.target, rng, rate, words, reorder, insert, tail
            )
            pairs.append(Pair(ctx.prompt(fam.name, source), target, f))
    rng.shuffle(pairs)
    return pairs


def epoch_batches(
    cfg: ExperimentConfig,
    ctx: TaskContext,
    families: list[TaskFamily],
    epoch: int,
    words: Sequence[str] = (),
) -> list[list[Pair]]:
    """The epoch's batches, identical in every process and in a resumed run (``words``:
    the template noise vocabulary, :func:`noise_words`)."""
    pairs = epoch_pairs(cfg, ctx, families, epoch, words)
    size = cfg.train.batch_size
    if cfg.train.length_bucketing:
        rng = random.Random(f"{cfg.train.seed}-buckets-{epoch}")
        return length_grouped(pairs, size, rng)
    return [pairs[i : i + size] for i in range(0, len(pairs), size)]


def length_grouped(pairs: list, batch_size: int, rng: random.Random, window: int = 64) -> list:
    """Batches of sources of similar length (less padding), in shuffled order.

    Pairs are sorted by source length inside windows of ``window`` batches; the batches are
    then shuffled, so the mixture of families across an epoch is unchanged.
    """
    size = batch_size * window
    batches = []
    for start in range(0, len(pairs), size):
        chunk = sorted(pairs[start : start + size], key=lambda p: len(p[0]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


class Collator:
    """Tokenise pairs into a model batch; label positions that are not targets are -100.

    Targets are their text tokens plus EOS, as scoring and decoding read them. An
    encoder-decoder gets the shifted targets as decoder inputs; a decoder-only model reads
    source then target in one right-padded sequence (loss on the target part, and with
    ``history_families`` on the source's item tokens after its first one).
    """

    def __init__(
        self,
        tokenizer,
        max_source: int,
        max_target: int,
        decoder_start=None,
        item_ids: Iterable[int] = (),
        history_families: Iterable[int] = (),
    ) -> None:
        self.tok, self.max_source, self.max_target = tokenizer, max_source, max_target
        self.decoder_start = decoder_start  # None: decoder-only
        # decoder-only: in sources of these families, every item token after the first is
        # a target too (each history item predicted from the prompt and the items before it)
        self.item_ids = frozenset(item_ids)
        self.history_families = frozenset(history_families)
        if self.history_families and decoder_start is not None:
            raise ValueError("history supervision needs a decoder-only model")
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos = tokenizer.eos_token_id

    def _ids(self, texts, max_length: int, special: bool) -> tuple[list[list[int]], int]:
        """Token ids of ``texts`` and how many were cut at ``max_length``."""
        enc = self.tok(
            list(texts),
            truncation=True,
            max_length=max_length - (0 if special else 1),  # room for the target's EOS
            add_special_tokens=special,
        )
        cut = 0
        if enc.encodings is not None:  # fast tokenizers report what truncation cut off
            cut = sum(1 for e in enc.encodings if e.overflowing)
        return enc.input_ids, cut

    def __call__(self, pairs: list[Pair]) -> dict[str, torch.Tensor]:
        sources, cut_s = self._ids((p.source for p in pairs), self.max_source, True)
        targets, cut_t = self._ids((p.target for p in pairs), self.max_target, False)
        targets = [t + [self.eos] for t in targets]
        batch = {
            "family": torch.tensor([p.family for p in pairs]),
            "truncated": torch.tensor(cut_s + cut_t),
        }
        if self.decoder_start is None:
            rows = [s + t for s, t in zip(sources, targets)]
            batch["input_ids"] = _pad(rows, self.pad)
            batch["attention_mask"] = _pad([[1] * len(r) for r in rows], 0)
            labels = [
                self._source_labels(s, p.family) + t for s, t, p in zip(sources, targets, pairs)
            ]
            batch["labels"] = _pad(labels, -100)
            return batch
        labels = _pad(targets, -100)
        decoder = torch.full_like(labels, self.decoder_start)
        previous = labels[:, :-1]
        decoder[:, 1:] = torch.where(previous == -100, self.pad, previous)
        batch["input_ids"] = _pad(sources, self.pad)
        batch["attention_mask"] = _pad([[1] * len(s) for s in sources], 0)
        batch["decoder_input_ids"] = decoder
        batch["labels"] = labels
        return batch

    def _source_labels(self, source: list[int], family: int) -> list[int]:
        """-100 everywhere, except (history families) item tokens after the first one."""
        if family not in self.history_families:
            return [-100] * len(source)
        out, seen = [], False
        for token in source:
            item = token in self.item_ids
            out.append(token if item and seen else -100)
            seen = seen or item
        return out


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


@functools.cache
def _mask_to_keep() -> bool:
    """Whether the installed transformers' causal LMs take ``logits_to_keep`` as a boolean
    (batch, length) mask (newer 5.x releases); older ones take only positions. Asked at
    the first decoder-only batch, not at import."""
    from transformers import modeling_utils

    return hasattr(modeling_utils, "slice_logits_to_keep")


def token_losses(
    model, batch: dict[str, torch.Tensor], extra=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the batch's labels (float32) and the label mask, each
    (batch, length); ignored positions are 0.

    Only the positions that predict a label are scored. A decoder-only model's logits are
    shifted to predict the next token, and only those positions are projected onto the
    vocabulary (``logits_to_keep`` as a boolean mask, or, on transformers releases that
    take only positions, the positions where any row has a label): with a large item
    vocabulary the output layer dominates the cost, and most positions of a prompt have no
    label. ``extra`` (an ``ExpectationLoss``) adds a loss per label position, given the
    positions' logits, labels and families."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "decoder_input_ids" in batch:
        targets = batch["labels"]
        mask = targets != -100
        logits = model(**inputs, decoder_input_ids=batch["decoder_input_ids"]).logits[mask]
    else:
        targets = batch["labels"][:, 1:]
        mask = targets != -100
        keep = torch.nn.functional.pad(mask, (0, 1), value=False)  # position t predicts t + 1
        if _mask_to_keep():
            logits = model(**inputs, logits_to_keep=keep).logits
            if logits.dim() != 2:  # a model that ignores the mask returns every position
                logits = logits[keep]
        else:  # older transformers: one set of positions for the whole batch
            cols = keep.any(0).nonzero().squeeze(1)
            logits = model(**inputs, logits_to_keep=cols).logits
            if logits.shape[1] != len(cols):  # a model that ignores it
                logits = logits[:, cols]
            logits = logits[keep[:, cols]]
    picked = torch.nn.functional.cross_entropy(logits.float(), targets[mask], reduction="none")
    if extra is not None:
        rows = mask.nonzero()[:, 0]
        picked = picked + extra(logits, targets[mask], batch["family"].to(rows.device)[rows])
    loss = torch.zeros(targets.shape, dtype=picked.dtype, device=picked.device)
    loss[mask] = picked
    return loss, mask


class TaskLoss(torch.nn.Module):
    """The joint loss of a mixed batch and each family's share of it.

    With token losses summed per family (``sums_t`` over ``counts_t`` target tokens), the
    joint loss is ``sum_t alpha_t * sums_t / N``: the usual token mean when every alpha is 1.
    Uncertainty weighting (Kendall, Gal and Cipolla 2018) learns a log-variance ``s_t`` per
    family: ``sum_t alpha_t * (exp(-s_t) * sums_t + counts_t * s_t / 2) / N``, which is
    ``sum_t (counts_t / N) * alpha_t * (exp(-s_t) * L_t + s_t / 2)`` with ``L_t`` the
    family's token mean. ``N`` is the batch's token count, or (``normaliser``) the token
    count of a whole optimizer step, so that micro-batches and processes weigh by tokens.
    """

    def __init__(self, alphas: list[float], uncertainty: bool = False) -> None:
        super().__init__()
        self.register_buffer("alphas", torch.tensor(alphas, dtype=torch.float32))
        self.log_vars = torch.nn.Parameter(torch.zeros(len(alphas))) if uncertainty else None

    def per_family(self, loss, mask, family) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed token loss and token count of each family, each (num_families,)."""
        n = len(self.alphas)
        sums = torch.zeros(n, device=loss.device).index_add(0, family, loss.sum(1))
        counts = torch.zeros(n, device=loss.device).index_add(0, family, mask.sum(1).float())
        return sums, counts

    def forward(
        self, loss, mask, family, normaliser: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(joint loss, per-family summed loss, per-family token count)."""
        sums, counts = self.per_family(loss, mask, family.to(loss.device))
        n = counts.sum().clamp(min=1) if normaliser is None else normaliser
        alphas = self.alphas.to(loss.device)
        if self.log_vars is None:
            joint = (alphas * sums).sum() / n
        else:
            s = self.log_vars.to(loss.device)
            joint = (alphas * (torch.exp(-s) * sums + counts * s / 2)).sum() / n
        return joint, sums.detach(), counts.detach()
