"""Data tests: the labelled corpus validates, meets its brief, and never leaks a story across folds."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from newsclf.taxonomy import taxonomy
from training.evaluation import grouped_folds
from training.paths import DATASETS, RAW_SEEDS
from training.validate_corpus import main as validate_main

# The five scraped pages, as delivered: raw data is immutable.
SEED_SHA256 = {
    "000_3e8b85c28a2d59f3.txt": "afcb8fff38d5a788818b180728a058ccec0eb5fd7942ce9e65a768ecc75fa63b",
    "001_a5a27d4c1f8548a9.txt": "91a7d258598c9994243d387ff2117d1dafa2d641e4dfabc19067bc88a72d31c8",
    "002_8ddefcfad6a777dd.txt": "8accfe8e8f81e3342b93b986a657f886e8f991a399f35ef5fd88c58558e3c86c",
    "003_97a8caea948b608b.txt": "206d5c8915407fc330d61258319e46beaa3beda6b20d565cfd3163b8c4dc9ebd",
    "004_396bce5b8647df2a.txt": "9e3eda9fa0bb225104ef408095ee8e913e3fa6edcaa2133c6ac993e138e08c7e",
}


@pytest.fixture(scope="module")
def articles(corpus_articles):
    return corpus_articles


@pytest.fixture(scope="module")
def written(articles):
    return [a for a in articles if a.source == "written"]


def test_validation_command_passes_on_the_committed_corpus(capsys):
    assert validate_main([]) == 0
    assert "The corpus is valid." in capsys.readouterr().out


@pytest.fixture
def corrupted_copy(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS, root)
    path = root / "written" / "w1_east_asia.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    first, second, third = (json.loads(x) for x in lines[:3])
    first["sector"] = "securty"                      # a label outside the taxonomy
    second["partners"] = ["VN"]                       # Vietnam as its own partner
    third["id"] = first["id"]                         # a duplicate id
    lines[:3] = [json.dumps(x, ensure_ascii=False) for x in (first, second, third)]
    copy = json.loads(lines[10]) | {"id": "w1-9999", "group": "w1-g9999"}
    lines.append(json.dumps(copy, ensure_ascii=False))  # the same article again, under a new id
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_validation_command_fails_on_a_corrupted_copy(corrupted_copy: Path, capsys):
    assert validate_main(["--root", str(corrupted_copy)]) == 1
    err = capsys.readouterr().err
    file = "datasets/written/w1_east_asia.jsonl"
    assert f"{file}:1 [w1-0001] sector: 'securty' is not in the taxonomy" in err
    assert f"{file}:2 [w1-0002] partners: VN is never its own partner" in err
    assert f"{file}:3 [w1-0001] id: duplicate of {file}:1" in err
    assert f"{file}:93 [w1-9999] text: exact duplicate of w1-0011" in err
    assert "json: invalid JSON" in err


def test_region_must_follow_the_main_partner(tmp_path: Path, capsys):
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS, root)
    path = root / "written" / "w3_europe.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = next(json.loads(x) for x in lines if json.loads(x)["region"] == "europe")
    index = next(i for i, x in enumerate(lines) if json.loads(x)["id"] == record["id"])
    record["partners"] = ["JP"] + record["partners"]
    lines[index] = json.dumps(record, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert validate_main(["--root", str(root)]) == 1
    assert "main partner JP is in 'east_asia', not 'europe'" in capsys.readouterr().err


def test_raw_seed_pages_are_untouched():
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(RAW_SEEDS.glob("*.txt"))}
    assert found == SEED_SHA256


def test_seed_items_cover_every_page_and_teaser(articles):
    seeds = [a for a in articles if a.source == "seed"]
    teasers = [a for a in articles if a.source == "seed_teaser"]
    assert len(seeds) == 5
    assert len(teasers) >= 30


def test_written_corpus_meets_its_brief(written):
    tax = taxonomy()
    n = len(written)
    assert n >= 600
    langs = Counter(a.lang for a in written)
    assert langs["fr"] >= 0.55 * n and langs["en"] >= 0.20 * n and langs["vi"] >= 0.15 * n
    lengths = [len(a.text) for a in written]
    assert min(lengths) >= 300 and max(lengths) <= 4000
    assert sum(x > 2000 for x in lengths) >= n / 4
    sectors = Counter(a.sector for a in written)
    assert all(sectors[s] >= 50 for s in tax.sectors) and sectors["security"] >= 200
    topics = Counter(t for a in written for t in a.topics)
    assert all(topics[t] >= 40 for t in tax.topics)
    regions = Counter(a.region for a in written)
    assert all(regions[r] >= 30 for r in tax.regions)
    assert len({p for a in written for p in a.partners}) >= 35


def test_at_least_15_percent_carry_scraped_noise(written):
    markers = ("Voir plus", "Read more", "Xem thêm", "ảnh 1", "Photo :", "Photo:")
    noisy = [a for a in written if any(m in a.text for m in markers) or a.title in a.text]
    assert len(noisy) >= 0.15 * len(written)


def test_hard_cases_are_present(written):
    tags = Counter(t for a in written for t in a.hard_cases)
    for tag in ("second_country_in_passing", "diplomatic_vocabulary", "domestic_crime", "multi_topic",
                "capital_or_demonym"):
        assert tags[tag] >= 30, tag


def test_cross_validation_folds_keep_groups_whole(written):
    folds = grouped_folds(written, 5, 13)
    test_sets = [set(test) for _, test in folds]
    assert set().union(*test_sets) == set(range(len(written)))
    for train, test in folds:
        assert not {written[i].group for i in train} & {written[i].group for i in test}


def test_dataset_card_counts_match_the_command(capsys):
    validate_main(["--markdown"])
    printed = capsys.readouterr().out.strip()
    card = (DATASETS / "DATASET_CARD.md").read_text(encoding="utf-8")
    start = card.index("<!-- counts:start -->") + len("<!-- counts:start -->")
    end = card.index("<!-- counts:end -->")
    assert card[start:end].strip() == printed


def test_every_topic_has_evidence_inside_the_text(articles):
    for a in articles:
        assert set(a.evidence) == set(a.topics), a.id
        for topic, spans in a.evidence.items():
            assert spans, (a.id, topic)
            for start, end in spans:
                assert 0 <= start < end <= len(a.text), (a.id, topic)
                assert a.text[start:end].strip(), (a.id, topic)


def test_evidence_and_real_people_rules_are_enforced(tmp_path: Path, capsys):
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS, root)
    path = root / "written" / "w2_southeast_asia.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(x) for x in lines]
    with_topics = [i for i, r in enumerate(records) if len(r["topics"]) >= 2]
    a, b, c = (records[i] for i in with_topics[:3])
    a["evidence"].pop(a["topics"][0])                              # a topic without evidence
    b["evidence"][b["topics"][0]] = [[0, len(b["text"]) + 5]]      # a span past the end of the text
    c["evidence"]["terrorism" if "terrorism" not in c["topics"] else "drugs"] = [[0, 10]]  # evidence, no topic
    real = (DATASETS / "real_people.txt").read_text(encoding="utf-8").splitlines()[-1]
    records[0]["text"] += f" {real.upper()} a déclaré que la coopération était excellente."  # a real person
    for i in (*with_topics[:3], 0):
        lines[i] = json.dumps(records[i], ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert validate_main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"[{a['id']}] evidence: topic {a['topics'][0]!r} has no evidence span" in err
    assert f"[{b['id']}] evidence: {b['topics'][0]!r}: [0, {len(b['text']) + 5}] is not a [start, end] span" in err
    assert f"[{c['id']}] evidence:" in err and "is not among the item's topics" in err
    assert f"[{records[0]['id']}] text: names {real!r}, a real person" in err


def test_agreement_table_of_the_card_is_the_commands(capsys, articles):
    from training.agreement import agreement_table, format_table

    card = (DATASETS / "DATASET_CARD.md").read_text(encoding="utf-8")
    start = card.index("<!-- agreement:start -->") + len("<!-- agreement:start -->")
    end = card.index("<!-- agreement:end -->")
    assert card[start:end].strip() == format_table(agreement_table())
    sample = (DATASETS / "agreement" / "sample.jsonl").read_text().splitlines()
    assert len(sample) >= 0.15 * len(articles)  # at least 15% of the corpus was labelled twice


@pytest.mark.slow
def test_the_lead_alone_is_clearly_weaker_than_the_article(written):
    """Shortcut check: a sector classifier that reads only the first 20 words of the body must score clearly
    below one that reads the whole article; if it did not, the corpus would teach lead keywords, not the task."""
    import re

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline, make_union

    from newsclf.cleaning import clean_text, prepare_document

    def lead(a) -> str:
        return " ".join(re.findall(r"\S+", clean_text(a.text, a.title))[:20])

    y = np.array([a.sector for a in written])
    folds = grouped_folds(written, 5, 13)
    scores = {}
    for name, docs in (("full", [prepare_document(a.text, a.title) for a in written]),
                       ("lead", [lead(a) for a in written])):
        predicted = np.empty(len(y), dtype=object)
        for train, test in folds:
            model = make_pipeline(
                make_union(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                           TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
                LogisticRegression(C=10, max_iter=3000, class_weight="balanced"))
            model.fit([docs[i] for i in train], y[train])
            predicted[test] = model.predict([docs[i] for i in test])
        scores[name] = f1_score(y, predicted, average="macro")
    print(f"sector macro-F1, grouped 5-fold CV: full text {scores['full']:.3f}, first 20 words {scores['lead']:.3f}")
    assert scores["lead"] <= scores["full"] - 0.10, scores
