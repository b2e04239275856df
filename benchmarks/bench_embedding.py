"""Embedding speed on this machine: articles per second, cold (no cache), for each long-text mode.

    .venv/bin/python benchmarks/bench_embedding.py [--n 120]

Prints figures; asserts nothing. Uses a temporary embedding cache so every article is really embedded,
and the corpus's own written articles (cleaned exactly as in training) as the workload.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from newsclf.embedding import Embedder, bundled_e5_dir
from newsclf.predictor import prepare_documents
from training.config import load_config
from training.corpus import load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=120, help="articles to embed per mode")
    args = parser.parse_args()
    config = load_config()
    articles = [a for a in load_corpus() if a.source == "written"][: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("truncate", "windows"):
            # Fresh cache folder, but the already-built embedder folder, so only embedding is timed.
            embedder_config = config.embedder.model_copy(update={"long_text": mode, "cache_dir": Path(tmp) / mode})
            built = bundled_e5_dir(config.embedder.cache_dir)
            embedder = Embedder(embedder_config.model_copy(update={"model": str(built)}), show_progress=False)
            documents = prepare_documents(articles, clean=True)
            tokens = [embedder.count_tokens(d) for d in documents]
            start = time.perf_counter()
            embedder.encode(documents)
            seconds = time.perf_counter() - start
            print(f"{mode:>9}: {len(documents)} articles in {seconds:6.1f} s = {len(documents) / seconds:5.2f} "
                  f"articles/s (median {statistics.median(tokens):.0f} tokens, "
                  f"{sum(t > 512 for t in tokens)} over 512)")


if __name__ == "__main__":
    main()
