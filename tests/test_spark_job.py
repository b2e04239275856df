"""The Spark job (``newsclf spark-score``) on the session's registered champion, with a local Spark.

One run of the real command (``local[2]``, two tasks) on about 100 corpus articles plus rows that cannot be scored,
read back from its Parquet output: its labels are the API's and ``newsclf classify``'s for the same texts, the bad
rows are in the errors output with their reasons, and the counts add up. A wrong model URI stops the job before
Spark starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from newsclf.batch import NO_ID, NO_TEXT, score_file
from newsclf.spark_job import OUTPUT_COLUMNS, UNREADABLE, JobError, check_java, main
from serving.app import create_app
from serving.service import Service, load
from serving.settings import ServiceSettings
from training.paths import CACHE, ROOT

pytestmark = pytest.mark.slow

N_ARTICLES = 100
# Rows the job must set aside, with the reason it gives (keyed by id; the unparseable line has none).
BAD_ROWS = {
    "bad-blank-text": ({"id": "bad-blank-text", "title": "A title", "text": "   \n "}, NO_TEXT),
    "bad-null-text": ({"id": "bad-null-text", "text": None}, NO_TEXT),
    "bad-no-text": ({"id": "bad-no-text", "title": "Only a title"}, NO_TEXT),
}
NO_ID_ROW = {"id": "  ", "text": "Hanoi (VNA) – A text with a blank id."}
BROKEN_LINE = '{"id": "bad-json", "text": "an unterminated string}'


def _sample(articles) -> list[dict]:
    """``N_ARTICLES`` corpus articles spread over its files (all three languages, written and seed items)."""
    step = len(articles) // N_ARTICLES
    return [{"id": a.id, "title": a.title, "text": a.text} for a in articles[::step][:N_ARTICLES]]


@pytest.fixture(scope="module")
def articles(corpus_articles) -> list[dict]:
    return _sample(corpus_articles)


@pytest.fixture(scope="module")
def input_file(articles, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark-input") / "articles.jsonl"
    lines = [json.dumps(a, ensure_ascii=False) for a in articles]
    lines[10:10] = [json.dumps(row) for row, _ in BAD_ROWS.values()]
    lines[40:40] = [json.dumps(NO_ID_ROW), BROKEN_LINE]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spark_run(training_record, tracking_uri, input_file, tmp_path_factory) -> dict:
    """The real command, in its own process, on the registered champion of the session."""
    out = tmp_path_factory.mktemp("spark-output")
    report = out / "report.json"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": tracking_uri}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "newsclf_cli", "spark-score", "--input", str(input_file), "--output",
         str(out / "labels"), "--master", "local[2]", "--partitions", "2", "--cache-dir", str(CACHE),
         "--report-json", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    labels = pd.read_parquet(out / "labels")
    labels["language"] = labels["language"].astype(str)  # the partition column comes back as a category
    return {"labels": labels.set_index("id"), "errors": pd.read_parquet(out / "labels-errors"),
            "report": json.loads(report.read_text()), "stderr": done.stderr,
            "seconds": time.perf_counter() - started}


def _labels(sector, topics, region, partners, language, warnings) -> dict:
    return {"sector": sector, "topics": sorted(topics), "region": region, "partners": list(partners),
            "language": language, "warnings": list(warnings)}


def test_the_output_has_the_issues_columns_and_the_registered_model(spark_run, training_record):
    labels = spark_run["labels"]
    assert set(labels.columns) | {"id"} == set(OUTPUT_COLUMNS)
    assert set(labels["model_name"]) == {"newsclf"}
    assert set(labels["model_version"]) == {str(training_record.model_version)}
    assert set(labels["run_id"]) == {training_record.run_id}
    assert set(labels["language"]) == {"fr", "en", "vi"}


def test_counts_and_the_errors_output(spark_run, articles):
    report, errors = spark_run["report"], spark_run["errors"]
    bad = len(BAD_ROWS) + 2
    assert (report["read"], report["scored"], report["errors"]) == (len(articles) + bad, len(articles), bad)
    assert f"read {len(articles) + bad}, scored {len(articles)}, errors {bad}" in spark_run["stderr"]
    assert sorted(spark_run["labels"].index) == sorted(a["id"] for a in articles)
    reasons = dict(zip(errors["id"].fillna(""), errors["reason"], strict=True))
    for rid, (_row, reason) in BAD_ROWS.items():
        assert reasons[rid] == reason
    assert reasons[NO_ID_ROW["id"]] == NO_ID
    unparseable = errors[errors["reason"] == UNREADABLE["json"]]
    assert len(unparseable) == 1 and unparseable["record"].iloc[0] == BROKEN_LINE


def test_labels_equal_the_batch_commands(spark_run, predictor, input_file, tmp_path):
    """``newsclf classify``'s scorer, same model folder and embedder, same file: the same labels, the same bad rows."""
    report = score_file(predictor, input_file, tmp_path / "labels.jsonl", progress=False)
    batch = {r["id"]: r for r in map(json.loads, (tmp_path / "labels.jsonl").read_text().splitlines())}
    labels = spark_run["labels"]
    assert set(batch) == set(labels.index)
    for rid, row in labels.iterrows():
        want = batch[rid]
        assert _labels(row.sector, row.topics, row.region, row.partners, row.language, row.warnings) == _labels(
            want["sector"], want["topics"], want["region"], want["partners"], want["language"], want["warnings"]), rid
        assert row.sector_confidence == pytest.approx(want["sector_confidence"], abs=1e-6)
        assert row.region_confidence == pytest.approx(want["region_confidence"], abs=1e-6)
    # Same reasons, but for the parser's own words on the broken line ("not valid JSON (Invalid control ...)").
    def words(reason: str) -> str:
        return "not valid JSON" if reason.startswith("not valid JSON") else reason

    assert sorted(words(b.reason) for b in report.bad) == sorted(map(words, spark_run["errors"]["reason"]))


def test_labels_equal_the_apis(spark_run, articles, trained_model_dir):
    settings = ServiceSettings(model=str(trained_model_dir), embedding_cache_dir=CACHE)
    service = Service.ready(load(settings), settings)
    labels = spark_run["labels"]
    with TestClient(create_app(settings, service=service)) as client:
        for start in range(0, len(articles), settings.max_batch_items):
            chunk = articles[start:start + settings.max_batch_items]
            response = client.post("/v1/classify/batch", json={"articles": chunk})
            assert response.status_code == 200, response.text
            for got in response.json()["results"]:
                row = labels.loc[got["id"]]
                assert _labels(row.sector, row.topics, row.region, row.partners, row.language, row.warnings) == \
                    _labels(got["sector"]["label"], [t["label"] for t in got["topics"]], got["region"]["label"],
                            [p["code"] for p in got["partners"]], got["language"], got["warnings"]), got["id"]


@pytest.mark.parametrize("uri, reason", [
    ("models:/newsclf@no-such-alias", "no-such-alias"),
    ("models:/no-such-model/1", "no-such-model"),
    ("runs:/0123456789abcdef/model", "0123456789abcdef"),
])
def test_a_wrong_model_uri_fails_before_any_work(training_record, tracking_uri, input_file, tmp_path, capsys, uri,
                                                  reason):
    started = time.perf_counter()
    status = main(["--input", str(input_file), "--output", str(tmp_path / "labels"), "--model", uri,
                   "--tracking-uri", tracking_uri])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"error: model {uri!r} cannot be used") and reason in err, err
    assert not (tmp_path / "labels").exists() and not (tmp_path / "labels-errors").exists()
    from pyspark.sql import SparkSession

    assert SparkSession.getActiveSession() is None  # no Spark was started for it
    assert time.perf_counter() - started < 30


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JobError, match="openjdk-17-jre-headless"):
        check_java()
