"""Benchmark: constrained beam search over item codes, against unconstrained beam search and
Hugging Face's ``prefix_allowed_tokens_fn`` on the same model.

    python eval/bench_decoding.py [--model tiny|small] [--sizes 10000,100000,1000000]

For each catalogue size, synthetic item codes (random distinct codes of ``--levels`` tokens
from ``--codebook`` tokens per level, fixed seed) are built into

* this project's ``ItemTrie`` (build seconds, peak traced memory, array bytes), and
* the dict trie a ``prefix_allowed_tokens_fn`` callback reads (prefix tuple -> next tokens,
  the usual P5/OpenP5 construction; build seconds and peak memory too).

Then, for each batch size and beam width, the same randomly initialised T5 (``tiny``: the
demo's CPU size; ``small``: T5-small's dimensions) ranks items for the same random prompts
four ways:

* ``p5rec``: this project's decoder, ``p5rec.decoding.trie_beam_search``;
* ``hf_unconstrained``: Hugging Face ``generate()`` beam search without a constraint, held
  to the same number of steps (code length + EOS);
* ``hf_prefix_allowed_tokens_fn``: ``generate()`` with the per-beam callback;
* ``hf_trie_logits_processor``: ``generate()`` with ``p5rec.generation.TrieConstraint``.

The three ``generate()`` runs share one setting (all beams returned with their summed
log-probabilities, no length penalty). Reported: ms per user (median of ``--repeats`` timed
calls after a warm-up), ``p5rec`` against the unconstrained search and the callback against
``p5rec``, whether ``p5rec`` returned real, distinct items and the same top-K as
``generate()`` with the same constraint, per-user time growth from the smallest to the
largest catalogue, and the recall of the exact top-10 (every item's code scored by sequence
log-probability) at beam 10 and 20 on the smallest catalogue (``--recall-run RUN``: also on a
trained run's own next-item prompts).

Writes eval/results/NAME.json (default ``decoding``): config, git commit, hardware, wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessorList, T5Config, T5ForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p5rec.decoding import trie_beam_search  # noqa: E402
from p5rec.evaluation import hardware  # noqa: E402
from p5rec.generation import TrieConstraint  # noqa: E402
from p5rec.training import git_commit  # noqa: E402
from p5rec.trie import ItemTrie  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAD, EOS = 0, 1
MODELS = {
    "tiny": dict(d_model=128, d_ff=256, d_kv=32, num_heads=4, num_layers=2, num_decoder_layers=2),
    "small": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6),
}


def synthetic_codes(n: int, levels: int, codebook: int, first_token: int, seed: int) -> np.ndarray:
    """``n`` distinct random codes; level ``l`` uses tokens ``first_token + l * codebook + c``."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice(codebook**levels, size=n, replace=False)
    digits = np.stack([(numbers // codebook**p) % codebook for p in reversed(range(levels))], 1)
    return first_token + np.arange(levels) * codebook + digits


def traced(fn):
    """(result, seconds, peak traced MB) of ``fn()``; numpy and Python allocations count."""
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def dict_trie(codes: np.ndarray) -> dict[tuple[int, ...], list[int]]:
    children: dict[tuple[int, ...], set[int]] = {}
    for code in codes.tolist():
        full = (*code, EOS)
        for t in range(len(full)):
            children.setdefault(tuple(full[:t]), set()).add(full[t])
    return {k: sorted(v) for k, v in children.items()}


def callback(trie: dict) -> callable:
    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        return trie.get(tuple(sent[1:].tolist()), [EOS])  # [1:]: the decoder start token

    return allowed


def beam_search(model, inputs: dict, config: GenerationConfig, **constraint):
    """Hugging Face beam search returning every beam with its summed log-probability
    (``constraint``: ``logits_processor=`` or ``prefix_allowed_tokens_fn=``, or none)."""
    config = copy.deepcopy(config)
    config.update(
        num_return_sequences=config.num_beams,
        do_sample=False,
        length_penalty=0.0,
        early_stopping=True,
        output_scores=True,
        return_dict_in_generate=True,
    )
    return model.generate(**inputs, generation_config=config, **constraint)


def settings(beams: int, steps: int, **extra) -> GenerationConfig:
    return GenerationConfig(
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        num_beams=beams,
        max_new_tokens=steps,
        **extra,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def exact_top(model, inputs, codes: torch.Tensor, k: int, chunk: int = 4096) -> list[set[int]]:
    """Per prompt, the ``k`` items whose code (then EOS) has the highest log-probability."""
    labels = torch.cat([codes, torch.full((len(codes), 1), EOS, device=codes.device)], 1)
    encoded = model.get_encoder()(**inputs).last_hidden_state
    tops = []
    for b in range(encoded.shape[0]):
        scores = []
        for start in range(0, len(labels), chunk):
            lab = labels[start : start + chunk]
            logits = model(
                encoder_outputs=(encoded[b : b + 1].expand(len(lab), -1, -1),),
                attention_mask=inputs["attention_mask"][b : b + 1].expand(len(lab), -1),
                labels=lab,
            ).logits
            logp = torch.log_softmax(logits.float(), -1).gather(-1, lab.unsqueeze(-1))
            scores.append(logp.squeeze(-1).sum(-1))
        tops.append(set(torch.cat(scores).topk(k).indices.tolist()))
    return tops


def recall_on_run(run_dir: str, users: int, device: torch.device) -> list[dict]:
    """Recall of the exact top-10 by the trained run's own next-item prompts (test split):
    every item's code scored by log-probability, against constrained beam search."""
    import random

    from p5rec.config import load_config
    from p5rec.generation import Engine
    from p5rec.modeling import load_trained
    from p5rec.tasks import get_family
    from p5rec.training import build_context

    run = Path(run_dir)
    cfg = load_config(run / "config.yaml")
    info = json.loads((run / "run.json").read_text())
    model, tokenizer, index = load_trained(run)
    ctx = build_context(cfg, cfg.data.path or info["data_dir"], index)
    engine = Engine(model, tokenizer, index, cfg.train.max_source_length, device=device)
    family = get_family("next_item")
    template = family.eval_template("seen")
    examples = family.examples(ctx, "test", random.Random(0))[:users]
    sources = [ctx.prompt(family.name, template.render(ex.fields, ex.target)[0]) for ex in examples]
    items = list(index.codes)
    exact = [
        {items[i] for i in torch.tensor(engine.score_items([src], [items])[0]).topk(10).indices}
        for src in sources
    ]
    out = []
    for beams in (10, 20):
        found = engine.rank(sources, beams)
        recall = [len(e & {i for i, _ in f[:10]}) / 10 for e, f in zip(exact, found)]
        out.append(
            {
                "run": str(run),
                "scheme": index.scheme,
                "items": len(items),
                "users": len(sources),
                "beams": beams,
                "recall_of_exact_top10": round(float(np.mean(recall)), 4),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--beams", default="10,20")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook", type=int, default=256)
    parser.add_argument("--base-vocab", type=int, default=2000, help="non-item tokens")
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recall-users", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument(
        "--skip-callback-above",
        type=int,
        default=0,
        help="skip prefix_allowed_tokens_fn for batches larger than this (0: never)",
    )
    parser.add_argument(
        "--recall-run",
        action="append",
        default=[],
        help="also measure recall of the exact top-10 on this trained run (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="decoding", help="result file eval/results/NAME.json")
    args = parser.parse_args()
    wall = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(s) for s in args.batches.split(",")]
    beam_widths = [int(s) for s in args.beams.split(",")]
    vocab = args.base_vocab + args.levels * args.codebook
    torch.manual_seed(args.seed)
    config = T5Config(
        vocab_size=vocab,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
        feed_forward_proj="relu",
        **MODELS[args.model],
    )
    dtype = getattr(torch, args.dtype)
    model = T5ForConditionalGeneration(config).to(device, dtype).eval()
    model.generation_config = GenerationConfig(
        pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD
    )
    gen = torch.Generator().manual_seed(args.seed + 1)

    def prompts(batch: int) -> dict:
        ids = torch.randint(2, args.base_vocab, (batch, args.prompt_length), generator=gen)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}

    results = {"tries": [], "decoding": [], "recall": []}
    for size in sizes:
        codes = synthetic_codes(size, args.levels, args.codebook, args.base_vocab, args.seed)
        trie, seconds, peak = traced(partial(ItemTrie, codes, end_id=EOS))
        table, d_seconds, d_peak = traced(partial(dict_trie, codes))
        results["tries"].append(
            {
                "items": size,
                "build_seconds": round(seconds, 3),
                "build_peak_mb": round(peak, 1),
                "array_mb": round(trie.nbytes / 2**20, 1),
                "nodes": trie.num_nodes,
                "dict_trie_build_seconds": round(d_seconds, 3),
                "dict_trie_build_peak_mb": round(d_peak, 1),
            }
        )
        print(
            f"{size:>8} items: trie {seconds:.2f} s, peak {peak:.0f} MB; "
            f"dict trie {d_seconds:.2f} s, peak {d_peak:.0f} MB",
            flush=True,
        )
        steps = trie.max_length
        for batch in batches:
            inputs = prompts(batch)
            for beams in beam_widths:
                # unconstrained search is held to the same number of steps (no early EOS)
                setting = settings(beams, steps, min_new_tokens=steps)
                constrained = settings(beams, steps)
                processor = LogitsProcessorList([TrieConstraint(trie, 1)])
                runs = {
                    "hf_unconstrained": partial(beam_search, model, inputs, setting),
                    "hf_trie_logits_processor": partial(
                        beam_search, model, inputs, constrained, logits_processor=processor
                    ),
                    "p5rec": partial(trie_beam_search, model, inputs, trie, beams, PAD),
                }
                if not args.skip_callback_above or batch <= args.skip_callback_above:
                    runs["hf_prefix_allowed_tokens_fn"] = partial(
                        beam_search,
                        model,
                        inputs,
                        constrained,
                        prefix_allowed_tokens_fn=callback(table),
                    )
                row = {"items": size, "batch": batch, "beams": beams}
                for name, fn in runs.items():
                    row[f"{name}_ms_per_user"] = round(
                        time_call(fn, device, args.repeats) * 1000 / batch, 3
                    )
                ours = runs["p5rec"]()
                theirs = runs["hf_trie_logits_processor"]()
                hf_items = trie.items_of(theirs.sequences[:, 1:]).view(batch, beams)
                row["real_distinct_items"] = all(
                    len(set(r)) == beams and min(r) >= 0 for r in ours.items.tolist()
                )
                row["same_top_k_as_hf_constrained"] = round(
                    float(
                        np.mean(
                            [
                                set(a) == set(b)
                                for a, b in zip(ours.items.tolist(), hf_items.tolist())
                            ]
                        )
                    ),
                    4,
                )
                row["p5rec_vs_unconstrained"] = round(
                    row["p5rec_ms_per_user"] / row["hf_unconstrained_ms_per_user"], 3
                )
                if "hf_prefix_allowed_tokens_fn_ms_per_user" in row:
                    row["callback_vs_p5rec"] = round(
                        row["hf_prefix_allowed_tokens_fn_ms_per_user"] / row["p5rec_ms_per_user"],
                        2,
                    )
                results["decoding"].append(row)
                print(json.dumps(row), flush=True)
        if size == min(sizes) and args.recall_users:
            inputs = prompts(args.recall_users)
            exact = exact_top(model, inputs, torch.from_numpy(codes).to(device), 10)
            for beams in (10, 20):
                found = trie_beam_search(model, inputs, trie, beams, PAD).items
                recall = [
                    len(exact[b] & set(found[b, :10].tolist())) / 10
                    for b in range(args.recall_users)
                ]
                results["recall"].append(
                    {
                        "model": f"random {args.model} T5 (untrained)",
                        "items": size,
                        "beams": beams,
                        "recall_of_exact_top10": round(float(np.mean(recall)), 4),
                    }
                )
                print(json.dumps(results["recall"][-1]), flush=True)

    for run in args.recall_run:
        results["recall"] += recall_on_run(run, args.recall_users, device)
    rows = results["decoding"]
    large, small = max(sizes), min(sizes)

    def ms(size, batch, beams):
        return next(
            r["p5rec_ms_per_user"]
            for r in rows
            if (r["items"], r["batch"], r["beams"]) == (size, batch, beams)
        )

    summary = {
        "max_p5rec_vs_unconstrained": max(r["p5rec_vs_unconstrained"] for r in rows),
        "min_callback_vs_p5rec": min(
            (r["callback_vs_p5rec"] for r in rows if "callback_vs_p5rec" in r), default=None
        ),
        f"max_growth_{small}_to_{large}_items": max(
            round(ms(large, b, k) / ms(small, b, k), 3) for b in batches for k in beam_widths
        ),
        "largest_trie_build_seconds": results["tries"][-1]["build_seconds"],
        "largest_trie_build_peak_mb": results["tries"][-1]["build_peak_mb"],
        "all_real_distinct_items": all(r["real_distinct_items"] for r in rows),
        "min_same_top_k_as_hf_constrained": min(r["same_top_k_as_hf_constrained"] for r in rows),
    }
    blob = {
        "benchmark": "decoding",
        "config": {
            **vars(args),
            "vocab": vocab,
            "model_dims": MODELS[args.model],
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "data": "synthetic random codes (seeded); prompts random token ids (seeded)",
        "seed": args.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - wall, 1),
        "summary": summary,
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(blob, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
