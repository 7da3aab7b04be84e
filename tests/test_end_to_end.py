"""Tiny train -> evaluate -> recommend, resume, LoRA."""

import json

import pytest
import torch

from p5rec.config import ConfigError
from p5rec.evaluation import evaluate_run, format_table
from p5rec.recommend import Recommender, RecommendError
from p5rec.training import train
from tests.conftest import tiny_config


def test_run_directory_contents(tiny_run):
    for name in (
        "config.yaml",
        "run.json",
        "item_index.json",
        "tokenizer",
        "model",
        "state",
        "train_log.jsonl",
    ):
        assert (tiny_run / name).exists(), name
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["data_fingerprint"] and info["config_hash"] and info["parameters"] > 0


def test_evaluate_writes_metrics_for_every_family(tiny_run, tiny_data):
    cfg = tiny_config(f"data.path={tiny_data}")
    report = evaluate_run(tiny_run, cfg, progress=False)
    assert json.loads((tiny_run / "metrics.json").read_text())["results"] == report["results"]
    assert set(report["results"]) == set(cfg.tasks.families)
    nxt = report["results"]["next_item"]
    assert set(nxt["model"]) == {"hr@5", "ndcg@5", "hr@10", "ndcg@10"}
    assert nxt["baseline"]["name"] == "popularity"
    assert all(0 <= v <= 1 for v in nxt["model"].values())
    assert report["results"]["rating"]["baseline"]["name"] == "global_mean"
    assert report["git_commit"] is None or len(report["git_commit"]) == 40
    table = format_table(report)
    assert "next_item" in table and "hr@10" in table and "rmse" in table


def test_recommend(tiny_run, tiny_ctx):
    rec = Recommender(tiny_run)
    user = sorted(tiny_ctx.sequences)[0]
    out = rec.recommend(user, k=5)
    assert [r["rank"] for r in out] == [1, 2, 3, 4, 5]
    assert len({r["item"] for r in out}) == 5
    assert all(r["item"] in tiny_ctx.corpus.items for r in out)
    unseen = rec.recommend(user, k=5, exclude_seen=True)
    assert not {r["item"] for r in unseen} & set(tiny_ctx.sequences[user])
    with pytest.raises(RecommendError, match="unknown user 'nobody'"):
        rec.recommend("nobody")
    with pytest.raises(RecommendError, match="k must be between 1"):
        rec.recommend(user, k=0)


def test_resume_continues_from_the_last_epoch(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32"), run, progress=False)
    first = (run / "model" / "model.safetensors").read_bytes()
    cfg = tiny_config(
        f"data.path={tiny_data}",
        "train.samples_per_epoch=32",
        "train.epochs=2",
        "train.resume=true",
    )
    train(cfg, run, progress=False)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # epoch 1 was not trained again
    assert (run / "model" / "model.safetensors").read_bytes() != first


def test_lora_trains_adapters_and_item_rows_only(tiny_run, tiny_ctx):
    from p5rec.modeling import add_item_tokens, build_model, build_tokenizer

    # LoRA fine-tunes a checkpoint: the tiny run's model, with two new item tokens
    cfg = tiny_config(f"model.name_or_path={tiny_run / 'model'}", "model.finetune=lora")
    tok = build_tokenizer(cfg.tokenizer, [], ["<new_0>", "<new_1>"], str(tiny_run / "tokenizer"))
    item_ids = add_item_tokens(tok, ["<new_0>", "<new_1>"])
    model = build_model(cfg.model, tok, item_ids)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n or "trainable_tokens" in n for n in trainable)
    before = model.get_input_embeddings()(torch.arange(len(tok))).detach().clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    batch = tok(["<a_0><b_1> next?"], text_target=["<new_1>"], return_tensors="pt")
    for _ in range(3):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.get_input_embeddings()(torch.arange(len(tok))).detach()
    changed = (after - before).abs().sum(-1) > 0
    assert changed[item_ids].any()
    others = torch.ones(len(tok), dtype=torch.bool)
    others[item_ids] = False
    assert not changed[others].any()


def test_lora_needs_a_checkpoint():
    with pytest.raises(ConfigError, match="lora needs a pretrained model.name_or_path"):
        tiny_config("model.finetune=lora")


def test_resume_refuses_a_different_config(tmp_path, tiny_data):
    run = tmp_path / "run"
    train(tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32"), run, progress=False)
    changed = tiny_config(
        f"data.path={tiny_data}", "train.samples_per_epoch=32", "train.lr=0.5", "train.resume=true"
    )
    with pytest.raises(ConfigError, match="cannot resume"):
        train(changed, run, progress=False)


def test_fresh_start_clears_an_earlier_run(tmp_path, tiny_data):
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "trainer_state.json").write_text('{"epoch": 9}')
    train(tiny_config(f"data.path={tiny_data}", "train.samples_per_epoch=32"), run, progress=False)
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "trainer_state.json").read_text())["epoch"] == 0


def test_split_settings_must_match_the_dataset(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match=r"data.max_history: dataset 20, config 5"):
        train(
            tiny_config(f"data.path={tiny_data}", "data.max_history=5"),
            tmp_path / "r",
            progress=False,
        )


def test_evaluate_refuses_another_dataset(tiny_run, tmp_path):
    from p5rec.data.dataset import prepare

    other = tmp_path / "other"
    prepare("synthetic", None, other, tiny_config("data.synthetic.seed=99").data)
    with pytest.raises(ConfigError, match="is not the dataset"):
        evaluate_run(tiny_run, tiny_config(f"data.path={other}"), progress=False)
