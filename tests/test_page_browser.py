"""The analysts' page in a real browser: Debian's headless Chromium driven by Playwright (``executable_path``:
Playwright downloads nothing), against a real ``uvicorn serving.app:app`` on a port of 18300-18399 serving the
model trained once by the session (its seed-article answers are the full model's, not a 60-article toy's).

Each state is saved as a screenshot under ``reports/page_*.png`` and named in the test's report properties.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from newsclf.feedback_store import FeedbackStore
from training.feedback_export import export
from training.paths import DATASETS, REPORTS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
PORTS = range(18300, 18400)  # the project's ports for test servers
MAX_TEXT_CHARS = 20_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make setup")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: `make browser` installs it"),
]

# Written for this test: an article in no corpus file, so its correction can be exported.
NEW_TITLE = "Vietnam, Laos step up police cooperation against drug rings on their border"
NEW_TEXT = (
    "Vientiane, March 4 (VNA) - Vietnam's Ministry of Public Security and Laos' Ministry of Public Security agreed "
    "on Tuesday in Vientiane to exchange information in real time on drug trafficking rings operating along "
    "their shared border.\n\nThe Laotian side pledged to hand over suspects wanted by Vietnamese courts, and the "
    "two ministries will train investigators together in the northern provinces. - VNA"
)


def _seed(index: int) -> dict:
    return json.loads((DATASETS / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[index])


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 18300-18399")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``uvicorn serving.app:app`` around the session's trained model, with its own corrections file.
    ``NEWSCLF_PAGE_TEST_MODEL=models/<folder>`` serves a model already trained instead (to work on the page
    without the session's training)."""
    trained_model_dir = os.environ.get("NEWSCLF_PAGE_TEST_MODEL") or request.getfixturevalue("trained_model_dir")
    workdir = tmp_path_factory.mktemp("page-server")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NEWSCLF_MODEL": str(trained_model_dir),
           "NEWSCLF_FEEDBACK_DB": str(workdir / "feedback.db"), "NEWSCLF_MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
           "NEWSCLF_MLFLOW_UI_URL": "http://127.0.0.1:5000"}
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{(workdir / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the model was not ready after 600 s:\n{(workdir / 'server.log').read_text()}")
            time.sleep(0.5)
        yield {"url": base, "feedback_db": workdir / "feedback.db"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="en-GB")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server['url']}/?lang=en")
    page.wait_for_selector("#model-facts:not([hidden])")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


_SHOTS: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def list_screenshots(request: pytest.FixtureRequest):
    """Name the screenshots in the test run's output (and each test's report properties, for JUnit XML)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and _SHOTS:
        with capture.global_and_fixture_disabled():  # past pytest's capture, into the run's output
            reporter.write_line("")
            reporter.write_line("page screenshots: " + ", ".join(str(p.relative_to(ROOT)) for p in _SHOTS))


def _shot(page, name: str, record_property) -> Path:
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"page_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    record_property(f"screenshot_{name}", str(path))
    _SHOTS.append(path)
    return path


def _classify(page, title: str, text: str) -> None:
    page.fill("#title", title)
    page.fill("#text", text)
    page.click("#classify")
    page.wait_for_selector("#result:not([hidden])")


def test_a_seed_article_shows_security_and_its_partner_highlighted(page, record_property):
    seed = _seed(0)  # Vietnam-China police cooperation: To Lam in Beijing (partner CN)
    assert seed["sector"] == "security" and seed["partners"][0] == "CN"
    assert "newsclf" in page.inner_text("#model-facts")
    assert "cv.sector.macro_f1" in page.inner_text("#model-scores")
    assert page.get_attribute("#model-facts a", "href").startswith("http://127.0.0.1:5000/#/runs/")
    _classify(page, seed["title"], seed["text"])
    assert page.inner_text("#sector-bars li.chosen .bar-label") == "security"
    assert page.locator("#sector-bars li").count() == 7
    assert "CN" in page.inner_text("#partners")
    partner_marks = page.locator("#document mark.partner")
    assert partner_marks.count() >= 1
    assert set(partner_marks.evaluate_all("ms => ms.map(m => m.title)")) == {"CN"}
    assert {"Pékin", "chinois"} & set(partner_marks.all_inner_texts())
    # The text shown is what the model read: the photo caption ("... Photo: VOV") is gone.
    assert "Photo: VOV" in seed["text"] and "Photo: VOV" not in page.inner_text("#document")
    topics = page.locator("#topics .tag").all_inner_texts()
    evidence_topics = " ".join(page.locator("#document .evidence").evaluate_all(
        "es => es.map(e => e.dataset.topics)")).split()
    assert set(topics) == set(evidence_topics), "each predicted topic has its evidence marked in the text"
    # 833 tokens: the page marks where the embedding stopped reading, and says so among the warnings.
    assert "text truncated" in page.inner_text("#warnings")
    cut = page.locator("#document .cut")
    assert cut.count() == 1 and "stopped reading here" in cut.inner_text()
    cut.scroll_into_view_if_needed()
    _shot(page, "article", record_property)


def test_the_keyboard_reaches_the_fields_in_reading_order(page):
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert "file-input" in reached, reached
    fields = [r for r in reached[:reached.index("file-input") + 1] if r in ("title", "text", "classify", "file-input")]
    assert fields == ["title", "text", "classify", "file-input"], reached
    for field in ("title", "text", "file-input"):  # every field has its label
        assert page.locator(f"label[for={field}]").count() == 1


def test_an_api_error_is_shown_in_its_words_and_the_text_stays(page, record_property):
    text = "Hanoi (VNA) – " + "x" * MAX_TEXT_CHARS
    page.fill("#text", text)
    page.click("#classify")
    page.wait_for_selector("#classify-error:not([hidden])")
    error = page.inner_text("#classify-error")
    assert f"text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}" in error
    assert page.input_value("#text") == text
    _shot(page, "api_error", record_property)


def test_a_file_is_classified_sorted_filtered_and_downloaded_as_csv(page, tmp_path, record_property):
    rows = [_seed(i) for i in (0, 2, 4)]
    source = tmp_path / "articles.jsonl"
    source.write_text("".join(json.dumps({"id": f"a{i}", "title": r["title"], "text": r["text"]},
                                         ensure_ascii=False) + "\n" for i, r in enumerate(rows)), encoding="utf-8")
    page.set_input_files("#file-input", str(source))
    page.wait_for_selector("#file-results:not([hidden])")
    assert page.get_attribute("#file-progress", "value") == "3"
    assert page.locator("#results tbody tr").count() == 3
    page.click("#results th button[data-key=id]")
    page.click("#results th button[data-key=id]")  # twice: descending
    assert page.locator("#results tbody tr td:first-child").all_inner_texts() == ["a2", "a1", "a0"]
    assert page.get_attribute("#results th:first-child", "aria-sort") == "descending"
    first_sector = page.inner_text("#results tbody tr:first-child td:nth-child(2)")
    page.select_option("#filter-sector", first_sector)
    shown = page.locator("#results tbody tr td:nth-child(2)").all_inner_texts()
    assert shown and set(shown) == {first_sector}
    _shot(page, "file", record_property)
    with page.expect_download() as info:
        page.click("#download-csv")
    table = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert [r["id"] for r in table] == ["a0", "a1", "a2"]  # every article, in file order, whatever is shown
    assert set(table[0]) >= {"sector", "topics", "region", "partners", "language"}
    assert table[0]["sector"] == "security"


def test_a_bad_file_shows_its_error(page, tmp_path, record_property):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a1", "text": "Hanoi (VNA) - a text"}\n{"id": "a2", "text": \n', encoding="utf-8")
    page.set_input_files("#file-input", str(broken))
    page.wait_for_selector("#file-error:not([hidden])")
    assert "line 2: not valid JSON" in page.inner_text("#file-error")
    # A well-formed file the API refuses: its words, and the file's line.
    empty = tmp_path / "empty-text.csv"
    empty.write_text('id,title,text\nb1,A title,"Hanoi (VNA) - a text, with a comma"\nb2,Another,"   "\n',
                     encoding="utf-8")
    page.set_input_files("#file-input", str(empty))
    page.wait_for_selector("#file-error:not([hidden])")
    page.wait_for_function("document.querySelector('#file-error').innerText.includes('articles[1].text')")
    error = page.inner_text("#file-error")
    assert "must not be empty, whitespace or invisible characters only" in error and "line 3, id b2" in error
    _shot(page, "bad_file", record_property)


def test_a_correction_is_saved_and_appears_in_the_export(page, server, tmp_path, record_property):
    _classify(page, NEW_TITLE, NEW_TEXT)
    page.select_option("#fix-sector", "security")
    for box in page.locator("#fix-topics input").all():  # exactly these two, whatever the model said
        box.set_checked(box.get_attribute("value") in ("drugs", "information_sharing"))
    page.select_option("#fix-region", "southeast_asia")
    page.fill("#fix-partners", "LA")
    page.fill("#fix-note", "checked by the browser test")
    page.click("#save")
    page.wait_for_function("document.querySelector('#save-status').textContent.startsWith('Saved')")
    _shot(page, "correction_saved", record_property)
    (stored,) = FeedbackStore(server["feedback_db"]).all()
    assert stored.topics == ("drugs", "information_sharing") and stored.partners == ("LA",)
    with urllib.request.urlopen(f"{server['url']}/v1/model", timeout=10) as response:
        served = json.load(response)
    assert (stored.model_name, stored.model_version, stored.model_run_id) == (served["name"], served["version"],
                                                                              served["run_id"])
    assert stored.note == "checked by the browser test" and stored.predicted["sector"]
    # Evidence for each topic ticked: that topic's best sentence in the text sent.
    assert set(stored.evidence) == {"drugs", "information_sharing"}

    root = tmp_path / "datasets"
    shutil.copytree(DATASETS, root, ignore=shutil.ignore_patterns("feedback"))
    result = export(server["feedback_db"], root)
    assert not result.skipped, result.skipped
    (record,) = result.written
    assert record["source"] == "feedback" and record["text"] == NEW_TEXT and record["topics"] == [
        "drugs", "information_sharing"]
