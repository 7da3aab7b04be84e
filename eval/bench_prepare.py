"""Benchmark: ``p5rec prepare`` on a large generated CSV log (default 10 million events).

    python eval/bench_prepare.py [--events 10000000] [--workdir /tmp/p5rec-bench-prepare]

Generates a CSV (user, item, timestamp, rating; Zipf-distributed item popularity, fixed
seed), then runs, each in its own process so peak memory is measured per run:

* ``csv pass``: a bare Python ``csv.reader`` loop over the file (the floor for any
  streaming Python reader);
* ``pyarrow read_csv``: the whole file loaded into memory at once (the columnar reference);
* ``p5rec prepare``: read, dedupe, sort, split, candidates, Parquet output.

Writes eval/results/prepare.json: config, data hash, seed, git commit, hardware, and for
each run wall seconds, events per second and peak resident memory, with ratios to the
references.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

# Each child reports its own peak resident memory (VmHWM) on exit: the rusage of a child
# also counts the memory of the parent it was forked from.
PEAK = """
import atexit, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    print("PEAK_KB", kb, file=sys.stderr)
atexit.register(_peak)
"""

CSV_PASS = """
import csv, sys
n = 0
with open(sys.argv[1], newline="") as f:
    for row in csv.reader(f):
        n += 1
print(n - 1)
"""

ARROW_READ = """
import sys, pyarrow.csv as pc
print(pc.read_csv(sys.argv[1]).num_rows)
"""

PREPARE = """
import runpy, sys
sys.argv = ["p5rec", *sys.argv[1:]]
try:
    runpy.run_module("p5rec", run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
"""


def generate(path: Path, events: int, users: int, items: int, seed: int) -> None:
    """Write the CSV in chunks: user ids uniform, items Zipf(1.1), times increasing."""
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with pc.CSVWriter(
        path,
        pa.schema(
            [
                ("user", pa.string()),
                ("item", pa.string()),
                ("timestamp", pa.int64()),
                ("rating", pa.int8()),
            ]
        ),
    ) as w:
        for start in range(0, events, chunk):
            n = min(chunk, events - start)
            u = rng.integers(0, users, n)
            i = np.minimum(rng.zipf(1.1, n), items) - 1
            t = 1_500_000_000 + start + np.arange(n)
            r = rng.integers(1, 6, n)
            w.write_table(
                pa.table(
                    {
                        "user": pa.array([f"u{x}" for x in u.tolist()]),
                        "item": pa.array([f"i{x}" for x in i.tolist()]),
                        "timestamp": pa.array(t),
                        "rating": pa.array(r.astype(np.int8)),
                    }
                )
            )


def measure(code: str, *args: str) -> dict:
    """Wall time and peak resident memory of ``python -c code args`` in a child process."""
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK + code, *args], capture_output=True, text=True
    )
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[:2]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak = next(ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_KB"))
    return {
        "seconds": round(wall, 2),
        "peak_rss_mb": round(int(peak.split()[1]) / 1024, 1),
        "stdout_tail": proc.stdout.strip().splitlines()[-3:],
    }


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def hardware() -> dict:
    mem = None
    with contextlib.suppress(ValueError, OSError):
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gb": mem,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/p5rec-bench-prepare")
    parser.add_argument("--name", default="prepare", help="result file eval/results/NAME.json")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / f"events-{args.events}-{args.users}-{args.items}-{args.seed}.csv"
    started = time.time()
    if not csv_path.is_file():
        print(f"generating {csv_path} ...", flush=True)
        tmp = csv_path.with_suffix(".tmp")
        generate(tmp, args.events, args.users, args.items, args.seed)
        tmp.replace(csv_path)
    runs = {}
    print("csv pass ...", flush=True)
    runs["csv_pass"] = measure(CSV_PASS, str(csv_path))
    print("pyarrow read_csv ...", flush=True)
    runs["pyarrow_read_csv"] = measure(ARROW_READ, str(csv_path))
    print("p5rec prepare ...", flush=True)
    out = work / "dataset"
    runs["p5rec_prepare"] = measure(
        PREPARE,
        *[
            "prepare",
            "--source",
            "csv",
            "--input",
            str(csv_path),
            "--out",
            str(out),
            "--user-col",
            "user",
            "--item-col",
            "item",
            "--time-col",
            "timestamp",
            "--rating-col",
            "rating",
            "--quiet",
        ],
    )
    for r in runs.values():
        r["events_per_second"] = round(args.events / r["seconds"])
    manifest = json.loads((out / "manifest.json").read_text())
    prep = runs["p5rec_prepare"]
    from p5rec.training import git_commit

    result = {
        "benchmark": "prepare",
        "config": vars(args),
        "data": {
            "file": csv_path.name,
            "bytes": csv_path.stat().st_size,
            "sha256": sha256(csv_path),
        },
        "seed": args.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "runs": runs,
        "ratios": {
            "prepare_seconds_over_csv_pass": round(
                prep["seconds"] / runs["csv_pass"]["seconds"], 2
            ),
            "prepare_peak_rss_over_pyarrow_read": round(
                prep["peak_rss_mb"] / runs["pyarrow_read_csv"]["peak_rss_mb"], 2
            ),
        },
        "dataset": {k: manifest[k] for k in ("counts", "splits", "cleaning", "fingerprint")},
        "wall_seconds": round(time.time() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps({"runs": runs, "ratios": result["ratios"]}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
