"""Two real training processes (gloo on CPU) through accelerate's debug launcher.

The launcher forks; it runs in a fresh interpreter, because forking a process whose torch
thread pools and accelerate state are already in use (as in a test session) can deadlock.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def train_worker(run: str, data: str) -> None:
    from p5rec.training import train

    train(tiny_config(f"data.path={data}", "train.samples_per_epoch=64"), run, progress=False)


def test_two_processes_train_one_model(tmp_path, tiny_data):
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
    assert (run / "model" / "model.safetensors").is_file()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 1
