"""Recommend next items for a known user from a trained run (loads the run once)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["RecommendError", "Recommender"]


class RecommendError(ValueError):
    """Bad request: unknown user, bad k."""


class Recommender:
    """A trained run ready to answer next-item requests."""

    def __init__(self, run_dir: str | Path, cfg=None) -> None:
        import torch

        from p5rec.config import load_config
        from p5rec.generation import Engine
        from p5rec.modeling import load_trained
        from p5rec.tasks import get_family
        from p5rec.training import build_context

        run_dir = Path(run_dir)
        self.cfg = cfg or load_config(run_dir / "config.yaml")
        model, tokenizer, index = load_trained(run_dir)
        run_info = json.loads((run_dir / "run.json").read_text())
        self.ctx = build_context(self.cfg, self.cfg.data.path or run_info["data_dir"], index)
        self.template = get_family("next_item").eval_template("seen")
        self.engine = Engine(
            model,
            tokenizer,
            index,
            self.cfg.train.max_source_length,
            device="cuda" if torch.cuda.is_available() else "cpu",
        )

    def recommend(self, user: str, k: int = 10, exclude_seen: bool = False) -> list[dict]:
        """Top-``k`` next items for ``user`` given their whole known history, best first."""
        catalogue = len(self.ctx.index.codes)
        if not 1 <= k <= catalogue:
            raise RecommendError(f"k must be between 1 and the catalogue size {catalogue}, got {k}")
        history = self.ctx.sequences.get(user)
        if history is None:
            known = sorted(self.ctx.sequences)
            raise RecommendError(
                f"unknown user {user!r} ({len(known)} users; e.g. {', '.join(known[:3])})"
            )
        source, _ = self.template.render(
            {"user": user, "history": self.ctx.history_text(history)}, ""
        )
        seen = set(history) if exclude_seen else set()
        beams = min(catalogue, max(self.cfg.eval.num_beams, k + len(seen)))
        ranked = [(i, s) for i, s in self.engine.rank([source], beams)[0] if i not in seen][:k]
        return [
            {"rank": r + 1, "item": i, "title": self.ctx.title(i), "log_prob": round(s, 4)}
            for r, (i, s) in enumerate(ranked)
        ]
