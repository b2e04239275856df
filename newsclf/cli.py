"""``newsclf classify``: score a JSON Lines or CSV file of articles with a trained model (inference only).

    newsclf classify articles.jsonl -o labels.jsonl [--model models/<name> | --model models:/newsclf@champion]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from newsclf.batch import score_file
from newsclf.embedding import EmbedderUnavailable
from newsclf.model_format import ModelIntegrityError, load_model, newest_model
from newsclf.pyfunc import download_model

EXAMPLES = """examples:
  newsclf classify articles.jsonl -o labels.jsonl                 # the newest model under ./models
  newsclf classify archive.csv -o labels.jsonl --model models:/newsclf@champion
input: one article per JSON line or CSV row, with "id" and "text" (and optionally "title").
output: one JSON line per scored article: id, sector, sector_confidence, topics, region, partners, language,
warnings. Rows that cannot be scored are listed as file:line: why, and the others are still scored.
"""


def _resolve(model: str | None, models_dir: Path, tracking_uri: str | None) -> Path:
    source = model or os.environ.get("NEWSCLF_MODEL") or ""
    if source.startswith(("models:/", "runs:/")):
        return download_model(source, tracking_uri)
    if source:
        return Path(source)
    folder = newest_model(models_dir)
    if folder is None:
        raise ModelIntegrityError(f"no trained model under {models_dir}: train one (`newsclf train`) or pass --model")
    return folder


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Classify a file of articles (JSON Lines or CSV).",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="a .jsonl or .csv file of articles")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the results (.jsonl)")
    parser.add_argument("--model", help="a model folder or an MLflow model URI; default: $NEWSCLF_MODEL, else "
                                        "the newest folder under --models-dir")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db",
                        help="MLflow store that resolves a models:/ URI (default: $MLFLOW_TRACKING_URI, else "
                             "./mlflow.db)")
    parser.add_argument("--cache-dir", type=Path, help="embedder and embedding cache (default: $NEWSCLF_CACHE_DIR, "
                                                       "else ./.cache in a checkout, else ~/.cache/newsclf)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.input.is_file():
        print(f"error: {args.input} does not exist or is not a file", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or (Path(".cache") if Path(".cache").is_dir() and not os.environ.get(
        "NEWSCLF_CACHE_DIR") else None)
    try:
        predictor, manifest = load_model(_resolve(args.model, args.models_dir, args.tracking_uri),
                                         cache_dir=cache_dir)
        report = score_file(predictor, args.input, args.output, progress=not args.quiet)
    except (ModelIntegrityError, EmbedderUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for bad in report.bad:
        print(f"skipped {bad}", file=sys.stderr)
    print(f"{report.scored} of {report.read} articles scored with model {manifest.name} -> {args.output}"
          + (f"; {len(report.bad)} skipped (listed above)" if report.bad else ""), file=sys.stderr)
    return 1 if report.read and not report.scored else 0


if __name__ == "__main__":
    sys.exit(main())
