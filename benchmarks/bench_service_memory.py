"""Resident memory of a loaded model, as the service holds it: after loading, and after many batches of new text.

    .venv/bin/python benchmarks/bench_service_memory.py [MODEL_FOLDER] [--batches 150] [--cache-shapes 5000 32]
                                                                     [--pad-multiples 1 64] [--rounds 1]

Each measurement runs in a fresh process (``--child``) that loads a model folder (default: the newest under
models/) with an empty embedding cache, predicts one short article, then predicts ``--batches`` batches of 1 to 8
unseen articles (corpus articles cut at random lengths, each with a unique line), as the service's dispatcher
sends them: a new input shape for the embedder unless widths are padded. ``--cache-shapes``: the OpenVINO CPU
plugin's runtime cache capacities to try (``newsclf.backends.RUNTIME_CACHE_SHAPES``; OpenVINO's own default is
5000); ``--pad-multiples``: the token multiples batches are padded to (``newsclf.backends.PAD_MULTIPLE``; 1: to
the longest article only); every combination in its own process, in interleaved rounds. Reports VmRSS after
loading, after one prediction and after the batches, the peak (VmHWM), articles/s over the batches, whether torch
was imported, and the CPU share other processes took. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
ARTICLE = ("Hanoi (VNA) – Vietnam and Australia agreed on Tuesday to expand police training against people "
           "smuggling and drug trafficking, and to exchange information on criminal networks. – VNA")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _unseen_batches(n: int, seed: int = 7) -> list[list[str]]:
    texts = []
    for path in sorted((ROOT / "datasets" / "written").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    batches = []
    for i in range(n):
        size = rng.randint(1, 8)
        batches.append([f"{t[: rng.randint(300, len(t))]}\nRef. {seed}-{i}-{j}" for j, t in
                        enumerate(rng.sample(texts, size))])
    return batches


def _child(folder: str, batches: int, cache_shapes: int, pad_multiple: int) -> None:
    sys.path.insert(0, str(ROOT))
    import newsclf.backends
    from newsclf.model_format import load_model
    from newsclf.predictor import ArticleInput
    from training.config import load_config

    newsclf.backends.RUNTIME_CACHE_SHAPES = cache_shapes
    newsclf.backends.PAD_MULTIPLE = pad_multiple
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "embedders").symlink_to((load_config().embedder.cache_dir / "embedders").resolve())
        t0 = time.perf_counter()
        predictor, manifest = load_model(Path(folder), cache_dir=Path(tmp))
        _ = predictor.embedder.model
        loaded = time.perf_counter() - t0
        rss_loaded = _status("VmRSS")
        t0 = time.perf_counter()
        prediction = predictor.predict([ArticleInput(text=ARTICLE)])[0]
        first = time.perf_counter() - t0
        rss_one = _status("VmRSS")
        work = _unseen_batches(batches)
        t0 = time.perf_counter()
        for batch in work:
            predictor.predict([ArticleInput(text=t) for t in batch])
        rate = sum(map(len, work)) / (time.perf_counter() - t0) if work else 0.0
    print(json.dumps({
        "backend": manifest.embedder.config.backend, "load_s": loaded, "first_prediction_s": first,
        "rss_after_load": rss_loaded, "rss_after_prediction": rss_one, "rss_after_batches": _status("VmRSS"),
        "peak": _status("VmHWM"), "articles_per_s": rate, "torch_imported": "torch" in sys.modules,
        "sector": prediction.sector.label,
    }))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--cache-shapes", type=int, nargs="+")
    parser.add_argument("--pad-multiples", type=int, nargs="+")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench_backends import OtherLoad

    from newsclf.backends import PAD_MULTIPLE, RUNTIME_CACHE_SHAPES
    from newsclf.model_format import newest_model

    folder = args.folder or newest_model(ROOT / "models")
    if folder is None:
        raise SystemExit("no trained model under models/: train one with `newsclf train` or name a folder")
    mb = 2**20
    for r in range(args.rounds):
        for shapes, pad in [(c, p) for c in args.cache_shapes or [RUNTIME_CACHE_SHAPES]
                            for p in args.pad_multiples or [PAD_MULTIPLE]]:
            with OtherLoad() as load:
                out = subprocess.run([sys.executable, __file__, "--child", str(folder), str(args.batches),
                                      str(shapes), str(pad)], capture_output=True, text=True, check=False)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines:
                raise SystemExit(out.stderr[-2000:])
            x = json.loads(lines[-1])
            print(f"round {r + 1} {folder.name} ({x['backend']}, runtime cache {shapes} shapes, padded to x{pad}): "
                  f"RSS after load {x['rss_after_load'] / mb:.0f} MiB, after one prediction "
                  f"{x['rss_after_prediction'] / mb:.0f} MiB, after {args.batches} batches of 1-8 new articles "
                  f"{x['rss_after_batches'] / mb:.0f} MiB, "
                  f"peak {x['peak'] / mb:.0f} MiB; {x['articles_per_s']:.1f} articles/s; load {x['load_s']:.1f} s; "
                  f"torch imported: {x['torch_imported']} (others took {load.share:.0%} of the CPU)", flush=True)


if __name__ == "__main__":
    main()
