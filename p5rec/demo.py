"""``p5rec demo``: synthetic data -> multi-task training -> evaluation -> recommendations."""

from __future__ import annotations

from pathlib import Path

from p5rec.config import ExperimentConfig

__all__ = ["run_demo"]

# (family, metric, higher is better): the comparisons the demo states as its verdict
HEADLINE = [
    ("next_item", "hr@10", True),
    ("next_item", "ndcg@10", True),
    ("rating", "rmse", False),
]


def run_demo(cfg: ExperimentConfig, out: Path, progress: bool = True, samples: int = 3) -> dict:
    """Run the whole pipeline into ``out``; prints the table and sample recommendations."""
    from p5rec.assistant import Assistant
    from p5rec.evaluation import evaluate_run, format_table
    from p5rec.training import train

    print(
        f"p5rec demo: synthetic corpus ({cfg.data.synthetic.num_users} users, "
        f"{cfg.data.synthetic.num_items} items), run directory {out}"
    )
    summary = train(cfg, out, progress=progress)
    print(
        f"trained {summary.get('parameters', 0) / 1e6:.2f}M parameters "
        f"in {summary['train_seconds']:.0f} s"
    )
    report = evaluate_run(out, cfg, progress=progress)
    print()
    print(format_table(report))
    print()
    results = report["results"]
    for family, metric, higher in HEADLINE:
        res = results.get(family)
        if not res or not res.get("n"):
            continue
        model, base = res["model"][metric], res["baseline"]["metrics"][metric]
        better = model > base if higher else model < base
        print(
            f"{family} {metric}: model {model:.4f} vs {res['baseline']['name']} {base:.4f} "
            f"-> {'model better' if better else 'BASELINE BETTER'}"
        )

    assistant = Assistant(out, cfg)
    ctx = assistant.ctx
    for ex in ctx.splits.next_item["test"][:samples]:
        print(
            f"\n{ex.user}: last items "
            + ", ".join(ctx.title(i) for i in ex.history[-3:])
            + f"\n  held-out next item: {ex.target} ({ctx.title(ex.target)})"
        )
        # recommend from the history before the held-out item, as evaluation does
        query = assistant.query("next_item", user=ex.user, history=ex.history, k=5)
        for r in assistant.answer([query])[0]["items"]:
            mark = "  <- held-out item" if r["item"] == ex.target else ""
            print(f"  {r['rank']}. {r['item']} {r['title']} (log p {r['log_prob']:.2f}){mark}")
    print(f"\nwrote {out / 'metrics.json'}")
    return report
