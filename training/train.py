"""Train on the bundled corpus, evaluate honestly, record the run in MLflow, write the model.

    python -m training.train [--config configs/train.yaml] [--long-text windows|truncate] [--no-clean] ...

With no arguments: the bundled corpus, the bundled embedder, a local SQLite MLflow store.
Exit status 2 with a message that says what to fix when the configuration or the corpus is invalid.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from training.config import ConfigError, TrainConfig, load_config
from training.corpus import corpus_files, dataset_hash, load_corpus
from training.embedding import Embedder, EmbedderUnavailable
from training.evaluation import (
    Evaluation,
    cross_validate,
    fit_predictor,
    format_table,
    real_text_check,
    write_reports,
)
from training.model_store import save_model
from training.validate_corpus import CorpusInvalid, Problem

log = logging.getLogger("training")


@dataclass
class TrainingResult:
    model_dir: Path
    run_id: str | None
    cv: Evaluation
    seed: Evaluation
    model_version: str | None
    promoted: bool | None
    timings: dict[str, float]


def _flat_params(config: TrainConfig) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = str(value)

    walk("", config.model_dump(mode="json", exclude={"datasets", "models_dir"}))
    flat.pop("embedder.cache_dir", None)
    return flat


def train(config: TrainConfig, *, log_to_mlflow: bool = True) -> TrainingResult:
    started = time.perf_counter()
    articles = load_corpus(config.datasets)
    written = [a for a in articles if a.source == "written"]
    seeds = [a for a in articles if a.source != "written"]
    if len(written) < config.cv.folds * 2:
        raise CorpusInvalid([Problem("datasets", 0, "", "corpus", f"only {len(written)} written articles; "
                                     f"{config.cv.folds}-fold cross-validation needs at least {2 * config.cv.folds}")])
    files = corpus_files(config.datasets)
    data_hash = dataset_hash(files)

    embedder = Embedder(config.embedder)
    t0 = time.perf_counter()
    _ = embedder.model  # build (first time) and load the embedder before timing the embedding itself
    timings = {"embedder_load_seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    from training.predictor import prepare_documents

    documents = prepare_documents(articles, clean=config.clean)
    embedder.encode(documents)
    hits, misses = embedder.last_cache_stats
    timings["embed_seconds"] = time.perf_counter() - t0
    timings["embedded_new"] = float(misses)
    timings["embedding_cache_hits"] = float(hits)
    if misses:
        timings["embedding_articles_per_second"] = misses / timings["embed_seconds"]

    t0 = time.perf_counter()
    cv = cross_validate(written, embedder, config)
    seed = real_text_check(written, seeds, embedder, config)
    timings["evaluation_seconds"] = time.perf_counter() - t0
    # The model we ship learns from every labelled article; its scores are the ones measured above.
    final = fit_predictor(articles, embedder, config)
    counts = {
        "n_articles": len(articles), "n_written": len(written), "n_seed_items": len(seeds),
        "languages": dict(Counter(a.lang for a in articles)),
    }
    metrics = {f"cv.{k}": v for k, v in cv.metrics.items()} | {f"seed.{k}": v for k, v in seed.metrics.items()}

    run_id = None
    version = promoted = None
    reason = ""
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = Path(tmp) / "reports"
        reports = write_reports(cv, report_dir) + write_reports(seed, report_dir)
        if log_to_mlflow:
            import mlflow

            from training.tracking import git_commit

            mlflow.set_tracking_uri(config.tracking.resolved_uri())
            mlflow.set_experiment(config.tracking.experiment)
            with mlflow.start_run(run_name=config.run_name) as run:
                run_id = run.info.run_id
                mlflow.log_params(_flat_params(config) | {
                    "dataset_hash": data_hash, "git_commit": git_commit(), "embedder_identity": embedder.identity,
                    "n_articles": counts["n_articles"], "n_written": counts["n_written"],
                    "n_seed_items": counts["n_seed_items"],
                    "chosen.region_partner_weight": final.heads.region.partner_weight_,
                    "chosen.partner_min_share": final.heads.partner_min_share,
                })
                # A kind set before (a sweep child) is kept; a plain training is the pipeline.
                mlflow.set_tags({"kind": run.data.tags.get("kind", "pipeline"), "dataset_hash": data_hash,
                                 "languages": json.dumps(counts["languages"])})
                model_dir = save_model(final, config.models_dir, info={
                    "run_id": run_id, "dataset_hash": data_hash, "counts": counts, "metrics": metrics,
                })
                mlflow.log_metrics(metrics | {f"timing.{k}": v for k, v in timings.items()})
                for path in reports:
                    mlflow.log_artifact(str(path), artifact_path="reports")
                mlflow.log_dict(json.loads((model_dir / "manifest.json").read_text()), "manifest.json")
                version, promoted, reason = _log_and_register(final, model_dir, config, metrics, data_hash)
        else:
            model_dir = save_model(final, config.models_dir, info={
                "run_id": None, "dataset_hash": data_hash, "counts": counts, "metrics": metrics,
            })
        local_reports = model_dir / "reports"
        local_reports.mkdir()
        for path in reports:
            (local_reports / path.name).write_bytes(path.read_bytes())
    _record_registration(model_dir, config, version, promoted, reason)
    timings["total_seconds"] = time.perf_counter() - started
    return TrainingResult(model_dir, run_id, cv, seed, version, promoted, timings)


def _log_and_register(final, model_dir: Path, config: TrainConfig, metrics: dict, data_hash: str):
    from mlflow import MlflowClient

    from training.predictor import ArticleInput
    from training.tracking import EXAMPLE_ARTICLE, log_pyfunc_model, predictions_frame, promote_if_better

    example = predictions_frame(final.predict([ArticleInput(**EXAMPLE_ARTICLE)]))
    name = config.tracking.registered_model if config.tracking.register_model else None
    info = log_pyfunc_model(model_dir, example, name)
    if not name:
        return None, None, "registration disabled"
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri=config.tracking.resolved_uri())
    promoted, reason = promote_if_better(client, name, version, metrics, data_hash)
    return version, promoted, reason


def _record_registration(model_dir: Path, config: TrainConfig, version, promoted, reason: str) -> None:
    """Add the registry outcome to the manifest (atomically: the manifest is what readers open first)."""
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["registry"] = {
        "tracking_uri": config.tracking.resolved_uri(), "name": config.tracking.registered_model,
        "version": version, "champion": promoted, "reason": reason,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(description="Train the news classifier and record the run in MLflow.")
    parser.add_argument("--config", type=Path, help="YAML file of settings (see configs/train.yaml)")
    parser.add_argument("--embedder", help="sentence-transformers model: name, local folder, or the bundled one")
    parser.add_argument("--long-text", choices=["windows", "truncate"])
    parser.add_argument("--no-clean", action="store_true", help="embed raw text (to measure what cleaning is worth)")
    parser.add_argument("--C", type=float, help="inverse regularisation strength of every head")
    parser.add_argument("--folds", type=int)
    parser.add_argument("--experiment")
    parser.add_argument("--run-name")
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--datasets", type=Path)
    parser.add_argument("--no-register", action="store_true", help="log the run but do not register the model")
    args = parser.parse_args(argv)
    o: dict = {}
    if args.embedder:
        o.setdefault("embedder", {})["model"] = args.embedder
    if args.long_text:
        o.setdefault("embedder", {})["long_text"] = args.long_text
    if args.no_clean:
        o["clean"] = False
    if args.C is not None:
        for head in ("sector", "topics", "region"):
            o[head] = {"C": args.C}
    if args.folds is not None:
        o["cv"] = {"folds": args.folds}
    if args.experiment:
        o.setdefault("tracking", {})["experiment"] = args.experiment
    if args.no_register:
        o.setdefault("tracking", {})["register_model"] = False
    if args.run_name:
        o["run_name"] = args.run_name
    if args.models_dir:
        o["models_dir"] = str(args.models_dir)
    if args.datasets:
        o["datasets"] = str(args.datasets)
    return args, o


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, overrides = _parse(argv)
    try:
        config = load_config(args.config, overrides)
        result = train(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CorpusInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EmbedderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print("Scores (cv: grouped 5-fold cross-validation on the written corpus;")
    print("        seed: trained on the written corpus, scored on the real seed-derived items)")
    print(format_table([result.cv, result.seed]))
    print()
    t = result.timings
    print(f"embedding: {t.get('embedded_new', 0):.0f} new, {t.get('embedding_cache_hits', 0):.0f} from cache, "
          f"{t['embed_seconds']:.1f} s" + (f" ({t['embedding_articles_per_second']:.2f} articles/s)"
                                             if "embedding_articles_per_second" in t else ""))
    print(f"total time: {t['total_seconds']:.1f} s")
    print(f"model: {result.model_dir}")
    if result.run_id:
        uri, experiment = config.tracking.resolved_uri(), config.tracking.experiment
        print(f"MLflow run: {result.run_id} ({uri}, experiment {experiment})")
    if result.model_version:
        print(f"registered: {config.tracking.registered_model} v{result.model_version}"
              f" ({'now @champion' if result.promoted else 'champion unchanged'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
