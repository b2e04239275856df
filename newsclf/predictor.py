"""The one path from article text to labels, used by evaluation, the CLI, the API, the pyfunc and batch scoring.

``prepare_documents`` says what the model reads; ``assemble_predictions`` turns head scores into labels (the
thresholds, the gazetteer's partners and region, the rules for domestic news, the warnings); ``Predictor``
puts the embedder in front of both. Baselines with other features reuse the same two functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression

from newsclf.cleaning import prepare_document
from newsclf.embedding import Embedder
from newsclf.gazetteer import rank_partners
from newsclf.heads import RegionHead, TopicsHead
from newsclf.language import detect_language
from newsclf.taxonomy import taxonomy

LOW_CONFIDENCE = 0.5
SERVICE_LANGUAGES = ("fr", "en", "vi")


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
class Prediction:
    sector: LabelScores
    topics: list[tuple[str, float]]  # past their thresholds, best first
    topic_scores: dict[str, float]
    region: LabelScores
    partners: list[str]  # ISO alpha-2, most prominent first
    language: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Heads:
    """Everything fitted, apart from the embedder."""

    sector: LogisticRegression
    topics: TopicsHead
    region: RegionHead
    partner_min_share: float
    topic_labels: tuple[str, ...]
    selection_scores: dict = field(default_factory=dict)  # inner-CV scores behind the chosen settings


def _as_input(article: str | HasText) -> ArticleInput:
    if isinstance(article, str):
        return ArticleInput(text=article)
    return ArticleInput(text=article.text, title=article.title or None)


def prepare_documents(articles: Sequence[str | HasText], *, clean: bool = True) -> list[str]:
    """What the model reads for each article (title first, cleaned body): fitting and predicting alike."""
    inputs = [_as_input(a) for a in articles]
    return [prepare_document(a.text, a.title, clean=clean) for a in inputs]


def main_region(ranked: Sequence[tuple[str, float]]) -> str | None:
    """The region of the gazetteer's most prominent country."""
    return taxonomy().region_of_country(ranked[0][0]) if ranked else None


def assemble_predictions(heads: Heads, documents: Sequence[str], X,
                         input_warnings: Callable[[str], list[str]] | None = None) -> list[Prediction]:
    """Labels, scores and warnings from the heads applied to features ``X`` of ``documents``.

    ``input_warnings(document)`` adds what only the feature extractor knows (e.g. that it truncated the text).
    """
    h = heads
    sector_p = h.sector.predict_proba(X)
    topic_p = h.topics.predict_proba(X)
    ranked = [rank_partners(d, min_share=h.partner_min_share) for d in documents]
    region_p = h.region.predict_proba(X, [main_region(r) for r in ranked])
    out = []
    for i, document in enumerate(documents):
        sector = _label_scores(h.sector.classes_, sector_p[i])
        region = _label_scores(h.region.classes_, region_p[i])
        topics = [
            (t, round(float(p), 4))
            for t, p, th in zip(h.topic_labels, topic_p[i], h.topics.thresholds_, strict=True)
            if p >= th
        ]
        partners = [code for code, _ in ranked[i]]
        if sector.label == "none":
            # Domestic news has no partner by definition: keep the answer self-consistent. The region's
            # confidence stays the region head's own score for "none", so a disagreement shows as a warning.
            topics, partners = [], []
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
        ))
    return out


def _label_warnings(document: str, sector: LabelScores, region: LabelScores, language: str) -> list[str]:
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
    """Cleaning, embedding, the heads and the gazetteer behind one ``predict``."""

    def __init__(self, embedder: Embedder, heads: Heads, *, clean: bool = True) -> None:
        self.embedder = embedder
        self.heads = heads
        self.clean = clean

    def documents(self, articles: Sequence[str | HasText]) -> list[str]:
        return prepare_documents(articles, clean=self.clean)

    def predict(self, articles: Sequence[str | HasText]) -> list[Prediction]:
        documents = self.documents(articles)
        return assemble_predictions(self.heads, documents, self.embedder.encode(documents), self._input_warnings)

    def _input_warnings(self, document: str) -> list[str]:
        cfg = self.embedder.config
        limit = cfg.window_tokens * cfg.max_windows if cfg.long_text == "windows" else self.embedder.max_tokens
        tokens = self.embedder.count_tokens(document)
        if tokens > limit:
            return [f"text truncated: the model read the first {limit} of {tokens} tokens"]
        return []
