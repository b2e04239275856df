"""Hostile and heavy traffic (issue #11): bounded work per body, backpressure, cancellation, coalescing, deadlines,
keys, hosts, hot reload, a cache that fails without failing requests.

A real uvicorn server (the run profile of ``newsclf serve``: serving/server.py) serves the small model in a thread,
so connections, timing and disconnections are real; unit tests drive the dispatcher with a fake predict.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from newsclf.embedding import BUNDLED_EMBEDDER, bundled_e5_dir
from newsclf.model_format import read_manifest
from serving.app import create_app
from serving.dispatcher import ClientGone, InferenceDispatcher, Overloaded
from serving.server import GuardedH11Protocol
from serving.service import Service, load
from serving.settings import ServiceSettings
from training.paths import CACHE

PORT = 18131
KEY_A, KEY_B, ADMIN = "a" * 20 + "-key-one", "b" * 20 + "-key-two", "c" * 20 + "-admin"
ARTICLE = {"title": "Le Vietnam et le Laos renforcent leur coopération contre la drogue",
           "text": "Vientiane, 21 mai (VNA) – Les polices du Vietnam et du Laos ont signé un accord contre le "
                   "trafic de stupéfiants à la frontière commune."}


def _cache_with_embedder(folder: Path, model_dir: Path) -> Path:
    if read_manifest(model_dir).embedder.config.model == BUNDLED_EMBEDDER and bundled_e5_dir(CACHE).is_dir():
        bundled_e5_dir(folder).parent.mkdir(parents=True)
        bundled_e5_dir(folder).symlink_to(bundled_e5_dir(CACHE), target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def model_copy(small_model_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served") / small_model_dir.name
    shutil.copytree(small_model_dir, folder)
    return folder


@pytest.fixture(scope="module")
def settings(model_copy: Path, tmp_path_factory) -> ServiceSettings:
    cache = _cache_with_embedder(tmp_path_factory.mktemp("cache"), model_copy)
    return ServiceSettings(model=str(model_copy), embedding_cache_dir=cache, header_timeout_s=1.0,
                           body_timeout_s=1.0, max_in_flight=4, max_queue_wait_s=600, coalesce_window_ms=5,
                           admin_keys=ADMIN)


@pytest.fixture(scope="module")
def live(settings: ServiceSettings):
    """(base URL, service) of a real server around the small model, on a test port."""
    service = Service.ready(load(settings), settings)
    GuardedH11Protocol.header_timeout_s = settings.header_timeout_s
    config = uvicorn.Config(create_app(settings, service=service), host="127.0.0.1", port=PORT, log_level="warning",
                            http=GuardedH11Protocol, h11_max_incomplete_event_size=settings.max_header_bytes,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{PORT}", service
    server.should_exit = True
    thread.join(10)


def _slow_predict(service: Service, gate: threading.Event, seen: list):
    real = service.predict

    def predict(model, articles):
        seen.append(len(articles))
        gate.wait(10)
        return real(model, articles)
    return predict


# --- bounded work per body ---------------------------------------------------------------------------------------
def test_a_million_item_body_is_refused_at_once_and_health_checks_stay_fast(live):
    url, _ = live
    body = b'{"articles":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
    health: list[float] = []
    stop = threading.Event()

    def probe():
        with httpx.Client() as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get(f"{url}/healthz")
                health.append(time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        times = []
        with httpx.Client(timeout=30) as client:
            for _ in range(3):
                started = time.perf_counter()
                response = client.post(f"{url}/v1/classify/batch", content=body,
                                       headers={"Content-Type": "application/json"})
                times.append(time.perf_counter() - started)
    finally:
        stop.set()
        prober.join()
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "too_many_items"
    assert len(response.content) < 2000
    assert sorted(times)[1] < 0.1, times  # median of three, 3 MB sent over loopback included
    assert max(health) < 0.1, max(health)


def test_error_lists_are_capped_with_the_total(live):
    url, _ = live
    response = httpx.post(f"{url}/v1/classify/batch",
                          json={"articles": [{"id": str(i), "text": " "} for i in range(60)]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert len(error["fields"]) == 20
    assert "20 of 60 problems" in error["message"]


@pytest.mark.parametrize("body", [b'{"text": "a", "text": "b"}',
                                  b'{"articles": [{"id": "1", "id": "2", "text": "x"}]}'])
def test_duplicate_keys_are_refused_with_400(live, body):
    url, _ = live
    path = "/v1/classify/batch" if b"articles" in body else "/v1/classify"
    response = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "duplicate_key"


@pytest.mark.parametrize("text", ["\x00\x00\x00", "\u200b\u200b", "\ufeff", " \u200b\n\ufeff\t"])
def test_invisible_only_text_is_refused_as_blank(live, text):
    url, _ = live
    response = httpx.post(f"{url}/v1/classify", json={"text": text})
    assert response.status_code == 422
    assert "invisible" in response.json()["error"]["fields"][0]["problem"]


def test_json_errors_say_where_once(live):
    url, _ = live
    response = httpx.post(f"{url}/v1/classify", content=b'{"text" "x"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "at line 1, column 9" in response.json()["error"]["message"]
    assert "at at" not in response.json()["error"]["message"]


def test_language_is_an_iso_code_or_null_with_a_warning(live):
    url, _ = live
    unknown = httpx.post(f"{url}/v1/classify", json={"text": "12345 67890 2026"}, timeout=60).json()
    assert unknown["language"] is None
    assert any("language" in w for w in unknown["warnings"])
    assert httpx.post(f"{url}/v1/classify", json=ARTICLE, timeout=60).json()["language"] == "fr"


# --- connections ---------------------------------------------------------------------------------------------------
def test_a_connection_that_trickles_its_head_is_closed(live):
    url, _ = live
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        sock.settimeout(5)
        started = time.perf_counter()
        for _ in range(8):
            try:
                sock.sendall(b"a")
            except OSError:
                break
            time.sleep(0.25)
        try:
            data = sock.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert data == b"" and time.perf_counter() - started < 4


def test_a_body_that_trickles_gets_408(live):
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"text\": ")
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


def test_an_oversized_head_is_refused(live):
    url, _ = live
    response = httpx.get(f"{url}/healthz", headers={"X-Big": "x" * 100_000})
    assert 400 <= response.status_code < 500


# --- backpressure, cancellation, coalescing ------------------------------------------------------------------------
def test_past_the_in_flight_bound_requests_get_503_with_retry_after(live, monkeypatch):
    url, service = live
    gate, seen = threading.Event(), []
    monkeypatch.setattr(service.dispatcher, "_predict", _slow_predict(service, gate, seen))

    async def burst():
        async with httpx.AsyncClient(timeout=30) as client:
            tasks = [asyncio.create_task(client.post(f"{url}/v1/classify", json=ARTICLE)) for _ in range(8)]
            await asyncio.sleep(0.5)
            gate.set()
            return await asyncio.gather(*tasks)

    answers = asyncio.run(burst())
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 4 and statuses.count(503) == 4, statuses
    busy = next(r for r in answers if r.status_code == 503)
    assert int(busy.headers["Retry-After"]) >= 1 and busy.json()["error"]["code"] == "overloaded"


def test_a_request_whose_client_left_is_not_embedded(live, monkeypatch):
    url, service = live
    gate, seen = threading.Event(), []
    monkeypatch.setattr(service.dispatcher, "_predict", _slow_predict(service, gate, seen))
    monkeypatch.setattr(service.dispatcher, "window_s", 0.0)
    # One article per call: otherwise a worker may coalesce both held requests and leave the other worker free
    # to take the third request before its client leaves.
    monkeypatch.setattr(service.dispatcher, "max_batch", 1)
    dropped = service.dispatcher.dropped

    def hold(i):
        httpx.post(f"{url}/v1/classify", json={**ARTICLE, "title": f"held {i}"}, timeout=30)

    workers = service.settings.inference_workers
    holders = [threading.Thread(target=hold, args=(i,)) for i in range(workers)]
    for holder in holders:
        holder.start()
    time.sleep(0.5)  # every worker is now blocked on the gate with one request
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/classify", json={**ARTICLE, "title": "other"}, timeout=0.5)
    time.sleep(0.3)
    gate.set()
    for holder in holders:
        holder.join()
    for _ in range(50):
        if service.dispatcher.dropped > dropped:
            break
        time.sleep(0.05)
    assert seen == [1] * workers, seen  # only the held requests were predicted
    assert service.dispatcher.dropped == dropped + 1
    assert service.dispatcher.in_flight == 0


def test_the_dispatcher_coalesces_concurrent_requests():
    calls: list[int] = []

    def predict(model, articles):
        calls.append(len(articles))
        time.sleep(0.05)
        return [a * 2 for a in articles]

    dispatcher = InferenceDispatcher(predict, max_in_flight=100, max_batch=8, window_s=0.02)

    async def many():
        async def one(i):
            dispatcher.admit(1)
            return await dispatcher.submit("m", [i])
        return await asyncio.gather(*(one(i) for i in range(16)))

    results = asyncio.run(many())
    dispatcher.stop()
    assert results == [[i * 2] for i in range(16)]
    assert len(calls) <= 4 and max(calls) <= 8, calls
    assert dispatcher.in_flight == 0


def test_the_dispatcher_bounds_articles_in_flight_and_drops_the_departed():
    gate = threading.Event()
    calls: list[list] = []

    def predict(model, articles):
        calls.append(list(articles))
        gate.wait(5)
        return articles

    dispatcher = InferenceDispatcher(predict, max_in_flight=3, max_batch=1, window_s=0)

    async def scenario():
        dispatcher.admit(1)
        first = asyncio.create_task(dispatcher.submit("m", ["a"]))
        await asyncio.sleep(0.1)
        dispatcher.admit(2)
        gone = asyncio.get_running_loop().create_future()
        second = asyncio.create_task(dispatcher.submit("m", ["b", "c"], gone))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as refused:
            dispatcher.admit(1)
        gone.set_result(None)
        with pytest.raises(ClientGone):
            await second
        gate.set()
        assert await first == ["a"]
        return refused.value

    refused = asyncio.run(scenario())
    time.sleep(0.1)
    dispatcher.stop()
    assert refused.retry_after >= 1
    assert calls == [["a"]]
    assert dispatcher.in_flight == 0 and dispatcher.dropped == 1


def test_the_dispatcher_admits_no_more_than_its_measured_throughput_clears_in_max_wait():
    gate = threading.Event()

    def predict(model, articles):
        if articles[0] == "slow":
            gate.wait(5)
        else:
            time.sleep(0.1)  # 10 articles/s
        return articles

    dispatcher = InferenceDispatcher(predict, max_in_flight=1000, max_batch=1, window_s=0, max_wait_s=0.5)

    async def scenario():
        dispatcher.admit(1)
        await dispatcher.submit("m", ["measure"])  # the throughput is now known: about 10 articles/s
        dispatcher.admit(1)
        slow = asyncio.create_task(dispatcher.submit("m", ["slow"]))
        await asyncio.sleep(0.05)
        admitted = 0
        with pytest.raises(Overloaded):
            for _ in range(100):
                dispatcher.admit(1)
                admitted += 1
        gate.set()
        await slow
        return admitted

    admitted = asyncio.run(scenario())
    assert 2 <= admitted <= 5, admitted  # 0.5 s at about 10 articles/s, the slow one included
    dispatcher.stop()


# --- keys, hosts, paths --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_client(settings: ServiceSettings, live):
    keyed = settings.model_copy(update={"api_keys": f"{KEY_A},{KEY_B}", "admin_keys": ""})
    service = Service.ready(live[1].model, keyed)
    with TestClient(create_app(keyed, service=service)) as client:
        yield client


def test_api_keys_guard_classify_and_model_not_probes(keyed_client):
    assert keyed_client.post("/v1/classify", json=ARTICLE).status_code == 401
    wrong = keyed_client.get("/v1/model", headers={"Authorization": "Bearer " + "x" * 24})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    for key in (KEY_A, KEY_B):  # two keys at once: rotation
        assert keyed_client.get("/v1/model", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert keyed_client.get("/healthz").status_code == 200
    assert keyed_client.get("/readyz").status_code == 200


def test_a_short_key_is_a_settings_error_that_does_not_echo_it():
    from serving.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as error:
        load_settings(api_keys="short-secret")
    assert "NEWSCLF_API_KEYS" in str(error.value) and "short-secret" not in str(error.value)


def test_unknown_hosts_are_refused_probes_stay_open(live):
    url, _ = live
    response = httpx.get(f"{url}/v1/model", headers={"Host": "evil.example"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(f"{url}/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200


def test_no_absolute_path_in_answers(live, tmp_path):
    url, _ = live
    info = httpx.get(f"{url}/v1/model").json()
    assert not info["source"].startswith("/") and info["source"].startswith("models/")
    empty = tmp_path / "models"
    empty.mkdir()
    with TestClient(create_app(ServiceSettings(models_dir=empty))) as client:
        client.app.state.service.wait(30)
        reason = client.get("/readyz").json()["reason"]
    assert str(tmp_path) not in reason and "newsclf train" in reason


def test_docs_are_served_from_local_assets(live):
    url, _ = live
    page = httpx.get(f"{url}/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert httpx.get(f"{url}/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_openapi_states_the_limits_and_statuses(live, settings):
    url, _ = live
    schema = httpx.get(f"{url}/openapi.json").json()
    article = schema["components"]["schemas"]["ArticleRequest"]["properties"]
    assert article["text"]["maxLength"] == settings.max_text_chars and "pattern" in article["text"]
    batch = schema["components"]["schemas"]["BatchRequest"]["properties"]["articles"]
    assert batch["maxItems"] == settings.max_batch_items
    responses = schema["paths"]["/v1/classify"]["post"]["responses"]
    assert {"200", "400", "401", "408", "413", "415", "422", "503"} <= set(responses)
    assert "Retry-After" in responses["503"]["headers"]


# --- hot reload ----------------------------------------------------------------------------------------------------
def test_reload_needs_the_admin_key_swaps_and_keeps_the_old_model_on_failure(live, model_copy):
    url, service = live
    assert httpx.post(f"{url}/v1/admin/reload").status_code == 401
    assert httpx.post(f"{url}/v1/admin/reload", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    before = service.model
    ok = httpx.post(f"{url}/v1/admin/reload", headers=admin, timeout=120)
    assert ok.status_code == 200, ok.text
    assert service.model is not before
    current = service.model
    heads = model_copy / "heads.joblib"
    saved = heads.read_bytes()
    heads.write_bytes(b"")
    try:
        failed = httpx.post(f"{url}/v1/admin/reload", headers=admin, timeout=120)
    finally:
        heads.write_bytes(saved)
    assert failed.status_code == 409 and "heads.joblib" in failed.json()["error"]["message"]
    assert str(model_copy.parent) not in failed.text
    assert service.model is current
    assert httpx.post(f"{url}/v1/classify", json=ARTICLE, timeout=60).status_code == 200


def test_admin_routes_are_disabled_without_admin_keys(keyed_client):
    response = keyed_client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {KEY_A}"})
    assert response.status_code == 403 and "NEWSCLF_ADMIN_KEYS" in response.json()["error"]["message"]


# --- the embedding cache -------------------------------------------------------------------------------------------
def test_a_broken_cache_means_no_cache_one_warning_and_no_500(settings, live, tmp_path, caplog):
    cache_dir = _cache_with_embedder(tmp_path / "cache", Path(settings.model))
    (cache_dir / "embeddings").write_text("not a folder")  # the store cannot be created
    broken = settings.model_copy(update={"embedding_cache_dir": cache_dir})
    service = Service.ready(load(broken), broken)
    with caplog.at_level(logging.WARNING), TestClient(create_app(broken, service=service)) as client:
        answers = [client.post("/v1/classify", json={**ARTICLE, "title": f"t{i}"}) for i in range(3)]
        readiness = client.get("/readyz").json()
    assert [a.status_code for a in answers] == [200, 200, 200]
    warnings = [r for r in caplog.records if "embedding cache" in r.getMessage()]
    assert len(warnings) == 1
    assert readiness["status"] == "ready" and "embedding cache off" in readiness["degraded"][0]
    assert str(tmp_path) not in json.dumps(readiness)


def test_the_measured_throughput_is_the_services_not_one_workers():
    """Two workers whose forward passes are serialised (as the embedder's lock does): each call lasts two passes
    (its own and the wait for the other), but the service answers one article per pass."""
    forward = threading.Lock()

    def predict(model, articles):
        with forward:
            time.sleep(0.05)  # 20 articles/s for the service
        return articles

    dispatcher = InferenceDispatcher(predict, max_in_flight=1000, max_batch=1, window_s=0, workers=2)

    async def scenario():
        for _ in range(20):
            dispatcher.admit(1)
        await asyncio.gather(*(dispatcher.submit("m", [i]) for i in range(20)))

    asyncio.run(scenario())
    assert 14 <= dispatcher._rate <= 22, dispatcher._rate  # one call's own duration would say about 10
    dispatcher.stop()
