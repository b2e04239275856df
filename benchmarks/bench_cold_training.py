"""Cold training (empty embedding cache): this checkout against the code before the embedding backends.

    .venv/bin/python benchmarks/bench_cold_training.py [--variants before:torch now:torch now:openvino-int8]
                                                       [--rounds 1] [--before 7c113f2]

Each variant trains in its own process (``training.pipeline.train``: embedding the corpus, cross-validation, the
real-text check and the shipped model; no MLflow) with a new, empty embedding cache that shares the already-built
embedder folder and exports (their one-off build time is reported by ``newsclf.backends`` and the README, not
here). ``before`` is the training of revision ``--before`` (by default the last commit before the embedding
backends: the "today" of that issue), checked out into a temporary worktree and run with this environment.
Variants alternate within each round; the CPU share other processes took during each is printed next to it.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backends import OtherLoad  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEFORE_BACKENDS = "7c113f2"  # main just before the embedding backends were merged

RUNNER = '''
import json, sys
from training.config import load_config
from training.pipeline import train


def main():
    backend, cache = sys.argv[1], sys.argv[2]
    embedder = {"cache_dir": cache} | ({"backend": backend} if backend != "default" else {})
    result = train(load_config(overrides={"embedder": embedder}))
    print("RESULT " + json.dumps({"timings": result.timings, "n_articles": len(result.data.articles),
                                  "cv_sector_macro_f1": result.metrics["cv.sector.macro_f1"]}))


if __name__ == "__main__":  # the fits' worker processes import this file again
    main()
'''


def train_once(tree: Path, backend: str, embedders: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        (cache / "embedders").symlink_to(embedders)  # built embedder and exports, but no embeddings
        runner = Path(tmp) / "train_once.py"
        runner.write_text(RUNNER)
        env = os.environ | {"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, str(runner), backend, str(cache)], cwd=tree, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"training in {tree} failed:\n{done.stderr[-3000:]}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["before:torch", "now:torch", "now:openvino-int8"],
                        help="code:backend, code being 'before' or 'now'")
    parser.add_argument("--before", default=BEFORE_BACKENDS, help="the revision 'before' trains with")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from training.config import load_config

    embedders = (load_config().embedder.cache_dir / "embedders").resolve()
    rows: dict[str, list[tuple[dict, float]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        if any(v.startswith("before:") for v in args.variants):
            subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=ROOT,
                           check=True, capture_output=True)
        try:
            for r in range(args.rounds):
                for variant in args.variants:
                    code, backend = variant.split(":", 1)
                    tree = before_tree if code == "before" else ROOT
                    # The code before the backends had one embedder: its default is torch fp32.
                    with OtherLoad() as load:
                        result = train_once(tree, "default" if code == "before" else backend, embedders)
                    t = result["timings"]
                    rows[variant].append((t, load.share))
                    print(f"round {r + 1} {variant:<24} total {t['total_seconds']:6.1f} s  embedding "
                          f"{t['embed_seconds']:6.1f} s ({t.get('embedding_articles_per_second', 0):4.1f} art/s)  "
                          f"the rest {t['total_seconds'] - t['embed_seconds']:6.1f} s  articles {result['n_articles']}"
                          f"  cv sector macro-F1 {result['cv_sector_macro_f1']:.4f}  (others took {load.share:.0%} "
                          "of the CPU)", flush=True)
        finally:
            if before_tree.exists():
                subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT,
                               capture_output=True)
    base = args.variants[0]
    best = {v: min(t["total_seconds"] for t, _ in runs) for v, runs in rows.items()}
    for variant in args.variants:
        print(f"{variant:<24} best total {best[variant]:6.1f} s: {best[base] / best[variant]:.2f}x faster than {base} "
              f"(best of {len(rows[variant])})")


if __name__ == "__main__":
    main()
