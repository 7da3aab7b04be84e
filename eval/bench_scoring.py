"""Benchmark: closed-set answer scoring of a decoder-only model, against a plain forward pass.

    python eval/bench_scoring.py RUN [RUN ...] [--family category] [--split valid]
                                 [--examples 200] [--name scoring]

A label family's answer is chosen among its training answers (``p5rec.tasks.labels``;
Amazon category paths share their leading words), so every prompt scores every answer.
For each trained decoder-only run, on the family's ``--split`` prompts (seen template),
every training answer is scored two ways on the same model:

* ``p5rec``: ``Engine.score_texts``: the prompt run once, then one forward row per distinct
  prefix of the answers' tokens (answers sharing words share rows);
* ``plain_forward``: one forward pass over prompt + answer per answer, right-padded, the
  usual way to score a closed set with a causal language model.

Reported per run: answers, their tokens and distinct prefixes, ms per prompt for both
(the median of ``--repeats`` timed passes over the same prompts, after a warm-up), their
ratio, the largest difference between the two scores and whether the argmax agrees.

Writes eval/results/NAME.json (default ``scoring``): each run's config, data fingerprint,
seed; git commit, hardware, wall time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"

from bench_decoding import time_call  # noqa: E402  (this folder: the median after a warm-up)


@torch.no_grad()
def plain_forward(engine, sources: list[str], texts: list[str], chunk: int) -> list[list[float]]:
    """Per source, the log-probability of each text (EOS included) after the prompt, from a
    forward pass over prompt + text per text, ``chunk`` texts per pass."""
    options = [
        engine.tokenizer(t, add_special_tokens=False).input_ids + [engine.eos] for t in texts
    ]
    out = []
    for source in sources:
        prompt = engine.tokenizer(source, truncation=True, max_length=engine.max_source_length)
        prompt = prompt.input_ids
        row = []
        for a in range(0, len(options), chunk):
            part = options[a : a + chunk]
            width = len(prompt) + max(len(o) for o in part)
            ids = torch.full((len(part), width), engine.pad, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for r, o in enumerate(part):
                ids[r, : len(prompt) + len(o)] = torch.tensor(prompt + o)
                mask[r, : len(prompt) + len(o)] = 1
            logits = engine.model(
                input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device)
            ).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for r, o in enumerate(part):
                at = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(o))
                row.append(logp[r, at, torch.tensor(o)].sum().item())
        out.append(row)
    return out


def measure(run: Path, family_name: str, split: str, n: int, batch: int, repeats: int) -> dict:
    from p5rec.config import load_config, to_dict
    from p5rec.generation import Engine
    from p5rec.modeling import load_trained
    from p5rec.tasks import get_family
    from p5rec.tasks.labels import train_label_counts
    from p5rec.training import build_context

    cfg = load_config(run / "config.yaml")
    info = json.loads((run / "run.json").read_text())
    model, tokenizer, index = load_trained(run)
    if getattr(model.config, "is_encoder_decoder", False):
        raise SystemExit(f"{run}: an encoder-decoder run; this measures decoder-only scoring")
    ctx = build_context(cfg, cfg.data.path or info["data_dir"], index)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = Engine(model, tokenizer, index, cfg.train.max_source_length, device=device)
    family = get_family(family_name)
    template = family.eval_template("seen")
    labels = sorted(train_label_counts(family, ctx))
    texts = [template.render_target(label) for label in labels]
    examples = family.examples(ctx, split, random.Random(0))[:n]
    sources = [ctx.prompt(family.name, template.render(e.fields, e.target)[0]) for e in examples]

    def ours():
        return [
            s
            for a in range(0, len(sources), batch)
            for s in engine.score_texts(sources[a : a + batch], texts)
        ]

    def plain_pass():
        return plain_forward(engine, sources, texts, batch)

    mine, plain = ours(), plain_pass()
    t_mine = time_call(ours, engine.device, repeats)
    t_plain = time_call(plain_pass, engine.device, repeats)
    tokens = [tokenizer(t, add_special_tokens=False).input_ids + [engine.eos] for t in texts]
    prefixes = {tuple(t[:k]) for t in tokens for k in range(1, len(t))}
    diff = max(abs(a - b) for r, s in zip(mine, plain) for a, b in zip(r, s))
    agree = sum(
        max(range(len(r)), key=r.__getitem__) == max(range(len(s)), key=s.__getitem__)
        for r, s in zip(mine, plain)
    )
    return {
        "run": str(run),
        "family": family_name,
        "split": split,
        "prompts": len(sources),
        "answers": len(texts),
        "answer_tokens": sum(len(t) for t in tokens),
        "distinct_prefixes": len(prefixes),
        "ms_per_prompt": {
            "p5rec": round(1000 * t_mine / len(sources), 2),
            "plain_forward": round(1000 * t_plain / len(sources), 2),
        },
        "speedup_vs_plain_forward": round(t_plain / t_mine, 2),
        "max_abs_score_difference": float(f"{diff:.2e}"),
        "argmax_agreement": round(agree / len(sources), 4),
        "data_fingerprint": info.get("data_fingerprint"),
        "seed": cfg.train.seed,
        "config": to_dict(cfg),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained decoder-only run directories")
    parser.add_argument("--family", default="category")
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument(
        "--batch", type=int, default=32, help="prompts (p5rec) or answers (plain) per pass"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="scoring")
    args = parser.parse_args()

    from p5rec.evaluation import write_measurement

    t0 = time.time()
    rows = []
    for run in args.runs:
        row = measure(run, args.family, args.split, args.examples, args.batch, args.repeats)
        rows.append(row)
        ms = row["ms_per_prompt"]
        print(
            f"{run}: {row['answers']} answers, {row['answer_tokens']} tokens, "
            f"{row['distinct_prefixes']} distinct prefixes; {ms['p5rec']} ms per prompt "
            f"against {ms['plain_forward']} ({row['speedup_vs_plain_forward']}x), "
            f"largest score difference {row['max_abs_score_difference']}",
            flush=True,
        )
    payload = {"benchmark": "scoring", "runs": rows, "threads": torch.get_num_threads()}
    write_measurement(RESULTS / f"{args.name}.json", payload, t0)


if __name__ == "__main__":
    main()
