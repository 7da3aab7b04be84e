"""Inference: constrained beam search over the item trie, candidate scoring, free text.

Every item the engine returns is a real catalogue item and no list repeats an item: beams
are constrained to the trie of item codes (a beam that left the trie may only end, never
produce a code), and decoded codes are mapped back through the item index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from p5rec.indexing import ItemIndex, PrefixTrie

__all__ = ["Engine", "TrieConstraint"]


class TrieConstraint(LogitsProcessor):
    """Mask every next token the trie does not allow after the generated prefix.

    ``start`` is how many leading positions of ``input_ids`` are not part of the code
    (1 for an encoder-decoder: the decoder start token). The allowed set is never empty:
    a prefix outside the trie (a beam already at -inf) may only emit the end token.
    """

    def __init__(self, trie: PrefixTrie, start: int = 1) -> None:
        self.trie = trie
        self.start = start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (batch * beams, cur_len); scores: (batch * beams, vocab)
        mask = torch.full_like(scores, float("-inf"))
        for row, prefix in enumerate(input_ids[:, self.start :].tolist()):
            allowed = self.trie.allowed(prefix) or [self.trie.end_id]
            mask[row, allowed] = 0.0
        return scores + mask


class Engine:
    """A trained model with its tokenizer and item index, ready to predict."""

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
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model.to(self.device)
        self.eos = tokenizer.eos_token_id
        self.item_ids: dict[str, list[int]] = {
            item: tokenizer.convert_tokens_to_ids(list(code)) for item, code in index.codes.items()
        }
        unknown = [i for i, ids in self.item_ids.items() if tokenizer.unk_token_id in ids]
        if unknown:
            raise ValueError(f"item tokens missing from the tokenizer (e.g. item {unknown[0]!r})")
        self.by_ids = {tuple(ids): item for item, ids in self.item_ids.items()}
        self.trie = PrefixTrie(list(self.item_ids.values()), end_id=self.eos)

    def _encode(self, sources: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(sources),
            padding=True,
            truncation=True,
            max_length=self.max_source_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def item_of_ids(self, ids: Sequence[int]) -> str | None:
        """The item a generated id sequence (without the start token) spells, if any."""
        code = []
        for t in ids:
            if t == self.eos:
                break
            code.append(int(t))
        return self.by_ids.get(tuple(code))

    @torch.no_grad()
    def rank(self, sources: Sequence[str], num_beams: int) -> list[list[tuple[str, float]]]:
        """Constrained beam search: for each source, up to ``num_beams`` (item, log-prob).

        Items are real and distinct, best first.
        """
        if num_beams < 1:
            raise ValueError("num_beams must be >= 1")
        if len(self.item_ids) == 1:  # nothing to search: score the one item
            (item,) = self.item_ids
            return [[(item, s[0])] for s in self.score_items(sources, [[item]] * len(sources))]
        wanted = min(num_beams, len(self.item_ids))
        num_beams = max(2, wanted)  # beam search (not greedy) also for k = 1: it gives scores
        out = self.model.generate(
            **self._encode(sources),
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=self.trie.max_length,
            logits_processor=LogitsProcessorList([TrieConstraint(self.trie)]),
            do_sample=False,
            length_penalty=0.0,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
        )
        seqs = out.sequences[:, 1:].tolist()  # drop the decoder start token
        scores = out.sequences_scores.tolist()
        results = []
        for b in range(len(sources)):
            seen: set[str] = set()
            ranked = []
            for r in range(b * num_beams, (b + 1) * num_beams):
                item = self.item_of_ids(seqs[r])
                if item is None or item in seen or scores[r] == float("-inf"):
                    continue
                seen.add(item)
                ranked.append((item, scores[r]))
            results.append(ranked[:wanted])
        return results

    @torch.no_grad()
    def _score(
        self, sources: Sequence[str], targets: Sequence[Sequence[list[int]]]
    ) -> list[list[float]]:
        """Sum of token log-probabilities of each target id sequence given its source."""
        enc = self._encode(sources)
        hidden = self.model.get_encoder()(**enc).last_hidden_state  # (batch, src_len, d_model)
        results = []
        for b, options in enumerate(targets):
            width = max(len(t) for t in options)
            labels = torch.tensor(
                [t + [-100] * (width - len(t)) for t in options], device=self.device
            )  # (n_options, width), -100 past each option's end
            n = labels.shape[0]
            logits = self.model(
                encoder_outputs=(hidden[b : b + 1].expand(n, -1, -1),),
                attention_mask=enc["attention_mask"][b : b + 1].expand(n, -1),
                labels=labels,
            ).logits  # (n_options, width, vocab)
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            results.append((picked * (labels != -100)).sum(-1).tolist())
        return results

    def score_items(
        self, sources: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Log-probability of each candidate item's code (EOS included) given its source."""
        return self._score(
            sources, [[[*self.item_ids[c], self.eos] for c in cands] for cands in candidates]
        )

    def score_texts(self, sources: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """Log-probability of each option text (as a whole target, EOS included) per source."""
        ids = [self.tokenizer(o).input_ids for o in options]  # ends with EOS
        return self._score(sources, [ids] * len(sources))

    @torch.no_grad()
    def generate_text(
        self, sources: Sequence[str], max_new_tokens: int = 32, num_beams: int = 1
    ) -> list[str]:
        """Unconstrained decoding of free text (ratings, labels, explanations)."""
        out = self.model.generate(
            **self._encode(sources),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
        )
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
