"""What a run shows while it trains: the JSONL log, TensorBoard and the curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

from p5rec.training.checkpoints import atomic_write_text

__all__ = ["TrainingLog", "plot_curves", "tensorboard_available"]


def tensorboard_available() -> bool:
    from accelerate.utils import is_tensorboard_available

    return bool(is_tensorboard_available())


class TrainingLog:
    """``RUN/train_log.jsonl``: one JSON object per line, ``kind`` "train" (losses over the
    last ``train.log_every`` steps, per family, throughput) or "valid" (validation)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        records = []
        for n, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines) - 1:  # a line cut short by a killed process
                    break
                raise ValueError(f"{self.path}: line {n + 1} is not JSON") from None
        return records

    def append(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step`` (a resumed run writes them again)."""
        kept = [r for r in self.records() if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def plot_curves(records: list[dict], path: Path, select_metric: tuple[str, ...]) -> None:
    """Training loss per family and validation loss, then one panel per selection metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "valid"]
    metrics = [m for m in select_metric if m != "loss"]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5.5 * (1 + len(metrics)), 4))
    axes = [axes] if not metrics else list(axes)
    ax = axes[0]
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["loss"] for r in train], label="all", color="black", linewidth=2)
        for name in sorted({k for r in train for k in r if k.startswith("loss/")}):
            ax.plot(steps, [r.get(name) for r in train], label=name[5:], linewidth=1)
    if valid:
        ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o--", label="validation")
    ax.set(xlabel="step", ylabel="token cross-entropy", title="loss")
    ax.legend(fontsize=7)
    for ax, metric in zip(axes[1:], metrics):
        shown = [r for r in valid if metric in r]
        ax.plot([r["step"] for r in shown], [r[metric] for r in shown], "o-")
        ax.set(xlabel="step", ylabel=metric, title=f"validation {metric}")
    fig.tight_layout()
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(path)
