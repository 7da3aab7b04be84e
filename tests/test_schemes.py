"""Every ID scheme end to end: constrained decoding returns real, distinct catalogue items on
the demo data and on Beauty, and no scheme sees a held-out (validation or test) event."""

import random
from dataclasses import replace

import pytest

from p5rec.config import DataConfig, IndexConfig, load_config
from p5rec.data.dataset import prepare
from p5rec.data.readers import ReadOptions
from p5rec.tasks import get_family
from p5rec.training import build_context, scheme_input
from tests.conftest import SHARED_DATA
from tests.engines import random_engine

SCHEMES = {
    "random": {"scheme": "random"},
    "atomic": {"scheme": "atomic"},
    "sequential": {"scheme": "sequential"},
    "collaborative": {"scheme": "collaborative"},
    "collaborative+suffix": {"scheme": "collaborative", "suffix": True},
    "semantic": {"scheme": "semantic"},
    "semantic+suffix": {"scheme": "semantic", "suffix": True},
    "semantic-collaborative": {"scheme": "semantic", "semantic_source": "collaborative"},
}


def with_index(cfg, data_dir, **index):
    return replace(cfg, data=replace(cfg.data, path=str(data_dir)), index=IndexConfig(**index))


def check_generated_items(ctx, tokenizer_dir, users: int, beams: int = 20):
    engine = random_engine(tokenizer_dir, ctx.index)
    family = get_family("next_item")
    template = family.eval_template("seen")
    examples = family.examples(ctx, "test", random.Random(0))[:users]
    sources = [template.render(ex.fields, ex.target)[0] for ex in examples]
    for ranked in engine.rank(sources, beams):
        items = [item for item, _ in ranked]
        assert len(items) == min(beams, len(ctx.index.codes))
        assert len(set(items)) == len(items)
        assert set(items) <= set(ctx.corpus.items)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    cfg = load_config(None, ["data.synthetic.num_users=300", "data.synthetic.num_items=240"])
    out = tmp_path_factory.mktemp("demo-data")
    prepare("synthetic", None, out, cfg.data)
    return cfg, out


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_decodes_real_distinct_items_on_demo_data(name, demo_data, tiny_run):
    cfg, data_dir = demo_data
    ctx = build_context(with_index(cfg, data_dir, **SCHEMES[name]), data_dir)
    assert len(ctx.index.codes) == len(ctx.corpus.items)
    check_generated_items(ctx, tiny_run / "tokenizer", users=6)


@pytest.fixture(scope="module")
def beauty_data(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data folder {SHARED_DATA} is absent")
    out = tmp_path_factory.mktemp("beauty")
    prepare("s3rec", SHARED_DATA / "amazon-beauty", out, DataConfig(), ReadOptions(progress=False))
    return out


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_decodes_real_distinct_items_on_beauty(name, beauty_data, tiny_run):
    cfg = load_config(None)
    ctx = build_context(with_index(cfg, beauty_data, **SCHEMES[name]), beauty_data)
    assert len(ctx.index.codes) == 12101
    check_generated_items(ctx, tiny_run / "tokenizer", users=3)


PLANTED = "zz-only-in-test"


def event_log(planted: str, swap_validation: bool) -> str:
    """30 users with 8 events each over 40 items. User u00's last (test) event is the only
    event of ``planted``; with ``swap_validation`` users u01 and u02 trade their
    second-to-last (validation) items. Training events are the same either way."""
    rng = random.Random(5)
    rows = ["user,item,time,title"]
    for u in range(30):
        items = [f"item-{rng.randrange(40):02d}" for _ in range(8)]
        if u == 0:
            items[-1] = planted
        rows += [f"u{u:02d},{item},{t},{item[-1]} topic thing" for t, item in enumerate(items)]
    if swap_validation:
        v1, v2 = 1 * 8 + 6 + 1, 2 * 8 + 6 + 1  # row numbers (after the header)
        (u1, i1, *r1), (u2, i2, *r2) = rows[v1].split(","), rows[v2].split(",")
        rows[v1], rows[v2] = ",".join([u1, i2, *r1]), ",".join([u2, i1, *r2])
    return "\n".join(rows) + "\n"


def test_no_scheme_sees_held_out_events(tmp_path):
    """Two datasets that differ only in held-out events (a test-only item renamed, two
    validation targets swapped) must give every scheme the same codes."""
    options = ReadOptions(
        user_col="user", item_col="item", time_col="time", title_col="title", progress=False
    )
    dirs = []
    for name, planted, swap in (("a", PLANTED + "-a", False), ("b", PLANTED + "-b", True)):
        log = tmp_path / f"{name}.csv"
        log.write_text(event_log(planted, swap))
        prepare("csv", log, tmp_path / name, DataConfig(num_candidates=20), options)
        dirs.append(tmp_path / name)
    cfg = load_config(None, ["data.num_candidates=20"])
    for name, index in SCHEMES.items():
        ctx_a = build_context(with_index(cfg, dirs[0], **index), dirs[0])
        ctx_b = build_context(with_index(cfg, dirs[1], **index), dirs[1])
        seen = scheme_input(ctx_a.corpus, ctx_a.splits)
        assert PLANTED + "-a" in seen.items
        assert not any(PLANTED + "-a" in seq for seq in seen.train_sequences)
        codes_a, codes_b = dict(ctx_a.index.codes), dict(ctx_b.index.codes)
        assert codes_a.pop(PLANTED + "-a") == codes_b.pop(PLANTED + "-b"), name
        assert codes_a == codes_b, name
