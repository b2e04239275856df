"""The one path from article text to labels, used by evaluation, the CLI, the API and batch scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from training.cleaning import prepare_document
from training.config import TrainConfig
from training.corpus import Article
from training.embedding import Embedder
from training.gazetteer import rank_partners
from training.heads import RegionHead, TopicsHead, choose_min_share, linear_classifier
from training.language import detect_language
from training.taxonomy import taxonomy

LOW_CONFIDENCE = 0.5
SERVICE_LANGUAGES = ("fr", "en", "vi")


@dataclass(frozen=True)
class ArticleInput:
    text: str
    title: str | None = None


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


def _as_input(article: str | ArticleInput | Article) -> ArticleInput:
    if isinstance(article, str):
        return ArticleInput(text=article)
    if isinstance(article, Article):
        return ArticleInput(text=article.text, title=article.title or None)
    return article


def prepare_documents(articles: Sequence[str | ArticleInput | Article], *, clean: bool = True) -> list[str]:
    """What the model reads for each article (title first, cleaned body): fitting and predicting alike."""
    inputs = [_as_input(a) for a in articles]
    return [prepare_document(a.text, a.title, clean=clean) for a in inputs]


def fit_heads(X: np.ndarray, articles: Sequence[Article], documents: Sequence[str], config: TrainConfig) -> Heads:
    """Fit every head on embeddings ``X`` of ``articles`` (whose prepared texts are ``documents``)."""
    topic_labels = taxonomy().topics
    Y = np.array([[t in a.topics for t in topic_labels] for a in articles], dtype=int)
    ranked = [rank_partners(d, min_share=0.0) for d in documents]
    foreign = [i for i, a in enumerate(articles) if a.sector != "none"]
    share, share_scores = choose_min_share(
        [ranked[i] for i in foreign], [articles[i].partners for i in foreign], config.partners.min_share_grid
    )
    gaz_regions = [_main_region(r) for r in ranked]
    region = RegionHead(config.region, config.cv.inner_folds, config.cv.seed).fit(
        X, [a.region for a in articles], gaz_regions
    )
    return Heads(
        sector=linear_classifier(config.sector).fit(X, [a.sector for a in articles]),
        topics=TopicsHead(config.topics, config.cv.inner_folds, config.cv.seed).fit(X, Y),
        region=region,
        partner_min_share=share,
        topic_labels=topic_labels,
        selection_scores={"partner_min_share": share_scores, "region_partner_weight": region.weight_scores_},
    )


def _main_region(ranked: list[tuple[str, float]]) -> str | None:
    return taxonomy().region_of_country(ranked[0][0]) if ranked else None


class Predictor:
    """Cleaning, embedding, the heads and the gazetteer behind one ``predict``."""

    def __init__(self, embedder: Embedder, heads: Heads, *, clean: bool = True) -> None:
        self.embedder = embedder
        self.heads = heads
        self.clean = clean

    def documents(self, articles: Sequence[str | ArticleInput | Article]) -> list[str]:
        return prepare_documents(articles, clean=self.clean)

    def predict(self, articles: Sequence[str | ArticleInput | Article]) -> list[Prediction]:
        documents = self.documents(articles)
        return self._predict_documents(documents, self.embedder.encode(documents))

    def _predict_documents(self, documents: list[str], X: np.ndarray) -> list[Prediction]:
        h = self.heads
        sector_p = h.sector.predict_proba(X)
        topic_p = h.topics.predict_proba(X)
        ranked = [rank_partners(d, min_share=h.partner_min_share) for d in documents]
        region_p = h.region.predict_proba(X, [_main_region(r) for r in ranked])
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
            out.append(Prediction(
                sector=sector,
                topics=sorted(topics, key=lambda tp: -tp[1]),
                topic_scores={t: round(float(p), 4) for t, p in zip(h.topic_labels, topic_p[i], strict=True)},
                region=region,
                partners=partners,
                language=language,
                warnings=self._warnings(document, sector, region, language),
            ))
        return out

    def _warnings(self, document: str, sector: LabelScores, region: LabelScores, language: str) -> list[str]:
        warnings = []
        if not document.strip():
            warnings.append("no article text is left after removing teasers and captions")
        if sector.confidence < LOW_CONFIDENCE:
            warnings.append(f"low confidence: sector {sector.label} at {sector.confidence:.2f}")
        if region.confidence < LOW_CONFIDENCE:
            warnings.append(f"low confidence: region {region.label} at {region.confidence:.2f}")
        if language not in SERVICE_LANGUAGES:
            warnings.append("language not recognised as French, English or Vietnamese: labels may be unreliable")
        cfg = self.embedder.config
        limit = cfg.window_tokens * cfg.max_windows if cfg.long_text == "windows" else self.embedder.max_tokens
        tokens = self.embedder.count_tokens(document)
        if tokens > limit:
            warnings.append(f"text truncated: the model read the first {limit} of {tokens} tokens")
        return warnings


def _label_scores(classes: np.ndarray, proba: np.ndarray) -> LabelScores:
    best = int(np.argmax(proba))
    return LabelScores(
        label=str(classes[best]), confidence=round(float(proba[best]), 4),
        scores={str(c): round(float(p), 4) for c, p in zip(classes, proba, strict=True)},
    )
