"""Benchmark: training throughput and peak memory of the p5rec loop, per experiment config,
against a bare PyTorch loop on the same model and the same batches.

    python eval/bench_train.py [--configs demo ml100k musical-instruments beauty]
                               [--steps 40] [--full] [--data-root data] [--name NAME]

Each config runs in a fresh process (peak memory is per process):

* its dataset is prepared under ``--data-root`` from ``../shared/data`` when missing;
* ``p5rec``: ``--steps`` optimizer steps of ``p5rec.training.train`` (task mixture,
  per-family joint loss, length buckets, logging; the validation and checkpoint at the end
  are not in the timed windows); samples/s over the logged windows after the first;
* ``bare``: the same number of steps of a plain loop (Hugging Face's own loss, AdamW,
  clipping) over the same first batches of the same epoch, on a freshly built model of the
  same size; samples/s after the first step.

Reported per config: parameters, batch size, samples/s of both and their ratio, peak
resident memory (CPU) or peak allocated CUDA memory, the dataset fingerprint. On CPU the
configs' model sizes are used except Beauty's, which is shrunk to the demo's dimensions
(``beauty-cpu``); ``--full`` keeps every config as written (the GPU run).

Writes eval/results/NAME.json (default ``train_throughput``): git commit, hardware, wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"
SHARED = ROOT.parent / "shared" / "data"

# config -> (reader, raw data folder, prepared folder name)
DATASETS = {
    "ml100k": ("movielens", SHARED / "movielens-100k", "ml-100k"),
    "musical-instruments": ("amazon", SHARED / "amazon-musical-instruments", "mi"),
    "beauty": ("s3rec", SHARED / "amazon-beauty", "beauty"),
}
CPU_SIZE = [
    "model.d_model=128",
    "model.d_ff=256",
    "model.d_kv=32",
    "model.num_heads=4",
    "model.num_layers=2",
    "model.num_decoder_layers=2",
    "train.batch_size=32",
    "train.num_workers=0",
]


def measure(name: str, data_root: str, steps: int, full: bool) -> dict:
    """One config's measurement (runs in its own process)."""
    import torch
    from transformers import AutoTokenizer

    from p5rec.config import load_config
    from p5rec.data.dataset import prepare
    from p5rec.indexing import ItemIndex
    from p5rec.modeling import build_model
    from p5rec.tasks import get_family
    from p5rec.training import build_context, train
    from p5rec.training.mixture import Collator, epoch_batches

    overrides = [
        f"train.max_steps={steps}",
        f"train.log_every={max(1, steps // 4)}",
        "train.eval_examples=20",
        "train.eval_families=[next_item]",
        "train.tensorboard=false",
        "train.patience=0",
    ]
    label = name
    if name in DATASETS:
        reader, raw, folder = DATASETS[name]
        data_dir = Path(data_root) / folder
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        if not (data_dir / "manifest.json").is_file():
            print(f"preparing {data_dir} from {raw}", file=sys.stderr, flush=True)
            prepare(reader, str(raw), data_dir, cfg.data)
        overrides.append(f"data.path={data_dir.resolve()}")
        if name == "beauty" and not full:
            overrides += CPU_SIZE
            label = "beauty-cpu"
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.time()
        summary = train(cfg, run, progress=False)
        wall = time.time() - t0
        log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        windows = [r for r in log if r["kind"] == "train"][1:]
        windows_steps = [r["step"] for r in log if r["kind"] == "train"]
        ours = sorted(r["samples_per_s"] for r in windows)[len(windows) // 2] if windows else 0.0
        tokenizer = AutoTokenizer.from_pretrained(run / "tokenizer")
        ctx = build_context(
            cfg, cfg.data.path or run / "data", ItemIndex.load(run / "item_index.json")
        )
    # the bare loop: same model size, same batches, HF loss, no mixture bookkeeping
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    families = [get_family(f) for f in cfg.tasks.families]
    batches = epoch_batches(cfg, ctx, families, 0)[:steps]
    ids = tokenizer.convert_tokens_to_ids(ctx.index.tokens)
    model = build_model(cfg.model, tokenizer, ids, 1024).to(device).train()
    start = model.config.decoder_start_token_id if model.config.is_encoder_decoder else None
    collate = Collator(tokenizer, cfg.train.max_source_length, cfg.train.max_target_length, start)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    precision = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    seconds, samples = 0.0, 0
    for i, pairs in enumerate(batches):
        t = time.perf_counter()
        batch = {k: v.to(device) for k, v in collate(pairs).items()}
        batch.pop("family"), batch.pop("truncated")
        with torch.autocast(device, dtype=precision, enabled=precision is not None):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i:  # the first step warms up
            seconds += time.perf_counter() - t
            samples += len(pairs)
    bare = samples / seconds if seconds else 0.0
    return {
        "config": label,
        "data_fingerprint": ctx.manifest["fingerprint"],
        "backbone": summary["backbone"],
        "parameters": summary["parameters"],
        "batch_size": cfg.train.batch_size,
        "families": list(cfg.tasks.families),
        "steps": summary["steps"],
        "log_steps": windows_steps,
        "mixed_precision": summary["mixed_precision"],
        "samples_per_s": round(ours, 1),
        "bare_loop_samples_per_s": round(bare, 1),
        "ratio_to_bare_loop": round(ours / bare, 3) if bare else None,
        "peak_memory_mb": summary["peak_memory_mb"],  # of the p5rec run, before the bare loop
        "peak_memory_kind": "cuda_allocated" if cuda else "process_max_rss",
        "run_wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=["demo", "ml100k", "musical-instruments", "beauty"]
    )
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per config")
    parser.add_argument("--full", action="store_true", help="model sizes as in the configs")
    parser.add_argument("--data-root", default="data", help="prepared datasets (made if missing)")
    parser.add_argument("--name", default="train_throughput", help="eval/results/NAME.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.data_root, args.steps, args.full)))
        return

    from p5rec.evaluation import hardware
    from p5rec.training import git_commit

    t0 = time.time()
    rows = []
    for name in args.configs:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps)]
        cmd += ["--data-root", args.data_root] + (["--full"] if args.full else [])
        print(f"{name} ...", flush=True)
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "benchmark": "train_throughput",
        "command": "python eval/bench_train.py " + " ".join(sys.argv[1:]),
        "steps": args.steps,
        "full_size": args.full,
        "seed": 42,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - t0, 1),
        "configs": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
