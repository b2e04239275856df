"""The MLflow UI, in a real browser, shows the runs we log and their macro-F1.

Starts ``mlflow server`` on 127.0.0.1 (a free port) against the session's temporary SQLite store, which holds
the session's real training run plus a second run logged here, then renders the experiment's runs page in
headless Chromium (Debian's ``chromium``, driven through its command line: nothing is installed or
downloaded) and checks the DOM. The screenshot goes to ``reports/mlflow_ui_runs.png``.

The runs table shows no metric column until someone picks one; the test picks them the way the UI's
"Share view" button does, with an experiment tag ``mlflow.sharedViewState.<key>`` opened by
``?viewStateShareKey=<key>``.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from training.paths import REPORTS

CHROMIUM = Path("/usr/bin/chromium")
SHARE_KEY = "newsclf-ui-check"
COLUMNS = ("cv.sector.macro_f1", "cv.topics.micro_f1", "cv.region.macro_f1", "seed.sector.macro_f1")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=2200,1000", "--virtual-time-budget=20000",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: apt-get install chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def second_run(training_record, tracking_uri: str) -> str:
    """A cheap second run next to the trained one, as a baseline run would be logged."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.get_run(training_record.run_id).info.experiment_id
    run = client.create_run(experiment_id, run_name="ui-check-baseline", tags={"kind": "baseline"})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[
        Metric(key, value, now, 0) for key, value in
        zip(COLUMNS, (0.4321, 0.2345, 0.3456, 0.1234), strict=True)
    ])
    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run.info.run_id


@pytest.fixture(scope="module")
def ui_url(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory, training_record, second_run):
    workdir = tmp_path_factory.mktemp("mlflow-ui")
    port = _free_port()
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
         "--default-artifact-root", str(workdir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited with {server.returncode}:\n{(workdir / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 90 s:\n{(workdir / 'server.log').read_text()}")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _chromium(url: str, *extra: str, profile: Path) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True, exist_ok=False)  # a new empty profile for every launch
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True, text=True, timeout=180,
    )


def _visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


def test_runs_page_shows_runs_and_macro_f1(ui_url: str, tracking_uri: str, training_record, second_run,
                                           tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    trained = client.get_run(training_record.run_id)
    experiment_id = trained.info.experiment_id
    view = {
        "selectedColumns": ["attributes.`Source`", "attributes.`Models`", *(f"metrics.`{m}`" for m in COLUMNS)],
        "orderByKey": "metrics.`cv.sector.macro_f1`", "orderByAsc": False,
    }
    client.set_experiment_tag(experiment_id, f"mlflow.sharedViewState.{SHARE_KEY}", json.dumps(view))
    url = f"{ui_url}/#/experiments/{experiment_id}/runs?viewStateShareKey={SHARE_KEY}"

    dumped = _chromium(url, "--dump-dom", profile=tmp_path / "profile-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    text = _visible_text(dumped.stdout)
    names = [trained.info.run_name, client.get_run(second_run).info.run_name]
    for name in names:
        assert name in text, f"run {name!r} is not on the runs page: {text[:1500]}"
    assert "cv.sector.macro_f1" in text, f"no macro_f1 column on the runs page: {text[:1500]}"
    # The trained run's value itself, not just the column title.
    value = trained.data.metrics["cv.sector.macro_f1"]
    assert f"{value:.4f}".rstrip("0").rstrip(".") in text
    assert "0.4321" in text

    REPORTS.mkdir(exist_ok=True)
    screenshot = REPORTS / "mlflow_ui_runs.png"
    screenshot.unlink(missing_ok=True)
    shot = _chromium(url, f"--screenshot={screenshot}", profile=tmp_path / "profile-shot")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, "no screenshot written"
