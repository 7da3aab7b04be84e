"""Beam search written for the item trie: the decoder every item ranking uses.

It returns, per prompt, the ``num_beams`` best *finished* codes (distinct catalogue items)
with their summed log-probabilities, and it is exact when ``num_beams`` is at least the
number of items (every live prefix is kept at every step). What makes it cheaper than
``generate()`` with a constraint:

- the trie's allowed tokens are a handful of columns per step (``ItemTrie.allowed_columns``):
  candidates are ranked over those columns, not over the whole vocabulary;
- the first step runs once per prompt, not once per beam (all beams share the empty code),
  and then the cache is expanded to the beams;
- an encoder-decoder's cross-attention cache is the same for every beam of a prompt, so after
  that expansion only the self-attention cache follows the beams;
- a finished code (EOS) leaves the beam for a per-prompt pool of the best finished items, so
  the running beams stay full, and search stops as soon as no running beam can still beat
  the worst pooled item (log-probabilities only fall) or the longest code has ended.

Works for encoder-decoder models (T5) and decoder-only models (left-padded prompts; position
ids follow each prompt's real length).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch

from p5rec.trie import ItemTrie

__all__ = ["BeamResult", "cache_of", "cache_kwarg", "trie_beam_search"]


def cache_kwarg(model) -> str:
    """The forward argument that takes a key/value cache: ``cache`` on transformers
    releases that renamed it (``past_key_values`` is deprecated there, to be removed in
    5.40), ``past_key_values`` on older ones. Asked of the wrapped model under a peft
    wrapper, whose own forward takes ``**kwargs``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_kwarg(type(base))


@functools.cache
def _cache_kwarg(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def cache_of(out):
    """The key/value cache of a model output, under either release's name."""
    cache = out.get("cache")  # not out.past_key_values first: newer releases warn on it
    return cache if cache is not None else out.past_key_values


@dataclass
class BeamResult:
    """Per prompt, ``num_beams`` item rows (best first; -1 where fewer items exist) and
    their log-probabilities (-inf there)."""

    items: torch.Tensor  # (batch, num_beams) long
    scores: torch.Tensor  # (batch, num_beams) float


@torch.no_grad()
def trie_beam_search(
    model,
    inputs: dict[str, torch.Tensor],
    trie: ItemTrie,
    num_beams: int,
    decoder_start_token_id: int | None = None,
) -> BeamResult:
    """Constrained beam search of ``model`` from ``inputs`` (``input_ids``, ``attention_mask``;
    left-padded for a decoder-only model) over the codes in ``trie``."""
    if num_beams < 1:
        raise ValueError("num_beams must be >= 1")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch, device = ids.shape[0], ids.device
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    neg = float("-inf")

    if encoder_decoder:
        if decoder_start_token_id is None:
            raise ValueError("an encoder-decoder model needs decoder_start_token_id")
        hidden = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        out = model(
            encoder_outputs=(hidden,),
            attention_mask=mask,
            decoder_input_ids=torch.full((batch, 1), decoder_start_token_id, device=device),
            use_cache=True,
        )
    else:
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # the prompt's other positions' logits are not needed
        )
        lengths = mask.long().sum(-1)  # each prompt's real length: the next position
    cache, cache_arg = cache_of(out), cache_kwarg(model)
    if not hasattr(cache, "reorder_cache"):
        raise TypeError(
            f"{type(model).__name__} returns no reorderable cache; beam search needs one"
        )

    state = torch.zeros(batch, dtype=torch.long, device=device)  # every row at the root
    scores = torch.zeros(batch, device=device)
    pool_scores = torch.full((batch, num_beams), neg, device=device)
    pool_items = torch.full((batch, num_beams), -1, dtype=torch.long, device=device)
    prompt_of = torch.arange(batch, device=device)  # prompt of each row
    eos = torch.tensor([trie.end_id], device=device)
    expanded = False  # whether the cache has one row per beam yet

    for step in range(trie.max_length):
        per_prompt = num_beams if expanded else 1  # rows per prompt
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (rows, vocab)
        columns, allowed = trie.allowed_columns(state)
        cand = logp.index_select(1, columns).masked_fill_(~allowed, neg) + scores[:, None]
        width = len(columns)
        # finished codes go to the pool (the best num_beams per prompt are kept)
        at_eos = (columns == trie.end_id).nonzero()
        if len(at_eos):
            col = int(at_eos[0, 0])
            done = cand[:, col].view(batch, per_prompt)
            done_items = trie.item_at(trie.step(state, eos.expand_as(state))).view(batch, -1)
            merged = torch.cat([pool_scores, done], 1)
            pool_scores, pick = merged.topk(num_beams, dim=1)
            pool_items = torch.cat([pool_items, done_items], 1).gather(1, pick)
            cand[:, col] = neg
        if step == trie.max_length - 1:
            break
        # the running beams: the best unfinished continuations of each prompt
        flat = cand.view(batch, per_prompt * width)
        k = min(num_beams, flat.shape[1])
        top, index = flat.topk(k, dim=1)
        if k < num_beams:
            top = torch.cat([top, top.new_full((batch, num_beams - k), neg)], 1)
            index = torch.cat([index, index.new_zeros((batch, num_beams - k))], 1)
        if not torch.isfinite(top).any():
            break
        full = pool_scores[:, -1]  # worst pooled score; -inf while the pool is not full
        if bool((top[:, 0] <= full).all()):
            break  # no running beam can still enter any pool
        rows = (torch.arange(batch, device=device)[:, None] * per_prompt + index // width).view(-1)
        tokens = columns[index % width].view(-1)
        scores = top.view(-1)
        state = torch.where(torch.isfinite(scores), trie.step(state[rows], tokens), -1)
        if not expanded:  # first expansion: every cache (cross-attention included)
            cache.reorder_cache(rows)
            prompt_of = prompt_of[rows]
            expanded = True
            if encoder_decoder:
                hidden, mask = hidden[prompt_of], mask[prompt_of]
            else:
                mask, lengths = mask[prompt_of], lengths[prompt_of]
        elif hasattr(cache, "self_attention_cache"):  # cross-attention: same for all beams
            cache.self_attention_cache.reorder_cache(rows)
        else:
            cache.reorder_cache(rows)
        if encoder_decoder:
            out = model(
                encoder_outputs=(hidden,),
                attention_mask=mask,
                decoder_input_ids=tokens[:, None],
                use_cache=True,
                **{cache_arg: cache},
            )
        else:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
            out = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=(lengths + step)[:, None],
                use_cache=True,
                logits_to_keep=1,
                **{cache_arg: cache},
            )
        cache = cache_of(out)
    pool_items = torch.where(torch.isfinite(pool_scores), pool_items, -1)
    return BeamResult(pool_items, pool_scores)
