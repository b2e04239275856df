"""Helpers of the HTTP benchmarks: start `python -m serving` from a checkout, RSS, contention, percentiles.

``--before PATH`` in the benchmarks points to another checkout of the project (e.g. `git archive 7c113f2 | tar -x
-C /tmp/before`): its server runs with this checkout's virtualenv, the same model and an empty embedding cache of
its own, so "before" and "after" are measured the same way, interleaved in one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsclf.embedding import BUNDLED_EMBEDDER, bundled_e5_dir  # noqa: E402
from newsclf.model_format import newest_model, read_manifest  # noqa: E402
from training.paths import CACHE, MODELS  # noqa: E402


def written_articles() -> list[dict]:
    """The written corpus as request bodies (text, title), files interleaved (regions, languages) so that every
    slice looks like the whole corpus."""
    rows = []
    for path in sorted((ROOT / "datasets" / "written").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows.sort(key=lambda r: (int(r["id"].rsplit("-", 1)[-1]), r["id"]))
    return [{"text": r["text"], "title": r.get("title")} for r in rows]


def empty_cache(folder: Path, model_dir: Path) -> Path:
    """An embedding cache with nothing in it, sharing the already built embedders: the bundled folder and the
    backends' exports. (Sharing only the bundled folder made the server build the int8 export at start-up, 90 s,
    and keep the memory of torch and NNCF for its whole life: the load test then measured 2 GB, not the service.)"""
    folder.mkdir(parents=True, exist_ok=True)
    if read_manifest(model_dir).embedder.config.model == BUNDLED_EMBEDDER and bundled_e5_dir(CACHE).is_dir():
        target = folder / "embedders"
        if not target.exists():
            target.symlink_to((CACHE / "embedders").resolve(), target_is_directory=True)
    return folder


def model_dir(given: Path | None) -> Path:
    folder = given or newest_model(MODELS)
    if folder is None:
        raise SystemExit("no trained model under models/: run `newsclf train` first")
    return folder


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(name: str, checkout: Path, port: int, model: Path, cache: Path, log_dir: Path, **env: str) -> Server:
    """`python -m serving` from ``checkout`` (its own code first on the path), NEWSCLF_* settings in ``env``."""
    environ = os.environ | {"PYTHONPATH": str(checkout), "NEWSCLF_MODEL": str(model), "HF_HUB_OFFLINE": "1",
                            "NEWSCLF_EMBEDDING_CACHE_DIR": str(cache), "NEWSCLF_PORT": str(port),
                            "NEWSCLF_LOG_LEVEL": "warning"} | env
    log = log_dir / f"{name}.log"
    process = subprocess.Popen([sys.executable, "-m", "serving"], cwd=checkout, env=environ,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Server(name, process, f"http://127.0.0.1:{port}", log)


def wait_ready(server: Server, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name}: the server exited ({server.process.returncode}); see {server.log}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=5).json().get("status") == "ready":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"{server.name}: not ready in time")


class Contention:
    """Share of the machine's CPU time used by processes other than ``pids`` during a phase (Linux /proc)."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.start = self._read()

    @staticmethod
    def _ticks(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        return int(fields[11]) + int(fields[12])  # utime + stime (children's excluded: ours have none)

    def _read(self) -> tuple[int, int, int]:
        cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
        return busy, sum(self._ticks(pid) for pid in self.pids), sum(cpu)

    def others(self) -> float:
        """Other processes' share of the machine's CPU time since construction (0-1)."""
        busy, ours, total = (e - s for e, s in zip(self._read(), self.start, strict=True))
        return max(0.0, (busy - ours) / max(total, 1))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
