import dataclasses
import math
import random

import pytest

from p5rec.tasks import FAMILIES, get_family
from p5rec.tasks.rating import format_rating, parse_rating


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_examples_render_with_every_template(tiny_ctx, family, split):
    fam = FAMILIES[family]
    examples = fam.examples(tiny_ctx, split, random.Random(0))
    assert examples, f"{family} has no {split} examples on the tiny corpus"
    for ex in examples[:5]:
        for t in fam.templates:
            source, target = t.render(ex.fields, ex.target)
            assert source and target == ex.target


def test_item_targets_are_item_codes(tiny_ctx):
    for name in ("next_item", "candidate_ranking"):
        for ex in get_family(name).examples(tiny_ctx, "test", random.Random(0)):
            assert ex.target == tiny_ctx.index.text(ex.meta["item"])


def test_candidate_examples(tiny_ctx):
    fam = get_family("candidate_ranking")
    for split in ("train", "test"):
        for ex in fam.examples(tiny_ctx, split, random.Random(0)):
            cands = ex.meta["candidates"]
            assert len(cands) == tiny_ctx.num_candidates == len(set(cands))
            assert cands[0] == ex.meta["item"]
            # evaluation negatives avoid everything the user had; training negatives only
            # what training may know (avoiding held-out items would reveal them)
            avoid = tiny_ctx.interacted if split != "train" else tiny_ctx.train_interacted
            assert not set(cands[1:]) & avoid[ex.meta["user"]]
            assert ex.fields["candidates"].count("<a_") == len(cands)


def test_rating_parsing():
    assert parse_rating("4") == 4.0
    assert parse_rating(" 3.5 stars") == 3.5
    assert parse_rating("no idea") is None
    assert format_rating(4.0) == "4" and format_rating(4.5) == "4.5"


def test_review_examples_never_use_heldout_events(tiny_ctx):
    held = set()
    for idx in tiny_ctx.corpus.event_indices().values():
        held.update(idx[-2:])
    for split in ("train", "valid", "test"):
        assert not held & set(tiny_ctx.splits.reviews[split])


def test_baselines_score_the_same_examples(tiny_ctx):
    options = {"ks": (5, 10), "remove_history": False}
    for name, fam in FAMILIES.items():
        examples = fam.examples(tiny_ctx, "test", random.Random(0))
        base_name, metrics = fam.baseline(tiny_ctx, examples, options)
        assert base_name and metrics
        assert all(isinstance(v, float) for v in metrics.values()), name


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown task family 'weather'; known"):
        get_family("weather")


class _PastFirstEngine:
    """Ranks each user's past items first, then the true target (for testing the filter)."""

    def __init__(self, ctx, examples):
        self.lists = [[*sorted(ctx.interacted_before(ex)), ex.meta["item"]] for ex in examples]
        self.calls = []

    def rank(self, sources, num_beams):
        self.calls.append(num_beams)
        out = [[(i, -float(r)) for r, i in enumerate(lst)] for lst in self.lists[: len(sources)]]
        self.lists = self.lists[len(sources) :]
        return out


def test_next_item_remove_history_drops_past_items(tiny_ctx):
    fam = get_family("next_item")
    examples = fam.examples(tiny_ctx, "test", random.Random(0))
    sources = ["x"] * len(examples)
    options = {"ks": (1, 5), "num_beams": 5, "batch_size": 8, "remove_history": False}
    past = [tiny_ctx.interacted_before(ex) for ex in examples]
    targets = [ex.meta["item"] for ex in examples]

    def evaluate(engine, options):
        predicted = fam.predict(engine, tiny_ctx, examples, sources, options)
        return fam.score(tiny_ctx, examples, predicted, options)

    kept = evaluate(_PastFirstEngine(tiny_ctx, examples), options)
    # past items fill the top of every list: a hit at 1 only where the target is the first
    assert kept["hr@1"] == pytest.approx(
        sum(min(p) == t for p, t in zip(past, targets)) / len(examples)
    )
    engine = _PastFirstEngine(tiny_ctx, examples)
    removed = evaluate(engine, {**options, "remove_history": True})
    # past items removed: the target is first, unless it is itself a past item (a repeat)
    fresh = sum(t not in p for p, t in zip(past, targets)) / len(examples)
    assert removed["hr@1"] == pytest.approx(fresh) and removed["ndcg@5"] == pytest.approx(fresh)
    assert fresh > 0.5
    assert min(engine.calls) > 5  # the beam was widened by the number of past items


def test_candidate_ties_never_favour_the_listed_first_target():
    from p5rec.tasks.candidate_ranking import rank_candidates

    assert rank_candidates(["t", "b", "a"], [0.0, 0.0, 0.0]) == ["a", "b", "t"]
    assert rank_candidates(["t", "b", "a"], [1.0, 0.0, 0.5]) == ["t", "a", "b"]


def test_balanced_label_decision_divides_by_the_training_prior():
    """Hand-computed: p(positive)=0.6, p(neutral)=0.3, p(negative)=0.1 with priors 0.8,
    0.1, 0.1 gives ratios 0.75, 3, 1: the balanced decision is neutral, the plain one
    positive; probabilities are the model's, normalised over the label set."""
    import math
    from collections import Counter

    from p5rec.prompts import Template
    from p5rec.tasks.labels import rank_labels

    class Fixed:
        def score_texts(self, sources, options):
            assert options == ["negative", "neutral", "positive"]  # sorted labels
            return [[math.log(0.1), math.log(0.3), math.log(0.6)] for _ in sources]

    counts = Counter(positive=8, neutral=1, negative=1)
    template = Template("t", "sentiment", "seen", "{review}", "{target}")
    balanced = rank_labels(Fixed(), ["s"], counts, template, 1.0)[0]
    assert [label for label, _ in balanced] == ["neutral", "negative", "positive"]
    assert dict(balanced)["positive"] == pytest.approx(0.6)
    plain = rank_labels(Fixed(), ["s"], counts, template, 0.0)[0]
    assert [label for label, _ in plain] == ["positive", "neutral", "negative"]


def test_multilabel_category_keeps_labels_likelier_than_their_training_share():
    """Hand-computed: training answers Comedy x2, "Action > Comedy", Drama give label shares
    Action 1/4, Comedy 3/4, Drama 1/4. Answer probabilities (Action > Comedy, Comedy,
    Drama) = (0.3, 0.5, 0.2) give label masses 0.3, 0.8, 0.2: Action and Comedy pass."""
    import math
    from collections import Counter

    from p5rec.prompts import Template
    from p5rec.tasks.base import Example
    from p5rec.tasks.category import LabelLift, lifted_labels

    class Family:
        def examples(self, ctx, split, rng):
            answers = ["Comedy", "Comedy", "Action > Comedy", "Drama"]
            return [Example("category", {}, a) for a in answers]

        def template_of(self, options):
            return Template("c", "category", options["template_split"], "{item_title}", "{target}")

    class Fixed:
        def score_texts(self, sources, options):
            assert options == ["Action > Comedy", "Comedy", "Drama"]
            table = {"a": (0.3, 0.5, 0.2), "b": (0.1, 0.6, 0.3), "c": (0.2, 0.6, 0.2)}
            return [[math.log(p) + 7.0 for p in table[s]] for s in sources]  # unnormalised

    options = {"template_split": "seen", "batch_size": 2}
    got = lifted_labels(Family(), Fixed(), None, ["a", "b", "c"], options)
    assert got == ["Action > Comedy", "Drama", "Comedy"]
    # the answer's labels all hold in "Action > Comedy" alone: p 0.3
    lift = LabelLift(Counter(e.target for e in Family().examples(None, "train", None)))
    answer, joint, labels = lift.decide([0.3, 0.5, 0.2])
    assert (answer, joint) == ("Action > Comedy", pytest.approx(0.3))
    assert labels == {"Action": pytest.approx(0.3), "Comedy": pytest.approx(0.8)}


def test_label_prior_weighs_the_training_frequencies_out_of_the_decision():
    """Hand-computed: p(A)=0.8, p(B)=0.2 with training shares 0.9 and 0.1. Weight 0: A;
    weight 1: log 0.2 - log 0.1 = 0.69 beats log 0.8 - log 0.9 = -0.12, so B; weight 0.5:
    log 0.8 - 0.5 log 0.9 = -0.17 beats log 0.2 - 0.5 log 0.1 = -0.46, so A. Unset, a
    family's default: sentiment (balanced) 1, category 0."""
    import math

    from p5rec.prompts import Template
    from p5rec.tasks.base import Example
    from p5rec.tasks.labels import closed_set_labels

    class Family:
        def __init__(self, name, balanced):
            self.name, self.balanced = name, balanced

        def examples(self, ctx, split, rng):
            return [Example(self.name, {}, a) for a in ["A"] * 9 + ["B"]]

        def template_of(self, options):
            return Template("c", self.name, "seen", "{item_title}", "{target}")

    class Fixed:
        def score_texts(self, sources, options):
            assert options == ["A", "B"]
            return [[math.log(0.8), math.log(0.2)] for _ in sources]

    class Ctx:
        balance_labels = False

    def decide(family, **prior):
        options = {"batch_size": 4, "label_prior": prior}
        return closed_set_labels(family, Fixed(), Ctx(), ["s"], options)[0]

    category, sentiment = Family("category", False), Family("sentiment", True)
    assert [decide(category, category=w) for w in (0, 0.5, 1)] == ["A", "A", "B"]
    assert decide(category) == "A" and decide(sentiment) == "B"
    assert decide(sentiment, sentiment=0) == "A"


def test_model_label_prior_is_the_mean_answer_on_validation_prompts():
    """Hand-computed: training answers A and B five times each; the two validation prompts
    score p(A) 0.95 and 0.85 (mean 0.9), the test prompt 0.85. Against the training shares
    (0.5 each) weight 1 answers A; against the model's prior (0.9, 0.1) log 0.85 - log 0.9 =
    -0.06 loses to log 0.15 - log 0.1 = 0.41, so B. The prior's prompts are the validation
    examples under the template evaluated, and the multi-label decision uses the same
    prior: masses 0.85 and 0.15 against shares 0.9 and 0.1 keep B only."""
    import math

    from p5rec.prompts import Template
    from p5rec.tasks.base import Example
    from p5rec.tasks.category import lifted_labels
    from p5rec.tasks.labels import closed_set_labels, label_prior

    class Family:
        name, balanced = "category", False

        def examples(self, ctx, split, rng):
            if split == "valid":
                return [Example(self.name, {"item_title": t}, "A") for t in ("v1", "v2")]
            return [Example(self.name, {"item_title": "t"}, a) for a in "AB" * 5]

        def template_of(self, options):
            return Template("c", self.name, "unseen", "Kind of {item_title}?", "{target}")

    class Fixed:
        scored: list[str] = []

        def score_texts(self, sources, options):
            assert options == ["A", "B"]
            self.scored += sources
            table = {"Kind of v1?": 0.95, "Kind of v2?": 0.85, "s": 0.85}
            return [[math.log(table[s]) - 3.0, math.log(1 - table[s]) - 3.0] for s in sources]

    class Ctx:
        balance_labels = False

        def prompt(self, family, text):
            return text

    family, engine = Family(), Fixed()
    options = {"batch_size": 1, "label_prior": {"category": 1}}
    template = family.template_of(options)
    assert label_prior(family, engine, Ctx(), template, options) == {"A": 0.5, "B": 0.5}
    assert engine.scored == []  # the training prior reads no model
    assert closed_set_labels(family, engine, Ctx(), ["s"], options) == ["A"]
    engine.scored.clear()
    model = {**options, "label_prior_from": "model"}
    prior = label_prior(family, engine, Ctx(), template, model)
    assert prior == {"A": pytest.approx(0.9), "B": pytest.approx(0.1)}
    assert engine.scored == ["Kind of v1?", "Kind of v2?"]
    assert closed_set_labels(family, engine, Ctx(), ["s"], model) == ["B"]
    multi = {"batch_size": 2, "label_prior_from": "model", "template_split": "unseen"}
    assert lifted_labels(family, engine, Ctx(), ["s"], multi) == ["B"]


def test_rating_prompts_show_only_other_training_ratings(tiny_ctx):
    """{rated_history}, {user_ratings} and {item_ratings} read the training review split
    only, and a training example never sees its own rating."""
    ctx = tiny_ctx
    events, train = ctx.corpus.interactions, set(ctx.splits.reviews["train"])

    def summary(others):
        ratings = [events[m].rating for m in others]
        if not ratings:
            return "no ratings yet"
        return f"average {sum(ratings) / len(ratings):.1f} of {len(ratings)} ratings"

    for split in ("train", "test"):
        for ex in get_family("rating").examples(ctx, split, random.Random(0)):
            n = ex.meta["event"]
            e = events[n]
            items = [m for m in train if events[m].item == e.item and m != n]
            users = [m for m in train if events[m].user == e.user and m != n]
            assert ex.fields["item_ratings"] == summary(items)
            assert ex.fields["user_ratings"] == summary(users)
            earlier = ctx.previous_rated[n]
            assert n not in earlier and set(earlier) <= train
            assert all(events[m].timestamp <= e.timestamp for m in earlier)


def test_similar_rated_history_ranks_the_users_items_by_co_raters(tiny_ctx):
    """tasks.rated_history=similar: {rated_history} shows the user's other training
    ratings of the items whose training raters overlap the prompt item's most (cosine),
    a training example's own user left out of its item's raters; a brute-force count."""
    ctx = dataclasses.replace(tiny_ctx, rated_mode="similar", max_history=3)
    events, train = ctx.corpus.interactions, set(ctx.splits.reviews["train"])
    raters: dict[str, set[str]] = {}
    for m in train:
        raters.setdefault(events[m].item, set()).add(events[m].user)

    def ranked(mine, item_raters):
        def cosine(m):
            other = raters[events[m].item]
            if not item_raters:
                return 0.0
            return len(item_raters & other) / math.sqrt(len(item_raters) * len(other))

        # sorted() is stable: among equal similarities the later rating stays first
        return sorted(mine, key=cosine, reverse=True)[:3]

    family, checked, left_out = get_family("rating"), 0, 0
    for split in ("train", "test"):
        for ex in family.examples(ctx, split, random.Random(0)):
            n = ex.meta["event"]
            e = events[n]
            mine = sorted((m for m in train if events[m].user == e.user and m != n), reverse=True)
            # the item's raters without event n: what a held-out rating of the pair sees
            held_out = {events[m].user for m in train if events[m].item == e.item and m != n}
            expected = ranked(mine, held_out)
            assert ctx.rated_events(e.user, e.item, n) == expected
            assert ex.fields["rated_history"] == (ctx.rated_text(expected) or "nothing yet")
            checked += len(expected) > 1
            left_out += expected != ranked(mine, set(raters.get(e.item, ())))
    assert checked > 10 and left_out > 0  # the leave-out changes some rankings
    user = events[ctx.splits.reviews["test"][0]].user
    latest = sorted((m for m in train if events[m].user == user), reverse=True)[:3]
    assert ctx.rated_events(user, "no such item") == latest
    assert ctx.rated_events("no such user", "no such item") == []


def test_neighbour_ratings_rank_the_items_raters_by_co_rated_items(tiny_ctx):
    """tasks.rated_history=neighbours: {rated_history} shows the similar-item ratings, then
    the prompt item's training ratings by the users whose rated items overlap the user's
    most (cosine; ties latest first), never the user's own, and a training example's own
    rating left out of the user's items; a brute-force count."""
    ctx = dataclasses.replace(tiny_ctx, rated_mode="neighbours", max_history=3)
    events, train = ctx.corpus.interactions, set(ctx.splits.reviews["train"])
    items_of: dict[str, set[str]] = {}
    for m in train:
        items_of.setdefault(events[m].user, set()).add(events[m].item)

    family, checked = get_family("rating"), 0
    for split in ("train", "test"):
        for ex in family.examples(ctx, split, random.Random(0)):
            n = ex.meta["event"]
            e = events[n]
            mine = {events[m].item for m in train if events[m].user == e.user and m != n}
            others = sorted(
                (m for m in train if events[m].item == e.item and events[m].user != e.user),
                reverse=True,
            )

            def cosine(m, mine=mine):
                theirs = items_of[events[m].user]
                return len(mine & theirs) / math.sqrt(max(len(mine), 1) * len(theirs))

            expected = [events[m].rating for m in sorted(others, key=cosine, reverse=True)[:3]]
            assert ctx.neighbour_ratings(e.user, e.item, n) == pytest.approx(expected)
            text = ctx.rated_text(ctx.similar_rated(e.user, e.item, n))
            if expected:
                text = f"{text} ; like users: {' '.join(f'{r:g}' for r in expected)}".strip()
            assert ex.fields["rated_history"] == (text or "nothing yet")
            checked += len(set(expected)) > 1
    assert checked > 10
    assert ctx.neighbour_ratings("no such user", "no such item") == []


def test_rating_summary_hand_computed(tiny_ctx, monkeypatch):
    ctx = tiny_ctx
    monkeypatch.setitem(ctx.rating_totals["item"], "hand", (9.0, 2))  # ratings 4 and 5
    assert ctx.rating_summary("item", "hand") == "average 4.5 of 2 ratings"
    assert ctx.rating_summary("item", "no such item") == "no ratings yet"
    n = ctx.splits.reviews["train"][0]
    e = ctx.corpus.interactions[n]
    total, count = ctx.rating_totals["user"][e.user]
    alone = f"average {(total - e.rating) / (count - 1):.1f}" if count > 1 else "no ratings"
    assert ctx.rating_summary("user", e.user, n).startswith(alone)


def test_rating_count_tokens_bucket_counts():
    from p5rec.tasks.base import count_token, mean_token

    assert [count_token(c) for c in (1, 4, 5, 6, 7, 9, 10, 199, 200, 5000)] == [
        "<ratings_1>",
        "<ratings_4>",
        "<ratings_5-6>",
        "<ratings_5-6>",
        "<ratings_7-9>",
        "<ratings_7-9>",
        "<ratings_10-14>",
        "<ratings_100-199>",
        "<ratings_200+>",
        "<ratings_200+>",
    ]
    assert (mean_token(4.5), mean_token(4.0), mean_token(11 / 3)) == (
        "<avg_4.5>",
        "<avg_4.0>",
        "<avg_3.7>",
    )
    with pytest.raises(ValueError, match="count >= 1"):
        count_token(0)


def test_rating_summary_as_tokens(tiny_ctx, monkeypatch):
    """tasks.rating_text=token: the mean and the count are one token each, every one of
    them in ``number_tokens`` (a tenth of a star across the rating range, the buckets)."""
    ctx = tiny_ctx
    assert ctx.number_tokens == []  # digits: nothing to add
    monkeypatch.setattr(ctx, "rating_mode", "token")
    monkeypatch.setitem(ctx.rating_totals["item"], "hand", (9.0, 2))  # ratings 4 and 5
    assert ctx.rating_summary("item", "hand") == "average <avg_4.5> of <ratings_2> ratings"
    assert ctx.rating_summary("item", "no such item") == "no ratings yet"
    tokens = ctx.__class__.number_tokens.func(ctx)
    assert len(tokens) == len(set(tokens)) == 41 + 12  # 1.0 .. 5.0, twelve buckets
    assert tokens[0] == "<avg_1.0>" and "<avg_5.0>" in tokens and "<ratings_200+>" in tokens
    for n in ctx.splits.reviews["train"]:
        e = ctx.corpus.interactions[n]
        for kind, key in (("user", e.user), ("item", e.item)):
            text = ctx.rating_summary(kind, key, n)
            if text != "no ratings yet":
                _, mean, _, count, _ = text.split()
                assert mean in tokens and count in tokens


def test_long_reviews_keep_their_head_and_tail(tiny_ctx, monkeypatch):
    ctx = tiny_ctx
    words = [f"w{i}" for i in range(10)]
    monkeypatch.setattr(ctx, "max_review_words", 5)
    assert ctx.review_text(" ".join(words)) == "w0 w1 w2 ... w8 w9"
    assert ctx.review_text("w0  w1\nw2") == "w0  w1\nw2"  # short enough: untouched
    assert ctx.review_text(None) == ""
    monkeypatch.setattr(ctx, "max_review_words", 0)
    assert ctx.review_text(" ".join(words)) == " ".join(words)
    # what every prompt shows
    n = next(
        n
        for n in ctx.splits.reviews["train"]
        if len((ctx.corpus.interactions[n].review or "").split()) > 1
    )
    monkeypatch.setattr(ctx, "max_review_words", 1)
    first = ctx.corpus.interactions[n].review.split()[0]
    assert ctx.event_fields(n)["review"] == f"{first} ..."


def test_generic_user_text_hides_user_ids_in_every_family(tiny_ctx, monkeypatch):
    """tasks.user_text=generic: every family's {user} is "the user"; what scoring and
    history windows read (meta) keeps the real user."""
    from p5rec.tasks.base import GENERIC_USER

    ctx = tiny_ctx
    for name, fam in FAMILIES.items():
        ex = fam.examples(ctx, "test", random.Random(0))[0]
        assert ex.fields.get("user", "x") != GENERIC_USER, name
    monkeypatch.setattr(ctx, "user_mode", "generic")
    for name, fam in FAMILIES.items():
        if "user" not in (*fam.required, *fam.optional):
            continue
        for ex in fam.examples(ctx, "test", random.Random(0))[:5]:
            assert ex.fields["user"] == GENERIC_USER, name
            if "user" in ex.meta:
                assert ex.meta["user"] in ctx.sequences


def test_family_tokens_prefix_prompts_only_when_on(tiny_cfg, tiny_data):
    """tasks.family_tokens: a prompt is its rendered source after the family's token, and
    the context's added tokens include one token per known family; off, neither."""
    from p5rec.config import FAMILIES as NAMES
    from p5rec.training import build_context

    plain = build_context(tiny_cfg, tiny_data)
    assert plain.prompt("rating", "Stars?") == "Stars?" and plain.prompt_tokens == []
    tasks = dataclasses.replace(tiny_cfg.tasks, family_tokens=True)
    ctx = build_context(dataclasses.replace(tiny_cfg, tasks=tasks), tiny_data)
    assert ctx.prompt("rating", "Stars?") == "<task_rating> Stars?"
    assert ctx.prompt_tokens == [f"<task_{name}>" for name in NAMES]
    assert ctx.added_tokens[-len(NAMES) :] == ctx.prompt_tokens


def test_user_tokens_render_each_training_user_as_its_own_token(tiny_cfg, tiny_data):
    """tasks.user_text=token: every family's {user} is the user's token; only users with
    training data have one, and any other user is "the user"."""
    from p5rec.tasks.base import GENERIC_USER, user_token
    from p5rec.training import build_context

    ctx = build_context(
        dataclasses.replace(tiny_cfg, tasks=dataclasses.replace(tiny_cfg.tasks, user_text="token")),
        tiny_data,
    )
    assert ctx.user_mode == "token"
    assert set(ctx.user_tokens) == set(ctx.sequences)  # every synthetic user trains
    first = min(ctx.user_tokens)
    assert ctx.user_tokens[first] == f"<user_{first}>"
    for name, fam in FAMILIES.items():
        if "user" not in (*fam.required, *fam.optional):
            continue
        for ex in fam.examples(ctx, "test", random.Random(0))[:5]:
            user = ex.meta.get("user") or ctx.corpus.interactions[ex.meta["event"]].user
            assert ex.fields["user"] == user_token(user) == ctx.user_tokens[user], name
    assert ctx.user_text("someone new") == GENERIC_USER
    with pytest.raises(ValueError, match="'a b'.*whitespace"):
        user_token("a b")
