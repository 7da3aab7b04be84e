from collections import Counter

from p5rec.config import SyntheticConfig
from p5rec.data.corpus import sentiment_of
from p5rec.data.synthetic import _SENTIMENT_WORDS, generate


def test_deterministic_and_seeded():
    cfg = SyntheticConfig(num_users=30, num_items=40, num_groups=4)
    assert generate(cfg).fingerprint() == generate(cfg).fingerprint()
    other = SyntheticConfig(num_users=30, num_items=40, num_groups=4, seed=8)
    assert generate(other).fingerprint() != generate(cfg).fingerprint()


def test_sizes_and_every_field_present():
    cfg = SyntheticConfig(num_users=30, num_items=40, num_groups=4, min_length=6, max_length=9)
    c = generate(cfg)
    assert len(c.items) == 40
    lengths = [len(s) for s in c.sequences().values()]
    assert len(lengths) == 30 and min(lengths) >= 6 and max(lengths) <= 9
    assert all(i.title and i.categories for i in c.items.values())
    assert all(e.rating is not None and e.review and e.summary for e in c.interactions)


def test_structure_is_learnable():
    c = generate(SyntheticConfig())
    # Sequential structure: the most common successor of an item is far above chance.
    pairs = Counter()
    for seq in c.sequences().values():
        pairs.update(zip(seq, seq[1:]))
    by_first = Counter()
    for (a, _b), n in pairs.items():
        by_first[a] = max(by_first[a], n)
    follow = sum(by_first.values()) / sum(pairs.values())
    assert follow > 0.5  # chance would be about 1 / number of items
    # Review words carry the rating's sentiment.
    for e in c.interactions[:200]:
        words = _SENTIMENT_WORDS[sentiment_of(e.rating)]
        assert any(w in e.review for w in words)
    # Categories follow the title words: items of one category share feature words.
    assert len({i.categories for i in c.items.values()}) == SyntheticConfig().num_groups
