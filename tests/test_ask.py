"""``Assistant``: typed answers for every task family, from templates and free text."""

from __future__ import annotations

import json

import pytest

from p5rec.assistant import Assistant, NotFoundError, RequestError
from p5rec.cli import main
from p5rec.intent import IntentError


@pytest.fixture(scope="module")
def assistant(tiny_run) -> Assistant:
    return Assistant(tiny_run)


def _ids(assistant):
    user = sorted(assistant.ctx.sequences)[0]
    return user, sorted(assistant.ctx.index.codes)


def test_free_text_answers_of_every_family(assistant):
    user, items = _ids(assistant)
    cases = {
        f"what will {user} want next?": ("next_item", "items"),
        f"Which of {items[1]}, {items[2]} and {items[7]} would {user} pick?": (
            "candidate_ranking",
            "items",
        ),
        f"how would {user} rate {items[3]}?": ("rating", "rating"),
        f"Why might {user} enjoy {items[4]}?": ("explanation", "text"),
        "positive or negative? 'the cream dried my skin, never again'": ("sentiment", "label"),
        f"What type of product is {items[5]}?": ("category", "label"),
    }
    for text, (family, kind) in cases.items():
        ans = assistant.ask(text, k=3)
        assert (ans["task"], ans["kind"]) == (family, kind), text
        assert ans["detection"][family] == max(ans["detection"].values())
        assert ans["prompt"].startswith(text)
        if kind == "items":
            ranked = [r["item"] for r in ans["items"]]
            assert len(ranked) == len(set(ranked)) == 3
            assert all(i in assistant.ctx.corpus.items for i in ranked)
            assert all(r["title"] for r in ans["items"])
        elif kind == "rating":
            lo, hi = assistant.ctx.corpus.rating_range
            assert lo <= ans["rating"] <= hi
            assert sum(ans["distribution"].values()) == pytest.approx(1, abs=1e-3)
        elif kind == "label":
            assert ans["label"] in assistant.labels(family)
        else:
            assert isinstance(ans["text"], str)
    # the candidates are exactly the named items
    cand = assistant.ask(f"Which of {items[1]}, {items[2]} and {items[7]} would {user} pick?")
    assert {r["item"] for r in cand["items"]} == {items[1], items[2], items[7]}
    # the history: the user's, in the prompt the model reads
    nxt = assistant.ask(f"what will {user} want next?")
    assert assistant.ctx.history_text(assistant.history(user)) in nxt["prompt"]


def test_template_and_named_task(assistant):
    user, items = _ids(assistant)
    q = assistant.query("rating", user=user, item=items[0])
    template = "What star rating will"
    assert q.source.startswith(template) and not q.detection
    # --task overrides detection; items named in the prompt become the history
    ans = assistant.ask(f"I liked {items[0]} and {items[1]}", task="next_item", k=5)
    assert ans["task"] == "next_item" and "detection" not in ans
    assert assistant.ctx.item_text(items[1]) in ans["prompt"]
    recs = assistant.recommend(user, k=5, exclude_seen=True)
    assert not {r["item"] for r in recs} & set(assistant.history(user))


def test_rating_request_shows_the_rated_history_of_its_item(assistant, monkeypatch):
    """A request's {rated_history} is the user's training ratings: the latest ones, or with
    tasks.rated_history=similar those of the items most alike the one asked about (and with
    neighbours then the item's ratings by the users most alike the user)."""
    ctx = assistant.ctx
    user = max(ctx.train_rated, key=lambda u: len(ctx.train_rated[u]))
    item = sorted(ctx.index.codes)[5]
    recent = ctx.rated_text(ctx.train_rated[user])
    assert recent and recent in assistant.query("rating", user=user, item=item).source
    monkeypatch.setattr(ctx, "rated_mode", "similar")
    similar = ctx.rated_text(ctx.similar_rated(user, item))
    assert similar != recent
    assert similar in assistant.query("rating", user=user, item=item).source
    monkeypatch.setattr(ctx, "rated_mode", "neighbours")
    others = " ".join(f"{r:g}" for r in ctx.neighbour_ratings(user, item))
    source = assistant.query("rating", user=user, item=item).source
    assert others and f"{similar} ; like users: {others}" in source


def test_batched_answers_equal_single_answers(assistant):
    user, items = _ids(assistant)
    users = sorted(assistant.ctx.sequences)[:4]
    queries = [assistant.query("next_item", user=u, k=5) for u in users]
    queries += [assistant.query("rating", user=u, item=items[2]) for u in users]
    together = assistant.answer(queries)
    for q, ans in zip(queries, together):
        alone = assistant.answer([q])[0]
        if ans["kind"] == "items":
            assert [r["item"] for r in alone["items"]] == [r["item"] for r in ans["items"]]
        else:
            assert alone["rating"] == pytest.approx(ans["rating"], abs=1e-3)


def test_category_answers_are_decided_as_evaluated(tiny_run, tiny_data):
    """A category answer is the label evaluation predicts for the same prompt: the training
    path the model scores highest (weighed by eval.label_prior against the training
    frequencies or the model's mean answer), or with eval.multilabel the labels likelier
    than their training share, each with its probability."""
    import random

    from p5rec.config import load_config
    from p5rec.tasks import get_family
    from p5rec.tasks.category import labels_of

    family = get_family("category")
    weighed = ["eval.label_prior={category: 1}"]
    model_prior = ["eval.label_prior_from=model", *weighed]
    for overrides in ([], weighed, ["eval.multilabel=true"], model_prior):
        cfg = load_config(tiny_run / "config.yaml", overrides)
        assistant = Assistant(tiny_run, cfg=cfg)
        examples = family.examples(assistant.ctx, "test", random.Random(0))[:4]
        template = family.eval_template("seen")
        sources = [
            assistant.ctx.prompt("category", template.render(e.fields, e.target)[0])
            for e in examples
        ]
        options = cfg.eval.options()
        want = family.predict(assistant.engine, assistant.ctx, examples, sources, options)
        for e, label in zip(examples, want):
            ans = assistant.answer([assistant.query("category", item=e.meta["item"])])[0]
            assert ans["label"] == label
            if "multilabel=true" in " ".join(overrides):
                assert set(ans["labels"]) == labels_of(label)
                assert ans["probability"] <= min(ans["labels"].values()) + 1e-6
            else:
                assert label in assistant.labels("category")


def test_cli_ask_prints_each_label_of_a_multilabel_answer(tiny_run, capsys):
    item = sorted(Assistant(tiny_run).ctx.index.codes)[5]
    args = ["ask", f"What type of product is {item}?", "eval.multilabel=true"]
    args += ["--model", str(tiny_run)]
    assert main([*args, "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert ans["task"] == "category" and ans["labels"]
    assert main(args) == 0
    each = ", ".join(f"{lab} {p:.2f}" for lab, p in ans["labels"].items())
    assert f"category: {ans['label']}  (p = {ans['probability']:.2f}; each: {each}; " in (
        capsys.readouterr().out
    )


def test_bad_requests(assistant):
    user, items = _ids(assistant)
    with pytest.raises(NotFoundError, match="unknown user 'nobody' and no history"):
        assistant.query("next_item", user="nobody")
    with pytest.raises(NotFoundError, match="unknown item"):
        assistant.query("rating", user=user, item="no-such-item")
    with pytest.raises(NotFoundError, match=r"history: unknown item\(s\) 'x1'"):
        assistant.query("next_item", history=["x1", items[0]])
    with pytest.raises(RequestError, match="k must be between 1"):
        assistant.query("next_item", user=user, k=0)
    with pytest.raises(RequestError, match="rating needs an item"):
        assistant.query("rating", user=user)
    with pytest.raises(RequestError, match="at least 2 candidate"):
        assistant.query("candidate_ranking", user=user, candidates=[items[0]])
    with pytest.raises(RequestError, match="prompt is empty"):
        assistant.ask("  ")
    with pytest.raises(RequestError, match="unknown task"):
        assistant.query("poetry", user=user)
    with pytest.raises(IntentError, match="cannot tell"):
        assistant.ask("zzz qqq")
    # a new user is answered from the history they bring
    q = assistant.query("next_item", user="newcomer", history=items[:3])
    assert assistant.ctx.history_text(items[:3]) in q.source


def test_cli_ask(tiny_run, capsys):
    user = "user_0000"
    assert main(["ask", f"what will {user} want next?", "--model", str(tiny_run), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "task: next_item (detected" in out and out.count("log p") == 3
    args = ["ask", "how many stars?", "--model", str(tiny_run), "--user", user]
    assert main([*args, "--item", "item_0003", "--json"]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert ans["task"] == "rating" and "rating" in ans
    assert main(["ask", "zzz qqq", "--model", str(tiny_run)]) == 2
    assert "cannot tell which task" in capsys.readouterr().err
