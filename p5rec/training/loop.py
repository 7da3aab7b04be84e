"""The training loop: one code path for `p5rec train` and `accelerate launch scripts/train.py`,
on one CPU, one GPU or many processes.

Run directory written here::

    RUN/config.yaml          resolved experiment config
    RUN/item_index.json      item -> code tokens (fitted on training data only)
    RUN/tokenizer/           tokenizer with the item tokens
    RUN/checkpoints/step-N/  the newest checkpoints (accelerate state + trainer_state.json)
    RUN/best/                the best model so far by train.select_metric
    RUN/model/               the run's model: the best one (LoRA merged, or the adapter)
    RUN/train_log.jsonl      training and validation records (see TrainingLog)
    RUN/curves.png           loss per family and the validation curve
    RUN/tensorboard/         TensorBoard events, when tensorboard is installed
    RUN/run.json             data fingerprint, config hash, commit, timings, index report

Every step is reproducible from the seed and the step number (the data order is a
function of the epoch, dropout is seeded per step), so a run resumed from a checkpoint
ends with the same loss curve as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from p5rec.config import ConfigError, ExperimentConfig, config_hash, save_config
from p5rec.data.dataset import prepare
from p5rec.tasks import get_family
from p5rec.training.averaging import WeightAverage
from p5rec.training.checkpoints import (
    STATE,
    atomic_copytree,
    atomic_write_text,
    clean_partial,
    latest_checkpoint,
    publish_dir,
    save_checkpoint,
)
from p5rec.training.context import (
    build_context,
    check_context_tokens,
    git_commit,
    tokenizer_texts,
)
from p5rec.training.expectation import expectation_loss
from p5rec.training.mixture import (
    Collator,
    TaskLoss,
    epoch_batches,
    noise_words,
    token_losses,
    training_templates,
)
from p5rec.training.observe import TrainingLog, plot_curves, tensorboard_available
from p5rec.training.row_rates import RowRate
from p5rec.training.selection import mean_relative_change
from p5rec.training.validation import Validation

__all__ = ["train"]

RUN_ARTEFACTS = (
    "checkpoints",
    "best",
    "model",
    "tokenizer",
    "tensorboard",
    "item_index.json",
    "train_log.jsonl",
    "curves.png",
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


# Settings a resumed run may change: how long it trains and how it is run.
RESUMABLE = ("epochs", "max_steps", "resume", "keep_checkpoints", "num_workers", "tensorboard")


def resume_key(cfg: ExperimentConfig) -> str:
    """Hash of everything a resumed run must share with the saved one."""
    same = dataclasses.replace(
        cfg,
        train=dataclasses.replace(
            cfg.train, **{k: getattr(type(cfg.train)(), k) for k in RESUMABLE}
        ),
    )
    return config_hash(same)


def param_groups(model, cfg: ExperimentConfig) -> list[dict]:
    """Trainable parameters: the token embedding matrix at ``lr * embedding_lr_scale`` (when
    it trains as a whole, as in full fine-tuning), everything else at ``lr``."""
    embedding = model.get_input_embeddings().weight
    trainable = [p for p in model.parameters() if p.requires_grad]
    rest = [p for p in trainable if p is not embedding]
    groups = [{"params": rest, "lr": cfg.train.lr}]
    if len(rest) < len(trainable):
        groups.append({"params": [embedding], "lr": cfg.train.lr * cfg.train.embedding_lr_scale})
    return groups


def vocabulary_rate(model, cfg: ExperimentConfig, added: list[int]) -> RowRate | None:
    """With ``train.embedding_lr_rows: added``, what holds the vocabulary's own embedding
    rows (every row but ``added``) to ``lr`` while the added tokens train at the scaled rate;
    None when every row trains at one rate."""
    tc = cfg.train
    embedding = model.get_input_embeddings().weight
    if tc.embedding_lr_rows == "all" or tc.embedding_lr_scale == 1 or not embedding.requires_grad:
        return None
    skip = set(added)
    rows = [r for r in range(embedding.shape[0]) if r not in skip]
    return RowRate(embedding, rows, 1.0 / tc.embedding_lr_scale)


def _precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _resolved(cfg: ExperimentConfig) -> ExperimentConfig:
    """Local paths made absolute (a saved config and an exported adapter work from anywhere),
    and a clear error for a data directory that is not a prepared dataset."""
    data, model = cfg.data, cfg.model
    if data.path:
        path = Path(data.path)
        if not (path / "manifest.json").is_file():
            raise ConfigError(
                f"data.path {data.path}: "
                + ("no such directory" if not path.exists() else "not a prepared dataset")
                + " (make one with `p5rec prepare`)"
            )
        data = dataclasses.replace(data, path=str(path.resolve()))
    if model.name_or_path and Path(model.name_or_path).exists():
        model = dataclasses.replace(model, name_or_path=str(Path(model.name_or_path).resolve()))
    return dataclasses.replace(cfg, data=data, model=model)


def _step_seed(seed: int, step: int, micro: int) -> int:
    return (seed * 1_000_003 + step * 1009 + micro) % (2**63)


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def _tokenizer_and_index(cfg, run_dir, data_dir, accelerator, fresh: bool, progress: bool):
    """The main process of a fresh run builds (or takes from the checkpoint) the item index
    and tokenizer and saves them; other processes and resumed runs load what was saved, so
    every process uses identical token ids."""
    from transformers import AutoTokenizer

    from p5rec.indexing import ItemIndex
    from p5rec.modeling import build_tokenizer, check_same_vocabulary, run_artefacts

    families = [get_family(f) for f in cfg.tasks.families]
    for family in families:
        training_templates(cfg, family)  # a wrong template id fails before any work
    source = cfg.model.name_or_path
    artefacts = run_artefacts(source) if source else None
    with accelerator.main_process_first():
        if fresh and accelerator.is_main_process:
            # a p5rec checkpoint brings its item index: fine-tuning must keep it
            ctx = build_context(
                cfg, data_dir, ItemIndex.load(artefacts.index) if artefacts else None
            )
            checkpoint_tokenizer = str(artefacts.tokenizer) if artefacts else source
            tokenizer = build_tokenizer(
                cfg.tokenizer,
                tokenizer_texts(ctx, families),
                [*ctx.index.tokens, *ctx.added_tokens],
                checkpoint_tokenizer,
            )
            if cfg.tokenizer.path and checkpoint_tokenizer:
                has_tokenizer = any(
                    (Path(checkpoint_tokenizer) / f).is_file()
                    for f in ("tokenizer_config.json", "tokenizer.json", "spiece.model")
                )
                if has_tokenizer:
                    check_same_vocabulary(tokenizer, checkpoint_tokenizer, "tokenizer.path")
            ctx.index.save(run_dir / "item_index.json")
            tokenizer.save_pretrained(run_dir / "tokenizer")
            # what every other process and a resumed run will read
            tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
            if progress:
                print(f"item index: {ctx.index.describe()}", file=sys.stderr)
        else:
            ctx = build_context(cfg, data_dir, ItemIndex.load(run_dir / "item_index.json"))
            tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
            check_context_tokens(ctx, tokenizer, str(run_dir))
    return ctx, tokenizer, families


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or with ``train.resume``, continue) a run; returns the summary in run.json.

    ``on_step`` is called after every optimizer step with ``{"step", "epoch", "checkpoint"}``
    (the checkpoint written at that step, or None).
    """
    from accelerate import Accelerator
    from transformers import get_scheduler
    from transformers.utils import logging as hf_logging

    from p5rec.generation import Engine
    from p5rec.modeling import build_model, tokenizer_fingerprint

    hf_logging.disable_progress_bar()  # per-shard save bars would drown the training bar
    start_time = time.time()
    run_dir = Path(run_dir)
    cfg = _resolved(cfg)
    tc = cfg.train
    trackers = ["tensorboard"] if tc.tensorboard and tensorboard_available() else None
    accelerator = Accelerator(
        mixed_precision=_precision(tc.mixed_precision),
        log_with=trackers,
        project_dir=str(run_dir / "tensorboard"),
    )
    main = accelerator.is_main_process
    checkpoint = latest_checkpoint(run_dir) if tc.resume else None
    saved: dict = json.loads((checkpoint / STATE).read_text()) if checkpoint else {}
    if saved and saved.get("resume_key") != resume_key(cfg):
        raise ConfigError(
            f"{run_dir}: cannot resume: the config differs from the saved run's in more than "
            f"train.{'/'.join(RESUMABLE)} (start a new run directory instead)"
        )
    if tc.resume and not checkpoint and main and progress:
        print(f"{run_dir}: no checkpoint to resume from; starting afresh", file=sys.stderr)

    data_dir = Path(cfg.data.path) if cfg.data.path else run_dir / "data"
    with accelerator.main_process_first():
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if checkpoint:
                clean_partial(run_dir)
            else:  # a fresh start: nothing of an earlier run may be mixed in
                clear_run(run_dir)
            save_config(cfg, run_dir / "config.yaml")
            if not cfg.data.path and not checkpoint:  # the embedded corpus, made afresh
                prepare("synthetic", None, data_dir, cfg.data)
    ctx, tokenizer, families = _tokenizer_and_index(
        cfg, run_dir, data_dir, accelerator, checkpoint is None, progress
    )
    # eval.calibrate_rating: the kept model's rating line is fitted once training ends
    fit_rating_line = cfg.eval.calibrate_rating and "rating" in cfg.tasks.families
    if fit_rating_line and not ctx.splits.reviews["valid"]:
        raise ConfigError(
            f"eval.calibrate_rating: {data_dir} has no validation ratings to fit the rating "
            "line on (turn it off, or split off validation ratings)"
        )
    fingerprints = {
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "item_index": config_hash(ctx.index.codes),
    }
    for what, value in fingerprints.items():
        if saved and saved["fingerprints"][what] != value:
            raise ConfigError(
                f"{checkpoint} was written with another {what.replace('_', ' ')} than the one "
                f"in {run_dir}; resume needs the run's own (start a new run directory instead)"
            )

    item_ids = tokenizer.convert_tokens_to_ids(ctx.index.tokens)
    # user, number and family tokens: new rows too (trainable with LoRA, like the item rows)
    other_ids = tokenizer.convert_tokens_to_ids(ctx.added_tokens)
    positions = tc.max_source_length + tc.max_target_length
    model = build_model(cfg.model, tokenizer, [*item_ids, *other_ids], positions, tc.seed)
    encoder_decoder = bool(model.config.is_encoder_decoder)
    start = model.config.decoder_start_token_id if encoder_decoder else None
    if tc.history_loss and encoder_decoder:
        raise ConfigError("train.history_loss needs a decoder-only model (model.arch llama/qwen2)")
    history = [f for f, fam in enumerate(families) if fam.history_source]
    collator = Collator(
        tokenizer,
        tc.max_source_length,
        tc.max_target_length,
        start,
        item_ids=item_ids,
        history_families=history if tc.history_loss else (),
    )
    expectation = expectation_loss(tc.expectation_loss, families, ctx, tokenizer)
    if expectation is not None:
        expectation = expectation.to(accelerator.device)
    task_loss = TaskLoss(
        [cfg.tasks.loss_weight(f.name) for f in families], cfg.tasks.balancing == "uncertainty"
    ).to(accelerator.device)
    groups = param_groups(model, cfg)
    if task_loss.log_vars is not None:
        groups.append({"params": [task_loss.log_vars], "lr": tc.lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)

    world, rank, accum = accelerator.num_processes, accelerator.process_index, tc.grad_accum_steps
    tasks = cfg.tasks
    words = noise_words(tokenizer) if tasks.noisy else []
    batches = epoch_batches(cfg, ctx, families, 0, words)
    if not batches:
        raise ConfigError(
            f"no training examples: the families {list(cfg.tasks.families)} have none in "
            f"{data_dir} (check tasks.families, tasks.samples and the dataset's splits)"
        )
    steps_per_epoch = math.ceil(len(batches) / (world * accum))
    total_steps = tc.max_steps or steps_per_epoch * tc.epochs
    scheduler = get_scheduler(
        "constant_with_warmup" if tc.scheduler == "constant" else tc.scheduler,
        optimizer,
        num_warmup_steps=int(tc.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler, task_loss)
    word_rate = vocabulary_rate(accelerator.unwrap_model(model), cfg, [*item_ids, *other_ids])
    average = None
    if tc.ema_decay:
        average = WeightAverage(accelerator.unwrap_model(model), tc.ema_decay)
        accelerator.register_for_checkpointing(average)
    step = 0
    best = {"value": None, "step": None, "bad_evals": 0}
    log = TrainingLog(run_dir / "train_log.jsonl")
    validation = Validation(cfg, ctx, families, accelerator)
    stop = False
    layout = {"num_processes": world, "mixed_precision": accelerator.mixed_precision}
    for key, value in layout.items():
        if saved and saved[key] != value:
            raise ConfigError(
                f"{checkpoint} was written with {key}={saved[key]}, this run has {value}; "
                "resume with the same setting (its data order and state depend on it)"
            )
    if checkpoint:
        accelerator.load_state(str(checkpoint))
        step, best, stop = saved["step"], saved["best"], saved["stopped"]
        if isinstance(best["value"], (int, float)):  # saved when the selection was one metric
            best["value"] = {tc.select_metric[0]: best["value"]}
        if main:
            log.truncate_after(step)
        kept = run_dir / "best" / "best.json"
        if best["step"] is not None and (
            not kept.is_file() or json.loads(kept.read_text())["step"] != best["step"]
        ):
            # the killed run replaced best/ after this checkpoint: the checkpoint's best
            # model is gone, so the next validation starts the comparison afresh
            if main and progress:
                print(f"{run_dir}/best is newer than {checkpoint}; re-validating", file=sys.stderr)
            best = {"value": None, "step": None, "bad_evals": 0}
    if trackers:
        accelerator.init_trackers(cfg.name)

    unwrapped = accelerator.unwrap_model(model)
    engine = None
    names = [f.name for f in families]
    # per-family sums stay on the device: reading them back every step would stall a GPU
    zeros = torch.zeros(len(names), device=accelerator.device)
    window = {"sums": zeros.clone(), "counts": zeros.clone()}
    window.update(samples=0, truncated=0, seconds=0.0)
    totals = {"samples": 0, "seconds": 0.0}

    def flush_log(epoch: float) -> None:
        """Write the window's training record (every process takes part in the reduce)."""
        if not window["seconds"]:
            return
        t0 = time.perf_counter()
        window["sums"].cpu()  # waits for the steps still queued on the device: their time
        window["seconds"] += time.perf_counter() - t0  # belongs to the window
        sums = accelerator.reduce(window["sums"], "sum").cpu()
        counts = accelerator.reduce(window["counts"], "sum").cpu()
        extra = accelerator.reduce(
            torch.tensor([window["samples"], window["truncated"]], device=accelerator.device),
            "sum",
        ).tolist()
        record = {
            "kind": "train",
            "step": step,
            "epoch": round(epoch, 4),
            "lr": scheduler.get_last_lr()[0],
            "loss": float(sums.sum() / counts.sum().clamp(min=1)),
        }
        record.update(
            {f"loss/{n}": float(sums[i] / counts[i]) for i, n in enumerate(names) if counts[i]}
        )
        if task_loss.log_vars is not None:
            record.update(
                {f"log_var/{n}": float(v) for n, v in zip(names, task_loss.log_vars.tolist())}
            )
        record["samples_per_s"] = round(extra[0] / window["seconds"], 2)
        record["truncated"] = int(extra[1])
        totals["samples"] += int(extra[0])
        totals["seconds"] += window["seconds"]
        if main:
            log.append(record)
            if extra[1]:
                print(
                    f"warning: step {step}: {int(extra[1])} sources or targets were cut at "
                    "train.max_source_length / max_target_length",
                    file=sys.stderr,
                )
        if trackers:
            accelerator.log(
                {k: v for k, v in record.items() if k not in ("kind", "step")}, step=step
            )
        bar.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{record['samples_per_s']:.0f}")
        window["sums"].zero_()
        window["counts"].zero_()
        window.update(samples=0, truncated=0, seconds=0.0)

    def validate(epoch: float) -> bool:
        """Validate, keep the best model (the averaged weights under ``train.ema_decay``);
        True when early stopping says stop."""
        with average.swapped() if average else contextlib.nullcontext():
            return validate_weights(epoch)

    def validate_weights(epoch: float) -> bool:
        nonlocal engine
        t0 = time.time()
        unwrapped.eval()
        with accelerator.autocast():
            record = {"kind": "valid", "step": step, "epoch": round(epoch, 4)}
            record.update(validation.loss(unwrapped, collator, task_loss))
            if validation.scored:
                if engine is None:
                    engine = Engine(
                        unwrapped, tokenizer, ctx.index, tc.max_source_length, accelerator.device
                    )
                record.update(validation.metrics(engine))
                record["examples"] = validation.sizes()
        unwrapped.train()
        unknown = [m for m in tc.select_metric if m not in record]
        if unknown:
            available = sorted(k for k in record if k not in ("kind", "step", "epoch"))
            raise ConfigError(
                f"train.select_metric {unknown}: not validation metrics; available: {available}"
            )
        value = {m: record[m] for m in tc.select_metric}
        better = best["value"] is None or mean_relative_change(value, best["value"]) > 0
        if better:
            best.update(value=value, step=step, bad_evals=0)
            save_best()
        else:
            best["bad_evals"] += 1
        record["best"] = better
        record["seconds"] = round(time.time() - t0, 2)
        if main:
            log.append(record)
            plot_curves(log.records(), run_dir / "curves.png", tc.select_metric)
        if trackers:
            accelerator.log(
                {f"valid/{k}": v for k, v in record.items() if isinstance(v, float)}, step=step
            )
        return bool(tc.patience and best["bad_evals"] >= tc.patience)

    def save_best() -> None:
        if main:
            staged = run_dir / ".staged-best"
            shutil.rmtree(staged, ignore_errors=True)
            unwrapped.save_pretrained(staged)
            (staged / "best.json").write_text(json.dumps({"step": step, **best["value"]}))
            publish_dir(staged, run_dir / "best")
        accelerator.wait_for_everyone()

    def over_budget() -> bool:
        """Whether the time budget is spent (decided together, so every process stops)."""
        if not tc.max_minutes:
            return False
        spent = float(time.time() - start_time > 60 * tc.max_minutes)
        return bool(accelerator.reduce(torch.tensor(spent, device=accelerator.device), "max"))

    out_of_time = False
    model.train()
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not (progress and accelerator.is_local_main_process),
        dynamic_ncols=True,
    )
    while step < total_steps and not stop:
        epoch, first = divmod(step, steps_per_epoch)
        if epoch:
            batches = epoch_batches(cfg, ctx, families, epoch, words)
        last = min(steps_per_epoch, first + total_steps - step)
        # step s of the epoch takes batches (s * accum + m) * world + rank, m < accum;
        # the last step of an epoch wraps around to its first batches when they run out
        mine = [
            batches[((s * accum + m) * world + rank) % len(batches)]
            for s in range(first, last)
            for m in range(accum)
        ]
        loader = iter(
            DataLoader(mine, batch_size=None, collate_fn=collator, num_workers=tc.num_workers)
        )
        for _ in range(first, last):
            t0 = time.perf_counter()
            micro = []
            for _ in range(accum):
                batch = next(loader)
                window["truncated"] += int(batch.pop("truncated"))  # a CPU count
                micro.append({k: v.to(accelerator.device) for k, v in batch.items()})
            # the step's loss is a mean over the target tokens of all its micro-batches on
            # all processes (DDP averages gradients over processes, hence the world factor)
            tokens = sum((b["labels"] != -100).sum() for b in micro).float()
            normaliser = accelerator.reduce(tokens, "sum").clamp(min=1) / world
            for m, batch in enumerate(micro):
                # dropout depends on the seed and the batch's place only, not on history
                torch.manual_seed(_step_seed(tc.seed, step, m * world + rank))
                sync = m == accum - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss, mask = token_losses(model, batch, expectation)
                    joint, sums, counts = task_loss(loss, mask, batch["family"], normaliser)
                    accelerator.backward(joint)
                window["sums"] += sums
                window["counts"] += counts
                window["samples"] += len(batch["family"])
            if task_loss.log_vars is not None and world > 1:
                task_loss.log_vars.grad = accelerator.reduce(task_loss.log_vars.grad, "mean")
            accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            if word_rate is not None:
                word_rate.before()
            optimizer.step()
            if word_rate is not None:
                word_rate.after()
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: step again later
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update()
            if task_loss.log_vars is not None:
                task_loss.log_vars.grad = None
            step += 1
            window["seconds"] += time.perf_counter() - t0
            bar.update(1)
            epoch_now = step / steps_per_epoch
            end_of_epoch = step % steps_per_epoch == 0
            if step % tc.log_every == 0:
                flush_log(epoch_now)
                out_of_time = out_of_time or over_budget()
            due = tc.eval_every and step % tc.eval_every == 0
            final = step == total_steps or out_of_time
            if due or (not tc.eval_every and end_of_epoch) or final:
                flush_log(epoch_now)
                stop = validate(epoch_now) or out_of_time
            written = None
            due = tc.checkpoint_every and step % tc.checkpoint_every == 0
            if due or (not tc.checkpoint_every and end_of_epoch) or stop or step == total_steps:
                flush_log(epoch_now)  # the log splits where a resumed run will split it
                state = {
                    "step": step,
                    "epoch": epoch_now,
                    "best": best,
                    "stopped": stop,
                    **layout,
                    "resume_key": resume_key(cfg),
                    "fingerprints": fingerprints,
                }
                written = save_checkpoint(accelerator, run_dir, step, state, tc.keep_checkpoints)
            if on_step is not None:
                on_step({"step": step, "epoch": epoch_now, "checkpoint": written})
            if stop:
                break
    bar.close()
    if trackers:
        accelerator.end_training()

    checksum = torch.tensor(
        [sum(float(p.detach().double().sum()) for p in unwrapped.parameters())],
        device=accelerator.device,
        dtype=torch.float64,
    )
    sums = accelerator.gather(checksum).tolist()
    if max(sums) - min(sums) > 1e-9 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"the processes' models diverged (parameter sums {sums})")
    summary = {
        "data_dir": str(data_dir.resolve()),
        "data_fingerprint": ctx.manifest["fingerprint"],
        "config_hash": config_hash(cfg),
        "git_commit": git_commit(),
        "num_processes": world,
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "backbone": unwrapped.config.model_type,
        "finetune": cfg.model.finetune,
        "parameters": sum(p.numel() for p in unwrapped.parameters()),
        "trainable_parameters": sum(p.numel() for p in unwrapped.parameters() if p.requires_grad),
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "stopped_early": stop,
        "out_of_time": out_of_time,
        "best": {"metrics": list(tc.select_metric), **best},
        "train_seconds": round(time.time() - start_time, 2),
        "samples_per_s": round(totals["samples"] / max(totals["seconds"], 1e-9), 2),
        "peak_memory_mb": round(_peak_memory_mb(), 1),
        "param_checksums": sums,
        "item_index": ctx.index.report,
    }
    if main:
        _export_best(cfg, run_dir, len(tokenizer))
        store_priors = cfg.eval.label_prior_from == "model"
        if fit_rating_line or store_priors:  # what ask and serve answer with, from RUN/model
            engine = _exported_engine(cfg, run_dir, accelerator.device)
        if fit_rating_line:
            summary["rating_calibration"] = _rating_line(cfg, engine, ctx)
        if store_priors:
            summary["label_priors"] = _label_priors(cfg, engine, ctx)
        atomic_write_text(run_dir / "run.json", json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return summary


def _exported_engine(cfg: ExperimentConfig, run_dir: Path, device):
    """An ``Engine`` over the exported model (``RUN/model``)."""
    from p5rec.generation import Engine
    from p5rec.modeling import load_trained

    model, tokenizer, index = load_trained(run_dir)
    return Engine(model, tokenizer, index, cfg.train.max_source_length, device=device)


def _rating_line(cfg: ExperimentConfig, engine, ctx) -> dict:
    """The exported model's rating line (``Rating.fit_line``, the first seen template, the
    one ``p5rec ask`` and ``serve`` score ratings with), fitted on the validation split:
    ``run.json``'s ``rating_calibration``, which the served ratings go through."""
    return get_family("rating").fit_line(engine, ctx, cfg.eval.options("seen"))


def _label_priors(cfg: ExperimentConfig, engine, ctx) -> dict:
    """With ``eval.label_prior_from=model``, the exported model's label prior
    (``tasks.labels.label_prior``) per label family under its first seen template, the one
    ``p5rec ask`` and ``serve`` answer with: ``run.json``'s ``label_priors``, so a served
    answer need not score the validation prompts first."""
    from p5rec.tasks.labels import label_prior

    options = cfg.eval.options("seen")
    priors = {}
    for name in ("sentiment", "category"):
        if name in cfg.tasks.families:
            family = get_family(name)
            template = family.eval_template("seen")
            prior = label_prior(family, engine, ctx, template, options)
            priors[name] = {"template": template.id, "prior": prior}
    return priors


def _export_best(cfg: ExperimentConfig, run_dir: Path, vocab_size: int) -> None:
    """``RUN/model`` from ``RUN/best``: as saved, or a LoRA adapter merged into its base."""
    from p5rec.modeling import load_backbone

    best = run_dir / "best"
    if cfg.model.finetune == "lora" and cfg.train.export == "merged":
        staged = run_dir / ".staged-model"
        shutil.rmtree(staged, ignore_errors=True)
        load_backbone(best, vocab_size).save_pretrained(staged)
        publish_dir(staged, run_dir / "model")
    else:
        atomic_copytree(best, run_dir / "model")
    (run_dir / "model" / "best.json").unlink(missing_ok=True)
