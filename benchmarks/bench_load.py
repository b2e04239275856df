"""Load test of /v1/classify: N concurrent clients, each sending single unseen articles back to back.

    python benchmarks/bench_load.py [--clients 16 64] [--seconds 30] [--rounds 1] [--before /tmp/before]

Starts `python -m serving` (the run profile of `newsclf serve`) with an empty embedding cache, so every request
embeds a text the service has never seen (each text gets a unique reference line), then for each client count
prints: requests, 200s, documented 503s (backpressure, with Retry-After), other errors, p50/p95/p99 latency of the
answered requests and of all requests, throughput (answered articles/s), RSS before/after, and the share of the
CPU other processes took meanwhile. A batch-endpoint pass gives the throughput concurrency should approach.
With ``--before``, the same phases run against that checkout's server too, interleaved (before, after, before...).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (  # noqa: E402
    ROOT,
    Contention,
    Server,
    empty_cache,
    model_dir,
    percentile,
    start,
    wait_ready,
    written_articles,
)


class Unseen:
    """Articles of the corpus, each made new by a reference line (so no embedding is ever cached)."""

    def __init__(self, tag: str) -> None:
        self.rows = written_articles()
        self.n = 0
        self.tag = tag

    def next(self) -> dict:
        row = self.rows[self.n % len(self.rows)]
        self.n += 1
        return {"title": row["title"], "text": f"{row['text']}\n\n(ref {self.tag}-{self.n})"}


async def run_clients(url: str, clients: int, seconds: float, texts: Unseen) -> dict:
    ok, busy, errors, answered, every = 0, 0, 0, [], []
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal ok, busy, errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/classify", json=texts.next())
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            took = time.perf_counter() - started
            every.append(took)
            if status == 200:
                ok += 1
                answered.append(took)
            elif status == 503 and "retry-after" in response.headers:
                busy += 1
                await asyncio.sleep(min(float(response.headers["retry-after"]), 2.0))  # what a polite client does
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests": ok + busy + errors, "ok": ok, "busy": busy, "errors": errors, "elapsed": elapsed,
            "p50": percentile(answered, 0.5), "p95": percentile(answered, 0.95), "p99": percentile(answered, 0.99),
            "all_p99": percentile(every, 0.99), "throughput": ok / elapsed}


def batch_throughput(url: str, texts: Unseen, size: int = 16, rounds: int = 3) -> float:
    done, seconds = 0, 0.0
    with httpx.Client(timeout=600) as client:
        for r in range(rounds):
            articles = [{"id": f"{r}-{i}", **texts.next()} for i in range(size)]
            started = time.perf_counter()
            response = client.post(f"{url}/v1/classify/batch", json={"articles": articles})
            seconds += time.perf_counter() - started
            response.raise_for_status()
            done += size
    return done / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained-model folder (default: the newest under models/)")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=1, help="repetitions of each phase (medians reported)")
    parser.add_argument("--before", type=Path, help="another checkout to measure the same way, interleaved")
    parser.add_argument("--port", type=int, default=18150, help="first of the ports used")
    args = parser.parse_args(argv)
    model = model_dir(args.model)
    checkouts = ([("before", args.before)] if args.before else []) + [("after", ROOT)]

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        servers: list[Server] = []
        try:
            for i, (name, checkout) in enumerate(checkouts):
                cache = empty_cache(Path(tmp) / f"cache-{name}", model)
                servers.append(start(name, checkout, args.port + i, model, cache, Path(tmp)))
            for server in servers:
                wait_ready(server)
            print(f"model {model.name}; servers: " + ", ".join(f"{s.name} = {c}" for s, (_, c) in
                                                                zip(servers, checkouts, strict=True)))
            results: dict[tuple[str, int], list[dict]] = {}
            for server in servers:  # warm-up: the first forward passes pay one-off costs
                batch_throughput(server.url, Unseen(f"warm-{server.name}"), size=4, rounds=1)
            for server in servers:
                load = Contention(server.process.pid)
                rate = batch_throughput(server.url, Unseen(f"batch-{server.name}"))
                print(f"[{server.name}] batch endpoint, 3 batches of 16 unseen articles: {rate:.2f} articles/s "
                      f"[other processes: {load.others():.0%} of the CPU]")
            for clients in args.clients:
                for r in range(args.rounds):
                    for server in servers:
                        rss = server.rss_mib()
                        load = Contention(server.process.pid)
                        out = asyncio.run(run_clients(server.url, clients, args.seconds,
                                                      Unseen(f"{server.name}-{clients}-{r}")))
                        out |= {"rss_before": rss, "rss_after": server.rss_mib(), "others": load.others()}
                        results.setdefault((server.name, clients), []).append(out)
                        print(f"[{server.name}] {clients} clients, {out['elapsed']:.0f} s: {out['requests']} requests, "
                              f"{out['ok']} answered, {out['busy']} 503 busy (Retry-After), {out['errors']} errors; "
                              f"answered p50 {out['p50']:.2f} s, p95 {out['p95']:.2f} s, p99 {out['p99']:.2f} s "
                              f"(all requests p99 {out['all_p99']:.2f} s); {out['throughput']:.2f} articles/s; "
                              f"RSS {out['rss_before']:.0f} -> {out['rss_after']:.0f} MiB "
                              f"[other processes: {out['others']:.0%} of the CPU]", flush=True)
            if args.rounds > 1:
                print("medians over rounds:")
                for (name, clients), runs in results.items():
                    med = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "throughput", "errors")}
                    print(f"  [{name}] {clients} clients: p50 {med['p50']:.2f} s, p99 {med['p99']:.2f} s, "
                          f"{med['throughput']:.2f} articles/s, errors {med['errors']:.0f}")
        finally:
            for server in servers:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
