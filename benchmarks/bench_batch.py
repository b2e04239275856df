"""Articles per second of `newsclf classify` and of `newsclf spark-score` (local[1], local[2]) on the same articles.

    .venv/bin/python benchmarks/bench_batch.py [--n 1000] [--rounds 2] [--model models:/newsclf@champion]

Every run is the real command in its own process, with an empty embedding cache of its own (the bundled embedder's
weights are shared through a symlink, so nothing is rebuilt), on the same N corpus articles. The alternatives run
interleaved, round after round (the order rotates), so that load from other users of the machine falls on all of
them alike; medians over rounds are printed, with ratios to the batch command.

Fixed costs are measured apart: each alternative also scores a single article (another text, empty cache), whose
wall time is its start-up (process, imports, model load, Spark's JVM and workers). Steady articles/s is
(N - 1) / (wall(N) - wall(1)); end-to-end is N / wall(N); CPU s per article is the process tree's CPU time,
N-article run minus 1-article run, over N - 1 (less sensitive to other users than wall time). Spark's own
start-up (JVM, session, UDF) is also printed from the job's report.

The machine is shared: for every run the CPU time other processes took meanwhile is measured (/proc/stat busy
time minus the CPU time of this benchmark's process tree, sampled every 0.5 s) and printed as a share of the
machine's capacity.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.corpus import load_corpus  # noqa: E402
from training.paths import CACHE  # noqa: E402

NEWSCLF = [sys.executable, "-m", "newsclf_cli"]
HZ = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1
WARM_TEXT = ("Hanoï (VNA) – Le Vietnam et la Thaïlande ont signé mardi un accord d'entraide judiciaire en matière "
             "pénale, couvrant l'extradition et l'échange de preuves dans les affaires de fraude en ligne. – VNA")


# ---- CPU accounting --------------------------------------------------------------------------------------------
def _busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime + stime) for every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        table[int(entry.name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


class TreeCpu:
    """CPU jiffies used by a process and all its descendants, sampled while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.seen, self._stop = pid, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        table = _proc_table()
        tree, frontier = {self.pid}, [self.pid]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        for pid in tree:
            if pid in table:
                self.seen[pid] = max(self.seen.get(pid, 0), table[pid][1])

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def run_measured(cmd: list[str], env: dict[str, str]) -> dict:
    busy0, t0 = _busy_jiffies(), time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = TreeCpu(proc.pid)
    out, err = proc.communicate()
    own = tree.stop()
    wall, busy = time.perf_counter() - t0, _busy_jiffies() - busy0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    others = max(0, busy - own) / (HZ * CPUS * wall)
    return {"wall": wall, "own_cpu_s": own / HZ, "others_share": others, "stderr": err}


# ---- the alternatives ------------------------------------------------------------------------------------------
def empty_cache(work: Path) -> Path:
    """A cache folder with no embeddings and the bundled embedder's weights linked in."""
    folder = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    (folder / "embedders").symlink_to(CACHE / "embedders", target_is_directory=True)
    return folder


def command(kind: str, source: Path, work: Path, model: str, tracking_uri: str) -> tuple[list[str], Path | None]:
    out = Path(tempfile.mkdtemp(prefix=f"out-{kind.replace('[', '').replace(']', '')}-", dir=work))
    cache = empty_cache(work)
    if kind == "batch":
        return NEWSCLF + ["classify", str(source), "-o", str(out / "labels.jsonl"), "--model", model,
                          "--tracking-uri", tracking_uri, "--cache-dir", str(cache), "--quiet"], None
    report = out / "report.json"
    return NEWSCLF + ["spark-score", "--input", str(source), "--output", str(out / "labels"), "--model", model,
                      "--tracking-uri", tracking_uri, "--cache-dir", str(cache), "--master", kind,
                      "--partitions", "4", "--report-json", str(report)], report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="articles (the corpus's, capped at its size)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="models:/newsclf@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or
                        f"sqlite:///{ROOT / 'mlflow.db'}")
    args = parser.parse_args()
    corpus = load_corpus()
    n = min(args.n, len(corpus))
    if n < args.n:
        print(f"note: the corpus has {len(corpus)} articles; benchmarking {n}")
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    full, single = work / "articles.jsonl", work / "one.jsonl"
    full.write_text("".join(json.dumps({"id": a.id, "title": a.title, "text": a.text}, ensure_ascii=False) + "\n"
                            for a in corpus[:n]), encoding="utf-8")
    single.write_text(json.dumps({"id": "warm", "text": WARM_TEXT}, ensure_ascii=False) + "\n", encoding="utf-8")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    kinds = ["batch", "local[1]", "local[2]"]
    results: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    print(f"{n} articles, {args.rounds} round(s), {CPUS} CPUs, model {args.model}; runs in order:")
    try:
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                for size, source in (("one", single), ("n", full)):
                    cmd, report_path = command(kind, source, work, args.model, args.tracking_uri)
                    m = run_measured(cmd, env)
                    rec = results[kind]
                    rec.setdefault(f"wall_{size}", []).append(m["wall"])
                    rec.setdefault("others_share", []).append(m["others_share"])
                    rec.setdefault(f"cpu_{size}", []).append(m["own_cpu_s"])
                    extra = ""
                    if report_path is not None:
                        report = json.loads(report_path.read_text())
                        assert report["scored"] == (1 if size == "one" else n), report
                        rec.setdefault("spark_start", []).append(report["seconds"]["spark_start"])
                        extra = f", Spark start-up {report['seconds']['spark_start']:.1f} s"
                    print(f"  round {r + 1} {kind:9s} {size:3s}: {m['wall']:7.1f} s wall, own CPU "
                          f"{m['own_cpu_s']:7.1f} s, other processes {m['others_share']:5.1%} of the machine{extra}",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    print(f"\nmedians over {args.rounds} round(s), {n} articles, empty embedding cache:")
    print(f"{'':10s} {'start-up (1 article)':>21s} {'Spark start-up':>15s} {'wall (N)':>9s} {'end-to-end art/s':>17s} "
          f"{'steady art/s':>13s} {'vs batch':>9s} {'CPU s/article':>14s} {'others CPU':>11s}")
    base = None
    for kind in kinds:
        rec = results[kind]
        one, whole = med(rec["wall_one"]), med(rec["wall_n"])
        steady = (n - 1) / max(whole - one, 1e-9)
        base = base or steady
        spark = f"{med(rec['spark_start']):.1f} s" if "spark_start" in rec else "-"
        cpu = (med(rec["cpu_n"]) - med(rec["cpu_one"])) / max(n - 1, 1)  # the fixed cost's CPU left out
        print(f"{kind:10s} {one:19.1f} s {spark:>15s} {whole:7.1f} s {n / whole:17.2f} {steady:13.2f} "
              f"{steady / base:8.2f}x {cpu:14.3f} {med(rec['others_share']):10.1%}")
    allshares = [s for rec in results.values() for s in rec["others_share"]]
    print(f"other processes took {med(allshares):.1%} of the machine's CPU (median over runs; "
          f"min {min(allshares):.1%}, max {max(allshares):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
