"""Code tests: the language reported with every prediction."""

from __future__ import annotations

from newsclf.language import detect_language


def test_short_examples():
    assert detect_language("Le ministre de la Sécurité publique a reçu une délégation.") == "fr"
    assert detect_language("The minister of public security received a delegation from Laos.") == "en"
    assert detect_language("Bộ trưởng Bộ Công an đã tiếp đoàn đại biểu Lào.") == "vi"
    assert detect_language("12345 !!!") is None


def test_agrees_with_the_corpus_labels(corpus_articles):
    articles = corpus_articles
    wrong = [a.id for a in articles if detect_language(a.title + "\n" + a.text) != a.lang]
    assert len(wrong) <= 0.01 * len(articles), wrong
