"""The public benchmark datasets in ../shared/data: exact counts, the leave-one-out split of
PROTOCOLS.md, and every task family the data carries a signal for. Skipped (with the
reason) when the folder is absent, as on a user's machine."""

import random

import pytest

from p5rec.config import DataConfig
from p5rec.data.dataset import prepare
from p5rec.data.readers import ReadOptions
from p5rec.tasks import get_family
from tests.conftest import SHARED_DATA, tiny_config

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"benchmark data folder {SHARED_DATA} is absent"
)

DATASETS = {
    # name: (source, folder, users, items, interactions, families with a signal)
    "beauty": (
        "s3rec",
        "amazon-beauty",
        22363,
        12101,
        198502,
        {"next_item", "candidate_ranking", "category"},
    ),
    "ml-100k": (
        "movielens",
        "movielens-100k",
        943,
        1682,
        100000,
        {"next_item", "candidate_ranking", "rating", "category"},
    ),
    "instruments": (
        "amazon",
        "amazon-musical-instruments",
        1429,
        900,
        10261,
        {"next_item", "candidate_ranking", "rating", "sentiment", "explanation"},
    ),
}


@pytest.fixture(scope="module", params=sorted(DATASETS))
def prepared(request, tmp_path_factory):
    source, folder, *_ = DATASETS[request.param]
    out = tmp_path_factory.mktemp(request.param)
    manifest = prepare(source, SHARED_DATA / folder, out, DataConfig(), ReadOptions(progress=False))
    return request.param, out, manifest


def test_counts_and_supported_tasks(prepared):
    name, _, m = prepared
    _, _, users, items, events, families = DATASETS[name]
    c = m["counts"]
    assert (c["users"], c["items"], c["interactions"]) == (users, items, events)
    assert m["skipped"]["skipped"] == {} and m["cleaning"]["duplicates_removed"]["events"] == 0
    assert {t for t, why in m["tasks"].items() if why.startswith("yes")} == families
    assert len(m["source"]["files"]) >= 1
    assert all(len(f["sha256"]) == 64 for f in m["source"]["files"].values())


def test_every_family_with_a_signal_builds_examples(prepared):
    from p5rec.training import build_context

    name, out, m = prepared
    ctx = build_context(tiny_config(f"data.path={out}", "data.num_candidates=100"), out)
    for family in DATASETS[name][5]:
        fam = get_family(family)
        for split in ("test",):
            examples = fam.examples(ctx, split, random.Random(0))
            assert examples, f"{name}: no {split} examples for {family}"
            if family in ("next_item", "candidate_ranking"):
                assert all(e.target for e in examples[:50])
    # every catalogue item has a code (the index is fitted on training sequences only)
    assert set(ctx.index.codes) == set(ctx.corpus.items)


@pytest.mark.parametrize("prepared", ["beauty"], indirect=True)
def test_beauty_leave_one_out_matches_the_sequence_file(prepared):
    name, out, m = prepared
    from p5rec.data.dataset import load_dataset

    corpus, splits, _ = load_dataset(out)
    lines = (SHARED_DATA / "amazon-beauty" / "Beauty.txt").read_text().split("\n")
    seqs = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.strip()}
    import pyarrow.parquet as pq

    users = pq.read_table(out / "users.parquet").to_pydict()
    items = pq.read_table(out / "items.parquet").to_pydict()
    raw_user = dict(zip(users["user"], users["source_id"]))
    raw_item = dict(zip(items["item"], items["source_id"]))
    test = {e.user: e for e in splits.next_item["test"]}
    valid = {e.user: e for e in splits.next_item["valid"]}
    assert len(test) == len(valid) == len(seqs) == 22363
    for user, ex in test.items():
        seq = seqs[raw_user[user]]
        assert raw_item[ex.target] == seq[-1]
        assert [raw_item[i] for i in ex.history] == seq[:-1][-20:]
        assert raw_item[valid[user].target] == seq[-2]
    n_train = sum(len(s) - 3 for s in seqs.values())  # targets s2..s(n-2) per user
    assert len(splits.next_item["train"]) == n_train == m["splits"]["next_item"]["train"]
    assert all(len(c) == 100 for c in splits.candidates["test"].values())
