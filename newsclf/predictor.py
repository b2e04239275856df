"""The one path from article text to labels, used by evaluation, the CLI, the API, the pyfunc and batch scoring.

``prepare_documents`` says what the model reads; ``read_sentences`` cuts the article's sentences (the candidates
for topic evidence) out of the text the client sent; ``features`` computes the views the heads read;
``assemble_predictions`` turns head scores into labels (the thresholds, the gazetteer's partners and region, the
rules for domestic news, the evidence, the warnings). ``Predictor`` chains them. Baselines with other features
reuse ``assemble_predictions``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from sklearn.pipeline import FeatureUnion

from newsclf.cleaning import normalise_line, prepare_document
from newsclf.embedding import Embedder
from newsclf.gazetteer import prior_region, rank_partners
from newsclf.heads import Features, RegionHead, SentenceTopics, TopicsHead, ViewBlend
from newsclf.language import detect_language
from newsclf.sentences import Span, article_sentences
from newsclf.taxonomy import taxonomy

LOW_CONFIDENCE = 0.5
SERVICE_LANGUAGES = ("fr", "en", "vi")
NO_PARTNERS = float("inf")  # a partner share no country reaches: the head lists none


@dataclass(frozen=True)
class ArticleInput:
    text: str
    title: str | None = None


class HasText(Protocol):
    """Anything with a text and a title (a corpus article, an API request)."""

    text: str
    title: str | None


@dataclass(frozen=True)
class LabelScores:
    label: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Evidence:
    """A sentence of the article's ``text`` (character offsets) and how strongly it states the topic."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Prediction:
    sector: LabelScores
    topics: list[tuple[str, float]]  # past their thresholds, best first
    topic_scores: dict[str, float]
    region: LabelScores
    partners: list[str]  # ISO alpha-2, most prominent first
    language: str | None  # ISO 639-1; None when not recognised (with a warning)
    warnings: list[str] = field(default_factory=list)
    topic_evidence: dict[str, list[Evidence]] = field(default_factory=dict)  # for the predicted topics

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Heads:
    """Everything fitted, apart from the embedder."""

    sector: ViewBlend
    topics: TopicsHead
    region: RegionHead
    partner_min_share: float
    topic_labels: tuple[str, ...]
    selection_scores: dict = field(default_factory=dict)  # inner-CV scores behind the chosen settings
    views: tuple[str, ...] = ("embedding",)
    lexical: FeatureUnion | None = None  # the fitted TF-IDF of the lexical view
    sentences: SentenceTopics | None = None  # the sentence-level topic model
    # Partner share in stories the region head reads as multilateral (participants are not partners there).
    partner_min_share_multilateral: float | None = None


@dataclass(frozen=True)
class ArticleSentences:
    """An article's candidate evidence sentences: spans of its text and what the sentence model reads."""

    spans: list[Span]
    texts: list[str]


def _as_input(article: str | HasText) -> ArticleInput:
    if isinstance(article, str):
        return ArticleInput(text=article)
    return ArticleInput(text=article.text, title=article.title or None)


def prepare_documents(articles: Sequence[str | HasText], *, clean: bool = True) -> list[str]:
    """What the model reads for each article (title first, cleaned body): fitting and predicting alike."""
    inputs = [_as_input(a) for a in articles]
    return [prepare_document(a.text, a.title, clean=clean) for a in inputs]


def read_sentences(articles: Sequence[str | HasText]) -> list[ArticleSentences]:
    out = []
    for article in map(_as_input, articles):
        spans = article_sentences(article.text)
        out.append(ArticleSentences(spans, [normalise_line(article.text[s.start:s.end]) for s in spans]))
    return out


def gazetteer_priors(documents: Sequence[str], ranked: Sequence[list[tuple[str, float]]]) -> list[str | None]:
    """The gazetteer's region for each document (``prior_region``), as the region head reads it: fitting and
    predicting alike. ``ranked``: each document's countries, ``rank_partners(document, min_share=0.0)``."""
    tax = taxonomy()
    region_of = {code: tax.region_of_country(code) for r in ranked for code, _ in r}
    return [prior_region(d, r, region_of) for d, r in zip(documents, ranked, strict=True)]


def features(heads: Heads, documents: Sequence[str], embedder: Embedder | None) -> Features:
    """The views the heads read, computed once per batch."""
    embedding = embedder.encode(documents) if "embedding" in heads.views and embedder is not None else None
    lexical = heads.lexical.transform(documents) if heads.lexical is not None else None
    return Features(embedding=embedding, lexical=lexical)


def assemble_predictions(heads: Heads, documents: Sequence[str], F: Features,
                         sentences: Sequence[ArticleSentences] | None = None,
                         input_warnings: Callable[[str], list[str]] | None = None) -> list[Prediction]:
    """Labels, scores, evidence and warnings from the heads applied to features ``F`` of ``documents``.

    ``sentences``: the articles' sentences, for the sentence-level topic model and the evidence (None: no
    evidence). ``input_warnings(document)`` adds what only the feature extractor knows (e.g. truncation).
    """
    h = heads
    sentence_scores = best_sentence = None
    if h.sentences is not None and sentences is not None:
        sentence_scores, best_sentence = h.sentences.best([s.texts for s in sentences])
    sector_p = h.sector.predict_proba(F)
    topic_p = h.topics.predict_proba(F, sentence_scores)
    ranked = [rank_partners(d, min_share=0.0) for d in documents]
    region_p = h.region.predict_proba(F, gazetteer_priors(documents, ranked))
    out = []
    for i, document in enumerate(documents):
        sector = _label_scores(h.sector.classes_, sector_p[i])
        region = _label_scores(h.region.classes_, region_p[i])
        topics = [
            (t, round(float(p), 4))
            for t, p, th in zip(h.topic_labels, topic_p[i], h.topics.thresholds_, strict=True)
            if p >= th
        ]
        share = h.partner_min_share
        if region.label == "multilateral" and h.partner_min_share_multilateral is not None:
            share = h.partner_min_share_multilateral
        top = max((s for _, s in ranked[i]), default=0.0)
        partners = [code for code, s in ranked[i] if s >= share * top][:5] if share != NO_PARTNERS else []
        evidence: dict[str, list[Evidence]] = {}
        if best_sentence is not None:
            for t, _ in topics:
                j = h.topic_labels.index(t)
                k = int(best_sentence[i, j])
                if k >= 0:
                    span = sentences[i].spans[k]
                    evidence[t] = [Evidence(span.start, span.end, round(float(sentence_scores[i, j]), 4))]
        if sector.label == "none":
            # Domestic news has no partner by definition: keep the answer self-consistent. The region's
            # confidence stays the region head's own score for "none", so a disagreement shows as a warning.
            topics, partners, evidence = [], [], {}
            region = LabelScores("none", region.scores.get("none", 0.0), region.scores)
        language = detect_language(document)
        warnings = _label_warnings(document, sector, region, language)
        if input_warnings is not None:
            warnings += input_warnings(document)
        out.append(Prediction(
            sector=sector,
            topics=sorted(topics, key=lambda tp: -tp[1]),
            topic_scores={t: round(float(p), 4) for t, p in zip(h.topic_labels, topic_p[i], strict=True)},
            region=region,
            partners=partners,
            language=language,
            warnings=warnings,
            topic_evidence=evidence,
        ))
    return out


def _label_warnings(document: str, sector: LabelScores, region: LabelScores, language: str | None) -> list[str]:
    warnings = []
    if not document.strip():
        warnings.append("no article text is left after removing teasers and captions")
    if sector.confidence < LOW_CONFIDENCE:
        warnings.append(f"low confidence: sector {sector.label} at {sector.confidence:.2f}")
    if region.confidence < LOW_CONFIDENCE:
        warnings.append(f"low confidence: region {region.label} at {region.confidence:.2f}")
    if language not in SERVICE_LANGUAGES:
        warnings.append("language not recognised as French, English or Vietnamese: labels may be unreliable")
    return warnings


def _label_scores(classes: np.ndarray, proba: np.ndarray) -> LabelScores:
    best = int(np.argmax(proba))
    return LabelScores(
        label=str(classes[best]), confidence=round(float(proba[best]), 4),
        scores={str(c): round(float(p), 4) for c, p in zip(classes, proba, strict=True)},
    )


class Predictor:
    """Cleaning, the views (embedding, TF-IDF), the heads, the sentence model and the gazetteer behind one
    ``predict``."""

    def __init__(self, embedder: Embedder, heads: Heads, *, clean: bool = True) -> None:
        self.embedder = embedder
        self.heads = heads
        self.clean = clean

    def documents(self, articles: Sequence[str | HasText]) -> list[str]:
        return prepare_documents(articles, clean=self.clean)

    def predict(self, articles: Sequence[str | HasText]) -> list[Prediction]:
        documents = self.documents(articles)
        F = features(self.heads, documents, self.embedder)
        sentences = read_sentences(articles) if self.heads.sentences is not None else None
        return assemble_predictions(self.heads, documents, F, sentences, self._input_warnings)

    def _input_warnings(self, document: str) -> list[str]:
        if "embedding" not in self.heads.views:
            return []
        cfg = self.embedder.config
        limit = cfg.window_tokens * cfg.max_windows if cfg.long_text == "windows" else self.embedder.max_tokens
        tokens = self.embedder.count_tokens(document)
        if tokens > limit:
            return [f"text truncated: the model read the first {limit} of {tokens} tokens"]
        return []
