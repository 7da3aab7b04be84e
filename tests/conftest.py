"""Shared tiny fixtures: a small synthetic corpus and one tiny trained run per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from p5rec.config import ExperimentConfig, load_config

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY = [
    "data.synthetic.num_users=40",
    "data.synthetic.num_items=48",
    "data.synthetic.num_groups=4",
    "data.num_candidates=20",
    "model.d_model=32",
    "model.d_ff=64",
    "model.d_kv=8",
    "model.num_heads=2",
    "model.num_layers=1",
    "model.num_decoder_layers=1",
    "tokenizer.vocab_size=300",
    "train.epochs=1",
    "train.samples_per_epoch=96",
    "train.batch_size=16",
    "eval.num_beams=10",
    "eval.max_examples=8",
    "train.eval_examples=8",
]


def tiny_config(*overrides: str) -> ExperimentConfig:
    return load_config(None, [*TINY, *overrides])


@pytest.fixture(scope="session")
def tiny_cfg() -> ExperimentConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_cfg) -> Path:
    from p5rec.data.dataset import prepare

    out = tmp_path_factory.mktemp("data")
    prepare("synthetic", None, out, tiny_cfg.data)
    return out


@pytest.fixture(scope="session")
def tiny_ctx(tiny_cfg, tiny_data):
    from p5rec.training import build_context

    return build_context(tiny_cfg, tiny_data)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_cfg, tiny_data) -> Path:
    """One tiny model trained for one short epoch (shared by the tests that need a run)."""
    from p5rec.training import train

    run = tmp_path_factory.mktemp("run")
    cfg = tiny_config(f"data.path={tiny_data}")
    train(cfg, run, progress=False)
    return run
