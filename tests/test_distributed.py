"""Two real training processes (gloo on CPU) through accelerate's debug launcher.

The launcher forks; it runs in a fresh interpreter, because forking a process whose torch
thread pools and accelerate state are already in use (as in a test session) can deadlock.
"""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from p5rec.tasks import get_family
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]

# 7 validation examples per family: an odd count, so the processes' shares are uneven and
# gather_for_metrics must drop the padding duplicates
OVERRIDES = ["train.samples_per_epoch=64", "train.eval_examples=7", "train.log_every=1"]


def train_worker(run: str, data: str) -> None:
    from p5rec.training import train

    train(tiny_config(f"data.path={data}", *OVERRIDES), run, progress=False)


def test_two_processes_train_one_model(tmp_path, tiny_data, tiny_ctx):
    run = tmp_path / "run"
    code = (
        "from functools import partial\n"
        "from accelerate import debug_launcher\n"
        "from tests.test_distributed import train_worker\n"
        f"job = partial(train_worker, {str(run)!r}, {str(tiny_data)!r})\n"
        "debug_launcher(job, num_processes=2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((run / "run.json").read_text())
    assert info["num_processes"] == 2
    # the ranks end with identical weights (training also checks this and fails otherwise)
    a, b = info["param_checksums"]
    assert a == b
    # 66 samples (11 per family) make 5 batches of at most 16; two processes take two
    # batches per step: 3 steps, the last one's second batch wrapping round to the first
    assert info["steps"] == info["steps_per_epoch"] == 3
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2, 3]
    valid = [r for r in log if r["kind"] == "valid"]
    assert len(valid) == 1
    families = tiny_config().tasks.families
    # every family's examples (7, or all if fewer) were scored once each across the two
    # processes (the training run fails if gathering lost or repeated one)
    available = {
        f: len(get_family(f).examples(tiny_ctx, "valid", random.Random(0))) for f in families
    }
    assert valid[0]["examples"] == {f: min(7, n) for f, n in available.items()}
    assert all(f"loss/{f}" in valid[0] for f in families)
    assert (run / "model" / "model.safetensors").is_file()

    # one process accumulating two batches per step takes the same batches, the same dropout
    # and the same token-weighted loss: its curve is the two processes' curve
    from p5rec.training import train

    single = tmp_path / "single"
    train(
        tiny_config(f"data.path={tiny_data}", *OVERRIDES, "train.grad_accum_steps=2"),
        single,
        progress=False,
    )
    alone = [json.loads(line) for line in (single / "train_log.jsonl").read_text().splitlines()]
    assert len(alone) == len(log)
    for a, b in zip(alone, log):
        assert a["step"] == b["step"] and a["kind"] == b["kind"]
        for key in [k for k in b if k.startswith("loss")]:
            assert a[key] == pytest.approx(b[key], rel=1e-5), (b["step"], key)
