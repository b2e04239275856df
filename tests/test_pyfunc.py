"""The registered MLflow model runs anywhere: loaded outside the checkout, and served by ``mlflow models serve``.

Both consume ``models:/newsclf@champion`` from the session's registry, in processes whose working directory is
outside the repository and whose embedder cache is empty (the pyfunc rebuilds the bundled embedder itself).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from training.paths import ROOT

pytestmark = pytest.mark.slow

TEXT = ("Hanoi (VNA) – Vietnam and Australia agreed on Tuesday to expand police training against people "
        "smuggling and drug trafficking, and to exchange information on criminal networks. – VNA")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory outside the repository."""
    folder = tmp_path_factory.mktemp("outside-checkout")
    assert not folder.resolve().is_relative_to(ROOT)
    return folder


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newsclf-cache")


def _env(tracking_uri: str, cache: Path) -> dict[str, str]:
    # The venv's bin first: `mlflow models serve --env-manager local` starts `uvicorn` by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return os.environ | {"MLFLOW_TRACKING_URI": tracking_uri, "NEWSCLF_CACHE_DIR": str(cache),
                         "HF_HUB_OFFLINE": "1", "PATH": path}


# Run in a subprocess: hides the checkout (the editable install's import hook and any path into the repository)
# before MLflow loads the model, so only the code the model carries can be imported.
LOAD_AND_PREDICT = textwrap.dedent('''
    import json, sys
    repo = sys.argv[1]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    venv = repo + "/.venv/"
    sys.path[:] = [p for p in sys.path if p and not (p.rstrip("/") == repo or
                                                     (p.startswith(repo + "/") and not p.startswith(venv)))]
    import mlflow, pandas as pd
    model = mlflow.pyfunc.load_model("models:/newsclf@champion")
    import newsclf
    try:
        import training  # noqa: F401
        training_importable = True
    except ImportError:
        training_importable = False
    frame = pd.DataFrame([{"text": sys.argv[2], "title": "Vietnam, Australia step up police cooperation"},
                          {"text": sys.argv[2]}])
    out = model.predict(frame)
    print(json.dumps({"newsclf_file": newsclf.__file__, "training_importable": training_importable,
                      "rows": out[["sector", "region", "partners", "topics"]].to_dict("records"),
                      "input_schema": model.metadata.get_input_schema().to_dict()}))
''')


def test_the_champion_loads_and_predicts_outside_the_checkout(training_record, tracking_uri, outside, fresh_cache):
    assert training_record.model_version
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(ROOT), TEXT], cwd=outside,
                          env=_env(tracking_uri, fresh_cache), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    # The model's own copy of the core (under its artifacts), not the checkout's; and nothing of the trainer.
    loaded_from = Path(answer["newsclf_file"]).resolve()
    assert not loaded_from.is_relative_to(ROOT / "newsclf") and "code" in loaded_from.parts, loaded_from
    assert not loaded_from.is_relative_to(ROOT), loaded_from  # the store's artifacts live beside its database
    assert answer["training_importable"] is False
    assert "building multilingual-e5-small" in done.stderr  # the empty cache was filled by the model itself
    assert [c["name"] for c in answer["input_schema"]] == ["text", "title"]
    assert [c.get("required", True) for c in answer["input_schema"]] == [True, False]
    for row in answer["rows"]:
        assert row["sector"] == "security" and row["region"] == "oceania" and row["partners"].startswith("AU")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_invocations(training_record, tracking_uri, outside, fresh_cache):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/newsclf@champion", "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=outside, env=_env(tracking_uri, fresh_cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping in 10 minutes"
            time.sleep(2)
        body = json.dumps({"dataframe_records": [{"text": TEXT, "title": "Police cooperation"}, {"text": TEXT}]})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            predictions = json.loads(response.read())["predictions"]
        assert len(predictions) == 2
        assert {p["sector"] for p in predictions} == {"security"}
        assert {p["region"] for p in predictions} == {"oceania"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
