"""Benchmark: the HTTP service under concurrent load, micro-batched against batch size 1.

    python eval/bench_serve.py [--model RUN] [--clients 32] [--seconds 20] [--max-batch 32]
                               [--max-wait-ms 5] [--name serve]

For each setting (``--max-batch`` and then 1) a fresh ``p5rec serve`` process is started on
127.0.0.1 and a free port; after a warm-up, ``--clients`` concurrent clients send
``POST /v1/recommend`` (a random dataset user each time, k=10) back to back for
``--seconds``. Reported per setting: requests/s, p50/p90/p99 latency, status counts (5xx
separately), and the model calls by batch size from ``/metrics``; and the throughput gain
of micro-batching (requests/s batched over requests/s at batch size 1, same run).

Without ``--model`` the demo config is trained once into ``runs/bench-serve`` (about three
minutes on two CPU cores) and reused. Writes eval/results/NAME.json (config, data
fingerprint, seed, git commit, hardware, wall time).
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


def ensure_model(path: str | None) -> Path:
    """The run to serve: ``path``, or the demo config trained once into runs/bench-serve."""
    if path:
        return Path(path)
    run = ROOT / "runs" / "bench-serve"
    if not (run / "model").is_dir():
        from p5rec.config import load_config
        from p5rec.resources import resource_dir
        from p5rec.training import train

        print(f"training the demo config into {run} (once)", flush=True)
        train(load_config(resource_dir("configs") / "demo.yaml"), run, progress=True)
    return run


class Server:
    """``p5rec serve`` in a child process, on a free loopback port, with a fresh store."""

    def __init__(self, run: Path, store: Path, max_batch: int, max_wait_ms: float) -> None:
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
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()[-2000:]}")
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


async def drive(url: str, users: list[str], clients: int, seconds: float, seed: int) -> dict:
    """``clients`` concurrent loops of POST /v1/recommend for ``seconds``."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        before = batch_counts((await client.get("/metrics")).text)
        deadline = time.perf_counter() + seconds

        async def loop(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            while time.perf_counter() < deadline:
                body = {"user": rng.choice(users), "k": 10}
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/recommend", json=body)
                    key = str(r.status_code)
                except httpx.HTTPError as err:
                    key = "transport_error"
                    errors.append(repr(err))
                latencies.append(time.perf_counter() - t0)
                statuses[key] = statuses.get(key, 0) + 1

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
    parser.add_argument("--model", help="run directory (default: train the demo config once)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="serve")
    args = parser.parse_args()

    from p5rec.config import load_config, to_dict
    from p5rec.evaluation import hardware
    from p5rec.training import build_context, git_commit

    t0 = time.time()
    run = ensure_model(args.model)
    run_info = json.loads((run / "run.json").read_text())
    cfg = load_config(run / "config.yaml")
    ctx = build_context(cfg, cfg.data.path or run_info["data_dir"])
    users = sorted(ctx.sequences)
    store = ROOT / "runs" / "bench-serve-history.sqlite"
    settings = {}
    for max_batch in (args.max_batch, 1):
        server = Server(run, store, max_batch, args.max_wait_ms)
        try:
            server.wait_ready()
            asyncio.run(drive(server.url, users, args.clients, args.warmup, args.seed + 1))
            row = asyncio.run(drive(server.url, users, args.clients, args.seconds, args.seed))
        finally:
            server.stop()
        settings[f"max_batch_{max_batch}"] = {"max_batch": max_batch, **row}
        print(json.dumps({f"max_batch_{max_batch}": row}), flush=True)
    batched, single = settings[f"max_batch_{args.max_batch}"], settings["max_batch_1"]
    result = {
        "benchmark": "serve",
        "endpoint": "POST /v1/recommend (k=10, random dataset user)",
        "clients": args.clients,
        "seconds": args.seconds,
        "max_wait_ms": args.max_wait_ms,
        "settings": settings,
        "throughput_gain": round(batched["requests_per_s"] / single["requests_per_s"], 2),
        "p50_latency_ratio": round(batched["latency_ms"]["p50"] / single["latency_ms"]["p50"], 3),
        "total_5xx": batched["5xx"] + single["5xx"],
        "model": str(run),
        "num_beams": cfg.eval.num_beams,
        "parameters": run_info.get("parameters"),
        "data_fingerprint": run_info.get("data_fingerprint"),
        "config": to_dict(cfg),
        "seed": args.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - t0, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"micro-batching: {batched['requests_per_s']} req/s vs {single['requests_per_s']} "
        f"at batch size 1 -> {result['throughput_gain']}x; 5xx: {result['total_5xx']}; "
        f"wrote {out}"
    )


if __name__ == "__main__":
    main()
