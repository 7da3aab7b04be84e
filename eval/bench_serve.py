"""Benchmark: the HTTP service under concurrent load, micro-batched against batch size 1.

    python eval/bench_serve.py [--model RUN | --sizes demo small] [--clients 32]
                               [--seconds 20] [--max-batch 32] [--max-wait-ms 5]
                               [--threads N] [--name serve]

For each model and each setting (``--max-batch``, then 1) a fresh ``p5rec serve`` process
is started on 127.0.0.1 and a free port; after a warm-up, ``--clients`` concurrent clients
send ``POST /v1/recommend`` (a random dataset user each time, k=10) back to back for
``--seconds``. Reported per setting: requests/s, p50/p90/p99 latency, status counts (5xx
separately), and the model calls by batch size from ``/metrics``; per model, the throughput
gain of micro-batching (requests/s batched over requests/s at batch size 1, same run).

Without ``--model`` two runs on the demo data are served, each trained once and reused:
``demo`` (configs/demo.yaml as ``p5rec demo`` trains it, 0.7M parameters) and ``small``
(T5-small's width, four layers a side, trained only 5 small steps: a load test needs a
realistic cost per request, not good answers). Writes eval/results/NAME.json (configs,
data fingerprint, seed, git commit, hardware, wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Models the load test serves when no --model is given: the demo as trained by `p5rec demo`,
# and the same data at a larger size (T5-small's width, four layers a side) trained only
# a few steps: its answers are not the point, its cost per request is that of a realistic model.
SIZES = {
    "demo": [],
    "small": [
        "model.d_model=512",
        "model.d_ff=2048",
        "model.d_kv=64",
        "model.num_heads=8",
        "model.num_layers=4",
        "model.num_decoder_layers=4",
        "train.batch_size=8",
        "train.max_steps=5",
        "train.eval_every=5",
    ],
}


def ensure_model(path: str | None, size: str = "demo") -> Path:
    """The run to serve: ``path``, or the demo config at ``size`` trained once into
    runs/bench-serve (demo) or runs/bench-serve-SIZE."""
    if path:
        return Path(path)
    run = ROOT / "runs" / ("bench-serve" if size == "demo" else f"bench-serve-{size}")
    if not (run / "model").is_dir():
        from p5rec.config import load_config
        from p5rec.resources import resource_dir
        from p5rec.training import train

        print(f"training the demo config ({size}) into {run} (once)", flush=True)
        cfg = load_config(resource_dir("configs") / "demo.yaml", SIZES[size])
        train(cfg, run, progress=True)
    return run


class Server:
    """``p5rec serve`` in a child process, on a free loopback port, with a fresh store."""

    def __init__(
        self, run: Path, store: Path, max_batch: int, max_wait_ms: float, threads: int | None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        store.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "p5rec",
            "serve",
            "--model",
            str(run),
            "--port",
            str(self.port),
            "--store",
            str(store),
            "--max-batch",
            str(max_batch),
            "--max-wait-ms",
            str(max_wait_ms),
            *(["--threads", str(threads)] if threads else []),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        # a file, not a pipe: an unread pipe that fills up would stall the server
        self.log = store.with_suffix(".log")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def batch_counts(metrics: str) -> dict[int, int]:
    """Model calls by batch size, from the /metrics text."""
    return {
        int(m.group(1)): int(m.group(2))
        for m in re.finditer(r'p5rec_model_batches_total\{size="(\d+)"\} (\d+)', metrics)
    }


class Connection:
    """A minimal HTTP/1.1 keep-alive connection for JSON POSTs. The load generator shares the
    server's two cores, so it must cost as little CPU per request as possible; a full client
    library costs about as much per request as the server's own HTTP handling."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def drive(url: str, users: list[str], clients: int, seconds: float, seed: int) -> dict:
    """``clients`` concurrent loops of POST /v1/recommend for ``seconds``."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    host, port = url.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        before = batch_counts((await client.get("/metrics")).text)
        deadline = time.perf_counter() + seconds

        async def loop(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            conn = Connection(host, int(port))
            while time.perf_counter() < deadline:
                body = json.dumps({"user": rng.choice(users), "k": 10}).encode()
                t0 = time.perf_counter()
                try:
                    key = str(await conn.post("/v1/recommend", body))
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as err:
                    key = "transport_error"
                    errors.append(repr(err))
                    conn.close()
                latencies.append(time.perf_counter() - t0)
                statuses[key] = statuses.get(key, 0) + 1
            conn.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(n) for n in range(clients)))
        wall = time.perf_counter() - t0
        after = batch_counts((await client.get("/metrics")).text)
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    batches = {s: n - before.get(s, 0) for s, n in after.items() if n > before.get(s, 0)}
    calls = sum(batches.values())
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
        "status": statuses,
        "5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "transport_errors": errors[:5],
        "model_calls": calls,
        "mean_batch": round(sum(s * n for s, n in batches.items()) / calls, 2) if calls else 0,
        "batch_sizes": dict(sorted(batches.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory (default: the --sizes runs)")
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=list(SIZES),
        choices=list(SIZES),
        help="without --model: the demo config at these sizes, each trained once",
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--threads", type=int, help="the server's CPU threads (p5rec serve)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="serve")
    args = parser.parse_args()

    from p5rec.evaluation import hardware
    from p5rec.training import git_commit

    t0 = time.time()
    runs = (
        {"model": ensure_model(args.model)}
        if args.model
        else {size: ensure_model(None, size) for size in args.sizes}
    )
    models = {}
    for label, run in runs.items():
        models[label] = measure(run, args)
    result = {
        "benchmark": "serve",
        "endpoint": "POST /v1/recommend (k=10, random dataset user)",
        "clients": args.clients,
        "seconds": args.seconds,
        "max_wait_ms": args.max_wait_ms,
        "server_threads": args.threads or "torch default",
        "models": models,
        "min_throughput_gain": min(m["throughput_gain"] for m in models.values()),
        "max_throughput_gain": max(m["throughput_gain"] for m in models.values()),
        "total_5xx": sum(m["total_5xx"] for m in models.values()),
        "seed": args.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - t0, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for label, m in models.items():
        batched, single = m["settings"][f"max_batch_{args.max_batch}"], m["settings"]["max_batch_1"]
        print(
            f"{label} ({m['parameters']} parameters): {batched['requests_per_s']} req/s "
            f"micro-batched vs {single['requests_per_s']} at batch size 1 -> "
            f"{m['throughput_gain']}x; 5xx: {m['total_5xx']}"
        )
    print(f"wrote {out}")


def measure(run: Path, args) -> dict:
    """Both settings on one run: micro-batched (``--max-batch``) and batch size 1."""
    from p5rec.config import load_config, to_dict
    from p5rec.training import build_context

    run_info = json.loads((run / "run.json").read_text())
    cfg = load_config(run / "config.yaml")
    ctx = build_context(cfg, cfg.data.path or run_info["data_dir"])
    users = sorted(ctx.sequences)
    store = ROOT / "runs" / "bench-serve-history.sqlite"
    settings = {}
    for max_batch in (args.max_batch, 1):
        server = Server(run, store, max_batch, args.max_wait_ms, args.threads)
        try:
            server.wait_ready()
            asyncio.run(drive(server.url, users, args.clients, args.warmup, args.seed + 1))
            row = asyncio.run(drive(server.url, users, args.clients, args.seconds, args.seed))
        finally:
            server.stop()
        settings[f"max_batch_{max_batch}"] = {"max_batch": max_batch, **row}
        print(json.dumps({str(run): {f"max_batch_{max_batch}": row}}), flush=True)
    batched, single = settings[f"max_batch_{args.max_batch}"], settings["max_batch_1"]
    return {
        "run": str(run),
        "parameters": run_info.get("parameters"),
        "train_steps": run_info.get("steps"),
        "num_beams": cfg.eval.num_beams,
        "settings": settings,
        "throughput_gain": round(batched["requests_per_s"] / single["requests_per_s"], 2),
        "p50_latency_ratio": round(batched["latency_ms"]["p50"] / single["latency_ms"]["p50"], 3),
        "total_5xx": batched["5xx"] + single["5xx"],
        "data_fingerprint": run_info.get("data_fingerprint"),
        "config": to_dict(cfg),
    }


if __name__ == "__main__":
    main()
