"""Validation during training: a fixed sample of each family's validation examples, split
across processes; losses are summed over processes and predictions gathered with
``gather_for_metrics``, so every example counts exactly once whatever the process count."""

from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader

from p5rec.config import ExperimentConfig
from p5rec.tasks import TaskContext, TaskFamily
from p5rec.training.mixture import Pair, TaskLoss, token_losses

__all__ = ["Validation"]


class Validation:
    """The run's validation examples and how they are scored."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        ctx: TaskContext,
        families: list[TaskFamily],
        accelerator,
    ) -> None:
        self.cfg, self.ctx, self.accelerator = cfg, ctx, accelerator
        self.names = [fam.name for fam in families]
        scored = cfg.train.eval_families or cfg.tasks.families
        self.loss_pairs: list[Pair] = []
        self.scored = []  # (family, examples, sources, prepared index loader)
        for f, fam in enumerate(families):
            examples = fam.examples(ctx, "valid", random.Random(0))
            limit = cfg.train.eval_examples
            if limit and len(examples) > limit:
                examples = random.Random(f"{cfg.train.seed}-valid-{fam.name}").sample(
                    examples, limit
                )
            template = fam.eval_template("seen")
            rendered = [template.render(e.fields, e.target) for e in examples]
            rendered = [(ctx.prompt(fam.name, s), t) for s, t in rendered]
            self.loss_pairs += [Pair(s, t, f) for s, t in rendered]
            if fam.name in scored and examples:
                loader = DataLoader(list(range(len(examples))), batch_size=cfg.eval.batch_size)
                sources = [s for s, _ in rendered]
                self.scored.append((fam, examples, sources, accelerator.prepare(loader)))
        self.options = cfg.eval.options("seen")

    def sizes(self) -> dict[str, int]:
        """Validation examples scored per family."""
        return {fam.name: len(examples) for fam, examples, _, _ in self.scored}

    @torch.no_grad()
    def loss(self, model, collator, task_loss: TaskLoss) -> dict[str, float]:
        """Token-mean validation loss, overall and per family (every process's share summed)."""
        acc = self.accelerator
        mine = self.loss_pairs[acc.process_index :: acc.num_processes]
        n = len(self.names)
        sums = torch.zeros(n, device=acc.device)
        counts = torch.zeros(n, device=acc.device)
        size = self.cfg.eval.batch_size
        for start in range(0, len(mine), size):
            batch = {k: v.to(acc.device) for k, v in collator(mine[start : start + size]).items()}
            loss, mask = token_losses(model, batch)
            s, c = task_loss.per_family(loss, mask, batch["family"])
            sums, counts = sums + s, counts + c
        sums, counts = acc.reduce(sums, "sum"), acc.reduce(counts, "sum")
        out = {"loss": float(sums.sum() / counts.sum().clamp(min=1))}
        out.update(
            {
                f"loss/{name}": float(sums[i] / counts[i])
                for i, name in enumerate(self.names)
                if counts[i]
            }
        )
        return out

    def metrics(self, engine) -> dict[str, float]:
        """Each scored family's metrics on its validation sample, as ``family/metric``."""
        acc, out = self.accelerator, {}
        for fam, examples, sources, loader in self.scored:
            gathered: list[tuple[int, object]] = []
            for idx in loader:
                idx = idx.tolist()
                preds = fam.predict(
                    engine,
                    self.ctx,
                    [examples[i] for i in idx],
                    [sources[i] for i in idx],
                    self.options,
                )
                gathered += acc.gather_for_metrics(list(zip(idx, preds)), use_gather_object=True)
            ids = sorted(i for i, _ in gathered)
            if ids != list(range(len(examples))):
                raise RuntimeError(
                    f"validation of {fam.name}: gathered {len(ids)} predictions for "
                    f"{len(examples)} examples ({len(set(ids))} distinct)"
                )
            by_id = dict(gathered)
            preds = [by_id[i] for i in range(len(examples))]
            for key, value in fam.score(self.ctx, examples, preds, self.options).items():
                out[f"{fam.name}/{key}"] = float(value)
        return out
