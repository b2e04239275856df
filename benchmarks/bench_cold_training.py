"""Cold training (empty embedding cache) with each backend: how long embedding the corpus and the whole training take.

    .venv/bin/python benchmarks/bench_cold_training.py [--backends torch openvino-int8] [--folds 5]

Prints figures; asserts nothing. Each training runs ``training.pipeline.train`` (cross-validation, the real-text
check and the final fit; no MLflow) with a new, empty embedding cache, but with the already-built embedder folder
and exports (their one-off build time is reported by ``newsclf.backends`` and the README, not here). Trainings run
one after another, alternating backends when ``--rounds`` > 1; the CPU share other processes took during each is
printed next to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_backends import OtherLoad  # noqa: E402

from newsclf.backends import BACKENDS  # noqa: E402
from training.config import load_config  # noqa: E402
from training.pipeline import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=["torch", "openvino-int8"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--folds", type=int)
    args = parser.parse_args()
    base = load_config()
    rows = []
    for r in range(args.rounds):
        for backend in args.backends:
            with tempfile.TemporaryDirectory() as tmp:
                cache = Path(tmp)
                # The built embedder folder and exports, but no embeddings: only embedding and fitting are timed.
                (cache / "embedders").symlink_to(base.embedder.cache_dir.resolve() / "embedders")
                overrides = {"embedder": {"backend": backend, "cache_dir": str(cache)}}
                if args.folds:
                    overrides["cv"] = {"folds": args.folds}
                config = load_config(overrides=overrides)
                with OtherLoad() as load:
                    result = train(config)
            t = result.timings
            rows.append((backend, t, load.share))
            print(f"round {r + 1} {backend:<19} total {t['total_seconds']:6.0f} s  embedding "
                  f"{t['embed_seconds']:5.0f} s ({t.get('embedding_articles_per_second', 0):.1f} art/s)  evaluation "
                  f"{t['evaluation_seconds']:5.0f} s  load {t['embedder_load_seconds']:4.1f} s  cv sector macro-F1 "
                  f"{result.metrics['cv.sector.macro_f1']:.4f}  (others took {load.share:.0%} of the CPU)", flush=True)
    torch_total = [t["total_seconds"] for b, t, _ in rows if b == "torch"]
    if torch_total:
        for backend in args.backends:
            totals = [t["total_seconds"] for b, t, _ in rows if b == backend]
            embeds = [t["embed_seconds"] for b, t, _ in rows if b == backend]
            torch_embed = [t["embed_seconds"] for b, t, _ in rows if b == "torch"]
            print(f"{backend:<19} cold training {min(torch_total) / min(totals):.2f}x faster than torch fp32, "
                  f"embedding {min(torch_embed) / min(embeds):.2f}x (best of {len(totals)})")


if __name__ == "__main__":
    main()
