"""What a run trains on: the processed dataset, its item index and the tokenizer's text."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from p5rec.config import ConfigError, ExperimentConfig, to_dict
from p5rec.data.dataset import load_dataset
from p5rec.indexing import SchemeInput, build_index
from p5rec.tasks import TaskContext, TaskFamily

__all__ = [
    "build_context",
    "check_split_settings",
    "git_commit",
    "scheme_input",
    "tokenizer_texts",
]


def git_commit() -> str | None:
    """The commit of this source tree (``P5REC_GIT_COMMIT`` overrides it, for copies of the
    tree without their git history, such as a working tree synced to a remote machine)."""
    if os.environ.get("P5REC_GIT_COMMIT"):
        return os.environ["P5REC_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def build_context(cfg: ExperimentConfig, data_dir: str | Path, index=None) -> TaskContext:
    """Load a processed dataset and fit (or check and reuse) the item index on its
    training split."""
    corpus, splits, manifest = load_dataset(data_dir)
    check_split_settings(cfg, manifest, data_dir)
    fingerprint = manifest.get("fingerprint")
    if index is None:
        index = build_index(scheme_input(corpus, splits), cfg.index, fingerprint)
    else:
        index.check_matches(cfg.index, fingerprint, str(data_dir))
    return TaskContext(
        corpus,
        splits,
        index,
        cfg.data.max_history,
        cfg.data.num_candidates,
        manifest,
        cfg.tasks.max_review_words,
        cfg.tasks.balance_labels,
        cfg.tasks.user_text,
        cfg.tasks.rating_text,
        cfg.tasks.family_tokens,
        cfg.tasks.rated_history,
    )


def check_context_tokens(ctx: TaskContext, tokenizer, where: str) -> None:
    """Every user, number and family token the prompts render (``tasks.user_text`` and
    ``tasks.rating_text: token``, ``tasks.family_tokens``) must be a token of
    ``tokenizer``: a model trained without them would read them as pieces of text it never
    saw."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in ctx.added_tokens if t not in vocab]
    if missing:
        raise ConfigError(
            f"{where}: the tokenizer has no token {missing[0]!r} ({len(missing)} missing); "
            "the model was trained with other tasks.user_text / tasks.rating_text / "
            "tasks.family_tokens settings than this config's"
        )


def scheme_input(corpus, splits) -> SchemeInput:
    """What an ID scheme may see: the catalogue, the training sequences (s1..s(n-2) of each
    user, nothing held out) and each item's title and text. Categories are left out: they
    are what the category task predicts for its held-out items."""
    train_seqs: dict[str, list[str]] = {}
    for ex in splits.next_item["train"]:
        train_seqs.setdefault(ex.user, list(ex.history[:1])).append(ex.target)
    texts = {
        item_id: " ".join(p for p in (item.title, item.text) if p)
        for item_id, item in corpus.items.items()
    }
    return SchemeInput(sorted(corpus.items), list(train_seqs.values()), texts)


SPLIT_KEYS = (
    "max_history",
    "num_candidates",
    "review_split",
    "category_split",
    "exclude_holdout_from_reviews",
    "split_seed",
)


def check_split_settings(cfg: ExperimentConfig, manifest: dict, data_dir) -> None:
    """The run's data settings must be those the dataset's splits were made with."""
    made = manifest.get("data_config", {})
    wanted = to_dict(cfg.data)
    diff = [
        f"data.{k}: dataset {made[k]!r}, config {wanted[k]!r}"
        for k in SPLIT_KEYS
        if k in made and made[k] != wanted[k]
    ]
    if diff:
        raise ConfigError(
            f"{data_dir} was prepared with other split settings ({'; '.join(diff)}); "
            "use the same data.* values or prepare the dataset again"
        )


def tokenizer_texts(ctx: TaskContext, families: list[TaskFamily]):
    """Text the tokenizer is trained on: templates, catalogue text, training reviews."""
    for fam in families:
        for t in fam.templates:
            yield t.source.format(**{k: "" for k in (*fam.required, *fam.optional)})
    for item in ctx.corpus.items.values():
        yield f"{item.title} {item.text}"
    for item in ctx.splits.category["train"]:
        yield " > ".join(ctx.corpus.items[item].categories)
    for n in ctx.splits.reviews["train"]:
        e = ctx.corpus.interactions[n]
        yield f"{e.user} {e.review or ''} {e.summary or ''}"
    yield "positive neutral negative nothing yet 0 1 2 3 4 5 6 7 8 9 . user_"
