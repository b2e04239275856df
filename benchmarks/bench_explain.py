"""What ``?explain=true`` costs on top of a prediction (the analysts' page asks for it on every article).

    python benchmarks/bench_explain.py [--model models/<folder>] [--n 40] [--rounds 3]

Loads a trained model (default: the newest under models/), takes ``n`` articles of the corpus (their embeddings
are in the cache after a training, so both sides time the same cached embedding lookup), and times, interleaved
article by article, ``Predictor.predict`` alone and ``predict`` followed by ``explain``. Prints the medians,
their ratio, and the share of the machine's CPU other processes took meanwhile (from /proc/stat, minus this
process's own CPU time), since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsclf.explanation import explain  # noqa: E402
from newsclf.model_format import load_model, newest_model  # noqa: E402
from newsclf.predictor import ArticleInput  # noqa: E402
from training.corpus import load_corpus  # noqa: E402
from training.paths import MODELS  # noqa: E402


def machine_busy_seconds() -> float:
    """CPU seconds all processes spent (user + nice + system + irq + softirq + steal) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    folder = args.model or newest_model(MODELS)
    if folder is None:
        print("no trained model: run `newsclf train` first", file=sys.stderr)
        return 2
    predictor, _ = load_model(folder)
    articles = [ArticleInput(a.text, a.title) for a in load_corpus()[:: max(1, 963 // args.n)][: args.n]]
    predictor.predict(articles[:2])  # load the embedder and warm the caches outside the timings
    plain, explained = [], []
    cores = os.cpu_count() or 1
    wall0, busy0, own0 = time.perf_counter(), machine_busy_seconds(), own_seconds()
    for _ in range(args.rounds):
        for article in articles:
            t0 = time.perf_counter()
            predictor.predict([article])
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            prediction = predictor.predict([article])
            explain(predictor, [article], prediction)
            explained.append(time.perf_counter() - t0)
    wall = time.perf_counter() - wall0
    others = (machine_busy_seconds() - busy0) - (own_seconds() - own0)
    p, e = statistics.median(plain), statistics.median(explained)
    print(f"model {folder.name}; {len(articles)} corpus articles x {args.rounds} rounds, interleaved, "
          "cached embeddings")
    print(f"predict alone:        median {p * 1000:7.1f} ms")
    print(f"predict + explain:    median {e * 1000:7.1f} ms   (ratio {e / p:.2f}, "
          f"explain adds {(e - p) * 1000:.1f} ms)")
    print(f"other processes took {100 * others / (wall * cores):.0f}% of the machine's {cores} cores meanwhile "
          f"({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
