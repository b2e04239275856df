"""Every installed embedding backend side by side on this machine: speed, share of the CPU's peak, memory.

    .venv/bin/python benchmarks/bench_backends.py            # 96 articles, 3 interleaved rounds
    .venv/bin/python benchmarks/bench_backends.py --quick    # 32 articles, 1 round (a minute or two)

Prints figures; asserts nothing. The workload is the corpus's written articles, prepared exactly as the model reads
them (cleaned, title first, the e5 prefix), truncated at 512 tokens. Backends are measured round by round in turn
(interleaved), so a burst of load from other processes hits all of them; medians over rounds are reported, with
ratios to torch fp32. The machine's own peaks (fp32, bf16 and int8 matrix products through torch) are measured
by the script, and every backend's achieved arithmetic rate is given as a share of them. Load time and resident
memory come from a fresh process per backend (load, then one article). The CPU share that other processes took
during the rounds (from /proc/stat, minus this process's own time) is printed: figures taken while it was high
understate every backend alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from newsclf.backends import BACKENDS, SPECS, encode_length_sorted, token_counts  # noqa: E402
from newsclf.embedding import Embedder, EmbedderUnavailable  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


# --- what the rest of the machine did meanwhile -----------------------------------------------------------
def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def _own_jiffies() -> int:
    t = os.times()
    return round((t.user + t.system + t.children_user + t.children_system) * CLK)


class OtherLoad:
    """CPU share taken by other processes between ``start`` and ``stop`` (0..1 of the whole machine)."""

    def __enter__(self) -> OtherLoad:
        self.busy0, self.total0 = _machine_jiffies()
        self.own0 = _own_jiffies()
        return self

    def __exit__(self, *_exc) -> None:
        busy, total = _machine_jiffies()
        own = _own_jiffies() - self.own0
        self.share = max(busy - self.busy0 - own, 0) / max(total - self.total0, 1)
        self.own_share = own / max(total - self.total0, 1)


# --- the machine's peaks --------------------------------------------------------------------------------------
def measure_peaks(seconds: float = 1.0) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of large matrix products on every core, through torch's CPU kernels."""
    import torch

    n = 1024
    peaks = {}
    cases = {
        "fp32": lambda: torch.mm(a32, b32),
        "bf16": lambda: torch.mm(a16, b16),
        "int8": lambda: torch._int_mm(a8, b8),  # oneDNN's int8 GEMM (VNNI where the CPU has it)
    }
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    a8 = torch.randint(-100, 100, (n, n), dtype=torch.int8)
    b8 = torch.randint(-100, 100, (n, n), dtype=torch.int8)
    for name, run in cases.items():
        try:
            run()
            best = 0.0
            for _ in range(3):
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds / 3:
                    run()
                    count += 1
                best = max(best, 2 * n**3 * count / (time.perf_counter() - start) / 1e9)
            peaks[name] = best
        except (RuntimeError, AttributeError):
            peaks[name] = float("nan")
    return peaks


def encoder_flops(tokens: int, layers: int = 12, hidden: int = 384, ffn: int = 1536) -> float:
    """Multiply-adds x2 of one forward pass of a BERT encoder over ``tokens`` tokens (embeddings excluded)."""
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * tokens * tokens * hidden
    return layers * per_layer


# --- load time and memory in a fresh process --------------------------------------------------------------
def _child(backend: str, text: str) -> None:
    t0 = time.perf_counter()
    embedder = Embedder(_config(backend), show_progress=False)
    model = embedder.model
    load = time.perf_counter() - t0
    model.encode([text], batch_size=1)
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"load_s": load, "rss": rss, "peak_rss": peak}))


def memory_of(backend: str, text: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", backend], input=text, capture_output=True,
                         text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr.strip().splitlines()[-1:]}


def _config(backend: str):
    from training.config import load_config

    return load_config().embedder.model_copy(update={"backend": backend})


# --- the rounds ------------------------------------------------------------------------------------------------
def workload(n: int) -> list[str]:
    from newsclf.predictor import prepare_documents
    from training.corpus import load_corpus

    articles = [a for a in load_corpus() if a.source == "written"]
    step = max(len(articles) // n, 1)  # spread over the corpus (its files are grouped by language)
    return prepare_documents(articles[::step][:n], clean=True)


def run_round(model, texts: list[str], singles: list[int]) -> dict[str, float]:
    timings = {}
    start = time.perf_counter()
    per_article = []
    for i, text in enumerate(texts):
        t0 = time.perf_counter()
        model.encode([text], batch_size=1)
        if i in singles:
            per_article.append(time.perf_counter() - t0)
    timings["batch1"] = len(texts) / (time.perf_counter() - start)
    timings["single_ms"] = 1000 * statistics.median(per_article)
    start = time.perf_counter()
    for i in range(0, len(texts), 16):
        model.encode(texts[i:i + 16], batch_size=16)
    timings["batch16"] = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    encode_length_sorted(model, texts, batch_size=16)
    timings["batch16_sorted"] = len(texts) / (time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 articles, 1 round")
    parser.add_argument("--n", type=int, help="articles (default 96; 32 with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, sys.stdin.read())
        return
    n = args.n or (32 if args.quick else 96)
    rounds = args.rounds or (1 if args.quick else 3)
    prefix = _config("torch").prefix
    texts = [prefix + d for d in workload(n)]
    # "A ~1,500-character article": the single-article latency is the median over the workload's articles of
    # 1,200-1,800 characters.
    singles = [i for i, t in enumerate(texts) if 1200 <= len(t) <= 1800] or list(range(len(texts)))

    models, memory = {}, {}
    for backend in args.backends:
        memory[backend] = memory_of(backend, texts[singles[0]])  # also builds a missing export, outside the timing
        try:
            models[backend] = Embedder(_config(backend), show_progress=False).model
        except EmbedderUnavailable as exc:
            print(f"{backend}: not available here ({exc})")
    tokens = token_counts(next(iter(models.values())).tokenizer, texts, 512)
    flops = sum(encoder_flops(t) for t in tokens)
    print(f"workload: {len(texts)} written articles, median {statistics.median(map(len, texts)):.0f} characters, "
          f"median {statistics.median(tokens):.0f} tokens (512 max), {flops / len(texts) / 1e9:.1f} GFLOP per "
          f"article; single-article latency over {len(singles)} articles of 1,200-1,800 characters", flush=True)

    with OtherLoad() as peak_load:
        peaks = measure_peaks()
    print("machine peaks (torch GEMM 1024^3, all cores): " + ", ".join(
        f"{k} {v:.0f} G{'OP' if k == 'int8' else 'FLOP'}/s" for k, v in peaks.items())
          + f" (others took {peak_load.share:.0%} of the CPU meanwhile)", flush=True)

    results: dict[str, list[dict]] = {b: [] for b in models}
    loads = []
    for r in range(rounds):
        for backend, model in models.items():
            with OtherLoad() as load:
                results[backend].append(run_round(model, texts, singles))
            loads.append(load.share)
            print(f"round {r + 1} {backend:<19} " + "  ".join(f"{k} {v:.1f}" for k, v in results[backend][-1].items())
                  + f"  (others {load.share:.0%} of the CPU)", flush=True)

    def med(backend: str, key: str) -> float:
        return statistics.median(x[key] for x in results[backend])

    base = med("torch", "batch16_sorted") if "torch" in results else None
    print(f"\nmedians of {rounds} interleaved round(s); other processes took {statistics.median(loads):.0%} of the "
          f"CPU (median per round, max {max(loads):.0%}) while this ran on {os.cpu_count()} cores")
    header = (f"{'backend':<19} {'b1 art/s':>8} {'ms/art':>7} {'b16':>6} {'b16 sort':>8} {'vs torch':>8} "
              f"{'tok/s':>7} {'%fp32pk':>7} {'%int8pk':>7} {'RSS MB':>7} {'peak MB':>7} {'load s':>6}")
    print(header)
    mean_tokens = sum(tokens) / len(tokens)
    for backend in results:
        best = med(backend, "batch16_sorted")
        rate = best * flops / len(texts) / 1e9
        mem = memory.get(backend, {})
        print(f"{backend:<19} {med(backend, 'batch1'):8.1f} {med(backend, 'single_ms'):7.0f} "
              f"{med(backend, 'batch16'):6.1f} {best:8.1f} {best / base if base else float('nan'):7.2f}x "
              f"{best * mean_tokens:7.0f} {rate / peaks['fp32']:7.0%} {rate / peaks['int8']:7.0%} "
              f"{mem.get('rss', 0) / 2**20:7.0f} {mem.get('peak_rss', 0) / 2**20:7.0f} {mem.get('load_s', 0):6.1f}"
              + (f"  {mem['error']}" if "error" in mem else ""))
    print("\nprecisions: " + "; ".join(f"{b} = {SPECS[b].precision}" for b in results))


if __name__ == "__main__":
    main()
