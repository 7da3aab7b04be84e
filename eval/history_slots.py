"""Measurement: how many of a next-item model's top-10 slots go to items the user already has.

    python eval/history_slots.py RUN [RUN ...] [--split test] [--sasrec-minutes M] [--name N]

The P5/TIGER protocol ranks over all items and keeps the user's history in the ranking
(``eval.remove_history`` false). For each trained run, on its next-item split with the
seen evaluation template, this reports: the average number of items of the user's past
(everything before the target) in the top 10, and of those, the ones in the prompt's own
history; the share of targets that are past items; and HR@10 / NDCG@10 with the history
kept and removed (S3-Rec style), from the same model and prompts. Where no target is a past
item, every past item in the top 10 is a slot lost. With ``--sasrec-minutes`` the in-run
SASRec (CE) is trained on the run's dataset (as the benchmarks train it, with the run's
seed) and counted the same way.

Writes eval/results/N.json (default ``history_slots``; per run: its config, data
fingerprint, seed; git commit, hardware, wall time).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"


def slots(kept, removed, targets, past, shown) -> dict:
    """The figures of one ranker: its top-10 lists with the history ``kept`` and
    ``removed``, against each example's target, ``past`` items and items ``shown`` in its
    prompt."""
    from p5rec.metrics import ranking_metrics

    top = [ranked[:10] for ranked in kept]
    n = len(targets)
    return {
        "past_items_in_top10": round(sum(len(p.intersection(t)) for p, t in zip(past, top)) / n, 3),
        "prompt_items_in_top10": round(
            sum(len(s.intersection(t)) for s, t in zip(shown, top)) / n, 3
        ),
        "targets_in_past": round(sum(t in p for t, p in zip(targets, past)) / n, 4),
        "history_kept": ranking_metrics(kept, targets, (10,)),
        "history_removed": ranking_metrics(removed, targets, (10,)),
    }


def measure(run: Path, split: str, sasrec_minutes: float = 0.0) -> dict:
    """The history-slot figures of one trained run (see the module docstring) and, with
    ``sasrec_minutes``, of the in-run SASRec (CE) on the same examples (trained as the
    benchmarks train it, with the run's seed)."""
    import torch

    from p5rec.baselines.suite import BaselineSuite, SuiteConfig
    from p5rec.config import load_config, to_dict
    from p5rec.generation import Engine
    from p5rec.modeling import load_trained
    from p5rec.tasks import get_family
    from p5rec.training import build_context
    from p5rec.training.context import check_context_tokens

    cfg = load_config(run / "config.yaml")
    info = json.loads((run / "run.json").read_text())
    model, tokenizer, index = load_trained(run)
    ctx = build_context(cfg, cfg.data.path or info["data_dir"], index)
    check_context_tokens(ctx, tokenizer, str(run))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = Engine(model, tokenizer, index, cfg.train.max_source_length, device=device)
    family = get_family("next_item")
    template = family.eval_template("seen")
    examples = family.examples(ctx, split, random.Random(0))
    sources = [ctx.prompt(family.name, template.render(e.fields, e.target)[0]) for e in examples]
    options = {"ks": (10,), "num_beams": max(10, cfg.eval.num_beams), "batch_size": 64}
    kept = family.predict(engine, ctx, examples, sources, {**options, "remove_history": False})
    removed = family.predict(engine, ctx, examples, sources, {**options, "remove_history": True})
    targets = [e.meta["item"] for e in examples]
    past = [ctx.interacted_before(e) for e in examples]
    shown = [set(raw.history) for raw in ctx.splits.next_item[split]]  # the prompts' items
    row = {"run": str(run), "users": len(examples), **slots(kept, removed, targets, past, shown)}
    if sasrec_minutes > 0:
        suite = BaselineSuite(ctx, options, SuiteConfig(sasrec_minutes, seed=cfg.train.seed))
        sasrec = suite.sasrec("ce")
        histories = [ctx.sequences[e.meta["user"]][: e.meta["position"]] for e in examples]
        kept, removed = sasrec.rank(histories, 10), sasrec.rank(histories, 10, past)
        row["sasrec_ce"] = {"minutes": sasrec_minutes, **slots(kept, removed, targets, past, shown)}
    row.update(
        data_fingerprint=info.get("data_fingerprint"), seed=cfg.train.seed, config=to_dict(cfg)
    )
    return row


def _line(name: str, row: dict) -> str:
    kept, removed = row["history_kept"]["ndcg@10"], row["history_removed"]["ndcg@10"]
    return (
        f"{name}: {row['past_items_in_top10']} past items in the top 10 "
        f"({row['prompt_items_in_top10']} from the prompt), targets among them "
        f"{row['targets_in_past']}; NDCG@10 {kept:.4f} kept, {removed:.4f} removed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run directories")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--name", default="history_slots")
    parser.add_argument(
        "--sasrec-minutes",
        type=float,
        default=0.0,
        help="also train the in-run SASRec (CE) for this long per run and count its slots",
    )
    args = parser.parse_args()

    from p5rec.evaluation import write_measurement

    t0 = time.time()
    rows = []
    for run in args.runs:
        row = measure(run, args.split, args.sasrec_minutes)
        rows.append(row)
        print(_line(str(run), row), flush=True)
        if "sasrec_ce" in row:
            print(_line(f"{run} SASRec (CE)", row["sasrec_ce"]), flush=True)
    payload = {"benchmark": "history_slots", "split": args.split, "runs": rows}
    write_measurement(RESULTS / f"{args.name}.json", payload, t0)


if __name__ == "__main__":
    main()
