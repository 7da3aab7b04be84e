"""Benchmark: next-item accuracy when people ask in their own words.

    python eval/bench_ask.py [--model RUN] [--split test] [--name ask]

On the run's next-item split, every user's ranking (constrained beam search, top 10) is
computed from the seen evaluation template, the unseen template, and free-text prompts no
template has, each sent the way ``p5rec ask`` sends it (the prompt, then the user and the
history). Reported: HR@10 and NDCG@10 per prompt, each one's ratio to the seen template, and
how often task detection picked next_item for the free-text prompts.

Without ``--model`` the demo config is trained once into ``runs/bench-serve`` (shared with
``bench_serve.py``). Writes eval/results/NAME.json (config, data fingerprint, seed, git
commit, hardware, wall time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"

PARAPHRASES = (
    "what will {user} want next?",
    "Any recommendations for {user}?",
    "Which products should we show {user} now?",
    "what should she buy after this?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory (default: train the demo config once)")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--name", default="ask")
    args = parser.parse_args()

    from bench_serve import ensure_model

    from p5rec.assistant import Assistant
    from p5rec.config import to_dict
    from p5rec.evaluation import hardware
    from p5rec.metrics import ranking_metrics
    from p5rec.tasks import get_family
    from p5rec.training import git_commit

    t0 = time.time()
    run = ensure_model(args.model)
    assistant = Assistant(run)
    ctx = assistant.ctx
    examples = ctx.splits.next_item[args.split]
    family = get_family("next_item")
    beams = assistant.cfg.eval.num_beams
    targets = [ex.target for ex in examples]

    def score(sources: list[str]) -> dict[str, float]:
        lists = []
        for start in range(0, len(sources), args.batch_size):
            ranked = assistant.engine.rank(sources[start : start + args.batch_size], beams)
            lists += [[item for item, _ in r][:10] for r in ranked]
        return {k: round(v, 4) for k, v in ranking_metrics(lists, targets, (10,)).items()}

    rows = {}
    for split in ("seen", "unseen"):
        template = family.eval_template(split)
        sources = [
            ctx.prompt(
                family.name,
                template.render({"user": ex.user, "history": ctx.history_text(ex.history)}, "")[0],
            )
            for ex in examples
        ]
        rows[f"template {template.id} ({split})"] = {"prompt": template.source, **score(sources)}
    for text in PARAPHRASES:
        queries = [
            assistant.query(None, text=text.format(user=ex.user), history=list(ex.history))
            for ex in examples
        ]
        detected = sum(q.family == "next_item" for q in queries) / len(queries)
        sources = [
            assistant.query(
                "next_item", text=text.format(user=ex.user), history=list(ex.history)
            ).source
            for ex in examples
        ]
        rows[f"free text: {text}"] = {
            "prompt": text,
            "detected_next_item": detected,
            **score(sources),
        }
        print(text, rows[f"free text: {text}"], flush=True)
    seen = next(iter(rows.values()))
    for row in rows.values():
        row["ndcg@10_vs_seen"] = round(row["ndcg@10"] / seen["ndcg@10"], 3)
    info = json.loads((run / "run.json").read_text())
    result = {
        "benchmark": "ask",
        "split": args.split,
        "users": len(examples),
        "num_beams": beams,
        "prompts": rows,
        "model": str(run),
        "data_fingerprint": info.get("data_fingerprint"),
        "config": to_dict(assistant.cfg),
        "seed": assistant.cfg.train.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - t0, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name}: hr@10 {row['hr@10']:.4f} ndcg@10 {row['ndcg@10']:.4f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
