"""``newsclf spark-score``: label a whole archive with Spark, through the registered MLflow model.

    newsclf spark-score --input archive.parquet --output labels/ [--model models:/newsclf@champion]
                        [--master local[*] | spark://host:7077] [--partitions N]

The articles are scored by ``mlflow.pyfunc.spark_udf`` on the registered pyfunc (``newsclf.pyfunc``), so the one
path from text to labels is the model's own; this module only reads, checks, reshapes and writes. Each Python
worker loads the model once (MLflow's ``SparkModelCache``) and finds the embedder and the embedding cache under
``$NEWSCLF_CACHE_DIR``, passed to the executors, so nothing is rebuilt per batch.

pyspark is an optional extra (``pip install 'newsclf[spark]'``): it is imported inside functions only, so the
core imports without it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from newsclf.batch import NO_ID, NO_TEXT

DEFAULT_MODEL = "models:/newsclf@champion"
JAVA_MAJOR = 17  # the oldest Java that Spark 4 runs on
# Spark's own listening ports (driver RPC, block manager) start here and walk up on collision.
DEFAULT_PORT = 18240
PORT_RETRIES = 30
# What the pyfunc returns (newsclf.pyfunc.predictions_frame), as the struct the UDF yields.
PYFUNC_RESULT = ("sector string, sector_confidence double, topics string, region string, "
                 "region_confidence double, partners string, language string, result_json string")
OUTPUT_COLUMNS = ("id", "sector", "sector_confidence", "topics", "region", "region_confidence", "partners",
                  "language", "warnings", "model_name", "model_version", "run_id")
CORRUPT = "_corrupt_record"
UNREADABLE = {"json": "not valid JSON (or not a JSON object)", "csv": "a CSV row that cannot be parsed"}
ERRORS_SHOWN = 20


class JobError(RuntimeError):
    """The job cannot start (or cannot go on); the message says what to fix."""


@dataclass(frozen=True)
class ModelRef:
    """The model actually scored with: an alias is pinned to its version before any work starts."""

    uri: str
    name: str
    version: str
    run_id: str


@dataclass
class JobReport:
    read: int = 0
    scored: int = 0
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)


# ---- checks that run before Spark starts -----------------------------------------------------------------


def resolve_model(uri: str, tracking_uri: str | None = None) -> ModelRef:
    """Pin ``uri`` to one registered version (or run) and read who it is; a wrong URI fails here, with MLflow's
    reason, before any Spark work starts."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from newsclf.pyfunc import registered_version

    try:
        if uri.startswith("models:/"):
            version = registered_version(uri.rstrip("/"), tracking_uri)
            if version is None:
                raise JobError(f"model URI {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>")
            return ModelRef(f"models:/{version.name}/{version.version}", version.name, str(version.version),
                            version.run_id or "")
        if uri.startswith("runs:/"):
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
            return ModelRef(uri, uri.rstrip("/").rsplit("/", 1)[-1], "", run_id)
    except MlflowException as exc:
        raise JobError(f"model {uri!r} cannot be used (tracking URI {tracking_uri or 'default'}): "
                       f"{exc.message}") from None
    folder = Path(uri)
    if not (folder / "MLmodel").is_file():
        raise JobError(f"model {uri!r}: not a models:/ or runs:/ URI, nor a folder with an MLmodel file")
    import yaml

    conf = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    return ModelRef(str(folder.resolve()), folder.name, "", conf.get("run_id") or "")


def fetch_model(ref: ModelRef, tracking_uri: str | None) -> Path:
    """Download the pinned model once, on the driver, and check it is a newsclf pyfunc."""
    import mlflow

    from newsclf.pyfunc import model_folder_of

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri))
    try:
        model_folder_of(local)
    except (ValueError, OSError) as exc:
        raise JobError(str(exc)) from None
    return local


def prepare_embedder(local_model: Path, cache_dir: Path | None) -> None:
    """Build the model's bundled embedder, and its backend's export (OpenVINO IR, int8 calibration included),
    into ``cache_dir`` now, on the driver, when they are missing: local workers share this disk, so they find
    them built instead of racing to build them each."""
    from newsclf.embedding import Embedder, default_cache_dir
    from newsclf.model_format import read_manifest
    from newsclf.pyfunc import model_folder_of

    manifest = read_manifest(model_folder_of(local_model))
    config = manifest.embedder.config.model_copy(update={"cache_dir": cache_dir or default_cache_dir()})
    _ = Embedder(config, show_progress=False).identity  # loading builds what is missing; the model is dropped


def java_version(java: str) -> int | None:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_java() -> str:
    """The java that Spark will start, if it is Java 17 or newer; else what to install."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    how = ("install Java 17 or newer (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and put `java` "
           "on PATH or set JAVA_HOME")
    if not java or not Path(java).exists():
        raise JobError(f"Spark needs Java, and none was found ({'JAVA_HOME=' + home if home else 'PATH'}): {how}")
    major = java_version(java)
    if major is None or major < JAVA_MAJOR:
        raise JobError(f"Spark needs Java {JAVA_MAJOR}+, but {java} is {major or 'unreadable'}: {how}")
    return java


def check_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise JobError("pyspark is not installed: `pip install 'newsclf[spark]'` (or `make setup` in a "
                       "checkout)") from None


def is_local_path(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


# ---- Spark --------------------------------------------------------------------------------------------------


def spark_session(master: str | None, cache_dir: Path | None, port: int = DEFAULT_PORT, app_name: str = "newsclf"):
    """A session with no UI, its ports in ``port``..``port+PORT_RETRIES`` (and, when local, this Python on the
    workers, everything on loopback).

    ``master`` None: the one spark-submit gave, else ``local[*]``."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master is None and not SparkConf().contains("spark.master"):
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
    local = master is not None and master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM at launch: bind to loopback
        # The workers run this very Python (pyspark reads the variable, not spark.pyspark.python, for them).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.port": str(port),
        "spark.blockManager.port": str(port + 1),
        "spark.port.maxRetries": str(PORT_RETRIES),
        "spark.sql.session.timeZone": "UTC",
        # Small Arrow batches: the pyfunc embeds a batch at once, and progress moves in useful steps.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
        "spark.executorEnv.HF_HUB_OFFLINE": "1",
    }
    if local:
        # Everything on this machine: listen on loopback only, run the workers on this very Python.
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    if cache_dir is not None:
        conf["spark.executorEnv.NEWSCLF_CACHE_DIR"] = str(cache_dir)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def input_format(path: str) -> str:
    suffix = Path(urlparse(path).path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq", ""):
        return "parquet"  # a folder written by Spark is Parquet
    raise JobError(f"{path}: the input must be Parquet, JSON Lines (.jsonl) or CSV (.csv)")


def read_input(spark, path: str):
    """The articles with ``id`` and ``text`` as strings (``title`` and ``date`` when present) and, for JSON and
    CSV, the raw text of any row that could not be parsed."""
    from pyspark.sql import functions as F

    kind = input_format(path)
    if kind == "json":
        frame = spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).json(path)
    elif kind == "csv":
        frame = (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
                 .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).csv(path))
    else:
        frame = spark.read.parquet(path)
    missing = {"id", "text"} - set(frame.columns)
    if missing - ({"id", "text"} if CORRUPT in frame.columns else set()):
        raise JobError(f"{path}: the input needs the columns 'id' and 'text' (optionally 'title'); "
                       f"missing {sorted(missing)}, found {sorted(c for c in frame.columns if c != CORRUPT)}")
    columns = [F.col(c).cast("string").alias(c) if c in frame.columns else F.lit(None).cast("string").alias(c)
               for c in ("id", "text", "title")]
    if "date" in frame.columns:
        columns.append(F.col("date").cast("string").alias("date"))
    columns.append(F.col(CORRUPT) if CORRUPT in frame.columns else F.lit(None).cast("string").alias(CORRUPT))
    return frame.select(*columns), kind


def with_reasons(articles, kind: str):
    """``reason`` is null for a row that can be scored, else why not (the batch command's words)."""
    from pyspark.sql import functions as F

    # Blank as Python's str.strip() sees it: Spark's trim() removes spaces only, not newlines or tabs.
    blank = lambda c: F.col(c).isNull() | F.col(c).rlike(r"(?U)^\s*$")  # noqa: E731
    reason = (F.when(F.col(CORRUPT).isNotNull(), F.lit(UNREADABLE.get(kind, "unreadable row")))
              .when(blank("id"), F.lit(NO_ID))
              .when(blank("text"), F.lit(NO_TEXT)))
    return articles.withColumn("reason", reason)


def scored_frame(articles, predict, ref: ModelRef):
    """Score ``articles`` with the pyfunc UDF and shape the issue's output columns."""
    from pyspark.sql import functions as F

    result = articles.withColumn("_r", predict(F.struct(F.col("text"), F.col("title"))))

    def as_list(name: str):  # the pyfunc joins list fields with commas
        return F.filter(F.split(F.col(f"_r.{name}"), ","), lambda x: x != "")

    warnings = F.from_json(F.col("_r.result_json"), "warnings array<string>").getField("warnings")
    extra = ["date"] if "date" in articles.columns else []
    return result.select(
        "id", F.col("_r.sector").alias("sector"), F.col("_r.sector_confidence").alias("sector_confidence"),
        as_list("topics").alias("topics"), F.col("_r.region").alias("region"),
        F.col("_r.region_confidence").alias("region_confidence"), as_list("partners").alias("partners"),
        F.col("_r.language").alias("language"), F.coalesce(warnings, F.array().cast("array<string>")).alias(
            "warnings"),
        F.lit(ref.name).alias("model_name"), F.lit(ref.version).alias("model_version"),
        F.lit(ref.run_id).alias("run_id"), *extra,
    )


def run_job(*, input_path: str, output: str, errors_output: str, model: str, tracking_uri: str | None,
            master: str | None, partitions: int | None, cache_dir: Path | None, partition_by: str = "auto",
            overwrite: bool = False, port: int = DEFAULT_PORT, spark=None) -> JobReport:
    """Check everything that can be checked, then read, score and write. Raises ``JobError`` with the reason."""
    report = JobReport()
    started = time.perf_counter()
    # Before any Spark work: the input, the outputs, the model, pyspark and Java.
    if is_local_path(input_path) and not Path(urlparse(input_path).path).exists():
        raise JobError(f"--input {input_path} does not exist")
    input_format(input_path)
    for path, flag in ((output, "--output"), (errors_output, "--errors")):
        if is_local_path(path) and Path(urlparse(path).path).exists() and not overwrite:
            raise JobError(f"{flag} {path} already exists: remove it or pass --overwrite")
    if partitions is not None and partitions < 1:
        raise JobError("--partitions must be 1 or more")
    ref = resolve_model(model, tracking_uri)
    report.model = {"name": ref.name, "version": ref.version, "run_id": ref.run_id, "uri": ref.uri}
    check_pyspark()
    if spark is None:
        check_java()
    local_model = fetch_model(ref, tracking_uri)
    if master is not None and master.startswith("local"):
        prepare_embedder(local_model, cache_dir)
    report.seconds["checks"] = time.perf_counter() - started

    import mlflow.pyfunc
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    tick = time.perf_counter()
    if spark is None:
        spark = spark_session(master, cache_dir, port)
    extra_env = {"HF_HUB_OFFLINE": "1"} | ({"NEWSCLF_CACHE_DIR": str(cache_dir)} if cache_dir else {})
    predict = mlflow.pyfunc.spark_udf(spark, str(local_model), result_type=PYFUNC_RESULT, env_manager="local",
                                      extra_env=extra_env)
    report.seconds["spark_start"] = time.perf_counter() - tick

    tick = time.perf_counter()
    articles, kind = read_input(spark, input_path)
    if partitions:
        articles = articles.repartition(partitions)
    # Read once: the counts, the errors and the scoring all use this copy.
    articles = with_reasons(articles, kind).persist(StorageLevel.MEMORY_AND_DISK)
    report.read = articles.count()
    mode = "overwrite" if overwrite else "errorifexists"
    bad = articles.where("reason IS NOT NULL").select(
        "id", "reason", F.substring(F.col(CORRUPT), 1, 1000).alias("record"), F.input_file_name().alias("source_file"))
    bad.write.mode(mode).parquet(errors_output)
    errors = spark.read.parquet(errors_output)
    report.error_reasons = {r["reason"]: r["count"] for r in errors.groupBy("reason").count().collect()}
    report.errors = sum(report.error_reasons.values())
    report.seconds["read_and_check"] = time.perf_counter() - tick

    tick = time.perf_counter()
    good = articles.where("reason IS NULL").drop("reason", CORRUPT)
    column = {"auto": "date" if "date" in good.columns else "language", "none": None}.get(partition_by, partition_by)
    if column == "date" and "date" not in good.columns:
        raise JobError("--partition-by date: the input has no 'date' column")
    writer = scored_frame(good, predict, ref).write.mode(mode)
    if column:
        writer = writer.partitionBy(column)
    writer.parquet(output)
    report.seconds["score_and_write"] = time.perf_counter() - tick
    report.scored = spark.read.parquet(output).count()
    articles.unpersist()
    report.seconds["total"] = time.perf_counter() - started
    if report.read != report.scored + report.errors:
        raise JobError(f"rows went missing: read {report.read}, scored {report.scored}, errors {report.errors}")
    return report


# ---- command line -------------------------------------------------------------------------------------------

EXAMPLES = """examples:
  newsclf spark-score --input archive.parquet --output labels                     # local[*], the champion
  newsclf spark-score --input articles.jsonl --output labels --master 'local[2]' --partitions 8
  newsclf spark-score --input s3a://bucket/archive/ --output s3a://bucket/labels --master spark://host:7077 \\
      --model models:/newsclf/7 --tracking-uri http://mlflow.internal:5000
input: Parquet, JSON Lines or CSV with columns id and text (optionally title; a date column partitions the
output). output: Parquet partitioned by language (or date) with id, sector, sector_confidence, topics, region,
region_confidence, partners, language, warnings, model_name, model_version, run_id. Rows with no id, an empty
text or unparseable content go to --errors (Parquet: id, reason, record, source_file); nothing is dropped.
"""


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Score an archive of articles with Spark through the "
                                     "registered MLflow model.", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="Parquet (file or folder), .jsonl or .csv")
    parser.add_argument("--output", required=True, help="Parquet folder for the labels")
    parser.add_argument("--errors", help="Parquet folder for the rows that cannot be scored (default: "
                                         "<output>-errors)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"an MLflow model URI (default {DEFAULT_MODEL})")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db",
                        help="the MLflow store that resolves the model (default: $MLFLOW_TRACKING_URI, else "
                             "./mlflow.db)")
    parser.add_argument("--master", help="Spark master URL (default: spark-submit's, else local[*])")
    parser.add_argument("--partitions", type=int, help="repartition the input into N tasks (default: as read)")
    parser.add_argument("--partition-by", default="auto", choices=("auto", "language", "date", "none"),
                        help="output partition column; auto = date when the input has one, else language")
    parser.add_argument("--cache-dir", type=Path, help="embedder and embedding cache shared by the executors "
                                                       "(default: $NEWSCLF_CACHE_DIR, else ./.cache in a checkout)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"first port Spark listens on (default "
                                                                       f"{DEFAULT_PORT}; it walks up when taken)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--report-json", type=Path, help="also write the counts and timings here")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per model file is noise here
    cache_dir = args.cache_dir or (Path(os.environ["NEWSCLF_CACHE_DIR"]) if os.environ.get("NEWSCLF_CACHE_DIR")
                                   else Path(".cache").resolve() if Path(".cache").is_dir() else None)
    if cache_dir is not None:
        os.environ["NEWSCLF_CACHE_DIR"] = str(cache_dir)  # local workers inherit it from the driver
    errors_output = args.errors or f"{args.output.rstrip('/')}-errors"
    try:
        report = run_job(input_path=args.input, output=args.output, errors_output=errors_output, model=args.model,
                         tracking_uri=args.tracking_uri, master=args.master, partitions=args.partitions,
                         cache_dir=cache_dir, partition_by=args.partition_by, overwrite=args.overwrite,
                         port=args.port)
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.errors:
        _print_errors(errors_output)
    if args.report_json:
        args.report_json.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    seconds = report.seconds
    print(f"model {report.model['name']} version {report.model['version'] or '-'} (run {report.model['run_id']})",
          file=sys.stderr)
    print(f"read {report.read}, scored {report.scored}, errors {report.errors} -> {args.output}"
          + (f" (errors in {errors_output})" if report.errors else "")
          + f"; Spark start-up {seconds['spark_start']:.1f} s, scoring {seconds['score_and_write']:.1f} s, "
            f"total {seconds['total']:.1f} s", file=sys.stderr)
    return 1 if report.read and not report.scored else 0


def _print_errors(errors_output: str) -> None:
    from pyspark.sql import SparkSession

    rows = SparkSession.getActiveSession().read.parquet(errors_output).limit(ERRORS_SHOWN).collect()
    for row in rows:
        print(f"error row id={row['id']!r}: {row['reason']}", file=sys.stderr)


if __name__ == "__main__":  # spark-submit runs this file
    sys.exit(main())
