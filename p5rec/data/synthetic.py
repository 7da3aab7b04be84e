"""Deterministic synthetic corpus with learnable structure for every task family.

The generative story (all draws from one seeded ``random.Random``):

* Items fall into latent groups. Each group has a category path and a small vocabulary of
  feature words; an item's title and text are built from its group's words, so a model can
  infer an unseen item's category from its text. Each item has a hidden quality, mostly
  given by the product-line word of its title (Basic ... Luxe).
* Within a group the items form a cycle. A user prefers two groups; a sequence starts in the
  main group and at each step moves to the next item of the cycle (probability
  ``FOLLOW``) or jumps to a popular item of one of the user's groups. The last items of a
  history therefore predict the next one far better than popularity does.
* A rating is ``3.2 + quality + affinity + noise`` rounded to 1..5, where affinity is high
  for the user's main group: a model that sees the item and the user's history can beat the
  global mean.
* Review text carries sentiment words chosen by the rating and feature words of the item;
  the summary is a sentiment adjective, the item's main feature word and a short tail
  chosen by the sentiment.
"""

from __future__ import annotations

import random

from p5rec.config import SyntheticConfig
from p5rec.data.corpus import Corpus, Interaction, Item, sentiment_of

__all__ = ["generate"]

FOLLOW = 0.75
_GROUPS = [
    (("Beauty", "Skin Care"), ["moisturizer", "serum", "hydrating", "cream", "spf", "glow"]),
    (("Beauty", "Hair Care"), ["shampoo", "conditioner", "curl", "volume", "scalp", "shine"]),
    (("Beauty", "Makeup", "Eyes"), ["mascara", "eyeliner", "lash", "shadow", "brow", "smudge"]),
    (("Beauty", "Makeup", "Lips"), ["lipstick", "gloss", "matte", "balm", "tint", "liner"]),
    (("Beauty", "Fragrance"), ["perfume", "floral", "musk", "citrus", "vanilla", "mist"]),
    (("Beauty", "Nails"), ["polish", "topcoat", "cuticle", "lacquer", "gel", "file"]),
    (("Beauty", "Bath & Body"), ["lotion", "scrub", "soap", "butter", "shower", "oil"]),
    (("Beauty", "Tools"), ["brush", "sponge", "mirror", "tweezer", "curler", "dryer"]),
]
_BRANDS = ["Avela", "Bronte", "Corvia", "Delmar", "Elsin", "Florin", "Gavra", "Halden"]
_SENTIMENT_WORDS = {
    "positive": ["love", "great", "excellent", "perfect", "wonderful", "amazing"],
    "neutral": ["okay", "average", "decent", "fine", "acceptable", "ordinary"],
    "negative": ["terrible", "awful", "disappointing", "poor", "useless", "bad"],
}
# Product lines: the tier word in a title carries most of an item's hidden quality.
_TIERS = [("Basic", -1.2), ("Classic", -0.5), ("Select", 0.1), ("Premium", 0.6), ("Luxe", 1.0)]
_SUMMARY_TAILS = {
    "positive": ["would buy again", "works really well"],
    "neutral": ["does the job", "nothing special here"],
    "negative": ["not worth the money", "would not buy again"],
}
_SUMMARY_WORDS = {
    "positive": ["great", "lovely"],
    "neutral": ["decent", "okay"],
    "negative": ["poor", "awful"],
}


def _group_spec(g: int) -> tuple[tuple[str, ...], list[str]]:
    if g < len(_GROUPS):
        return _GROUPS[g]
    words = [f"feat{g}x{j}" for j in range(6)]
    return ("Beauty", f"Group {g}"), words


def generate(config: SyntheticConfig | None = None) -> Corpus:
    """Build the synthetic corpus; the same config always gives the same corpus."""
    cfg = config or SyntheticConfig()
    rng = random.Random(cfg.seed)
    items: dict[str, Item] = {}
    group_items: list[list[str]] = [[] for _ in range(cfg.num_groups)]
    quality: dict[str, float] = {}
    main_feature: dict[str, str] = {}
    item_group: dict[str, int] = {}
    for n in range(cfg.num_items):
        g = n % cfg.num_groups
        path, words = _group_spec(g)
        iid = f"item_{n:04d}"
        feats = rng.sample(words, 3)
        tier, tier_quality = rng.choice(_TIERS)
        title = f"{rng.choice(_BRANDS)} {tier} {feats[0]} {feats[1]} {rng.randint(1, 99)}"
        text = f"{title}: a {feats[0]} with {feats[2]}, from the {path[-1].lower()} line"
        items[iid] = Item(iid, title, text, path)
        group_items[g].append(iid)
        quality[iid] = tier_quality + rng.gauss(0.0, 0.3)
        main_feature[iid] = feats[0]
        item_group[iid] = g
    for members in group_items:
        rng.shuffle(members)  # the cycle order inside each group
    successor = {
        members[j]: members[(j + 1) % len(members)]
        for members in group_items
        for j in range(len(members))
    }
    # Zipf-like popularity for jumps, so that popularity is a real (if weak) baseline.
    popularity = {
        iid: 1.0 / (1 + rank) ** 0.8 for rank, iid in enumerate(rng.sample(list(items), len(items)))
    }

    interactions: list[Interaction] = []
    for u in range(cfg.num_users):
        user = f"user_{u:04d}"
        main, second = rng.sample(range(cfg.num_groups), 2)
        length = rng.randint(cfg.min_length, cfg.max_length)
        t = 1_500_000_000 + rng.randint(0, 10_000_000)

        def jump(group: int) -> str:
            members = group_items[group]
            return rng.choices(members, weights=[popularity[i] for i in members])[0]

        current = jump(main)
        seen: set[str] = set()
        for _ in range(length):
            seen.add(current)
            affinity = (
                0.9
                if item_group[current] == main
                else (0.1 if item_group[current] == second else -0.7)
            )
            raw = 3.2 + quality[current] + affinity + rng.gauss(0.0, 0.45)
            rating = float(min(5, max(1, round(raw))))
            label = sentiment_of(rating)
            words = rng.sample(_SENTIMENT_WORDS[label], 2)
            feature = main_feature[current]
            review = (
                f"The {feature} is {words[0]}. "
                f"{rng.choice(['Honestly', 'Overall', 'In short'])} {words[1]} for "
                f"{items[current].categories[-1].lower()}."
            )
            adjective, tail = rng.choice(_SUMMARY_WORDS[label]), rng.choice(_SUMMARY_TAILS[label])
            summary = f"{adjective} {feature}, {tail}"
            interactions.append(Interaction(user, current, t, rating, review, summary))
            t += 86_400 + rng.randint(0, 3_600)
            nxt = successor[current] if rng.random() < FOLLOW else None
            if nxt is None or nxt in seen:
                group = main if rng.random() < 0.7 else second
                for _ in range(10):
                    nxt = jump(group)
                    if nxt not in seen:
                        break
            current = nxt
    corpus = Corpus(items, interactions, rating_range=(1.0, 5.0), name="synthetic")
    corpus.validate()
    return corpus
