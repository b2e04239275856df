"""The page's server side: the opt-in explanation, the page itself, corrections (API, store, export).

Around the small real model of the session (``small_model_dir``); the browser tests (test_page_browser.py) drive
the same endpoints from the page.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsclf.cleaning import clean_line
from newsclf.feedback_store import Correction, FeedbackStore
from serving.app import create_app
from serving.schemas import EXAMPLE_TEXT, EXAMPLE_TITLE
from serving.service import Service, load
from serving.settings import ServiceSettings, SettingsError, load_settings
from training.feedback_export import main as export_main
from training.paths import DATASETS
from training.records import corpus_files, read_lines
from training.validate_corpus import validate

pytestmark = pytest.mark.slow

# Written for this test: an article that is in no corpus file (the export refuses duplicates of the corpus).
NEW_TITLE = "Vietnam and Laos police agree to share data on cross-border drug rings"
NEW_TEXT = (
    "Vientiane, March 4 (VNA) - Vietnam's Ministry of Public Security and Laos' Ministry of Public Security agreed "
    "on Tuesday in Vientiane to exchange information in real time on drug trafficking rings operating along "
    "their shared border. The Laotian side pledged to hand over suspects wanted by Vietnamese courts, and the two "
    "ministries will train investigators together in the northern provinces. - VNA"
)


@pytest.fixture(scope="module")
def settings(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ServiceSettings:
    return ServiceSettings(model=str(small_model_dir),
                           feedback_db=tmp_path_factory.mktemp("feedback") / "feedback.db")


@pytest.fixture(scope="module")
def client(settings: ServiceSettings):
    service = Service.ready(load(settings), settings)
    with TestClient(create_app(settings, service=service)) as client:
        yield client


def test_explanation_is_opt_in_and_points_into_the_document(client):
    plain = client.post("/v1/classify", json={"text": EXAMPLE_TEXT, "title": EXAMPLE_TITLE})
    assert plain.status_code == 200 and "explanation" not in plain.json()
    response = client.post("/v1/classify?explain=true", json={"text": EXAMPLE_TEXT, "title": EXAMPLE_TITLE})
    assert response.status_code == 200, response.text
    result = response.json()
    x = result["explanation"]
    assert x["document"].startswith(EXAMPLE_TITLE + "\n")
    assert x["read_chars"] is None  # a short article is read whole
    assert x["mentions"], "the example names Cambodia, Phnom Penh and 'cambodgien'"
    for m in x["mentions"]:
        assert x["document"][m["start"]:m["end"]] == m["form"]
    assert {p["code"] for p in result["partners"]} <= {m["code"] for m in x["mentions"]}
    assert {"Phnom Penh", "cambodgien"} <= {m["form"] for m in x["mentions"] if m["code"] == "KH"}
    predicted = {t["label"]: t for t in result["topics"]}
    assert set(x["evidence"]) == set(predicted)
    for topic, spans in x["evidence"].items():
        sent = predicted[topic]["evidence"][0]
        assert [x["document"][s["start"]:s["end"]] for s in spans] == [clean_line(EXAMPLE_TEXT[sent["start"]:
                                                                                               sent["end"]])]
    # Every topic has a best sentence in the text sent, for a correction that adds a topic.
    assert set(x["topic_sentences"]) == set(result["topic_scores"])
    for span in x["topic_sentences"].values():
        assert EXAMPLE_TEXT[span["start"]:span["end"]].strip()


def test_truncation_point_is_where_the_embedding_stops(client, settings):
    # ~6,000 characters, well over 512 tokens; numbered, since cleaning drops a repeated paragraph.
    long_text = "\n".join(f"({i}) " + EXAMPLE_TEXT.replace("\n\n", " ") for i in range(6))
    x = client.post("/v1/classify?explain=true", json={"text": long_text}).json()["explanation"]
    assert x["read_chars"] is not None and 0 < x["read_chars"] < len(x["document"])
    predictor = client.app.state.service.model.predictor
    limit = predictor.embedder.max_tokens
    assert limit - 3 <= predictor.embedder.count_tokens(x["document"][:x["read_chars"]]) <= limit


def test_the_page_is_served_in_english_and_french(client):
    en = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert en.status_code == 200 and '<html lang="en">' in en.text and "Article text" in en.text
    fr = client.get("/?lang=fr")
    assert '<html lang="fr">' in fr.text and "Texte de l&#39;article" in fr.text
    assert client.get("/", headers={"Accept-Language": "fr-FR"}).text.count('lang="fr"') >= 1
    script = client.get("/static/page/page.js")
    assert script.status_code == 200 and "explain=true" in script.text
    assert "http" not in client.get("/static/page/page.css").text  # nothing fetched from elsewhere


def _correction(**changes) -> dict:
    body = {"title": NEW_TITLE, "text": NEW_TEXT, "language": "en", "sector": "security",
            "topics": ["drugs", "information_sharing"], "region": "southeast_asia", "partners": ["la"],
            "evidence": {"drugs": [[0, 120]], "information_sharing": [[0, 120]]},
            "predicted": {"sector": "diplomacy"}}
    return body | changes


def test_a_correction_is_stored_with_the_model_version(client, settings):
    response = client.post("/v1/feedback", json=_correction())
    assert response.status_code == 201, response.text
    saved = response.json()
    served = client.app.state.service.model.ref
    assert saved["model"] == served.model_dump() and saved["status"] == "saved"
    stored = FeedbackStore(settings.feedback_db).all()
    assert stored[-1].id == saved["id"] and stored[-1].partners == ("LA",)
    assert (stored[-1].model_name, stored[-1].model_version) == (served.name, served.version)
    assert stored[-1].predicted == {"sector": "diplomacy"}


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"sector": "police"}, "sector", "not a sector"),
    ({"topics": ["drug"]}, "topics", "not a topic"),
    ({"partners": ["VN"]}, "partners", "never VN"),
    ({"partners": ["XX"]}, "partners", "ISO 3166-1"),
    ({"sector": "none"}, "body", "sector 'none'"),
    ({"evidence": {"drugs": [[0, 10_000]]}}, "body", "not a span inside text"),
    ({"language": "de"}, "language", ""),
    ({"tittle": "x"}, "tittle", "not a field"),
])
def test_a_bad_correction_is_a_422_that_says_what_to_fix(client, changes, field, words):
    response = client.post("/v1/feedback", json=_correction(**changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["fields"][0]["field"] == field and words in error["fields"][0]["problem"]
    assert "Traceback" not in response.text


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    good = Correction(text="t", title=None, language="en", sector="security", topics=(), region="europe",
                      partners=("FR",), model_name="m", model_version="1")
    store.add(good)
    with pytest.raises(sqlite3.IntegrityError):
        store.add(Correction(**{**good.__dict__, "language": None}))  # NOT NULL: the transaction rolls back
    assert [c.id for c in store.all()] == [1]


def test_feedback_settings_fail_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSCLF_FEEDBACK_DB", str(tmp_path / "missing" / "f.db"))
    monkeypatch.setenv("NEWSCLF_MLFLOW_UI_URL", "localhost:5000")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "NEWSCLF_FEEDBACK_DB" in str(exc.value) and "NEWSCLF_MLFLOW_UI_URL" in str(exc.value)


@pytest.fixture()
def datasets_copy(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS, root, ignore=shutil.ignore_patterns("feedback"))
    return root


def test_export_writes_corpus_records_that_pass_the_validator(tmp_path, datasets_copy, capsys):
    db = tmp_path / "feedback.db"
    store = FeedbackStore(db)
    base = dict(text=NEW_TEXT, title=NEW_TITLE, language="en", sector="diplomacy", topics=(), region="southeast_asia",
                partners=("LA",), model_name="newsclf", model_version="7", model_run_id="abc")
    store.add(Correction(**base))
    store.add(Correction(**{**base, "sector": "security", "topics": ("drugs",), "evidence": {"drugs": [(0, 120)]}}))
    seed = json.loads((DATASETS / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[0])
    store.add(Correction(**{**base, "text": seed["text"], "title": seed["title"]}))  # already in the corpus

    assert export_main(["export", "--db", str(db), "--root", str(datasets_copy)]) == 1  # one left out
    err = capsys.readouterr().err
    assert "exact duplicate of seed-000" in err
    out = datasets_copy / "feedback" / "corrections.jsonl"
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 1  # the newest correction of the new article, not the duplicate
    (record,) = records
    assert record["source"] == "feedback" and record["sector"] == "security" and record["topics"] == ["drugs"]
    assert record["evidence"] == {"drugs": [[0, 120]]}
    # The corpus reads the exported file, and the whole corpus is still valid.
    files = corpus_files(datasets_copy)
    assert out in files
    assert validate(read_lines(files, datasets_copy), datasets_copy / "raw" / "seeds") == []
