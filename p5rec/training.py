"""Multi-task training with accelerate: a mixture of task families, one seq2seq loss.

Run directory written here::

    RUN/config.yaml        resolved experiment config
    RUN/run.json           data directory and fingerprint, config hash, git commit, timings
    RUN/item_index.json    item -> code tokens (fitted on training data only)
    RUN/tokenizer/         tokenizer with the item tokens
    RUN/model/             final model (save_pretrained; LoRA merged into the weights)
    RUN/state/             accelerate state after the last finished epoch (for resume)
    RUN/train_log.jsonl    one line per epoch: loss, validation loss, time
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from p5rec.config import ConfigError, ExperimentConfig, config_hash, save_config, to_dict
from p5rec.data.dataset import load_dataset, prepare
from p5rec.indexing import SchemeInput, build_index
from p5rec.tasks import TaskContext, TaskFamily, get_family

__all__ = ["build_context", "train"]


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
        corpus, splits, index, cfg.data.max_history, cfg.data.num_candidates, manifest
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


def _counts(cfg: ExperimentConfig, pools: dict[str, list]) -> dict[str, int]:
    """How many examples of each family one epoch samples."""
    weights = {f: cfg.tasks.weight(f) for f in pools}
    if cfg.train.samples_per_epoch == 0:
        return {f: round(len(p) * weights[f]) for f, p in pools.items()}
    total = sum(weights.values())
    return {f: round(cfg.train.samples_per_epoch * weights[f] / total) for f in pools}


def epoch_examples(cfg, ctx, families, epoch: int) -> list[tuple[str, str]]:
    """The epoch's (source, target) pairs: a seeded mixture over families and templates."""
    rng = random.Random(f"{cfg.train.seed}-epoch-{epoch}")
    pools = {fam.name: fam.examples(ctx, "train", rng) for fam in families}
    counts = _counts(cfg, pools)
    pairs = []
    for fam in families:
        pool, n = pools[fam.name], counts[fam.name]
        if not pool:
            continue
        chosen = pool * (n // len(pool)) + rng.sample(pool, n % len(pool))
        templates = fam.seen_templates()
        pairs.extend(rng.choice(templates).render(ex.fields, ex.target) for ex in chosen)
    rng.shuffle(pairs)
    return length_grouped(pairs, cfg.train.batch_size, rng)


def length_grouped(pairs: list, batch_size: int, rng: random.Random, window: int = 64) -> list:
    """Reorder so each batch holds sources of similar length (less padding), batches shuffled.

    Pairs are sorted by source length inside windows of ``window`` batches; the batches are
    then shuffled, so the mixture of families across an epoch is unchanged.
    """
    size = batch_size * window
    batches = []
    for start in range(0, len(pairs), size):
        chunk = sorted(pairs[start : start + size], key=lambda p: len(p[0]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return [p for b in batches for p in b]


RUN_ARTEFACTS = (
    "state",
    "model",
    "tokenizer",
    "item_index.json",
    "trainer_state.json",
    "train_log.jsonl",
    "run.json",
    "metrics.json",
)


def clear_run(run_dir: Path) -> None:
    """Remove what an earlier training run left in ``run_dir`` (not its data)."""
    for name in RUN_ARTEFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def resume_key(cfg: ExperimentConfig) -> str:
    """Hash of everything a resumed run must share with the saved one."""
    same = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1, resume=False))
    return config_hash(same)


def param_groups(model, cfg: ExperimentConfig) -> list[dict]:
    """Trainable parameters: the token embeddings at ``lr * embedding_lr_scale``, the rest at lr."""
    embedding = model.get_input_embeddings().weight
    trainable = [p for p in model.parameters() if p.requires_grad]
    rest = [p for p in trainable if p is not embedding]
    groups = [{"params": rest, "lr": cfg.train.lr}]
    if embedding.requires_grad:
        groups.append({"params": [embedding], "lr": cfg.train.lr * cfg.train.embedding_lr_scale})
    return groups


class Collator:
    """Tokenise (source, target) pairs; padded label positions become -100."""

    def __init__(self, tokenizer, max_source: int, max_target: int) -> None:
        self.tok, self.max_source, self.max_target = tokenizer, max_source, max_target
        self.truncated = 0  # sources and targets cut at the length limits (reported per epoch)

    def _encode(self, texts, max_length: int):
        enc = self.tok(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        if enc.encodings is not None:  # fast tokenizers report what truncation cut off
            self.truncated += sum(1 for e in enc.encodings if e.overflowing)
        return enc

    def __call__(self, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        sources, targets = zip(*pairs)
        enc = self._encode(sources, self.max_source)
        labels = self._encode(targets, self.max_target).input_ids
        labels[labels == self.tok.pad_token_id] = -100
        enc["labels"] = labels
        return dict(enc)


@torch.no_grad()
def validation_loss(model, collator, pairs, batch_size, device) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        batch = {k: v.to(device) for k, v in collator(pairs[start : start + batch_size]).items()}
        n = int((batch["labels"] != -100).sum())
        total += float(model(**batch).loss) * n
        count += n
    model.train()
    return total / max(count, 1)


def _valid_pairs(ctx, families, limit: int = 256) -> list[tuple[str, str]]:
    rng = random.Random("valid")
    pairs = []
    for fam in families:
        exs = fam.examples(ctx, "valid", rng)
        exs = rng.sample(exs, min(limit, len(exs)))
        t = fam.eval_template("seen")
        pairs.extend(t.render(e.fields, e.target) for e in exs)
    return pairs


def train(cfg: ExperimentConfig, run_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) a run; returns the training summary also written to run.json."""
    from accelerate import Accelerator
    from transformers import AutoTokenizer

    from p5rec.indexing import ItemIndex
    from p5rec.modeling import build_model, build_tokenizer

    start_time = time.time()
    run_dir = Path(run_dir)
    accelerator = Accelerator()
    state_dir, log_path = run_dir / "state", run_dir / "train_log.jsonl"
    resuming = cfg.train.resume and (run_dir / "trainer_state.json").is_file()
    if resuming:
        saved = json.loads((run_dir / "trainer_state.json").read_text())
        if saved.get("resume_key") != resume_key(cfg):
            raise ConfigError(
                f"{run_dir}: cannot resume: the config differs from the saved run's in more "
                "than train.epochs/train.resume (start a new run directory instead)"
            )

    data_dir = Path(cfg.data.path) if cfg.data.path else run_dir / "data"
    with accelerator.main_process_first():
        if accelerator.is_main_process:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not resuming:  # a fresh start: nothing of an earlier run may be mixed in
                clear_run(run_dir)
            save_config(cfg, run_dir / "config.yaml")
            if not cfg.data.path and not resuming:  # the embedded corpus, made afresh
                prepare("synthetic", None, data_dir, cfg.data)
    families = [get_family(f) for f in cfg.tasks.families]

    # The main process builds the index and tokenizer and saves them; the others (and a
    # resumed run) load what was saved, so every process uses identical token ids.
    saved_index = ItemIndex.load(run_dir / "item_index.json") if resuming else None
    ctx = build_context(cfg, data_dir, saved_index)
    with accelerator.main_process_first():
        if resuming or not accelerator.is_main_process:
            tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
        else:
            texts = tokenizer_texts(ctx, families)
            tokenizer = build_tokenizer(
                cfg.tokenizer, texts, ctx.index.tokens, cfg.model.name_or_path
            )
            ctx.index.save(run_dir / "item_index.json")
            if progress:
                print(f"item index: {ctx.index.describe()}", file=sys.stderr)
            tokenizer.save_pretrained(run_dir / "tokenizer")
    if not accelerator.is_main_process and not resuming:
        ctx.index = ItemIndex.load(run_dir / "item_index.json")
    item_ids = tokenizer.convert_tokens_to_ids(ctx.index.tokens)
    model = build_model(cfg.model, tokenizer, item_ids)

    collator = Collator(tokenizer, cfg.train.max_source_length, cfg.train.max_target_length)
    first_pairs = epoch_examples(cfg, ctx, families, 0)  # sizes the schedule, trained in epoch 0
    batches_per_epoch = math.ceil(len(first_pairs) / cfg.train.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / accelerator.num_processes)  # per process
    total_steps = steps_per_epoch * cfg.train.epochs
    optimizer = torch.optim.AdamW(param_groups(model, cfg), weight_decay=cfg.train.weight_decay)
    from transformers import get_linear_schedule_with_warmup

    # accelerate steps a prepared scheduler once per process at every optimizer step, so
    # the schedule is sized in batches of all processes together.
    schedule_steps = steps_per_epoch * accelerator.num_processes * cfg.train.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.train.warmup_ratio * schedule_steps), schedule_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    first_epoch = 0
    if resuming:
        accelerator.load_state(str(state_dir))
        first_epoch = json.loads((run_dir / "trainer_state.json").read_text())["epoch"] + 1
    valid = _valid_pairs(ctx, families)

    model.train()
    bar = tqdm(
        total=total_steps,
        initial=first_epoch * steps_per_epoch,
        desc="train",
        disable=not (progress and accelerator.is_local_main_process),
        dynamic_ncols=True,
    )
    for epoch in range(first_epoch, cfg.train.epochs):
        t0 = time.time()
        loader = accelerator.prepare(
            DataLoader(
                first_pairs if epoch == 0 else epoch_examples(cfg, ctx, families, epoch),
                batch_size=cfg.train.batch_size,
                shuffle=False,
                collate_fn=collator,
            )
        )
        running, n, collator.truncated = 0.0, 0, 0
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running, n = running + loss.item(), n + 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / n:.3f}")
        truncated = collator.truncated  # training batches only
        val = validation_loss(
            accelerator.unwrap_model(model),
            collator,
            valid,
            cfg.train.batch_size,
            accelerator.device,
        )
        # torch format: the tied embedding / lm_head weights are saved as they are
        # (safetensors would drop the shared tensors and warn on every epoch)
        accelerator.save_state(str(state_dir), safe_serialization=False)
        if accelerator.is_main_process:
            record = {
                "epoch": epoch + 1,
                "train_loss": running / max(n, 1),
                "valid_loss": val,
                "truncated": truncated,
                "seconds": round(time.time() - t0, 2),
            }
            if truncated:
                print(
                    f"warning: epoch {epoch + 1}: {truncated} sources or targets were "
                    "cut at train.max_source_length / max_target_length",
                    file=sys.stderr,
                )
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            state = {"epoch": epoch, "resume_key": resume_key(cfg)}
            (run_dir / "trainer_state.json").write_text(json.dumps(state))
    bar.close()

    accelerator.wait_for_everyone()
    summary = {
        "data_dir": str(data_dir.resolve()),
        "data_fingerprint": ctx.manifest["fingerprint"],
        "config_hash": config_hash(cfg),
        "git_commit": git_commit(),
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "train_seconds": round(time.time() - start_time, 2),
        "steps": total_steps,
        "item_index": ctx.index.report,
    }
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        if cfg.model.finetune == "lora":
            final = final.merge_and_unload()
        final.save_pretrained(run_dir / "model")
        summary["parameters"] = sum(p.numel() for p in final.parameters())
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return summary
