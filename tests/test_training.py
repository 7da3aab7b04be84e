"""The training loop: exact resume after SIGKILL, LoRA rows, decoder-only backbones, the
task mixture and its joint loss, validation and early stopping, bad input."""

from __future__ import annotations

import json
import math
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from p5rec.config import ConfigError
from p5rec.modeling import load_backbone, load_trained
from p5rec.training import train
from p5rec.training.mixture import (
    Collator,
    Pair,
    TaskLoss,
    epoch_pairs,
    family_counts,
    history_windows,
    label_balanced_sample,
    token_losses,
)
from p5rec.training.selection import mean_relative_change
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]

# 6 steps per epoch, 2 epochs; checkpoints every 4 steps, log lines every 2
RESUME = [
    "train.samples_per_epoch=96",
    "train.epochs=2",
    "train.checkpoint_every=4",
    "train.log_every=2",
]


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def curve(records: list[dict]) -> list[dict]:
    """Every logged value except timings."""
    timing = ("samples_per_s", "seconds")
    return [{k: v for k, v in r.items() if k not in timing} for r in records]


def kill_at(step: int):
    """An on_step callback that SIGKILLs the process after ``step``."""
    import os
    import signal

    def callback(info: dict) -> None:
        if info["step"] == step:
            os.kill(os.getpid(), signal.SIGKILL)

    return callback


@pytest.mark.parametrize("extra", [[], ["train.ema_decay=0.9"]], ids=["raw", "ema"])
def test_resume_after_sigkill_gives_the_same_curve(tmp_path, tiny_data, extra):
    """The weight average (``train.ema_decay``) is restored with the rest of the state."""
    overrides = [f"data.path={tiny_data}", *RESUME, *extra]
    reference = tmp_path / "reference"
    train(tiny_config(*overrides), reference, progress=False)

    run = tmp_path / "run"
    code = (
        "from tests.conftest import tiny_config\n"
        "from tests.test_training import kill_at\n"
        "from p5rec.training import train\n"
        f"train(tiny_config(*{overrides!r}), {str(run)!r}, progress=False, on_step=kill_at(7))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    # killed after step 7: the newest checkpoint is step 4, the log already reaches step 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004"]
    assert max(r["step"] for r in log_of(run)) == 6
    assert not (run / "model").exists()
    # a checkpoint half-written when the process died is never read
    partial = run / "checkpoints" / ".tmp-step-00000008"
    partial.mkdir()
    (partial / "pytorch_model.bin").write_bytes(b"\0" * 10)

    summary = train(tiny_config(*overrides, "train.resume=true"), run, progress=False)
    assert summary["steps"] == 12
    assert not partial.exists()
    assert curve(log_of(run)) == curve(log_of(reference))
    resumed, _, _ = load_trained(run)
    uninterrupted, _, _ = load_trained(reference)
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_a_different_config(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32"), run, progress=False)
    changed = tiny_config(
        f"data.path={tiny_data}", "train.samples_per_epoch=32", "train.lr=0.5", "train.resume=true"
    )
    with pytest.raises(ConfigError, match="cannot resume"):
        train(changed, run, progress=False)


def test_resume_refuses_a_checkpoint_of_another_tokenizer(tmp_path, tiny_data):
    run = tmp_path / "run"
    cfg = tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32")
    train(cfg, run, progress=False)
    state = next((run / "checkpoints").iterdir()) / "trainer_state.json"
    saved = json.loads(state.read_text())
    saved["fingerprints"]["tokenizer"] = "0" * 12
    state.write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="another tokenizer"):
        train(
            tiny_config(
                f"data.path={tiny_data}", "train.samples_per_epoch=32", "train.resume=true"
            ),
            run,
            progress=False,
        )


def test_more_epochs_continue_from_the_last_checkpoint(tmp_path, tiny_data):
    run = tmp_path / "run"
    base = [f"data.path={tiny_data}", "train.samples_per_epoch=32"]
    train(tiny_config(*base), run, progress=False)
    summary = train(tiny_config(*base, "train.epochs=2", "train.resume=true"), run, progress=False)
    steps = [r["step"] for r in log_of(run) if r["kind"] == "valid"]
    assert steps == [2, 4] and summary["steps"] == 4  # epoch 1 was not trained again


def test_resume_reads_a_checkpoint_whose_best_is_one_number(tmp_path, tiny_data):
    """Checkpoints written when the selection was a single metric hold its value alone."""
    run = tmp_path / "run"
    base = [f"data.path={tiny_data}", "train.samples_per_epoch=32"]
    train(tiny_config(*base), run, progress=False)
    state = run / "checkpoints" / "step-00000002" / "trainer_state.json"
    saved = json.loads(state.read_text())
    saved["best"]["value"] = saved["best"]["value"]["loss"]
    state.write_text(json.dumps(saved))
    summary = train(tiny_config(*base, "train.epochs=2", "train.resume=true"), run, progress=False)
    valid = [r for r in log_of(run) if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [2, 4]
    assert valid[1]["best"] == (valid[1]["loss"] < valid[0]["loss"])
    assert summary["best"]["value"] == {"loss": min(r["loss"] for r in valid)}


def test_fresh_start_clears_an_earlier_run(tmp_path, tiny_data):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-00000099").mkdir(parents=True)
    (run / "checkpoints" / "step-00000099" / "trainer_state.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    train(tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32"), run, progress=False)
    assert not (run / "metrics.json").exists()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002"]


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, tiny_data) -> Path:
    run = tmp_path_factory.mktemp("llama")
    cfg = tiny_config(f"data.path={tiny_data}", "model.arch=llama", "model.d_kv=16")
    train(cfg, run, progress=False)
    return run


def test_decoder_only_trains_and_evaluates(llama_run, tiny_data):
    from p5rec.evaluation import evaluate_run

    info = json.loads((llama_run / "run.json").read_text())
    assert info["backbone"] == "llama"
    cfg = tiny_config(f"data.path={tiny_data}", "model.arch=llama", "model.d_kv=16")
    report = evaluate_run(llama_run, cfg, ["next_item", "rating"], progress=False)
    ranked = report["results"]["next_item"]
    assert ranked["n"] == 8 and 0 <= ranked["model"]["hr@10"] <= 1


@pytest.mark.parametrize("base", ["tiny_run", "llama_run"])
def test_lora_trains_adapters_and_item_rows_only(base, request, tmp_path, tiny_data):
    """LoRA through the training loop: against the checkpoint it started from, only the
    item-token rows of the embedding and the adapted modules' weights change."""
    start = request.getfixturevalue(base)
    run = tmp_path / "lora"
    cfg = tiny_config(
        f"data.path={tiny_data}",
        f"model.name_or_path={start}",
        "model.finetune=lora",
        "train.export=adapter",
        "train.lr=0.05",
    )
    summary = train(cfg, run, progress=False)
    assert 0 < summary["trainable_parameters"] < summary["parameters"] / 2
    assert (run / "model" / "adapter_config.json").is_file()
    before = load_backbone(start / "model").state_dict()
    model, tokenizer, index = load_trained(run)  # the base with the adapter merged in
    after = model.state_dict()
    assert before.keys() == after.keys()
    targets = ("q", "v") if base == "tiny_run" else ("q_proj", "v_proj")
    tied = ("shared.weight", "embed_tokens.weight", "lm_head.weight")  # one shared matrix
    item_ids = tokenizer.convert_tokens_to_ids(index.tokens)
    for name, old in before.items():
        new = after[name]
        if name.endswith(tied):
            changed = (new - old).abs().sum(-1) > 0
            assert changed[item_ids].all(), name
            others = torch.ones(len(changed), dtype=torch.bool)
            others[item_ids] = False
            assert not changed[others].any(), name
        elif name.split(".")[-2] in targets:
            assert not torch.equal(new, old), name  # merged adapter
        else:
            assert torch.equal(new, old), name  # frozen base weight


def test_lora_target_that_matches_nothing(tiny_run, tmp_path, tiny_data):
    cfg = tiny_config(
        f"data.path={tiny_data}",
        f"model.name_or_path={tiny_run}",
        "model.finetune=lora",
        "model.lora_target_modules=[q_proj]",
    )
    with pytest.raises(ConfigError, match=r"\['q_proj'\] match no module of this t5 model"):
        train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_checkpoint_with_another_item_index(tiny_run, tmp_path, tiny_data):
    cfg = tiny_config(
        f"data.path={tiny_data}", f"model.name_or_path={tiny_run}", "index.scheme=atomic"
    )
    with pytest.raises(ConfigError, match="another index config"):
        train(cfg, tmp_path / "r", progress=False)


def test_checkpoint_with_another_tokenizer(tiny_run, tmp_path, tiny_data):
    from p5rec.modeling import build_tokenizer

    other = build_tokenizer(tiny_config("tokenizer.vocab_size=60").tokenizer, ["zz yy xx"], [])
    other.save_pretrained(tmp_path / "tok")
    cfg = tiny_config(
        f"data.path={tiny_data}", f"model.name_or_path={tiny_run}", f"tokenizer.path={tmp_path}/tok"
    )
    with pytest.raises(ConfigError, match="not the one .* was trained with"):
        train(cfg, tmp_path / "r", progress=False)


def test_missing_data_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        train(tiny_config(f"data.path={tmp_path}/nowhere"), tmp_path / "r", progress=False)


def test_unknown_selection_metric(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="not among the validated families"):
        tiny_config("train.select_metric=rating/rmse", "train.eval_families=[next_item]")
    cfg = tiny_config(f"data.path={tiny_data}", "train.select_metric=next_item/ndcg@50")
    with pytest.raises(ConfigError, match="not validation metrics; available: .*ndcg@10"):
        train(cfg, tmp_path / "r", progress=False)


def test_early_stopping_keeps_the_best_model(tmp_path, tiny_data):
    """With a learning rate too small to change anything, the metric never improves: the
    run stops after ``patience`` validations and its model is the first one."""
    run = tmp_path / "run"
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "train.samples_per_epoch=96",
        "train.epochs=3",
        "train.lr=1e-12",
        "train.eval_every=2",
        "train.patience=2",
        "train.select_metric=next_item/hr@10",
        "train.eval_families=[next_item]",
    )
    summary = train(cfg, run, progress=False)
    assert summary["stopped_early"] and summary["steps"] == 6
    assert summary["best"]["step"] == 2 and summary["best"]["bad_evals"] == 2
    valid = [r for r in log_of(run) if r["kind"] == "valid"]
    assert [r["best"] for r in valid] == [True, False, False]
    assert set(valid[0]) >= {"next_item/hr@10", "loss/next_item", "loss/rating"}


def test_several_selection_metrics_keep_the_best_mean_relative_change(tmp_path, tiny_data):
    """Each validation is kept when its metrics' mean relative change over the best so far
    is positive; the kept model's metrics are recorded with it."""
    run = tmp_path / "run"
    metrics = ["next_item/hr@10", "rating/rmse", "loss/category"]
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "train.epochs=3",
        "train.eval_every=3",
        "train.lr=0.02",
        "train.eval_families=[next_item, rating]",
        f"train.select_metric=[{', '.join(metrics)}]",
    )
    summary = train(cfg, run, progress=False)
    valid = [r for r in log_of(run) if r["kind"] == "valid"]
    assert len(valid) >= 3
    best, flags = None, []
    for record in valid:
        values = {m: record[m] for m in metrics}
        flags.append(best is None or mean_relative_change(values, best) > 0)
        best = values if flags[-1] else best
    assert [r["best"] for r in valid] == flags
    assert True in flags[1:] and False in flags  # a later model kept, a trade-off refused
    kept = json.loads((run / "best" / "best.json").read_text())
    assert kept == {"step": summary["best"]["step"], **best}
    assert summary["best"]["metrics"] == metrics and summary["best"]["value"] == best
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_time_budget_stops_at_a_log_point_and_keeps_the_best_model(tmp_path, tiny_data):
    """A spent ``max_minutes`` budget stops training at the next log point, after a final
    validation, with the model exported and the stop recorded."""
    run = tmp_path / "run"
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "train.samples_per_epoch=96",
        "train.epochs=5",
        "train.log_every=2",
        "train.max_minutes=1e-6",
    )
    summary = train(cfg, run, progress=False)
    assert summary["out_of_time"] and summary["steps"] == 2
    valid = [r for r in log_of(run) if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [2] and valid[0]["best"]
    assert (run / "model").is_dir()


def test_train_log_has_per_family_losses_and_throughput(tiny_run):
    train_records = [r for r in log_of(tiny_run) if r["kind"] == "train"]
    assert train_records and all(r["samples_per_s"] > 0 for r in train_records)
    families = {k[5:] for r in train_records for k in r if k.startswith("loss/")}
    assert families == set(tiny_config().tasks.families)
    assert (tiny_run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_family_counts():
    cfg = tiny_config(
        "tasks.families=[next_item, rating, sentiment]",
        "train.samples_per_epoch=100",
        "tasks.mixture={next_item: 3}",
        "tasks.samples={sentiment: 7}",
    )
    pools = {"next_item": [0] * 1000, "rating": [0] * 10, "sentiment": [0] * 5}
    assert family_counts(cfg, pools) == {"next_item": 75, "rating": 25, "sentiment": 7}
    cfg = tiny_config(
        "tasks.families=[next_item, rating]",
        "train.samples_per_epoch=0",
        "tasks.mixture={rating: 0.5}",
    )
    assert family_counts(cfg, {"next_item": [0] * 40, "rating": [0] * 10}) == {
        "next_item": 40,
        "rating": 5,
    }
    assert family_counts(cfg, {"next_item": [0] * 40, "rating": []})["rating"] == 0


def test_label_balanced_sample_draws_each_label_equally():
    """Hand-computed: 10 draws over labels negative (1 example), neutral (2), positive (8)
    give shares 4, 3, 3 in sorted label order: the negative example four times, both
    neutral examples and one of them again, three distinct positive examples."""
    import random

    from p5rec.tasks.base import Example

    pool = [Example("sentiment", {}, "positive", {"id": f"p{j}"}) for j in range(8)]
    pool += [Example("sentiment", {}, "neutral", {"id": f"u{j}"}) for j in range(2)]
    pool += [Example("sentiment", {}, "negative", {"id": "n0"})]
    chosen = label_balanced_sample(pool, 10, random.Random(0))
    ids = [e.meta["id"] for e in chosen]
    assert ids.count("n0") == 4
    assert sorted(i for i in ids if i.startswith("u"))[:2] == ["u0", "u1"]
    assert len([i for i in ids if i.startswith("u")]) == 3
    positive = [i for i in ids if i.startswith("p")]
    assert len(positive) == len(set(positive)) == 3


def test_balance_labels_trains_sentiment_on_equal_label_counts(tiny_data):
    """With tasks.balance_labels a sentiment epoch holds every label equally often (the
    synthetic reviews are mostly positive) and the decision drops the prior correction;
    other families keep their natural sample."""
    from collections import Counter

    from p5rec.tasks import get_family
    from p5rec.tasks.labels import prior_weight
    from p5rec.training import build_context

    def label_counts(*extra):
        cfg = tiny_config(
            f"data.path={tiny_data}",
            "tasks.families=[sentiment, rating]",
            "tasks.samples={sentiment: 90, rating: 30}",
            *extra,
        )
        ctx = build_context(cfg, tiny_data)
        fams = [get_family("sentiment"), get_family("rating")]
        pairs = epoch_pairs(cfg, ctx, fams, 0)
        sentiment = Counter(p.target for p in pairs if p.family == 0)
        return sentiment, sum(p.family == 1 for p in pairs), ctx

    natural, n_rating, ctx = label_counts()
    assert len(natural) == 3 and max(natural.values()) > 30
    assert prior_weight(get_family("sentiment"), ctx, {}) == 1.0
    balanced, n_rating_balanced, ctx = label_counts("tasks.balance_labels=true")
    assert balanced == {"negative": 30, "neutral": 30, "positive": 30}
    assert n_rating == n_rating_balanced == 30
    assert prior_weight(get_family("sentiment"), ctx, {}) == 0.0
    assert prior_weight(get_family("category"), ctx, {}) == 0.0


def test_template_shuffle_reorders_the_epoch_prompts(tiny_data):
    """tasks.template_shuffle reaches the epoch's rendering: the same examples, whose
    prompts no longer all open with their template's first words."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    rating = get_family("rating")
    openings = tuple(o for t in rating.seen_templates() if (o := t.source.split("{")[0]))
    assert len(openings) >= 3  # shipped seen rating templates that open with words

    def pairs(*extra):
        cfg = tiny_config(
            f"data.path={tiny_data}",
            "tasks.families=[rating]",
            "tasks.samples={rating: 40}",
            *extra,
        )
        return epoch_pairs(cfg, build_context(cfg, tiny_data), [rating], 0)

    plain, shuffled = pairs(), pairs("tasks.template_shuffle=1.0")
    assert sorted(p.target for p in plain) == sorted(p.target for p in shuffled)
    moved = [sum(not p.source.startswith(openings) for p in ps) for ps in (plain, shuffled)]
    assert moved[1] >= moved[0] + 10  # plain: only templates that open with a placeholder


def test_template_insert_and_tail_lengthen_the_epoch_prompts(tiny_data):
    """tasks.template_insert and tasks.template_tail reach the epoch's rendering (the
    training loop passes the noise words): the same examples, with longer prompts that hold
    the words drawn."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    rating = get_family("rating")

    def pairs(*extra):
        cfg = tiny_config(
            f"data.path={tiny_data}",
            "tasks.families=[rating]",
            "tasks.samples={rating: 40}",
            *extra,
        )
        return epoch_pairs(cfg, build_context(cfg, tiny_data), [rating], 0, ["qqq"])

    plain, inserted = pairs(), pairs("tasks.template_insert=0.5")
    assert sorted(p.target for p in plain) == sorted(p.target for p in inserted)
    assert not any("qqq" in p.source for p in plain)
    assert sum("qqq" in p.source for p in inserted) >= 30
    # tasks.template_tail reaches it too: about half the prompts end with the drawn words
    tailed = pairs("tasks.template_tail=0.5")
    assert sorted(p.target for p in plain) == sorted(p.target for p in tailed)
    assert 8 <= sum(p.source.endswith(" qqq.") for p in tailed) <= 32


def test_template_noise_max_draws_a_noise_rate_per_example(tiny_data):
    """tasks.template_noise_max: each example's template noise rate is drawn between
    tasks.template_noise and it, so an epoch holds prompts with their wording intact and
    prompts that lost most of it (a fixed rate of the same mean gives neither extreme as
    often); the setting must not be below template_noise."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    rating = get_family("rating")
    literal = " ".join(t for t, *_ in string.Formatter().parse(rating.eval_template().source))
    words = {w for w in literal.split() if w.isalpha()}  # the template's own whole words

    def kept_shares(*extra):
        cfg = tiny_config(
            f"data.path={tiny_data}",
            "tasks.families=[rating]",
            "tasks.samples={rating: 200}",
            "tasks.templates={rating: [rating-1]}",
            *extra,
        )
        pairs = epoch_pairs(cfg, build_context(cfg, tiny_data), [rating], 0, ["qqq"])
        return [len(words & set(p.source.split())) / len(words) for p in pairs]

    ranged = kept_shares("tasks.template_noise_max=0.9")
    fixed = kept_shares("tasks.template_noise=0.45")
    assert len(words) >= 8
    assert sum(k >= 0.9 for k in ranged) > 2 * sum(k >= 0.9 for k in fixed)
    assert sum(k < 0.4 for k in ranged) > 2 * sum(k < 0.4 for k in fixed)
    with pytest.raises(ConfigError, match="template_noise_max"):
        tiny_config("tasks.template_noise=0.3", "tasks.template_noise_max=0.2")


def test_noise_ranges_give_one_family_its_own_noise_rates(tiny_data):
    """tasks.noise_ranges: a family's [low, high] replaces template_noise and
    template_noise_max for that family only (the same prompts as the global range when it is
    the only family); the other families keep the global setting; bad entries are named."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    rating, category = get_family("rating"), get_family("category")

    def config(*extra, families=(rating,)):
        names = ",".join(f.name for f in families)
        samples = ", ".join(f"{f.name}: 100" for f in families)
        return tiny_config(
            f"data.path={tiny_data}",
            f"tasks.families=[{names}]",
            f"tasks.samples={{{samples}}}",
            *extra,
        )

    def pairs(*extra, families=(rating,)):
        cfg = config(*extra, families=families)
        return epoch_pairs(cfg, build_context(cfg, tiny_data), list(families), 0, ["qqq"])

    assert pairs("tasks.noise_ranges={rating: [0.0, 0.9]}") == pairs("tasks.template_noise_max=0.9")
    both = (rating, category)
    assert not config(families=both).tasks.noisy
    ranged = config("tasks.noise_ranges={category: [0.0, 0.9]}", families=both)
    assert ranged.tasks.noisy  # training draws noise words for it
    mixed = pairs("tasks.noise_ranges={category: [0.0, 0.9]}", families=both)
    plain = pairs(families=both)
    assert len(mixed) == len(plain) == 200
    noisy = [p for p in mixed if p.family == 1 and "qqq" in p.source]
    assert len(noisy) > 20
    assert not any("qqq" in p.source for p in mixed if p.family == 0)
    # a family not trained ignores its entry (single-family ablations keep the config)
    assert pairs("tasks.noise_ranges={category: [0.0, 0.9]}") == pairs()
    with pytest.raises(ConfigError, match="unknown family 'weather'"):
        tiny_config("tasks.noise_ranges={weather: [0.0, 0.5]}")
    with pytest.raises(ConfigError, match=r"noise_ranges.rating must be \[low, high\]"):
        tiny_config("tasks.noise_ranges={rating: [0.5, 0.2]}")


def test_tasks_templates_trains_only_the_named_templates(tiny_data):
    """tasks.templates restricts a family's training prompts to the named seen templates,
    each of them used; the other families keep all theirs."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    rating, category = get_family("rating"), get_family("category")
    opening = {t.id: t.source.split("{")[0] for t in rating.seen_templates()}
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "tasks.families=[rating, category]",
        "tasks.samples={rating: 60, category: 60}",
        "tasks.templates={rating: [rating-1, rating-3]}",
    )
    pairs = epoch_pairs(cfg, build_context(cfg, tiny_data), [rating, category], 0)
    starts = [p.source for p in pairs if p.family == 0]
    named = (opening["rating-1"], opening["rating-3"])
    assert len(starts) == 60 and all(s.startswith(named) for s in starts)
    assert all(any(s.startswith(opening[i]) for s in starts) for i in ("rating-1", "rating-3"))
    all_category = {t.source.split("{")[0] for t in category.seen_templates()} - {""}
    used = {o for o in all_category if any(p.source.startswith(o) for p in pairs)}
    assert used == all_category  # every category template still trains


@pytest.mark.parametrize(
    ("templates", "message"),
    [
        ("{rating: [rating-1, rating-9]}", r"unknown template id\(s\) \['rating-9'\]; seen"),
        ("{rating: [rating-1, rating-4]}", r"\['rating-4'\] are unseen templates"),
        ("{rating: [rating-2, rating-3]}", "must include 'rating-1', the template seen-split"),
    ],
)
def test_tasks_templates_with_a_wrong_id_fails_before_training(
    tmp_path, tiny_data, templates, message
):
    cfg = tiny_config(
        f"data.path={tiny_data}", "tasks.families=[rating]", f"tasks.templates={templates}"
    )
    with pytest.raises(ConfigError, match=f"tasks.templates.rating.*{message}"):
        train(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "tokenizer").exists()


def test_tasks_templates_config_errors():
    with pytest.raises(ConfigError, match=r"tasks.templates: unknown families \['ratings'\]"):
        tiny_config("tasks.templates={ratings: [rating-1]}")
    # a family not trained keeps its entry unused (a config's choice survives an override)
    cfg = tiny_config("tasks.families=[next_item]", "tasks.templates={rating: [rating-1]}")
    assert cfg.tasks.templates == {"rating": ("rating-1",)}
    with pytest.raises(ConfigError, match="tasks.templates.rating must name at least one"):
        tiny_config("tasks.templates={rating: []}")
    with pytest.raises(ConfigError, match=r"tasks.templates.rating repeats \['rating-1'\]"):
        tiny_config("tasks.templates={rating: [rating-1, rating-1]}")


def test_task_loss_fixed_and_uncertainty():
    loss = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    family = torch.tensor([0, 1, 0])
    joint, sums, counts = TaskLoss([1.0, 1.0])(loss, mask, family)
    assert torch.allclose(joint, torch.tensor(18.0 / 6))  # the plain token mean
    assert sums.tolist() == [16.0, 2.0] and counts.tolist() == [5.0, 1.0]
    joint, _, _ = TaskLoss([0.5, 2.0])(loss, mask, family)
    assert torch.allclose(joint, torch.tensor((0.5 * 16 + 2.0 * 2) / 6))
    balancer = TaskLoss([1.0, 1.0], uncertainty=True)
    with torch.no_grad():
        balancer.log_vars.copy_(torch.tensor([0.5, -1.0]))
    joint, _, _ = balancer(loss, mask, family)
    l0, l1 = 16 / 5, 2 / 1
    expected = 5 / 6 * (torch.exp(torch.tensor(-0.5)) * l0 + 0.25) + 1 / 6 * (
        torch.exp(torch.tensor(1.0)) * l1 - 0.5
    )
    assert torch.allclose(joint, expected)
    joint.backward()
    assert balancer.log_vars.grad is not None


def test_uncertainty_weighting_learns_log_variances(tmp_path, tiny_data):
    run = tmp_path / "run"
    cfg = tiny_config(f"data.path={tiny_data}", "tasks.balancing=uncertainty", "train.log_every=1")
    train(cfg, run, progress=False)
    last = [r for r in log_of(run) if r["kind"] == "train"][-1]
    assert any(last[f"log_var/{f}"] != 0 for f in cfg.tasks.families)


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_collator_and_token_losses_match_the_model_loss(arch, tiny_run):
    """The collator's labels and decoder inputs are what HF's own loss reads: the token mean
    of ``token_losses`` equals the model's loss on the same batch."""
    from transformers import AutoTokenizer

    from p5rec.modeling import build_model

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    cfg = tiny_config(f"model.arch={arch}", "model.d_kv=16", "model.dropout=0")
    model = build_model(cfg.model, tok).eval()
    start = model.config.decoder_start_token_id if arch == "t5" else None
    collate = Collator(tok, 64, 8, start)
    batch = collate([Pair("user_1 bought a b c", "<a_1>", 0), Pair("rate it", "5", 1)])
    loss, mask = token_losses(model, batch)
    if arch == "llama":
        assert (batch["labels"][0, : mask.shape[1] - 1] == -100).sum() > 0  # prompt not scored
    reference = model(**{k: v for k, v in batch.items() if k not in ("family", "truncated")}).loss
    assert torch.allclose(loss.sum() / mask.sum(), reference, atol=1e-5)
    assert int(batch["truncated"]) == 0


def test_history_loss_labels_each_history_item_after_the_first(
    tiny_run, tmp_path, tiny_data, monkeypatch
):
    """With history supervision a decoder-only batch labels the source's item tokens after
    its first one (multi-token codes: every token but the very first), in history families
    only; the target is labelled as before. An encoder-decoder refuses the setting, and a
    decoder-only run trains with it."""
    from transformers import AutoTokenizer

    from p5rec.indexing import ItemIndex

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    index = ItemIndex.load(tiny_run / "item_index.json")
    items = tok.convert_tokens_to_ids(index.tokens)
    a, b, c = (index.text(i) for i in sorted(index.codes)[:3])
    collate = Collator(tok, 64, 8, None, item_ids=items, history_families=[0])
    batch = collate([Pair(f"history {a} {b} {c} next?", a, 0), Pair(f"rate {a} {b}", "5", 1)])
    ids, labels = batch["input_ids"], batch["labels"]
    labelled = [t for t, lab in zip(ids[0].tolist(), labels[0].tolist()) if lab != -100]
    code = tok(f"{a} {b} {c}", add_special_tokens=False).input_ids
    target = tok(a, add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert labelled == [t for t in code if t in set(items)][1:] + target
    five = tok("5", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert [lab for lab in labels[1].tolist() if lab != -100] == five  # not a history family
    # only labelled positions reach the output layer; their losses are the full forward's
    from p5rec.modeling import build_model

    model = build_model(tiny_config("model.arch=llama", "model.dropout=0").model, tok).eval()
    loss, mask = token_losses(model, batch)
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
    full = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2).float(), labels[:, 1:], reduction="none"
    )
    assert torch.equal(mask, labels[:, 1:] != -100) and int(mask.sum()) == len(labelled) + len(five)
    assert torch.allclose(loss, full, atol=1e-5)
    # a transformers release that takes only positions in logits_to_keep gives the same
    import p5rec.training.mixture as mixture

    for supported in (True, False):
        monkeypatch.setattr(mixture, "_mask_to_keep", lambda s=supported: s)
        assert torch.allclose(token_losses(model, batch)[0], full, atol=1e-5)
    with pytest.raises(ValueError, match="decoder-only"):
        Collator(tok, 64, 8, 0, item_ids=items, history_families=[0])
    with pytest.raises(ConfigError, match="history_loss"):
        train(tiny_config(f"data.path={tiny_data}", "train.history_loss=true"), tmp_path / "t5")
    run = tmp_path / "llama"
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "model.arch=llama",
        "train.history_loss=true",
        "train.samples_per_epoch=64",
        "train.epochs=1",
    )
    summary = train(cfg, run, progress=False)
    assert summary["steps"] == summary["steps_per_epoch"] and (run / "model").is_dir()


def test_lora_trains_the_item_rows_of_an_untied_output_layer():
    """Many causal LMs keep a separate lm_head: its item rows must train too."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from p5rec.modeling import apply_lora

    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)
    before = base.lm_head.weight.detach().clone()
    items = [45, 46, 47]
    model = apply_lora(
        base, tiny_config("model.name_or_path=x", "model.finetune=lora").model, items
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.tensor([[1, 2, 45, 46, 47]])
    for _ in range(3):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = (model.merge_and_unload().lm_head.weight - before).abs().sum(-1) > 0
    assert changed.nonzero().flatten().tolist() == items


def test_resume_refuses_another_process_count(tmp_path, tiny_data):
    run = tmp_path / "run"
    base = [f"data.path={tiny_data}", "train.samples_per_epoch=32"]
    train(tiny_config(*base), run, progress=False)
    state = next((run / "checkpoints").iterdir()) / "trainer_state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "num_processes": 2}))
    with pytest.raises(ConfigError, match="written with num_processes=2, this run has 1"):
        train(tiny_config(*base, "train.resume=true"), run, progress=False)


def test_interrupted_publish_and_torn_log_line_are_repaired(tmp_path):
    from p5rec.training.checkpoints import clean_partial, publish_dir
    from p5rec.training.observe import TrainingLog

    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "w").write_text("old")
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "w").write_text("new")
    publish_dir(staged, tmp_path / "best")
    assert (tmp_path / "best" / "w").read_text() == "new" and not staged.exists()
    # killed between the two renames: only .old-best is there
    (tmp_path / "best").rename(tmp_path / ".old-best")
    clean_partial(tmp_path)
    assert (tmp_path / "best" / "w").read_text() == "new"
    log = TrainingLog(tmp_path / "log.jsonl")
    log.append({"kind": "train", "step": 1})
    with log.path.open("a") as f:
        f.write('{"kind": "tr')  # the process died mid-line
    assert log.records() == [{"kind": "train", "step": 1}]
    log.truncate_after(1)
    assert log.path.read_text() == '{"kind": "train", "step": 1}\n'


def test_tensorboard_receives_the_training_log(tiny_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tiny_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"loss", "loss/next_item", "lr", "valid/loss", "valid/next_item/hr@10"} <= scalars


def test_weight_average_follows_the_hand_computed_average():
    from p5rec.training.averaging import WeightAverage

    model = torch.nn.Linear(1, 1)
    model.bias.requires_grad_(False)  # frozen parameters are not averaged
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    assert set(average.average) == {"weight"}
    for value in (10.0, 20.0, 30.0):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update()
    # decays min(0.5, (1 + n) / (10 + n)) for n = 0, 1, 2: 0.1, 2/11, 0.25
    expected = 0.0
    for value, d in ((10.0, 0.1), (20.0, 2 / 11), (30.0, 0.25)):
        expected = d * expected + (1 - d) * value
    assert average.average["weight"].item() == pytest.approx(expected)
    with average.swapped():
        assert model.weight.item() == pytest.approx(expected)
    assert model.weight.item() == 30.0  # the training weights are back

    restored = WeightAverage(model, decay=0.5)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 3 and restored.average["weight"].item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="does not match"):
        WeightAverage(torch.nn.Linear(1, 2), 0.5).load_state_dict({"updates": 1, "average": {}})
    with pytest.raises(ConfigError, match="ema_decay"):
        tiny_config("train.ema_decay=1.0")


def test_ema_run_keeps_the_averaged_weights_as_its_model(tmp_path, tiny_data):
    """Under ``train.ema_decay`` the exported model is the weight average saved with the
    last checkpoint, not the raw weights training ended with."""
    run = tmp_path / "run"
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "train.samples_per_epoch=96",
        "train.epochs=1",
        "train.ema_decay=0.9",
    )
    train(cfg, run, progress=False)
    (checkpoint,) = (run / "checkpoints").iterdir()
    raw = torch.load(checkpoint / "pytorch_model.bin", weights_only=True)
    (saved,) = [
        state
        for path in checkpoint.glob("custom_checkpoint_*.pkl")
        if isinstance(state := torch.load(path, weights_only=False), dict) and "average" in state
    ]
    assert saved["updates"] == 6  # one per step
    exported = dict(load_trained(run)[0].named_parameters())
    assert set(saved["average"]) == set(exported)
    for name, param in exported.items():
        assert torch.allclose(param, saved["average"][name]), name
    assert any(not torch.equal(raw[n], saved["average"][n]) for n in saved["average"])


def test_history_windows_tile_each_sequence_once():
    """The kept prefixes (the longest, then every max_history-th before it) supervise, with
    the history loss, each target once: target p and history items p-19..p-1."""
    from p5rec.tasks import Example

    def prefixes(user, last):
        return [
            Example("next_item", {}, "", {"user": user, "position": p}) for p in range(1, last + 1)
        ]

    kept = history_windows([*prefixes("long", 45), *prefixes("short", 3)], 20)
    assert sorted((e.meta["user"], e.meta["position"]) for e in kept) == [
        ("long", 5),
        ("long", 25),
        ("long", 45),
        ("short", 3),
    ]
    supervised = sorted(
        q
        for e in kept
        if e.meta["user"] == "long"
        for q in range(max(1, e.meta["position"] - 19), e.meta["position"] + 1)
    )
    assert supervised == list(range(1, 46))


def test_history_windows_trains_one_example_per_user(tiny_data):
    """On real prepared data: with train.history_windows an epoch's next-item examples are
    one per user (sequences shorter than data.max_history), the user's longest prefix; the
    setting needs the history loss."""
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    base = (f"data.path={tiny_data}", "model.arch=llama", "train.history_loss=true")
    fam = get_family("next_item")
    cfg = tiny_config(*base, "tasks.families=[next_item]", "train.history_windows=true")
    ctx = build_context(cfg, tiny_data)
    every = fam.examples(ctx, "train", random.Random(0))
    longest = {}
    for ex in every:
        longest[ex.meta["user"]] = max(longest.get(ex.meta["user"], 0), ex.meta["position"])
    assert max(len(s) for s in ctx.sequences.values()) <= ctx.max_history
    assert len(longest) < len(every)
    cfg = tiny_config(
        *base,
        "tasks.families=[next_item]",
        "train.history_windows=true",
        f"tasks.samples={{next_item: {len(longest)}}}",
    )
    pairs = epoch_pairs(cfg, ctx, [fam], 0)
    assert len(pairs) == len(longest)
    kept = [e for e in every if e.meta["position"] == longest[e.meta["user"]]]
    renderings = {t.render(e.fields, e.target)[0] for t in fam.seen_templates() for e in kept}
    assert all(p.source in renderings for p in pairs)
    assert len({p.target for p in pairs}) > 1 and len({p.source for p in pairs}) == len(longest)
    with pytest.raises(ConfigError, match="history_windows needs"):
        tiny_config(f"data.path={tiny_data}", "train.history_windows=true")


def test_expectation_loss_adds_the_hand_computed_squared_error():
    """At a value token of a numeric family: weight * (E - y)^2 with E over the value
    tokens' probabilities; 0 at other tokens and in other families."""
    from p5rec.training.expectation import ExpectationLoss

    extra = ExpectationLoss(2.0, families=[1], token_ids=[3, 4], values=[1.0, 5.0], vocab_size=6)
    logits = torch.zeros(4, 6)
    logits[0, 4] = math.log(3.0)  # p(1 star) = 1/4, p(5 stars) = 3/4: E = 4
    labels = torch.tensor([3, 4, 4, 5])
    families = torch.tensor([1, 1, 0, 1])
    out = extra(logits, labels, families)
    assert torch.allclose(out, torch.tensor([2.0 * 9.0, 2.0 * 4.0, 0.0, 0.0]))


def test_expectation_loss_finds_the_rating_value_tokens(tiny_run, tiny_ctx):
    from transformers import AutoTokenizer

    from p5rec.tasks import get_family
    from p5rec.tasks.rating import train_rating_values
    from p5rec.training.expectation import expectation_loss

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    families = [get_family("next_item"), get_family("rating")]
    extra = expectation_loss(0.5, families, tiny_ctx, tok)
    assert extra.families.tolist() == [1]
    values = train_rating_values(tiny_ctx)  # the synthetic corpus: 2 to 5 stars
    assert extra.values.tolist() == values and len(values) >= 3
    assert tok.convert_ids_to_tokens(extra.ids.tolist()) == [f"{v:g}" for v in values]
    assert expectation_loss(0.0, families, tiny_ctx, tok) is None
    with pytest.raises(ConfigError, match="numeric targets"):
        expectation_loss(0.5, families[:1], tiny_ctx, tok)


def test_expectation_loss_refuses_a_value_of_several_tokens(tiny_run, tiny_ctx, monkeypatch):
    from transformers import AutoTokenizer

    from p5rec.tasks import get_family
    from p5rec.training.expectation import expectation_loss

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    rating = get_family("rating")
    monkeypatch.setattr(type(rating), "numeric_targets", lambda self, ctx: {"4": 4, "4.5": 4.5})
    with pytest.raises(ConfigError, match="'4.5' is"):
        expectation_loss(1.0, [rating], tiny_ctx, tok)


def test_token_losses_add_the_expectation_loss_at_the_rating_value_token(tiny_run, tiny_data):
    """The squared error is added at the rating row's value token and nowhere else."""
    from transformers import AutoTokenizer

    from p5rec.modeling import build_model
    from p5rec.tasks import get_family
    from p5rec.training import build_context
    from p5rec.training.expectation import expectation_loss

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    cfg = tiny_config(f"data.path={tiny_data}", "model.arch=llama", "model.dropout=0")
    ctx = build_context(cfg, tiny_data)
    extra = expectation_loss(1.0, [get_family("next_item"), get_family("rating")], ctx, tok)
    model = build_model(cfg.model, tok).eval()
    batch = Collator(tok, 64, 8)([Pair("user_1 bought a b", "<a_1>", 0), Pair("rate", "4", 1)])
    plain, mask = token_losses(model, batch)
    added, _ = token_losses(model, batch, extra)
    diff = added - plain
    assert diff[0].abs().sum() == 0  # the next-item row: nothing added
    assert (diff[1] > 0).sum() == 1  # the rating row: at its value token only


def _trained_tiny(run, tiny_data, *overrides):
    """A tiny decoder-only run trained with ``overrides``: its config, directory, dataset
    context and saved tokenizer."""
    from transformers import AutoTokenizer

    from p5rec.training import build_context

    cfg = tiny_config(f"data.path={tiny_data}", "model.arch=llama", "model.d_kv=16", *overrides)
    train(cfg, run, progress=False)
    return cfg, run, build_context(cfg, tiny_data), AutoTokenizer.from_pretrained(run / "tokenizer")


def test_user_tokens_are_added_and_trained(tmp_path, tiny_data):
    """tasks.user_text=token: the run's tokenizer holds one token per training user,
    prompts carry it as a single id, training moves its embedding row, and the run
    evaluates with it."""
    from p5rec.evaluation import evaluate_run
    from p5rec.modeling import build_model

    cfg, run, ctx, tokenizer = _trained_tiny(tmp_path / "run", tiny_data, "tasks.user_text=token")
    tokens = list(ctx.user_tokens.values())
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert len(set(ids)) == len(tokens) and tokenizer.unk_token_id not in ids
    assert tokenizer(f"Stars from {tokens[0]} for it?")["input_ids"].count(ids[0]) == 1
    tc = cfg.train
    positions = tc.max_source_length + tc.max_target_length
    start = build_model(cfg.model, tokenizer, (), positions, tc.seed)  # the run's initial model
    start_rows = start.get_input_embeddings().weight[ids]
    trained_rows = load_trained(run)[0].get_input_embeddings().weight[ids]
    moved = (trained_rows - start_rows).abs().sum(-1) > 0
    assert moved.float().mean() > 0.5  # the users of the epoch's sampled examples trained
    report = evaluate_run(run, cfg, ["rating"], progress=False)
    assert report["results"]["rating"]["n"] == 8


def test_family_tokens_start_every_prompt(tmp_path, tiny_data, monkeypatch):
    """tasks.family_tokens: the run's tokenizer holds one token per family; every training
    prompt, every evaluated one and the assistant's start with their family's token as a
    single id; a run trained without them is refused under the setting."""
    from p5rec.assistant import Assistant
    from p5rec.config import FAMILIES as NAMES
    from p5rec.evaluation import evaluate_run
    from p5rec.tasks import get_family
    from p5rec.tasks.base import family_token

    setting = "tasks.family_tokens=true"
    cfg, run, ctx, tokenizer = _trained_tiny(tmp_path / "run", tiny_data, setting)
    ids = tokenizer.convert_tokens_to_ids(ctx.prompt_tokens)
    assert len(set(ids)) == len(NAMES) and tokenizer.unk_token_id not in ids
    token_id = dict(zip(ctx.prompt_tokens, ids))
    fams = [get_family(name) for name in cfg.tasks.families]
    pairs = epoch_pairs(cfg, ctx, fams, 0, ["qqq"])
    assert {p.family for p in pairs} == set(range(len(fams)))
    for p in pairs:
        token = family_token(fams[p.family].name)
        assert p.source.startswith(f"{token} ")
        encoded = tokenizer(p.source, add_special_tokens=False)["input_ids"]
        assert encoded[0] == token_id[token] and set(encoded).isdisjoint(set(ids) - {encoded[0]})

    seen = []
    for fam in fams:  # evaluation hands each family its prompts with the token in front
        original = type(fam).predict

        def spy(self, engine, ctx, examples, sources, options, original=original):
            seen.append((self.name, sources))
            return original(self, engine, ctx, examples, sources, options)

        monkeypatch.setattr(type(fam), "predict", spy)
    evaluate_run(run, cfg, ["rating", "next_item"], progress=False)
    assert [name for name, _ in seen] == ["rating", "next_item"]
    for name, sources in seen:
        assert sources and all(s.startswith(f"{family_token(name)} ") for s in sources)

    query = Assistant(run).query("rating", user=sorted(ctx.sequences)[0], item=ctx.catalogue[0])
    assert query.source.startswith("<task_rating> ")

    plain = _trained_tiny(tmp_path / "plain", tiny_data)[1]
    with pytest.raises(ConfigError, match="tokenizer has no token '<task_"):
        evaluate_run(plain, cfg, ["rating"], progress=False)


def test_rating_number_tokens_are_added_and_checked(tmp_path, tiny_data):
    """tasks.rating_text=token: the run's tokenizer holds every mean and count token, a
    rating prompt carries them as single ids, the run evaluates with them, and a run
    trained with digits is refused when evaluated under the token setting."""
    from p5rec.evaluation import evaluate_run

    cfg, run, ctx, tokenizer = _trained_tiny(tmp_path / "run", tiny_data, "tasks.rating_text=token")
    ids = tokenizer.convert_tokens_to_ids(ctx.number_tokens)
    assert len(set(ids)) == len(ctx.number_tokens) and tokenizer.unk_token_id not in ids
    n = ctx.splits.reviews["train"][0]
    e = ctx.corpus.interactions[n]
    summary = ctx.rating_summary("item", e.item)  # its own rating included: never empty
    _, mean, _, count, _ = summary.split()
    encoded = tokenizer(summary, add_special_tokens=False)["input_ids"]
    assert {tokenizer.convert_tokens_to_ids(t) for t in (mean, count)} <= set(encoded)
    report = evaluate_run(run, cfg, ["rating"], progress=False)
    assert report["results"]["rating"]["n"] == 8

    plain = _trained_tiny(tmp_path / "plain", tiny_data)[1]
    with pytest.raises(ConfigError, match="tokenizer has no token '<avg_"):
        evaluate_run(plain, cfg, ["rating"], progress=False)


def test_row_rate_trains_its_rows_as_adamw_at_the_scaled_rate():
    """RowRate around AdamW steps gives its rows exactly the update of an AdamW at factor
    times the learning rate (weight decay included); the other rows keep the full rate."""
    from p5rec.training.row_rates import RowRate

    torch.manual_seed(0)
    start, x = torch.randn(5, 3), torch.randn(3, 4)
    slow, fast = [0, 3], [1, 2, 4]

    def loss_of(weight):
        return ((weight @ x).tanh() ** 2).sum()

    scaled = torch.nn.Parameter(start.clone())
    opt = torch.optim.AdamW([scaled], lr=0.1, weight_decay=0.05)
    rate = RowRate(scaled, slow, 0.25)
    # the reference: the slow rows as their own parameter, in a group at a quarter the rate
    part = {
        "slow": torch.nn.Parameter(start[slow].clone()),
        "fast": torch.nn.Parameter(start[fast].clone()),
    }
    ref = torch.optim.AdamW(
        [{"params": [part["slow"]], "lr": 0.025}, {"params": [part["fast"]], "lr": 0.1}],
        weight_decay=0.05,
    )
    for _ in range(6):
        opt.zero_grad()
        loss_of(scaled).backward()
        rate.before()
        opt.step()
        rate.after()
        ref.zero_grad()
        whole = torch.empty(5, 3)
        whole = whole.index_put((torch.tensor(slow),), part["slow"]).index_put(
            (torch.tensor(fast),), part["fast"]
        )
        loss_of(whole).backward()
        ref.step()
    assert torch.allclose(scaled[slow], part["slow"], atol=1e-6)
    assert torch.allclose(scaled[fast], part["fast"], atol=1e-6)
    assert not torch.allclose(scaled[slow], start[slow], atol=1e-3)  # they did train
    with pytest.raises(ValueError, match="outside"):
        RowRate(scaled, [5], 0.5)
    with pytest.raises(ValueError, match="factor"):
        RowRate(scaled, [0], 0.0)
    with pytest.raises(RuntimeError, match="before"):
        rate.after()


def test_embedding_lr_rows_added_keeps_the_vocabulary_rows_at_the_base_rate(tmp_path, tiny_data):
    """train.embedding_lr_rows=added: the item and other added rows train at the scaled
    rate, the vocabulary's own rows at lr, so they move about a tenth as far as with the
    scale on every row; the item rows move as far either way at first."""
    from p5rec.modeling import build_model

    moved = {}
    for rows in ("all", "added"):
        cfg, run, ctx, tokenizer = _trained_tiny(
            tmp_path / rows,
            tiny_data,
            "train.embedding_lr_scale=10",
            f"train.embedding_lr_rows={rows}",
            "train.samples_per_epoch=64",
            "train.epochs=1",
        )
        added = set(tokenizer.convert_tokens_to_ids([*ctx.index.tokens, *ctx.added_tokens]))
        tc = cfg.train
        start = build_model(
            cfg.model, tokenizer, (), tc.max_source_length + tc.max_target_length, tc.seed
        )
        with torch.no_grad():
            trained = load_trained(run)[0].get_input_embeddings().weight
            change = (trained - start.get_input_embeddings().weight).abs().mean(-1)
        words = [r for r in range(change.shape[0]) if r not in added]
        moved[rows] = (float(change[words].mean()), float(change[sorted(added)].mean()))
    assert moved["added"][0] < moved["all"][0] / 5
    assert moved["added"][1] > moved["all"][1] / 2
    with pytest.raises(ConfigError, match="embedding_lr_rows"):
        tiny_config("train.embedding_lr_rows=words")
