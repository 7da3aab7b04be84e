"""Benchmark: the embedded demo end to end, model beside its in-run baselines.

    python eval/bench_demo.py [--out runs/bench-demo] [key.sub=value ...]

Trains on the synthetic corpus with configs/demo.yaml, evaluates every task family on the
test split, and writes eval/results/demo.json: config, data fingerprint, seed, git commit,
hardware, wall times, and for each family the model's and the baseline's metrics with their
ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from p5rec.config import load_config
from p5rec.demo import HEADLINE
from p5rec.evaluation import evaluate_run, format_table
from p5rec.resources import resource_dir
from p5rec.training import train

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-demo", help="run directory")
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value")
    args = parser.parse_args()
    cfg = load_config(resource_dir("configs") / "demo.yaml", args.overrides)
    start = time.time()
    summary = train(cfg, args.out, progress=True)
    report = evaluate_run(args.out, cfg, progress=True)
    print(format_table(report))
    headline = {}
    for family, metric, higher in HEADLINE:
        res = report["results"][family]
        model, base = res["model"][metric], res["baseline"]["metrics"][metric]
        headline[f"{family}/{metric}"] = {
            "model": model,
            "baseline": base,
            "baseline_name": res["baseline"]["name"],
            "model_over_baseline": model / base if base else None,
            "model_better": model > base if higher else model < base,
        }
    result = {
        "benchmark": "demo",
        "headline": headline,
        "train": summary,
        "wall_seconds": round(time.time() - start, 1),
        **report,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(headline, indent=2))
    print(f"wrote {RESULTS / 'demo.json'}")


if __name__ == "__main__":
    main()
