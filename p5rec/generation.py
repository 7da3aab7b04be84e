"""Inference: item ranking by constrained beam search, candidate scoring, free text.

Every item the engine returns is a real catalogue item and no list repeats an item: ranking
runs ``p5rec.decoding.trie_beam_search`` over the trie of item codes, and finished codes map
back to items through the trie. Encoder-decoder (T5) and decoder-only models are served.

``TrieConstraint`` is the same constraint as a ``LogitsProcessor``, for ``generate()`` with
other search settings (sampling, diverse beams): per step, a ``searchsorted`` walk of every
beam's generated tokens and one mask per distinct trie node; no Python code runs per beam.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor

from p5rec.decoding import BeamResult, cache_kwarg, cache_of, trie_beam_search
from p5rec.indexing import ItemIndex
from p5rec.trie import ItemTrie

__all__ = ["Engine", "TrieConstraint"]


class TrieConstraint(LogitsProcessor):
    """Set to -inf every next token the trie does not allow after the generated prefix.

    ``start`` is how many leading positions of ``input_ids`` are not generated code: 1 for
    an encoder-decoder (the decoder start token), the padded prompt width for a decoder-only
    model. The allowed set is never empty: a beam outside the trie may only emit EOS.
    """

    def __init__(self, trie: ItemTrie, start: int = 1) -> None:
        self.trie = trie
        self.start = start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (batch * beams, cur_len); scores: (batch * beams, vocab)
        state = self.trie.walk(input_ids[:, self.start :])
        columns, allowed = self.trie.allowed_columns(state)
        kept = scores.index_select(1, columns).masked_fill_(~allowed, float("-inf"))
        return scores.fill_(float("-inf")).index_copy_(1, columns, kept)


class Engine:
    """A trained model with its tokenizer and item index, ready to predict.

    Works with encoder-decoder (T5) and decoder-only (Llama/Qwen-style) models.
    """

    def __init__(
        self,
        model,
        tokenizer,
        index: ItemIndex,
        max_source_length: int = 512,
        device: str | torch.device | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.index = index
        self.max_source_length = max_source_length
        self.score_logits = 1 << 26  # the most logits one scoring pass may hold (256 MB)
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model.to(self.device)
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise ValueError("the tokenizer has no EOS token; item codes need one to end")
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        token_ids = dict(zip(index.tokens, tokenizer.convert_tokens_to_ids(index.tokens)))
        if tokenizer.unk_token_id is not None:
            unknown = [t for t, i in token_ids.items() if i == tokenizer.unk_token_id]
            if unknown:
                raise ValueError(f"item tokens missing from the tokenizer (e.g. {unknown[0]!r})")
        self.items = list(index.codes)
        self.item_ids: dict[str, list[int]] = {
            item: [token_ids[t] for t in code] for item, code in index.codes.items()
        }
        vocab = model.get_output_embeddings().weight.shape[0]
        largest = max(token_ids.values())
        if largest >= vocab:
            raise ValueError(f"item token id {largest} is outside the model's {vocab} logits")
        self.trie = ItemTrie([self.item_ids[i] for i in self.items], end_id=self.eos)
        self._generation_ids = {"pad_token_id": self.pad, "eos_token_id": self.eos}
        if self.encoder_decoder:
            start = model.generation_config.decoder_start_token_id
            if start is None:
                start = model.config.decoder_start_token_id
            self._generation_ids["decoder_start_token_id"] = start

    def _encode(self, sources: Sequence[str], left: bool = False) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(sources),
            padding=True,
            truncation=True,
            max_length=self.max_source_length,
            padding_side="left" if left else "right",
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items() if k != "token_type_ids"}

    @torch.no_grad()
    def search(self, sources: Sequence[str], num_beams: int) -> BeamResult:
        """Constrained beam search (``trie_beam_search``) for a batch of prompts."""
        enc = self._encode(sources, left=not self.encoder_decoder)
        start = self._generation_ids.get("decoder_start_token_id")
        return trie_beam_search(self.model, enc, self.trie, num_beams, start)

    def rank(self, sources: Sequence[str], num_beams: int) -> list[list[tuple[str, float]]]:
        """For each source, up to ``num_beams`` (item, log-prob): real, distinct items, best
        first (fewer only when the catalogue is smaller)."""
        result = self.search(sources, num_beams)
        return [
            [(self.items[r], s) for r, s in zip(rows, scores) if r >= 0]
            for rows, scores in zip(result.items.tolist(), result.scores.tolist())
        ]

    @torch.no_grad()
    def _score(
        self, sources: Sequence[str], targets: Sequence[Sequence[list[int]]]
    ) -> list[list[float]]:
        """Sum of token log-probabilities of each target id sequence given its source."""
        if not self.encoder_decoder:
            return self._score_causal(sources, targets)
        enc = self._encode(sources)
        hidden = self.model.get_encoder()(**enc).last_hidden_state  # (batch, src_len, d_model)
        results = []
        for b, options in enumerate(targets):
            width = max(len(t) for t in options)
            size = self._options_per_pass(width, self.model.config.vocab_size)
            row = []
            for a in range(0, len(options), size):
                labels = torch.tensor(
                    [t + [-100] * (width - len(t)) for t in options[a : a + size]],
                    device=self.device,
                )  # (chunk, width), -100 past each option's end
                n = labels.shape[0]
                logits = self.model(
                    encoder_outputs=(hidden[b : b + 1].expand(n, -1, -1),),
                    attention_mask=enc["attention_mask"][b : b + 1].expand(n, -1),
                    labels=labels,
                ).logits  # (chunk, width, vocab)
                row += _sum_logprobs(logits, labels)
            results.append(row)
        return results

    def _score_causal(
        self, sources: Sequence[str], targets: Sequence[Sequence[list[int]]]
    ) -> list[list[float]]:
        """Decoder-only scoring with the prompts run once: a batch of left-padded prompts
        builds the cache, and the options' later tokens are fed one position at a time
        with each distinct prefix fed once (:meth:`_score_prefixes`), in chunks of
        bounded size."""
        enc = self._encode(sources, left=True)
        mask = enc["attention_mask"]
        lengths = mask.sum(-1)
        if (lengths == 0).any():
            raise ValueError("a decoder-only model needs a non-empty prompt to score")
        out = self.model(
            input_ids=enc["input_ids"],
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            logits_to_keep=1,
        )
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (batch, vocab)
        flat = [t for options in targets for t in options]
        if any(not t for t in flat):
            raise ValueError("every scored option needs at least one token")
        owner = [b for b, options in enumerate(targets) for _ in options]  # prompt row
        heads = torch.tensor([t[0] for t in flat], device=self.device)
        totals = first[torch.tensor(owner, device=self.device), heads]  # each option's first
        if max(len(t) for t in flat) > 1:
            # a pass holds one row of logits and of cache per option at most
            size = self._options_per_pass(1, first.shape[-1])
            rest = []
            for a in range(0, len(flat), size):
                # the last pass may consume the prompt cache; earlier ones need a copy of it
                cache = cache_of(out)
                if a + size < len(flat):
                    cache = copy.deepcopy(cache)
                rest += self._score_prefixes(
                    cache, mask, lengths, owner[a : a + size], flat[a : a + size]
                )
            totals = totals + torch.tensor(rest, device=self.device)
        results, at = [], 0
        values = totals.tolist()
        for options in targets:
            results.append(values[at : at + len(options)])
            at += len(options)
        return results

    def _options_per_pass(self, width: int, vocab: int) -> int:
        """How many options of ``width`` tokens one scoring pass takes: at most
        ``score_logits`` logits (one pass over a large option set would not fit)."""
        return max(1, self.score_logits // (width * vocab))

    def _score_prefixes(self, cache, mask, lengths, owner, options) -> list[float]:
        """Summed log-probability of each option's tokens after its first (``owner``: each
        option's prompt row in the prompt ``cache``, which this reorders in place).

        Depth by depth, one row per distinct prefix (prompt row and the option's first
        ``depth`` tokens): the row's cache is its parent prefix's, it is fed the prefix's
        last token, and its next-token distribution scores every option through it. Options
        sharing a prefix (labels of one path, item codes of one cluster) share its rows, so
        a set of options costs one forward row per node of its prefix tree, not one per
        option token; no row carries padding."""
        totals = [0.0] * len(options)
        rows = {(o, ()): o for o in owner}  # the prefixes fed so far: (prompt, tokens) -> row
        for depth in range(1, max(len(t) for t in options)):
            nodes: dict[tuple, int] = {}
            parents, fed, prompts, scored = [], [], [], []
            for n, (o, t) in enumerate(zip(owner, options)):
                if len(t) <= depth:
                    continue
                key = (o, tuple(t[:depth]))
                if key not in nodes:
                    nodes[key] = len(fed)
                    parents.append(rows[(o, key[1][:-1])])
                    fed.append(t[depth - 1])
                    prompts.append(o)
                scored.append((n, nodes[key], t[depth]))
            cache.reorder_cache(torch.tensor(parents, device=self.device))
            at = torch.tensor(prompts, device=self.device)
            logits = self.model(
                input_ids=torch.tensor(fed, device=self.device)[:, None],
                attention_mask=torch.cat([mask[at], mask.new_ones((len(fed), depth))], dim=-1),
                position_ids=(lengths[at] + depth - 1)[:, None],
                use_cache=True,
                **{cache_kwarg(self.model): cache},
            ).logits[:, -1]  # (nodes, vocab)
            logp = torch.log_softmax(logits.float(), dim=-1)
            which, row, token = zip(*scored)
            at_row, at_token = (torch.tensor(c, device=self.device) for c in (row, token))
            for k, value in zip(which, logp[at_row, at_token].tolist()):
                totals[k] += value
            rows = nodes
        return totals

    def score_items(
        self, sources: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Log-probability of each candidate item's code (EOS included) given its source."""
        return self._score(
            sources, [[[*self.item_ids[c], self.eos] for c in cands] for cands in candidates]
        )

    def score_texts(self, sources: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """Log-probability of each option text (as a whole target, EOS included) per source."""
        ids = [self.tokenizer(o, add_special_tokens=False).input_ids + [self.eos] for o in options]
        return self._score(sources, [ids] * len(sources))

    @torch.no_grad()
    def generate_text(
        self, sources: Sequence[str], max_new_tokens: int = 32, num_beams: int = 1
    ) -> list[str]:
        """Unconstrained decoding of free text (ratings, labels, explanations)."""
        enc = self._encode(sources, left=not self.encoder_decoder)
        settings = GenerationConfig(
            **self._generation_ids,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
        )
        # generate() fills every setting a call leaves unset from model.generation_config;
        # a checkpoint's defaults (repetition_penalty, min_new_tokens, ...) would change the
        # answers, so they are set aside for the call (and restored).
        saved, self.model.generation_config = self.model.generation_config, GenerationConfig()
        try:
            out = self.model.generate(**enc, generation_config=settings)
        finally:
            self.model.generation_config = saved
        if not self.encoder_decoder:
            out = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def _sum_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per row, the summed log-probability of the labels (-100 positions ignored)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * (labels != -100)).sum(-1).tolist()
