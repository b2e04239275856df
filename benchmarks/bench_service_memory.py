"""Resident memory of a loaded model, as the service holds it: a fresh process loads a model folder, predicts once.

    .venv/bin/python benchmarks/bench_service_memory.py [MODEL_FOLDER]    # default: the newest under models/

Prints figures; asserts nothing. Reports the resident set (VmRSS) after loading and after one prediction, the
peak (VmHWM), the load time, the embedding backend, and whether torch was imported at all (the OpenVINO backends
do not need it). Each measurement runs in its own process (``--child``), so nothing else is resident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ("Hanoi (VNA) – Vietnam and Australia agreed on Tuesday to expand police training against people "
           "smuggling and drug trafficking, and to exchange information on criminal networks. – VNA")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _child(folder: str) -> None:
    sys.path.insert(0, str(ROOT))
    from newsclf.model_format import load_model
    from newsclf.predictor import ArticleInput

    t0 = time.perf_counter()
    predictor, manifest = load_model(Path(folder), cache_dir=ROOT / ".cache")
    _ = predictor.embedder.model
    loaded = time.perf_counter() - t0
    rss_loaded = _status("VmRSS")
    t0 = time.perf_counter()
    prediction = predictor.predict([ArticleInput(text=ARTICLE)])[0]
    print(json.dumps({
        "backend": manifest.embedder.config.backend, "load_s": loaded, "first_prediction_s": time.perf_counter() - t0,
        "rss_after_load": rss_loaded, "rss_after_prediction": _status("VmRSS"), "peak": _status("VmHWM"),
        "torch_imported": "torch" in sys.modules, "sector": prediction.sector.label,
    }))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2])
        return
    sys.path.insert(0, str(ROOT))
    from newsclf.model_format import newest_model

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else newest_model(ROOT / "models")
    if folder is None:
        raise SystemExit("no trained model under models/: train one with `newsclf train` or name a folder")
    out = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True,
                         check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(out.stderr[-2000:])
    r = json.loads(lines[-1])
    mb = 2**20
    print(f"{folder.name} (backend {r['backend']}): RSS after load {r['rss_after_load'] / mb:.0f} MB, after one "
          f"prediction {r['rss_after_prediction'] / mb:.0f} MB, peak {r['peak'] / mb:.0f} MB; load {r['load_s']:.1f} s,"
          f" first prediction {r['first_prediction_s']:.2f} s; torch imported: {r['torch_imported']}")


if __name__ == "__main__":
    main()
