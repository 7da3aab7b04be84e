"""Candidate ranking: choose the next item from the true item plus sampled negatives.

Evaluation scores every candidate exactly (log-probability of its code), so the ranking of
all candidates is complete; the prompt lists the candidates in a seeded random order.
"""

from __future__ import annotations

import random

from p5rec.baselines import Popularity
from p5rec.metrics import hit_rate_at_k, ndcg_at_k
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.next_item import train_items

KS_HIT = (1, 5, 10)
KS_NDCG = (5, 10)


def rank_candidates(candidates: list[str], scores: list[float]) -> list[str]:
    """Candidates by descending score; ties by item id, never by position (the target is
    listed first, so a stable sort on score alone would favour it)."""
    order = sorted(range(len(candidates)), key=lambda j: (-scores[j], candidates[j]))
    return [candidates[j] for j in order]


def _metrics(lists: list[list[str]], targets: list[str]) -> dict[str, float]:
    out = {f"hr@{k}": hit_rate_at_k(lists, targets, k) for k in KS_HIT}
    out.update({f"ndcg@{k}": ndcg_at_k(lists, targets, k) for k in KS_NDCG})
    return out


@register
class CandidateRanking(TaskFamily):
    name = "candidate_ranking"
    required = ("history", "candidates")
    optional = ("user",)
    item_target = True

    def _negatives(self, ctx: TaskContext, user: str, rng: random.Random) -> list[str]:
        # Training negatives avoid only the items training may know about: avoiding the
        # held-out items as well would tell the model, over epochs, which items they are.
        interacted = ctx.train_interacted[user]
        want = ctx.num_candidates - 1
        if len(ctx.catalogue) - len(interacted) < want:
            raise ValueError(f"user {user!r}: too few non-interacted items for {want} negatives")
        chosen: set[str] = set()
        while len(chosen) < want:
            item = ctx.catalogue[rng.randrange(len(ctx.catalogue))]
            if item not in interacted:
                chosen.add(item)
        return sorted(chosen)

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        out = []
        for ex in ctx.splits.next_item[split]:
            if split == "train":  # fresh negatives each time (rng varies per epoch)
                candidates = [ex.target, *self._negatives(ctx, ex.user, rng)]
            else:  # the fixed candidate sets of the split
                candidates = list(ctx.splits.candidates[split][ex.user])
            shown = candidates[:]
            random.Random(f"{ex.user}-{ex.position}").shuffle(shown)
            out.append(
                Example(
                    self.name,
                    {
                        "user": ctx.user_text(ex.user),
                        "history": ctx.history_text(ex.history),
                        "candidates": " ".join(ctx.item_text(c) for c in shown),
                    },
                    ctx.item_text(ex.target),
                    {
                        "user": ex.user,
                        "item": ex.target,
                        "position": ex.position,
                        "candidates": candidates,
                    },
                )
            )
        return out

    def predict(self, engine, ctx, examples, sources, options) -> list[list[str]]:
        lists = []
        bs = max(1, options["batch_size"] // 4)  # each source expands to all its candidates
        for start in range(0, len(sources), bs):
            batch = examples[start : start + bs]
            scores = engine.score_items(
                sources[start : start + bs], [e.meta["candidates"] for e in batch]
            )
            for ex, sc in zip(batch, scores):
                lists.append(rank_candidates(ex.meta["candidates"], sc))
        return lists

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return _metrics(predictions, [ex.meta["item"] for ex in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        pop = Popularity(train_items(ctx))
        lists = [
            rank_candidates(
                ex.meta["candidates"], [pop.count.get(c, 0) for c in ex.meta["candidates"]]
            )
            for ex in examples
        ]
        return pop.name, _metrics(lists, [ex.meta["item"] for ex in examples])
