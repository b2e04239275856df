"""Latency and throughput of the HTTP API, measured over real HTTP against `uvicorn serving.app:app`.

    python benchmarks/bench_api.py [--model models/<name>] [--singles 40] [--rounds 2]

Starts uvicorn on 127.0.0.1 (a free port) in a subprocess, configured only through NEWSCLF_* variables,
with an EMPTY embedding cache in a temporary folder (the bundled embedder's weights are linked, not rebuilt),
so every measured article is embedded for real: the figures are those of texts the service has never seen.
A last pass repeats the single requests to show what the cache saves. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import empty_cache, written_articles  # noqa: E402

from newsclf.model_format import newest_model  # noqa: E402
from training.paths import MODELS  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Contention:
    """Share of the machine's CPU time used by other processes during a phase (Linux /proc; None elsewhere).

    Figures from a shared machine are only worth what this says: a busy neighbour can slow torch tenfold.
    """

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.start = self._read()

    @staticmethod
    def _ticks(pid: int) -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def _read(self) -> tuple[int, int, int] | None:
        try:
            cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
            return busy, sum(self._ticks(pid) for pid in self.pids), sum(cpu)
        except (OSError, ValueError, IndexError):
            return None

    def others(self) -> str:
        end = self._read()
        if self.start is None or end is None:
            return "unknown"
        busy, ours, total = (e - s for e, s in zip(end, self.start, strict=True))
        return f"{max(0.0, (busy - ours) / max(total, 1)) * 100:.0f}%"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wait_ready(client: httpx.Client, server: subprocess.Popen, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            body = client.get("/readyz").json()
            if body["status"] == "ready":
                return body
            if body["status"] == "failed":
                raise SystemExit(f"the model was refused: {body['reason']}")
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server was not ready in time")


def _singles(client: httpx.Client, articles: list[dict]) -> list[float]:
    latencies = []
    for article in articles:
        t0 = time.perf_counter()
        response = client.post("/v1/classify", json=article)
        latencies.append(time.perf_counter() - t0)
        response.raise_for_status()
    return latencies


def _batches(client: httpx.Client, articles: list[dict], size: int) -> tuple[int, float]:
    done, seconds = 0, 0.0
    for start in range(0, len(articles) - size + 1, size):
        chunk = [{"id": f"b{start + i}", **a} for i, a in enumerate(articles[start:start + size])]
        t0 = time.perf_counter()
        response = client.post("/v1/classify/batch", json={"articles": chunk})
        seconds += time.perf_counter() - t0
        response.raise_for_status()
        done += len(response.json()["results"])
    return done, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained-model folder (default: the newest under models/)")
    parser.add_argument("--singles", type=int, default=40, help="single requests to time")
    parser.add_argument("--rounds", type=int, default=2, help="batches of each size to time")
    parser.add_argument("--torch-threads", type=int, help="NEWSCLF_TORCH_THREADS for the server (default: torch's)")
    args = parser.parse_args(argv)
    model_dir = args.model or newest_model(MODELS)
    if model_dir is None:
        raise SystemExit("no trained model under models/: run `newsclf train` first")

    articles = written_articles()
    needed = 1 + args.singles + args.rounds * (16 + 64)
    if needed > len(articles):
        raise SystemExit(f"only {len(articles)} articles: ask for fewer singles or rounds")
    warmup, rest = articles[:1], articles[1:]
    singles, rest = rest[:args.singles], rest[args.singles:]
    batch16, rest = rest[:16 * args.rounds], rest[16 * args.rounds:]
    batch64 = rest[:64 * args.rounds]

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        empty_cache(Path(cache), model_dir)
        env = os.environ | {"NEWSCLF_MODEL": str(model_dir), "NEWSCLF_EMBEDDING_CACHE_DIR": cache,
                            "NEWSCLF_LOG_LEVEL": "warning"}
        if args.torch_threads:
            env["NEWSCLF_TORCH_THREADS"] = str(args.torch_threads)
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                t0 = time.perf_counter()
                ready = _wait_ready(client, server)
                print(f"model {ready['model']['name']} v{ready['model']['version']} ({model_dir.name}), "
                      f"ready {time.perf_counter() - t0:.1f} s after start; {os.cpu_count()} CPU cores; "
                      f"torch threads: {args.torch_threads or 'default'}; embedding cache: empty (temporary folder)")
                _singles(client, warmup)  # first forward pass pays one-off costs (allocations, kernels)

                pids = (server.pid, os.getpid())
                load = _Contention(*pids)
                latencies = _singles(client, singles)
                chars = statistics.median(len(a["text"]) for a in singles)
                print(f"single /v1/classify, {len(latencies)} unseen articles (median {chars:.0f} characters): "
                      f"median {statistics.median(latencies) * 1000:.0f} ms, "
                      f"p95 {_percentile(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
                      f"[other processes: {load.others()} of the CPU]")
                for size, chunk in ((16, batch16), (64, batch64)):
                    load = _Contention(*pids)
                    done, seconds = _batches(client, chunk, size)
                    print(f"batch of {size}: {done} unseen articles in {seconds:.1f} s = {done / seconds:.2f} "
                          f"articles/s ({seconds / (done / size):.1f} s per batch) "
                          f"[other processes: {load.others()} of the CPU]")
                load = _Contention(*pids)
                cached = _singles(client, singles)
                print(f"single /v1/classify, the same {len(cached)} articles again (embeddings cached): "
                      f"median {statistics.median(cached) * 1000:.0f} ms, "
                      f"p95 {_percentile(cached, 0.95) * 1000:.0f} ms [other processes: {load.others()} of the CPU]")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
