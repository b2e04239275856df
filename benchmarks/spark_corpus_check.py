"""The Spark job on the whole bundled corpus with local[2], checked item by item against the HTTP API.

    .venv/bin/python benchmarks/spark_corpus_check.py [--model models:/newsclf@champion] [--master 'local[2]']

Runs `newsclf spark-score` on every labelled article of datasets/ (written and seed items), then sends the same
articles to the API (the FastAPI app in-process, around the same registered version) and compares sector, topics,
region, partners, language and warnings for every item. Prints the counts and every mismatch; exit status 1 if
any. Too long for `make test` (it scores the whole corpus), so it is a script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.service import Service, load  # noqa: E402
from serving.settings import ServiceSettings  # noqa: E402
from training.corpus import load_corpus  # noqa: E402
from training.paths import CACHE  # noqa: E402


def labels(sector, topics, region, partners, language, warnings) -> dict:
    return {"sector": sector, "topics": sorted(topics), "region": region, "partners": list(partners),
            "language": language, "warnings": list(warnings)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/newsclf@champion")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or
                        f"sqlite:///{ROOT / 'mlflow.db'}")
    parser.add_argument("--keep", type=Path, help="write the Spark output here instead of a temporary folder")
    args = parser.parse_args()
    corpus = load_corpus()
    work = Path(tempfile.mkdtemp(prefix="spark-corpus-"))
    source = work / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": a.id, "title": a.title, "text": a.text}, ensure_ascii=False) + "\n"
                              for a in corpus), encoding="utf-8")
    output = args.keep or work / "labels"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "newsclf_cli", "spark-score", "--input", str(source), "--output",
                           str(output), "--model", args.model, "--tracking-uri", args.tracking_uri, "--master",
                           args.master, "--cache-dir", str(CACHE), "--overwrite"], cwd=ROOT)
    if done.returncode != 0:
        return done.returncode
    print(f"spark-score: {time.perf_counter() - started:.1f} s wall for {len(corpus)} articles")
    spark = pd.read_parquet(output)
    spark["language"] = spark["language"].astype(str)
    spark = spark.set_index("id")

    settings = ServiceSettings(model=args.model, tracking_uri=args.tracking_uri, embedding_cache_dir=CACHE)
    service = Service.ready(load(settings), settings)
    mismatches, compared = [], 0
    # base_url: a host the service allows by default (NEWSCLF_ALLOWED_HOSTS), not TestClient's "testserver".
    with TestClient(create_app(settings, service=service), base_url="http://localhost") as client:
        info = client.get("/v1/model").json()
        versions = set(spark["model_version"])
        print(f"API model: {info['name']} version {info['version']} (run {info['run_id']}); Spark rows carry "
              f"version(s) {sorted(versions)}")
        articles = [{"id": a.id, "title": a.title, "text": a.text} for a in corpus]
        for start in range(0, len(articles), settings.max_batch_items):
            response = client.post("/v1/classify/batch", json={"articles": articles[start:start +
                                                                                      settings.max_batch_items]})
            response.raise_for_status()
            for got in response.json()["results"]:
                row = spark.loc[got["id"]]
                mine = labels(row.sector, row.topics, row.region, row.partners, row.language, row.warnings)
                api = labels(got["sector"]["label"], [t["label"] for t in got["topics"]], got["region"]["label"],
                             [p["code"] for p in got["partners"]], got["language"], got["warnings"])
                compared += 1
                if mine != api:
                    mismatches.append((got["id"], mine, api))
    print(f"corpus {len(corpus)} articles; Spark output {len(spark)} rows; compared with the API: {compared}; "
          f"identical labels: {compared - len(mismatches)}; mismatches: {len(mismatches)}")
    for rid, mine, api in mismatches:
        print(f"  {rid}: spark {mine} api {api}")
    return 1 if mismatches or compared != len(corpus) or len(spark) != len(corpus) else 0


if __name__ == "__main__":
    sys.exit(main())
