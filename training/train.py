"""``newsclf train``: train on the bundled corpus, evaluate honestly, record the run in MLflow, write the model.

    newsclf train [--config configs/train.yaml] [--long-text windows|truncate] [--no-clean] ...
    python -m training.train ...            # the same

With no arguments: the bundled corpus, the bundled embedder, a local SQLite MLflow store.
Exit status 2 with a message that says what to fix when the configuration or the corpus is invalid.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from newsclf.backends import BACKENDS
from newsclf.embedding import EmbedderUnavailable
from newsclf.model_format import newest_model
from training.config import ConfigError, TrainConfig, load_config
from training.evaluation import format_table
from training.pipeline import TrainingResult, train
from training.tracking import Recorded, record_training, save_training, start_run, write_training_reports
from training.validate_corpus import CorpusInvalid

log = logging.getLogger("training")
EXAMPLES = """examples:
  newsclf train                                  # defaults: bundled corpus and embedder, ./mlflow.db
  newsclf train --if-missing                     # only when models/ holds no model yet (what `make run` does)
  newsclf train --config configs/train.yaml --C 16 --run-name c16
  newsclf train --long-text windows --no-register
  newsclf train --backend torch --run-name torch-fp32                 # the reference backend (slower)
  newsclf train --features embedding --no-sentence-model --run-name embedding-only   # the first model's heads
"""


def run_training(config: TrainConfig, *, kind: str = "pipeline") -> tuple[TrainingResult, Recorded]:
    """Train, then record in a new MLflow run (or only save the model when tracking is off)."""
    result = train(config)
    if not config.tracking.enabled:
        model_dir = save_training(result, config)
        write_training_reports(result, model_dir)
        return result, Recorded(model_dir, None, None, None, "tracking disabled")
    with start_run(config):
        return result, record_training(result, config, kind=kind)


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train the news classifier and record the run in MLflow.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML file of settings (see configs/train.yaml)")
    parser.add_argument("--embedder", help="sentence-transformers model: name, local folder, or the bundled one")
    parser.add_argument("--long-text", choices=["windows", "truncate"])
    parser.add_argument("--backend", choices=BACKENDS,
                        help="what runs the embedder, in which precision (default openvino-int8; README, backends)")
    parser.add_argument("--no-clean", action="store_true", help="embed raw text (to measure what cleaning is worth)")
    parser.add_argument("--features", choices=["embedding", "lexical", "hybrid"],
                        help="what the heads read (default hybrid: the embedding and word/character TF-IDF, blended)")
    parser.add_argument("--no-sentence-model", action="store_true",
                        help="topics from the article-level heads only (no sentence-level model, no evidence)")
    parser.add_argument("--no-calibrate", action="store_true", help="no temperature scaling of the heads")
    parser.add_argument("--C", type=float, help="inverse regularisation strength of every head")
    parser.add_argument("--folds", type=int)
    parser.add_argument("--workers", type=int,
                        help="worker processes for the fits (default: the cores this process may use, at most 8)")
    parser.add_argument("--experiment")
    parser.add_argument("--run-name")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--datasets", type=Path)
    parser.add_argument("--no-register", action="store_true", help="log the run but do not register the model")
    parser.add_argument("--no-tracking", action="store_true", help="write the model folder only, no MLflow run")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when the models folder already holds a trained model")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    o: dict = {}
    if args.embedder:
        o.setdefault("embedder", {})["model"] = args.embedder
    if args.long_text:
        o.setdefault("embedder", {})["long_text"] = args.long_text
    if args.backend:
        o.setdefault("embedder", {})["backend"] = args.backend
    if args.no_clean:
        o["clean"] = False
    if args.features:
        o["features"] = args.features
    if args.no_sentence_model:
        o.setdefault("topics", {})["sentence_model"] = False
    if args.no_calibrate:
        o["calibrate"] = False
    if args.C is not None:
        for head in ("sector", "topics", "region"):
            o.setdefault(head, {})["C"] = args.C
    if args.folds is not None:
        o["cv"] = {"folds": args.folds}
    if args.experiment:
        o.setdefault("tracking", {})["experiment"] = args.experiment
    if args.no_register:
        o.setdefault("tracking", {})["register_model"] = False
    if args.no_tracking:
        o.setdefault("tracking", {})["enabled"] = False
    if args.run_name:
        o["run_name"] = args.run_name
    if args.workers is not None:
        o["workers"] = args.workers
    if args.models_dir:
        o["models_dir"] = str(args.models_dir)
    if args.datasets:
        o["datasets"] = str(args.datasets)
    return o


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser(prog).parse_args(argv)
    try:
        config = load_config(args.config, _overrides(args))
        if args.if_missing and (existing := newest_model(config.models_dir)) is not None:
            print(f"[train] a trained model exists ({existing}); nothing to do", file=sys.stderr)
            return 0
        if args.if_missing:
            print(f"[train] no trained model under {config.models_dir}: training the default model "
                  "(a few minutes, only this once)", file=sys.stderr, flush=True)
        result, recorded = run_training(config)
    except (ConfigError, CorpusInvalid, EmbedderUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenProcessPool:
        print(f"error: a fitting worker process died (out of memory?); nothing was recorded. Retry with fewer "
              f"workers: --workers {max(1, config.workers // 2)}", file=sys.stderr)
        return 1
    print()
    print("Scores (cv: grouped 5-fold cross-validation on the written corpus;")
    print("        seed: trained on the written corpus, scored on the real seed-derived items)")
    print(format_table([result.cv, result.seed]))
    print()
    t = result.timings
    print(f"embedding: {t.get('embedded_new', 0):.0f} new, {t.get('embedding_cache_hits', 0):.0f} from cache, "
          f"{t['embed_seconds']:.1f} s" + (f" ({t['embedding_articles_per_second']:.2f} articles/s)"
                                             if "embedding_articles_per_second" in t else ""))
    print(f"fitting: {t['fitting_seconds']:.1f} s (7 fits in {t['fit_workers']:.0f} worker process(es)); "
          f"total time: {t['total_seconds']:.1f} s")
    print(f"model: {recorded.model_dir}")
    if recorded.run_id:
        uri, experiment = config.tracking.resolved_uri(), config.tracking.experiment
        print(f"MLflow run: {recorded.run_id} ({uri}, experiment {experiment})")
    if recorded.model_version:
        print(f"registered: {config.tracking.registered_model} v{recorded.model_version}"
              f" ({'now @champion' if recorded.promoted else 'champion unchanged'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
