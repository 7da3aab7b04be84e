"""Checkpoints that are never half-written, and the files a run keeps beside them.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and renamed to
``checkpoints/step-N`` once complete (a rename is atomic), so a run killed at any moment,
even with SIGKILL, leaves only complete checkpoints plus a temporary folder that the next
start removes. Its ``trainer_state.json`` is written last, inside the folder before the
rename.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = [
    "atomic_copytree",
    "atomic_write_text",
    "clean_partial",
    "latest_checkpoint",
    "publish_dir",
    "save_checkpoint",
]

STATE = "trainer_state.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def publish_dir(staged: Path, dst: Path) -> None:
    """Put the finished directory ``staged`` in place of ``dst`` by two renames: ``dst`` is
    never a partial directory (a kill between the renames leaves the old one as
    ``.old-NAME``, which ``clean_partial`` puts back)."""
    old = dst.with_name(f".old-{dst.name}")
    shutil.rmtree(old, ignore_errors=True)
    _fsync_tree(staged)
    if dst.exists():
        os.rename(dst, old)
    os.rename(staged, dst)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)


def atomic_copytree(src: Path, dst: Path) -> None:
    """Replace directory ``dst`` by a copy of ``src`` (see ``publish_dir``)."""
    staged = dst.with_name(f".tmp-{dst.name}")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(src, staged)
    publish_dir(staged, dst)


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def clean_partial(run_dir: Path) -> None:
    """Undo what a killed run left half-done: temporary checkpoint folders are removed, and
    a directory caught between the two renames of ``publish_dir`` is put back."""
    root = checkpoint_dir(run_dir)
    for tmp in root.glob(".tmp-*") if root.is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in run_dir.glob(".old-*"):
        target = run_dir / old.name[len(".old-") :]
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, target)


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Every process calls this: accelerate saves model, optimizer, scheduler, loss weights
    and each process's RNG state; the main process then adds ``state`` and publishes the
    folder with one rename, and keeps only the newest ``keep`` checkpoints."""
    root = checkpoint_dir(run_dir)
    final, tmp = root / f"step-{step:08d}", root / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    # torch format: tied embedding / lm_head weights are saved as they are (safetensors
    # would drop the shared tensors and warn)
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps(state, indent=2))
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _fsync_dir(root)
        for old in complete_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
