"""``p5rec export``: a trained run as a self-contained model directory."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["export_run"]

KEPT = ("item_index.json", "config.yaml", "run.json")


def export_run(run_dir: str | Path, out: str | Path, merge: bool = True) -> Path:
    """Copy what serving a run needs into ``out``: ``model/`` (with ``merge``, a LoRA
    adapter merged into its base; else the model as the run saved it), ``tokenizer/``,
    ``item_index.json``, ``config.yaml`` and ``run.json``. ``out`` loads wherever a run
    directory does (``p5rec evaluate``, ``recommend``, ``model.name_or_path``)."""
    from transformers import AutoTokenizer

    from p5rec.modeling import check_run_files, load_backbone

    run_dir, out = check_run_files(run_dir), Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; export into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    adapter = (run_dir / "model" / "adapter_config.json").is_file()
    if merge and adapter:
        size = len(AutoTokenizer.from_pretrained(run_dir / "tokenizer"))
        load_backbone(run_dir / "model", size).save_pretrained(out / "model")
    else:
        shutil.copytree(run_dir / "model", out / "model")
    shutil.copytree(run_dir / "tokenizer", out / "tokenizer")
    for name in KEPT:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    return out
