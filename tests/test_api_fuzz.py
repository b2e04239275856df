"""Schema-based fuzzing of the API (schemathesis): every operation, positive and negative cases, every check.

Positive cases follow the OpenAPI schema the service publishes (its limits and the non-blank pattern included),
so the service must accept them; negative cases break it, so the service must refuse them with a documented 4xx.
Runs against the app around the small model (conftest ``small_model_dir``), in process; bounded examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from newsclf.predictor import ArticleInput
from serving.app import create_app
from serving.service import Service, load
from serving.settings import ServiceSettings

MAX_EXAMPLES = 25
API_KEY, ADMIN_KEY = "fuzz-api-key-0123456789", "fuzz-admin-key-0123456789"


class _QuickReloadService(Service):
    """Reload answers at once with the same model: the fuzzer tests the route's HTTP contract, not loading (tested
    in test_api_traffic.py), and a real reload per generated case would take minutes."""

    def reload(self, version):
        return self.model, self.model


@pytest.fixture(scope="module")
def api_schema(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    # A batch limit of 4 keeps positive batch cases cheap to embed; the limits in the schema follow the setting.
    # The generated corrections go to a temporary file, never to the checkout's feedback.db.
    service_settings = ServiceSettings(model=str(small_model_dir), max_batch_items=4, max_text_chars=500,
                                       max_in_flight=10_000, max_queue_wait_s=600, api_keys=API_KEY,
                                       admin_keys=ADMIN_KEY,
                                       feedback_db=tmp_path_factory.mktemp("fuzz") / "feedback.db")
    service = _QuickReloadService.ready(load(service_settings), service_settings)
    # Load the embedder's weights now: the first generated case that reaches the model must not pay for it.
    service.predict(service.model, [ArticleInput("Le Vietnam et le Laos signent un accord.", None)])
    app = create_app(service_settings, service=service)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [
    GenerationMode.POSITIVE,
    GenerationMode.NEGATIVE,
], ids=["positive", "negative"])
def test_the_api_keeps_its_published_contract(api_schema, mode):
    # schemathesis's own pytest plugin does not load under this pytest; its strategies driven by hypothesis do the
    # same: every operation, every check of call_and_validate (server errors, status codes and headers documented,
    # response schemas, content types, negative data rejected, ...).
    operations = _operations(api_schema)
    assert {op.path for op in operations} >= {"/v1/classify", "/v1/classify/batch", "/readyz", "/v1/admin/reload",
                                              "/v1/feedback"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # the GET routes take no input: there is nothing to break
        key = ADMIN_KEY if operation.path.startswith("/v1/admin") else API_KEY
        # A correction has rules across fields that JSON Schema cannot state (sector `none` needs region `none`,
        # evidence spans inside the text, ISO codes that exist): a schema-valid body may still be refused with a
        # 422 that says which rule. Every other check runs on it.
        excluded = [positive_data_acceptance] if operation.path == "/v1/feedback" else []
        _fuzz(operation, mode, {"Authorization": f"Bearer {key}"}, excluded)


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str], excluded: list) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)  # the same cases on every run: a failure in CI reproduces locally
    def call(case):
        # timeout: a busy shared machine, not a hang
        case.call_and_validate(headers=headers, timeout=120, excluded_checks=excluded)

    call()
