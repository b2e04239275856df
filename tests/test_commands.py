"""The ``newsclf`` command and the jobs behind it, on small data: classify a file, sweep, baselines, promote.

The sweep and baselines run on a 60-article copy of the corpus with 2 folds, in a temporary MLflow store: they
show the seams (runs opened by the caller, nested children, the pipeline's own prediction assembly), not scores.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from newsclf import cli as classify_cli
from newsclf_cli import COMMANDS
from newsclf_cli import main as newsclf
from training import baselines, promote, sweep
from training.config import load_config
from training.paths import DATASETS
from training.pipeline import load_training_data
from training.tracking import set_alias

from .conftest import covering_sample

GOOD = "Hanoï (VNA) – Les polices vietnamienne et laotienne ont convenu de renforcer la lutte contre la drogue. – VNA"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as done:
        newsclf([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"newsclf {command}" in out and "examples:" in out


def test_the_command_lists_its_subcommands_and_refuses_unknown_ones(capsys):
    assert newsclf(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert newsclf(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


# --- classify a file ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_classify_scores_a_jsonl_file_and_reports_bad_lines(small_model_dir, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "a", "text": GOOD, "title": "Drogue"}, ensure_ascii=False),
        '{"id": "b", "text": "unterminated',
        json.dumps({"id": "c", "text": "   "}),
        json.dumps({"text": GOOD}),
        json.dumps({"id": 5, "text": GOOD}),
    ]) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "labels.jsonl"
    status = newsclf(["classify", str(source), "-o", str(output), "--model", str(small_model_dir), "--quiet"])
    err = capsys.readouterr().err
    assert status == 0, err
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "5"]
    assert {"sector", "sector_confidence", "topics", "region", "partners", "language", "warnings"} <= set(rows[0])
    assert f"{source}:2: not valid JSON" in err
    assert f"{source}:3: no 'text'" in err
    assert f"{source}:4: no 'id'" in err
    assert "2 of 5 articles scored" in err


@pytest.mark.slow
def test_classify_reads_csv_and_matches_the_predictor(small_model_dir, tmp_path, capsys):
    from newsclf.model_format import load_model
    from newsclf.predictor import ArticleInput

    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "text"])
        writer.writerow(["x1", "Drogue", GOOD])
    output = tmp_path / "labels.jsonl"
    assert classify_cli.main([str(source), "-o", str(output), "--model", str(small_model_dir), "--quiet"]) == 0
    row = json.loads(output.read_text(encoding="utf-8"))
    expected = load_model(small_model_dir)[0].predict([ArticleInput(GOOD, "Drogue")])[0]
    assert (row["sector"], row["region"], row["partners"]) == (expected.sector.label, expected.region.label,
                                                               expected.partners)


def test_classify_says_what_is_wrong_with_its_arguments(tmp_path, capsys):
    assert newsclf(["classify", str(tmp_path / "absent.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": GOOD}) + "\n")
    status = newsclf(["classify", str(source), "-o", str(tmp_path / "o.jsonl"), "--models-dir", str(tmp_path)])
    assert status == 2 and "no trained model" in capsys.readouterr().err


# --- small data for the MLflow jobs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_datasets(tmp_path_factory: pytest.TempPathFactory, corpus_articles) -> Path:
    """A copy of the datasets folder whose written part is 60 articles covering every label."""
    root = tmp_path_factory.mktemp("small") / "datasets"
    shutil.copytree(DATASETS, root, ignore=shutil.ignore_patterns("written"))
    (root / "written").mkdir()
    chosen = {a.id for a in covering_sample(corpus_articles, 60)}
    rows = [line for f in sorted((DATASETS / "written").glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["id"] in chosen]
    (root / "written" / "small.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def small_config(small_datasets: Path, tmp_path: Path):
    return load_config(overrides={
        "datasets": str(small_datasets), "models_dir": str(tmp_path / "models"),
        "cv": {"folds": 2, "inner_folds": 2},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "small"},
    })


@pytest.mark.slow
def test_sweep_runs_each_point_as_a_child_of_one_parent(small_config):
    parent_id, outcomes, best = sweep.run_sweep(small_config, "small")
    assert len(outcomes) == 4 and not [o for o in outcomes if o.error]
    client = MlflowClient(tracking_uri=small_config.tracking.resolved_uri())
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_child"] == best.run_id
    for outcome in outcomes:
        child = client.get_run(outcome.run_id)
        assert child.data.tags["mlflow.parentRunId"] == parent_id
        assert child.data.tags["kind"] == "sweep"
        assert child.info.status == "FINISHED"
        assert "cv.sector.macro_f1" in child.data.metrics
    assert client.get_run(best.run_id).data.tags["best"] == "true"
    assert not client.search_registered_models()  # a sweep never registers or promotes
    assert not list((Path(small_config.models_dir)).glob("*"))  # nor writes to models/


@pytest.mark.slow
def test_baselines_use_the_pipelines_folds_metrics_and_assembly(small_config):
    split = load_training_data(small_config)
    run_id, (cv, seed) = baselines.run_tfidf(small_config, split, C=10.0)
    assert cv.predictions and all(p.sector.label for p in cv.predictions)
    run = MlflowClient(tracking_uri=small_config.tracking.resolved_uri()).get_run(run_id)
    assert run.data.tags["kind"] == "baseline" and run.data.tags["baseline"] == "tfidf"
    assert {"cv.sector.macro_f1", "seed.region.macro_f1", "cv.topics.micro_f1"} <= set(run.data.metrics)
    # Domestic news gets the pipeline's own answer: no partners, no topics, region none.
    for p in cv.predictions:
        if p.sector.label == "none":
            assert (p.region.label, p.partners, p.topics) == ("none", [], [])
    run_id, (cv, _seed) = baselines.run_zeroshot(small_config, split, baselines.LABEL_PREFIX,
                                                 baselines.TOPIC_MARGIN)
    assert len(cv.predictions) == len(split.written)


@pytest.mark.slow
def test_baselines_command_runs_end_to_end(small_datasets, tmp_path, capsys):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(f"datasets: {small_datasets}\ncv: {{folds: 2, inner_folds: 2}}\n"
                           f"tracking: {{tracking_uri: 'sqlite:///{tmp_path / 'b.db'}'}}\n")
    assert newsclf(["baselines", "--only", "tfidf", "--config", str(config_file)]) == 0
    assert "sector.macro_f1" in capsys.readouterr().out


# --- promote and roll back ---------------------------------------------------------------------------------------
@pytest.fixture
def registry(tmp_path: Path) -> tuple[str, MlflowClient]:
    """A registry with versions 1-3 scored 0.80, 0.90, 0.85 on one corpus; the rule made v2 the champion."""
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("promote")
    client.create_registered_model("newsclf")
    for score in ("0.8000", "0.9000", "0.8500"):
        run = client.create_run(experiment)
        version = client.create_model_version("newsclf", f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_model_version_tag("newsclf", version.version, "composite_cv_score", score)
        client.set_model_version_tag("newsclf", version.version, "dataset_hash", "same-corpus")
    set_alias(uri, "newsclf", "2")
    return uri, client


def _champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias("newsclf", "champion").version)


def test_promote_then_roll_back_step_by_step(registry, capsys):
    uri, client = registry
    assert promote.main(["--version", "3", "--tracking-uri", uri]) == 0
    assert _champion(client) == "3"
    assert "champion history: v1 -> v2 -> v3" in capsys.readouterr().out
    assert newsclf(["promote", "--rollback", "--tracking-uri", uri]) == 0
    assert _champion(client) == "2"
    assert newsclf(["promote", "--rollback", "--tracking-uri", uri]) == 0
    assert _champion(client) == "1"
    assert newsclf(["promote", "--rollback", "--tracking-uri", uri]) == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert _champion(client) == "1"


def test_promoting_a_version_that_does_not_exist_fails_cleanly(registry, capsys):
    uri, client = registry
    assert promote.main(["--version", "9", "--tracking-uri", uri]) == 2
    assert "error:" in capsys.readouterr().err
    assert _champion(client) == "2"
