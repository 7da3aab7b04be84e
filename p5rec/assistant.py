"""A trained run answering requests of every task family: what ``recommend``, ``ask`` and
``serve`` call.

A request becomes a ``Query`` (``Assistant.query``): the family, the source text the model
reads, and what shapes the answer (k, items to leave out, candidates). The source is the
family's evaluation template filled with the request's fields, or, for a free-text prompt,
the prompt followed by the fields it needs ("History: ...", "Item: ..."). ``answer`` runs a
list of queries in as few model calls as their families allow (the service's micro-batches)
and returns one typed answer per query:

* ``items``: a ranked list of real catalogue items with titles and log-probabilities
  (next item: constrained beam search over all items; candidate ranking: every candidate's
  exact log-probability);
* ``rating``: the expectation over the training rating values' probabilities, with the
  distribution (with ``eval.calibrate_rating``, the expectation through the line training
  fitted on the validation split, as evaluation scores it; the raw one as ``expected``);
* ``label``: a label of the family's training label set, with alternatives and the
  model's probabilities (sentiment, category), decided as evaluation decides it (sentiment:
  class-balanced; ``eval.label_prior``), so the answer is always a real label; multi-label
  categories (``eval.multilabel``) answer the labels likelier than their prior share,
  each a training label, with each one's probability (``labels``) and that of them all;
* ``text``: a generated sentence (explanation).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from p5rec.tasks import explanation, get_family, rating
from p5rec.tasks.base import GENERIC_USER
from p5rec.tasks.category import LabelLift
from p5rec.tasks.labels import label_prior, prior_weight, rank_labels, train_label_counts
from p5rec.tasks.rating import format_rating

__all__ = ["Assistant", "NotFoundError", "Query", "RequestError"]

# How a free-text prompt is followed by the fields its family reads.
_CONTEXT = (
    ("user", "User: {}."),
    ("history", "History: {}."),
    ("item", "Item: {}."),
    ("candidates", "Candidates: {}."),
    ("review", "Review: {}"),
)
ANSWER_KIND = {
    "next_item": "items",
    "candidate_ranking": "items",
    "rating": "rating",
    "sentiment": "label",
    "category": "label",
    "explanation": "text",
}


class RequestError(ValueError):
    """A request the assistant cannot answer as given; ``status`` is its HTTP status."""

    status = 422


class NotFoundError(RequestError):
    """An unknown user (without a history to answer from) or an unknown item."""

    status = 404


@dataclass(frozen=True)
class Query:
    """One request, ready for the model."""

    family: str
    source: str
    k: int = 10
    exclude: frozenset[str] = frozenset()
    candidates: tuple[str, ...] = ()
    detection: dict[str, float] = field(default_factory=dict, compare=False)


class _KnownUsers:
    """``user in _KnownUsers(assistant)``: a dataset user or one with stored feedback."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def __contains__(self, user: object) -> bool:
        a = self.assistant
        return user in a.ctx.sequences or (a.store is not None and a.store.has_user(str(user)))


class Assistant:
    """A trained run (or export) with its dataset: item titles, users' histories, and the
    model behind an ``Engine``. Not thread-safe: one caller at a time runs the model."""

    def __init__(self, run_dir: str | Path, cfg=None, device: str | None = None) -> None:
        import torch

        from p5rec.config import load_config
        from p5rec.generation import Engine
        from p5rec.modeling import load_trained
        from p5rec.training import build_context, check_context_tokens

        run_dir = Path(run_dir)
        self.run_dir = run_dir
        self.cfg = cfg or load_config(run_dir / "config.yaml")
        model, tokenizer, index = load_trained(run_dir)
        info_path = run_dir / "run.json"
        run_info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        data_dir = self.cfg.data.path or run_info.get("data_dir")
        if not data_dir:
            raise RequestError(f"{run_dir}: no dataset to serve from (set data.path=DIR)")
        self.ctx = build_context(self.cfg, data_dir, index)
        # eval.calibrate_rating: training fitted the expected rating's line on validation
        self.rating_line: dict | None = run_info.get("rating_calibration")
        check_context_tokens(self.ctx, tokenizer, str(run_dir))
        self.families = list(self.cfg.tasks.families)
        self.store = None  # a serving.HistoryStore: feedback extends histories
        # per label family, the prior its answers are decided against (label_prior; with
        # eval.label_prior_from=model the model's mean answer: training stored it in
        # run.json, else it is computed at the family's first question)
        self._label_priors: dict[str, dict[str, float]] = {}
        if self.cfg.eval.label_prior_from == "model":
            for name, stored in run_info.get("label_priors", {}).items():
                if stored["template"] == get_family(name).eval_template("seen").id:
                    self._label_priors[name] = stored["prior"]
        self.engine = Engine(
            model,
            tokenizer,
            index,
            self.cfg.train.max_source_length,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        )

    # ----------------------------------------------------------------- look-ups

    @property
    def catalogue_size(self) -> int:
        return len(self.ctx.index.codes)

    def history(self, user: str) -> list[str] | None:
        """The user's items: the dataset's (time order), then those of stored feedback;
        None for a user known to neither."""
        known = self.ctx.sequences.get(user)
        extra = self.store.items(user) if self.store is not None else []
        if known is None and not extra:
            return None
        return [*(known or ()), *extra]

    def item(self, item: str) -> dict[str, Any]:
        """What is known of a catalogue item; ``NotFoundError`` if it is not one."""
        if item not in self.ctx.index.codes:
            raise NotFoundError(f"unknown item {item!r} (not in the catalogue)")
        it = self.ctx.corpus.items[item]
        return {
            "item": item,
            "title": it.title,
            "categories": list(it.categories),
            "code": self.ctx.item_text(item),
        }

    def check_items(self, items: Sequence[str], what: str) -> None:
        unknown = [i for i in items if i not in self.ctx.index.codes]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise NotFoundError(f"{what}: unknown item(s) {shown}{more}")

    @cached_property
    def detector(self):
        from p5rec.intent import TaskDetector

        return TaskDetector(list(ANSWER_KIND))

    @cached_property
    def _rating_values(self) -> list[float]:
        return rating.train_rating_values(self.ctx)

    def labels(self, family: str) -> list[str]:
        """The closed label set of a label family: its training targets."""
        return sorted(self._labels[family])

    @cached_property
    def _labels(self) -> dict[str, Counter]:
        return {
            name: train_label_counts(get_family(name), self.ctx)
            for name in ("sentiment", "category")
            if name in self.families
        }

    # ----------------------------------------------------------------- requests

    def query(
        self,
        family: str | None = None,
        *,
        text: str | None = None,
        user: str | None = None,
        history: Sequence[str] | None = None,
        item: str | None = None,
        candidates: Sequence[str] = (),
        review: str | None = None,
        k: int = 10,
        exclude_seen: bool = False,
    ) -> Query:
        """Check a request and build its ``Query``.

        ``family`` None means: detect it from ``text`` (``p5rec.intent``). ``text`` makes the
        source a free-text prompt; without it the family's evaluation template is filled.
        Items named in ``text`` fill ``item`` / ``candidates`` when those are not given, and
        a user named in it fills ``user``. ``history`` (explicit) wins over the user's known
        history; an unknown user with no history is ``NotFoundError`` where the family needs
        a history.
        """
        from p5rec.intent import find_mentions, neutral_text

        detection: dict[str, float] = {}
        if text is not None:
            if not text.strip():
                raise RequestError("the prompt is empty")
            mentions = find_mentions(text, _KnownUsers(self), self.ctx.index.codes)
            user = user if user is not None else mentions.user
            named = list(mentions.items)
            if family is None:
                found = self.detector.detect(neutral_text(text, mentions))
                family, detection = found.family, found.scores
            if family == "candidate_ranking" and not candidates:
                candidates = named
            elif family == "next_item" and history is None and user is None and named:
                history = named  # "I liked items 3 and 7; what next?"
            elif item is None and named and family != "next_item":
                item = named[0]
        if family is None:
            raise RequestError("name the task, or give a prompt to detect it from")
        if family not in ANSWER_KIND:
            raise RequestError(f"unknown task {family!r}; known: {', '.join(ANSWER_KIND)}")
        if family not in self.families:
            raise RequestError(
                f"this model was not trained on {family} (its tasks: {', '.join(self.families)})"
            )
        if not 1 <= k <= self.catalogue_size:
            raise RequestError(
                f"k must be between 1 and the catalogue size {self.catalogue_size}, got {k}"
            )
        if history is not None:
            history = list(history)
            self.check_items(history, "history")
        elif user is not None:
            history = self.history(user)
        fields = self._fields(family, user, history, item, candidates, review, text)
        if text is not None:
            source = self._free_source(family, text, fields)
        else:
            source = get_family(family).eval_template("seen").render(fields, "")[0]
        source = self.ctx.prompt(family, source)
        excluded = frozenset(history or ()) if exclude_seen else frozenset()
        if user is not None and self.store is not None:
            excluded |= self.store.dismissed(user)
        if family == "candidate_ranking":
            k = min(k, len(candidates))
        return Query(family, source, k, excluded, tuple(candidates), detection)

    def _fields(self, family, user, history, item, candidates, review, text) -> dict[str, str]:
        """Placeholder values of a request; the errors say which field is missing."""
        needs_history = family in ("next_item", "candidate_ranking")
        if needs_history and not history:
            if user is not None and history is None:
                raise NotFoundError(
                    f"unknown user {user!r} and no history given (send the user's items as "
                    "'history' to answer for a new user)"
                )
            raise RequestError(f"{family} needs a user with a history, or a history")
        fields = {
            "user": self.ctx.user_text(user) if user is not None else GENERIC_USER,
            "history": self.ctx.history_text(history) if history else "nothing yet",
            "rated_history": self.ctx.rated_history_text(user, item) or "nothing yet",
            "user_ratings": self.ctx.rating_summary("user", user),
        }
        needs_item = family in ("rating", "explanation") or (family == "category" and not text)
        if needs_item and item is None:
            raise RequestError(f"{family} needs an item (an item id of the catalogue)")
        if item is not None:
            self.check_items([item], "item")
            fields["item"] = self.ctx.item_text(item)
            fields["item_title"] = self.ctx.title(item)
            fields["item_ratings"] = self.ctx.rating_summary("item", item)
        if family == "candidate_ranking":
            if len(candidates) < 2:
                raise RequestError("candidate_ranking needs at least 2 candidate items")
            self.check_items(candidates, "candidates")
            fields["candidates"] = ", ".join(self.ctx.item_text(c) for c in candidates)
        if family == "sentiment" and text is None and not (review or "").strip():
            raise RequestError("sentiment needs the review text")
        fields["review"] = self.ctx.review_text(review)
        return fields

    def _free_source(self, family: str, text: str, fields: dict[str, str]) -> str:
        fam = get_family(family)
        allowed = set(fam.required) | set(fam.optional)
        text = text.strip()
        parts = [text if text[-1] in ".?!:;" else text + "."]
        for name, fmt in _CONTEXT:
            if name not in allowed or name not in fields or fields[name] in ("", "nothing yet"):
                continue
            if name == "user" and fields[name] == GENERIC_USER:
                continue
            value = fields[name]
            if name == "item" and fields.get("item_title"):
                value = f"{value} ({fields['item_title']})"
            parts.append(fmt.format(value))
        return " ".join(parts)

    # ----------------------------------------------------------------- answers

    def _beams(self, q: Query) -> int:
        return min(self.catalogue_size, max(self.cfg.eval.num_beams, q.k + len(q.exclude)))

    def answer(self, queries: Sequence[Query]) -> list[dict[str, Any]]:
        """One typed answer per query, in order; queries that can share a model call do."""
        groups: dict[tuple, list[int]] = {}
        for n, q in enumerate(queries):
            key = (q.family, self._beams(q) if q.family == "next_item" else 0)
            groups.setdefault(key, []).append(n)
        out: list[dict[str, Any]] = [{} for _ in queries]
        for (family, beams), members in groups.items():
            batch = [queries[n] for n in members]
            sources = [q.source for q in batch]
            if family == "next_item":
                results = self._next_items(batch, sources, beams)
            elif family == "candidate_ranking":
                results = self._candidates(batch, sources)
            elif family == "rating":
                results = self._ratings(sources)
            elif family == "explanation":
                results = self._texts(family, sources)
            else:
                results = self._labels_of(family, sources)
            for n, q, res in zip(members, batch, results):
                out[n] = {"task": family, "kind": ANSWER_KIND[family], **res, "prompt": q.source}
                if q.detection:
                    out[n]["detection"] = {f: round(s, 3) for f, s in q.detection.items()}
        return out

    def _ranked(self, scored: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
        return [
            {"rank": r + 1, "item": i, "title": self.ctx.title(i), "log_prob": round(s, 4)}
            for r, (i, s) in enumerate(scored)
        ]

    def _next_items(self, batch, sources, beams) -> list[dict]:
        lists = self.engine.rank(sources, beams)
        return [
            {"items": self._ranked([(i, s) for i, s in ranked if i not in q.exclude][: q.k])}
            for q, ranked in zip(batch, lists)
        ]

    def _candidates(self, batch, sources) -> list[dict]:
        scores = self.engine.score_items(sources, [q.candidates for q in batch])
        out = []
        for q, row in zip(batch, scores):
            order = sorted(zip(q.candidates, row), key=lambda cs: (-cs[1], cs[0]))
            out.append(
                {"items": self._ranked([cs for cs in order if cs[0] not in q.exclude][: q.k])}
            )
        return out

    def _ratings(self, sources) -> list[dict]:
        template = get_family("rating").eval_template("seen")
        values, line = self._rating_values, self.rating_line
        lo, hi = self.ctx.corpus.rating_range
        out = []
        for probs in rating.rating_distributions(self.engine, sources, values, template):
            expected = rating.expectation(probs, values)
            answer = {
                "rating": round(rating.on_line(line, expected, lo, hi) if line else expected, 4),
                "distribution": {format_rating(v): round(p, 4) for v, p in zip(values, probs)},
            }
            if line:
                answer["expected"] = round(expected, 4)
            out.append(answer)
        return out

    def _labels_of(self, family: str, sources) -> list[dict]:
        fam = get_family(family)
        counts = self._labels[family]
        if not counts:
            raise RequestError(f"{family}: the training split has no labels to choose from")
        template = fam.eval_template("seen")
        options = self.cfg.eval.options()
        if family not in self._label_priors:
            self._label_priors[family] = label_prior(fam, self.engine, self.ctx, template, options)
        prior = self._label_priors[family]
        out = []
        weight = prior_weight(fam, self.ctx, options)
        lift = LabelLift(prior) if family == "category" and self.cfg.eval.multilabel else None
        for ranked in rank_labels(self.engine, sources, prior, template, weight):
            top = [{"label": label, "probability": round(p, 4)} for label, p in ranked[:3]]
            if lift is None:
                out.append({**top[0], "alternatives": top[1:]})
                continue
            probs = dict(ranked)
            label, joint, labels = lift.decide([probs[a] for a in lift.answers])
            out.append(
                {
                    "label": label,
                    "probability": round(joint, 4),
                    "labels": {lab: round(p, 4) for lab, p in labels.items()},
                    "alternatives": [t for t in top if t["label"] != label][:2],
                }
            )
        return out

    def _texts(self, family: str, sources) -> list[dict]:
        template = get_family(family).eval_template("seen")
        return [{"text": t} for t in explanation.generate(self.engine, sources, template)]

    # ----------------------------------------------------------------- conveniences

    def recommend(self, user: str, k: int = 10, exclude_seen: bool = False) -> list[dict]:
        """Top-``k`` next items for a known user given their whole known history."""
        if user not in self.ctx.sequences:
            known = sorted(self.ctx.sequences)
            raise NotFoundError(
                f"unknown user {user!r} ({len(known)} users; e.g. {', '.join(known[:3])})"
            )
        q = self.query("next_item", user=user, k=k, exclude_seen=exclude_seen)
        return self.answer([q])[0]["items"]

    def ask(self, text: str, task: str | None = None, **request) -> dict[str, Any]:
        """Answer a free-text prompt (task detected unless ``task`` is given)."""
        return self.answer([self.query(task, text=text, **request)])[0]
