import math

import pytest
import torch
import torch.nn.functional as F

from p5rec.baselines import (
    BiasedMF,
    BiasedMFConfig,
    GlobalMean,
    Majority,
    NearestReview,
    Popularity,
    SASRec,
    SASRecConfig,
    TextClassifier,
)
from p5rec.baselines.sasrec import _FullSoftmaxCE


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one thread is faster and timing-stable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_popularity_order_ties_and_exclude():
    pop = Popularity(["b", "a", "b", "c", "a", "b"])
    assert pop.top(3) == ["b", "a", "c"]
    assert pop.top(2, exclude={"b"}) == ["a", "c"]
    assert pop.top(10) == ["b", "a", "c"]  # shorter than k: only real items
    assert Popularity(["z", "y"]).top(2) == ["y", "z"]  # ties by id


def test_global_mean_and_majority():
    assert GlobalMean([1, 2, 3, 5]).predict(2) == [2.75, 2.75]
    with pytest.raises(ValueError):
        GlobalMean([])
    assert Majority(["x", "y", "y", "x", "z"]).label == "x"  # tie between x and y: by text
    assert Majority(["pos", "neg", "pos"]).predict(2) == ["pos", "pos"]


# --------------------------------------------------------------------------- SASRec

ITEMS = [f"i{n}" for n in range(10)]


def cycle_data(n_users=30, length=12):
    """Every user walks the cycle i0 -> i1 -> ... -> i9 -> i0 from a different start."""
    seqs = [[ITEMS[(u + t) % 10] for t in range(length)] for u in range(n_users)]
    nxt = {ITEMS[n]: ITEMS[(n + 1) % 10] for n in range(10)}
    return seqs, nxt


def small_cfg(**kw):
    base = dict(hidden=32, ffn=64, epochs=25, batch_size=8, lr=3e-3, progress=False, seed=3)
    return SASRecConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cycle_ce():
    seqs, nxt = cycle_data()
    valid = [(s, nxt[s[-1]]) for s in seqs[:10]]
    model = SASRec(small_cfg(loss="ce", dropout=0.1, epochs=40), items=[*ITEMS, "never_seen"])
    return model.fit(seqs, valid), seqs, nxt


def test_sasrec_ce_learns_a_cycle(cycle_ce):
    model, _, nxt = cycle_ce
    histories = [[ITEMS[(s + t) % 10] for t in range(5)] for s in range(10)]  # unseen prefixes
    ranked = model.rank(histories, 2)
    assert sum(r[0] == nxt[h[-1]] for h, r in zip(histories, ranked)) >= 9
    assert all(nxt[h[-1]] in r for h, r in zip(histories, ranked))
    assert model.best_valid_ndcg10_ > 0.95
    assert all("valid_ndcg10" in row for row in model.history_)


def test_sasrec_rank_catalogue_exclude_and_score(cycle_ce):
    model, seqs, nxt = cycle_ce
    assert model.items == sorted([*ITEMS, "never_seen"])
    full = model.rank(seqs[:3], 100)
    for ranked in full:
        assert sorted(ranked) == model.items  # every catalogue item once, nothing else
    # exclude drops the given items and the list gets shorter only when nothing is left
    out = model.rank([seqs[0], seqs[1]], 5, exclude=[{"i1", "i2", "unknown"}, set()])
    assert len(out[0]) == len(out[1]) == 5
    assert not {"i1", "i2"} & set(out[0])
    assert len(model.rank([seqs[0]], 20, exclude=[set(ITEMS)])[0]) == 1
    # scores agree with the ranking; a candidate outside the vocabulary scores -inf
    cands = [[*ITEMS, "nope"]]
    scores = model.score([seqs[0]], cands)[0]
    assert scores[-1] == -math.inf
    assert ITEMS[max(range(10), key=lambda j: scores[j])] == nxt[seqs[0][-1]]
    # empty history and unknown history items are accepted
    assert len(model.rank([[], ["zzz"]], 3)[0]) == 3
    with pytest.raises(ValueError, match="k must be"):
        model.rank([seqs[0]], 0)
    with pytest.raises(ValueError, match="exclude"):
        model.rank([seqs[0]], 3, exclude=[])


def test_sasrec_deterministic_under_seed():
    seqs, _ = cycle_data(12, 8)
    a = SASRec(small_cfg(epochs=3)).fit(seqs)
    b = SASRec(small_cfg(epochs=3)).fit(seqs)
    c = SASRec(small_cfg(epochs=3, seed=4)).fit(seqs)
    assert a.score(seqs, [ITEMS] * len(seqs)) == b.score(seqs, [ITEMS] * len(seqs))
    assert a.score(seqs, [ITEMS] * len(seqs)) != c.score(seqs, [ITEMS] * len(seqs))
    assert [r["loss"] for r in a.history_] == [r["loss"] for r in b.history_]
    post = SASRec(small_cfg(epochs=2, norm="post", heads=2)).fit(seqs)
    assert len(post.rank(seqs[:2], 3)[1]) == 3


def test_sasrec_bce_negatives_and_learning():
    seqs, nxt = cycle_data()
    seqs = [s[:6] for s in seqs]  # each user sees 6 of the 10 items: negatives exist
    model = SASRec(small_cfg(loss="bce", epochs=40, dropout=0.1))
    model.fit(seqs)
    assert model.config.dropout_rate == 0.1
    assert SASRecConfig(loss="bce").dropout_rate == 0.2
    assert SASRecConfig(loss="ce").dropout_rate == 0.5
    histories = [[ITEMS[(s + t) % 10] for t in range(4)] for s in range(10)]
    # negatives never include a user's own items, so seen items are only ranked fairly
    # once removed (the S3-Rec-style evaluation)
    ranked = model.rank(histories, 2, exclude=[set(h) for h in histories])
    assert sum(nxt[h[-1]] in r for h, r in zip(histories, ranked)) >= 9
    # sampled negatives avoid the user's items
    ids = [[model.item_index[i] for i in s] for s in seqs[:2]]
    user_items = torch.tensor([sorted(set(s)) for s in ids])
    owners = torch.tensor([0] * 500 + [1] * 500)
    neg = model._negatives(
        torch.ones(1000, dtype=torch.long),
        owners,
        user_items,
        torch.tensor([False, False]),
        torch.Generator().manual_seed(0),
    )
    for o, n in zip(owners.tolist(), neg.tolist()):
        assert n not in ids[o] and 1 <= n <= len(model.items)


def test_sasrec_long_sequences_are_windowed_and_time_budget():
    model = SASRec(small_cfg(max_len=4))
    windows, owners = model._windows([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2]])
    targets = [int(t) for row in windows for s, t in zip(row[:-1], row[1:]) if s > 0]
    assert sorted(targets) == [2, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # every target exactly once
    assert owners.tolist() == [0, 0, 0, 1]
    seqs, _ = cycle_data()
    slow = SASRec(small_cfg(epochs=1000, max_seconds=0.5)).fit(seqs)
    assert slow.stop_reason_ == "max_seconds" and len(slow.history_) < 1000


def test_fused_softmax_ce_matches_torch():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 5, generator=g, requires_grad=True)
    w = torch.randn(11, 5, generator=g, requires_grad=True)
    t = torch.randint(0, 11, (7,), generator=g)
    ref = F.cross_entropy(h @ w.T, t)
    ref.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ours = _FullSoftmaxCE.apply(h, w, t)
    (2 * ours).backward()
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(h.grad, 2 * gh, atol=1e-6) and torch.allclose(w.grad, 2 * gw, atol=1e-6)


def test_sasrec_bad_input():
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(loss="bpr")
    with pytest.raises(ValueError, match="norm"):
        SASRecConfig(norm="middle")
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="train_sequences is empty"):
        SASRec(small_cfg()).fit([])
    with pytest.raises(ValueError, match="at least two items"):
        SASRec(small_cfg()).fit([["a"], ["b"]])
    with pytest.raises(ValueError, match="item id strings"):
        SASRec(small_cfg()).fit([[1, 2]])
    with pytest.raises(ValueError, match="not fitted"):
        SASRec(small_cfg()).rank([["a"]], 3)


# --------------------------------------------------------------------------- BiasedMF


def additive_ratings():
    user_bias = {"u0": -1.0, "u1": 0.0, "u2": 0.5, "u3": 1.0}
    item_bias = {"a": -0.5, "b": 0.0, "c": 0.5, "d": 1.0, "e": -1.0}
    return [(u, i, 3.0 + bu + bi) for u, bu in user_bias.items() for i, bi in item_bias.items()]


def test_mf_without_factors_is_the_bias_model():
    train = additive_ratings()
    cfg = BiasedMFConfig(factors=0, lr=0.05, reg=0.0, bias_reg=0.0, epochs=300, batch_size=8)
    mf = BiasedMF(cfg).fit(train)
    assert mf.mu == pytest.approx(sum(r for *_, r in train) / len(train))
    bu, bi = mf.biases
    # predictions are exactly mu + b_u + b_i (clipped), and fit the additive data
    for (u, i, r), p in zip(train, mf.predict([(u, i) for u, i, _ in train])):
        assert p == pytest.approx(min(mf.high, max(mf.low, mf.mu + bu[u] + bi[i])), abs=1e-5)
        assert p == pytest.approx(r, abs=0.05)
    # fallbacks: unknown user -> mu + b_i, unknown item -> mu + b_u, both -> mu
    got = mf.predict([("new", "c"), ("u3", "new"), ("new", "new")])
    assert got == pytest.approx([mf.mu + bi["c"], mf.mu + bu["u3"], mf.mu], abs=1e-5)


def test_mf_clipping_determinism_and_factors():
    train = additive_ratings()
    cfg = BiasedMFConfig(factors=4, epochs=20, batch_size=4, progress=False, rating_range=(1, 5))
    a, b = BiasedMF(cfg).fit(train), BiasedMF(cfg).fit(train)
    pairs = [(u, i) for u, i, _ in train]
    assert a.predict(pairs) == b.predict(pairs)
    assert all(1 <= p <= 5 for p in a.predict(pairs))
    # a rank-1 interaction term is learned by factors, not by biases
    x = {"u0": 1, "u1": -1, "u2": 1, "u3": -1, "u4": 1, "u5": -1}
    y = {"a": 1, "b": -1, "c": 1, "d": -1}
    train = [(u, i, 3 + xu * yi) for u, xu in x.items() for i, yi in y.items()]
    pairs = [(u, i) for u, i, _ in train]
    true = [r for *_, r in train]

    def err(factors):
        cfg = BiasedMFConfig(factors=factors, lr=0.05, reg=0.0, epochs=200, batch_size=8)
        pred = BiasedMF(cfg).fit(train).predict(pairs)
        return max(abs(p - t) for p, t in zip(pred, true))

    assert err(0) > 0.9 and err(2) < 0.1


def test_mf_early_stopping_and_bad_input():
    train = additive_ratings()
    cfg = BiasedMFConfig(factors=2, epochs=50, patience=2, progress=False)
    mf = BiasedMF(cfg).fit(train[:-4], valid=train[-4:])
    assert mf.best_epoch_ is not None and mf.best_valid_rmse_ == min(
        r["valid_rmse"] for r in mf.history_
    )
    with pytest.raises(ValueError, match="train is empty"):
        BiasedMF().fit([])
    with pytest.raises(ValueError, match="non-numeric rating"):
        BiasedMF().fit([("u", "i", "5")])
    with pytest.raises(ValueError, match="factors"):
        BiasedMFConfig(factors=-1)
    with pytest.raises(ValueError, match="not fitted"):
        BiasedMF().predict([("u", "i")])


# --------------------------------------------------------------------------- TextClassifier

POS = ["great sound love it", "love the great tone", "excellent strings love", "great value"]
NEG = ["awful broke fast", "terrible cheap broke", "awful noise hate it", "hate the hum"]
NEU = ["okay average fine", "fine but average", "it is okay", "average okay product"]


def test_text_classifier_single_label():
    texts = POS + NEG + NEU
    labels = ["positive"] * 4 + ["negative"] * 4 + ["neutral"] * 4
    clf = TextClassifier().fit(texts, labels)
    assert clf.classes_ == ["negative", "neutral", "positive"]
    assert clf.predict(["love this great guitar", "broke awful", "average okay"]) == [
        "positive",
        "negative",
        "neutral",
    ]
    grid = TextClassifier(C=[0.01, 10.0]).fit(
        texts, labels, valid=(["great love", "awful hate"], ["positive", "negative"])
    )
    assert grid.C_ in (0.01, 10.0) and set(grid.valid_scores_) == {0.01, 10.0}
    assert TextClassifier().fit(["aa bb", "cc dd"], ["x", "x"]).predict(["zz"]) == ["x"]


def test_text_classifier_multilabel():
    texts = [
        "laser ship space battle",
        "space laser robots",
        "love kiss wedding",
        "wedding love letters",
        "space love story",
        "kiss in space",
    ]
    labels = [{"scifi"}, {"scifi"}, {"romance"}, {"romance"}, {"scifi", "romance"}, ["romance"]]
    clf = TextClassifier(multilabel=True, C=10.0).fit(texts, labels)
    pred = clf.predict(["laser robots battle", "wedding kiss love", "laser love wedding ship"])
    assert pred[0] == {"scifi"} and pred[1] == {"romance"} and pred[2] == {"scifi", "romance"}
    for p in clf.predict(["nothing known here", ""]):
        assert isinstance(p, set) and p  # at least one label, even without words
    tuned = TextClassifier(multilabel=True).fit(texts, labels, valid=(texts, labels))
    assert set(tuned.thresholds_) == {"romance", "scifi"}
    assert all(0.05 <= t <= 0.95 for t in tuned.thresholds_.values())
    everywhere = TextClassifier(multilabel=True).fit(["aa bb", "cc dd"], [{"x"}, {"x", "y"}])
    assert all("x" in p for p in everywhere.predict(["aa bb", "cc dd", "ee ff"]))


def test_text_classifier_bad_input():
    with pytest.raises(ValueError, match="multi-label mode needs a collection"):
        TextClassifier(multilabel=True).fit(["a b"], ["x"])
    with pytest.raises(ValueError, match="one label string per text"):
        TextClassifier().fit(["a b"], [{"x"}])
    with pytest.raises(ValueError, match="texts is empty"):
        TextClassifier().fit([], [])
    with pytest.raises(ValueError, match="need validation data"):
        TextClassifier(C=[1, 2]).fit(["a b", "c d"], ["x", "y"])
    with pytest.raises(ValueError, match="2 labels for 1 texts"):
        TextClassifier().fit(["a b"], ["x", "y"])
    with pytest.raises(ValueError, match="not fitted"):
        TextClassifier().predict(["a"])


# --------------------------------------------------------------------------- NearestReview

REVIEWS = [  # (user, item, review text, summary)
    ("u2", "A", "warm tone strings bright sound", "Warm and bright"),
    ("u3", "A", "plastic body broke after a week", "Broke quickly"),
    ("u4", "A", "good for the price", "Great value"),
    ("u7", "A", "solid and well made", "Great value, warm sound"),
    ("u1", "B", "love the warm bright sound of these", "Lovely"),
    ("u5", "B", "the plastic broke", "Great value"),
    ("u6", "C", "plastic thing broke in a day", None),  # no summary: profile text only
    ("u8", "B", "", "Fine"),  # no words: no profile
]


def test_nearest_review_rules():
    nr = NearestReview(REVIEWS)
    pairs = [
        ("u1", "A"),  # u1 wrote about a warm, bright sound: the nearest review of A
        ("u5", "A"),  # u5 wrote about broken plastic
        ("u6", "A"),  # the review without a summary still makes u6's profile
        ("u9", "A"),  # no training review: A's most central summary
        ("u8", "A"),  # empty profile: as if none
        ("u1", "C"),  # C has no review with a summary: the global most frequent summary
        ("u9", "Z"),  # unknown item: global
    ]
    assert nr.predict_with_rules(pairs) == [
        ("Warm and bright", "nearest"),
        ("Broke quickly", "nearest"),
        ("Broke quickly", "nearest"),
        ("Great value, warm sound", "central"),
        ("Great value, warm sound", "central"),
        ("Great value", "global"),
        ("Great value", "global"),
    ]
    assert nr.predict([("u9", "B")]) == [nr.central_summary("B")]
    single = NearestReview([("u", "X", "text here", "Only one")])
    assert single.predict([("v", "X"), ("u", "X")]) == ["Only one", "Only one"]


def test_nearest_review_bad_input():
    with pytest.raises(ValueError, match="no training review with a non-empty summary"):
        NearestReview([("u", "i", "text", ""), ("u", "j", "text", None)])
    with pytest.raises(ValueError, match=r"train\[0\] must be"):
        NearestReview([("u", "i", "text")])


# --------------------------------------------------------------------------- real data (slow)


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    from p5rec.config import DataConfig
    from p5rec.data.dataset import load_dataset, prepare
    from p5rec.data.readers import ReadOptions
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "movielens-100k"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    out = tmp_path_factory.mktemp("ml-100k")
    prepare("movielens", folder, out, DataConfig(), ReadOptions(progress=False))
    return load_dataset(out)


@pytest.mark.slow
def test_real_ml100k_mf_and_sasrec(ml100k):
    from p5rec.metrics import ndcg_at_k, rmse

    corpus, splits, _ = ml100k

    def triples(split):
        events = (corpus.interactions[n] for n in splits.reviews[split])
        return [(e.user, e.item, e.rating) for e in events]

    test = triples("test")
    mf = BiasedMF(BiasedMFConfig(progress=False)).fit(triples("train"), triples("valid"))
    assert rmse(mf.predict([(u, i) for u, i, _ in test]), [r for *_, r in test]) < 0.96

    seqs = corpus.sequences()
    train = [s[:-2] for s in seqs.values() if len(s) >= 3]
    examples = splits.next_item["test"]
    model = SASRec(SASRecConfig(epochs=10, progress=False), items=corpus.items).fit(train)
    ranked = model.rank([list(e.history) for e in examples], 10)
    pop = Popularity(i for s in train for i in s)
    sasrec_ndcg = ndcg_at_k(ranked, [e.target for e in examples], 10)
    pop_ndcg = ndcg_at_k([pop.top(10)] * len(examples), [e.target for e in examples], 10)
    assert sasrec_ndcg > pop_ndcg


def test_category_metrics_read_answers_as_label_sets():
    """Hand-computed: answers compare as label sets (order-free); single-label F1 pools
    (micro) or averages over the reference labels (macro)."""
    from p5rec.tasks.category import category_metrics

    true = ["Action > Comedy", "Drama", "Comedy"]
    pred = ["Comedy > Action", "Action", "Comedy > Drama"]
    m = category_metrics(pred, true)
    assert m["accuracy"] == pytest.approx(1 / 3)
    # single labels: TP 3 (Action, Comedy, Comedy), FP 2 (Action, Drama), FN 1 (Drama)
    assert m["label_micro_f1"] == pytest.approx(6 / 9)
    # Action 2/3, Comedy 1, Drama 0 -> mean 5/9
    assert m["label_macro_f1"] == pytest.approx(5 / 9)


def test_suite_scores_every_baseline_with_the_family_metrics(tiny_ctx):
    """Each family's rows: the simple baseline, then the trained ones, each scored by the
    family's own ``score`` on the same examples (same metric names as the model gets)."""
    import random

    from p5rec.baselines.suite import BaselineSuite, SuiteConfig
    from p5rec.tasks import get_family

    options = {
        "ks": (5, 10),
        "num_beams": 20,
        "batch_size": 16,
        "template_split": "seen",
        "remove_history": False,
    }
    suite = BaselineSuite(tiny_ctx, options, SuiteConfig(sasrec_minutes=0.02, sasrec_epochs=2))
    expected = {
        "next_item": ["popularity", "SASRec (BCE)", "SASRec (CE)"],
        "candidate_ranking": ["popularity", "SASRec (BCE)", "SASRec (CE)"],
        "rating": ["global_mean", "user + item biases", "biased MF"],
        "category": ["majority", "title TF-IDF + LR"],
        "sentiment": ["majority", "TF-IDF + LR"],
        "explanation": ["most_frequent_summary", "nearest review"],
    }
    for family, systems in expected.items():
        fam = get_family(family)
        examples = fam.examples(tiny_ctx, "test", random.Random(0))
        predictions: dict[str, list] = {}
        rows = suite.rows(family, examples, predictions=predictions)
        assert [r["system"] for r in rows] == systems
        assert set(rows[1]["metrics"]) == set(rows[0]["metrics"])
        assert all(math.isfinite(v) for r in rows for v in r["metrics"].values())
        # every trained baseline's predictions come back, and score as its row says
        assert list(predictions) == systems[1:]
        for row in rows[1:]:
            rescored = fam.score(tiny_ctx, examples, predictions[row["system"]], options)
            assert {k: rescored[k] for k in row["metrics"]} == row["metrics"]
    # the SASRec models are fitted once and shared by both item families
    assert set(suite._sasrec) == {"bce", "ce"}


def test_sentiment_baseline_reads_whole_reviews(tiny_ctx, monkeypatch):
    """The text classifier reads the reviews themselves, not the prompts' shortened ones."""
    import random

    from p5rec.baselines import TextClassifier
    from p5rec.baselines.suite import BaselineSuite
    from p5rec.tasks import get_family

    seen: list[str] = []
    fit = TextClassifier.fit

    def spy(self, texts, labels, valid=None):
        seen.extend(texts)
        return fit(self, texts, labels, valid=valid)

    monkeypatch.setattr(TextClassifier, "fit", spy)
    monkeypatch.setattr(tiny_ctx, "max_review_words", 1)
    examples = get_family("sentiment").examples(tiny_ctx, "test", random.Random(0))
    BaselineSuite(tiny_ctx, {}).rows("sentiment", examples, {"TF-IDF + LR"})
    reviews = tiny_ctx.splits.reviews
    whole = {tiny_ctx.corpus.interactions[n].review for n in reviews["train"] + reviews["valid"]}
    assert seen and set(seen) <= whole
    assert any(len(t.split()) > 2 for t in seen)  # a shortened review has at most two
