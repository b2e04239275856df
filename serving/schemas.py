"""Request and response bodies of the HTTP API (the contract; the OpenAPI schema at /docs is built from them).

Field names are the project's names for each idea: ``sector``, ``topics``, ``region``, ``partners``.
Limits that depend on settings (text length, batch size) are checked in ``serving.app``, so they can follow
the settings of the running service; everything static is checked here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.explain_schemas import Explanation

MAX_ID_CHARS = 200
# A character a reader can see: not whitespace, not a control or format character (NUL, zero-width space U+200B,
# the byte-order mark U+FEFF, joiners, direction marks...). A text needs one; the OpenAPI schema carries the same
# pattern, so schema-based clients and fuzzers know the rule the service applies.
VISIBLE_CHARACTER = (r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
                     r"\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8]")
_VISIBLE = re.compile(VISIBLE_CHARACTER)
# Defaults of the service's limits, shown in the schema; serving.app writes the running service's values into the
# OpenAPI document it serves.
SCHEMA_MAX_TEXT_CHARS = 100_000
SCHEMA_MAX_TITLE_CHARS = 1_000
SCHEMA_MAX_BATCH_ITEMS = 64

EXAMPLE_TITLE = "Vietnam-Cambodge : les polices unissent leurs forces contre l'escroquerie en ligne et la traite"
EXAMPLE_TEXT = (
    "Phnom Penh, 12 juin (VNA) – Le ministre vietnamien de la Sécurité publique, le général Hoang Van Khiem, "
    "et le vice-Premier ministre et ministre cambodgien de l'Intérieur, Chea Vuthy, ont signé mercredi à "
    "Phnom Penh un plan de coopération pour la période 2025-2027 contre l'escroquerie en ligne, la traite des "
    "êtres humains et le trafic de stupéfiants le long de la frontière commune.\n\n"
    "Selon ce document, les deux ministères ouvriront une ligne d'échange d'informations en temps réel entre "
    "leurs services d'enquête, organiseront des patrouilles conjointes dans les provinces frontalières et "
    "coordonneront le rapatriement des victimes de réseaux de fraude opérant depuis des casinos et des "
    "complexes fermés.\n\n"
    "Le général Hoang Van Khiem a salué une coopération « efficace et concrète », qui a permis l'an dernier "
    "le rapatriement de plus de 2.000 ressortissants vietnamiens. La partie cambodgienne s'est engagée à "
    "multiplier les opérations contre les centres d'escroquerie et à remettre à la justice vietnamienne les "
    "suspects recherchés. – VNA"
)
EXAMPLE_DOMESTIC_TITLE = "Hô Chi Minh-Ville : la deuxième ligne de métro entre en chantier"
EXAMPLE_DOMESTIC_TEXT = (
    "Hô Chi Minh-Ville, 3 mars (VNA) – Les autorités de Hô Chi Minh-Ville ont lancé lundi les travaux de la "
    "ligne de métro n°2 Ben Thanh – Tham Luong, longue de 11 km, dont la mise en service est prévue pour 2030. "
    "Le président du Comité populaire municipal a demandé aux entreprises de respecter les délais et de limiter "
    "la gêne pour les riverains pendant le chantier. – VNA"
)


def _utf8(value: str) -> str:
    # JSON can carry lone surrogates ("\ud800") that no UTF-8 encoder accepts; refuse them here rather than
    # fail while hashing the text for the embedding cache.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains an unpaired surrogate ({value[exc.start]!r} at position {exc.start}): "
                         "send valid Unicode text") from None
    return value


class _Request(BaseModel):
    # A misspelt field ("tittle") is an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class ArticleRequest(_Request):
    """One article to classify: its body text and, when known, its title."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": EXAMPLE_TITLE, "text": EXAMPLE_TEXT}]})

    text: str = Field(description="Body of the article, as published (teasers and photo captions may stay); "
                      "at least one visible character",
                      json_schema_extra={"maxLength": SCHEMA_MAX_TEXT_CHARS, "pattern": VISIBLE_CHARACTER})
    title: str | None = Field(None, description="Headline, if known",
                              json_schema_extra={"maxLength": SCHEMA_MAX_TITLE_CHARS})

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not _VISIBLE.search(value):
            raise ValueError("must not be empty, whitespace or invisible characters only (NUL, zero-width space, "
                             "byte-order mark): send the article's body text")
        return _utf8(value)

    @field_validator("title")
    @classmethod
    def _title_utf8(cls, value: str | None) -> str | None:
        return value if value is None else _utf8(value)


class BatchArticle(ArticleRequest):
    """An article of a batch, with the caller's id for it (echoed in the result)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "a1", "title": EXAMPLE_TITLE,
                                                               "text": EXAMPLE_TEXT}]})

    id: str = Field(description="The caller's id of the article, unique within the batch", max_length=MAX_ID_CHARS,
                    json_schema_extra={"pattern": VISIBLE_CHARACTER})

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not _VISIBLE.search(value):  # the schema's pattern: one rule, whatever regex engine a client uses
            raise ValueError("must be a non-empty string that identifies the article within the batch")
        return _utf8(value)


class BatchRequest(_Request):
    """Several articles at once; results come back in the same order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"articles": [
        {"id": "a1", "title": EXAMPLE_TITLE, "text": EXAMPLE_TEXT},
        {"id": "a2", "title": None, "text": EXAMPLE_DOMESTIC_TEXT},
    ]}]})

    articles: list[BatchArticle] = Field(min_length=1, description="The articles, each with a unique id",
                                         json_schema_extra={"maxItems": SCHEMA_MAX_BATCH_ITEMS})


# --- responses ----------------------------------------------------------------------------------------------------
class LabelScores(BaseModel):
    label: str = Field(description="The most probable label")
    confidence: float = Field(description="Its probability")
    scores: dict[str, float] = Field(description="Probability of every label")


class EvidenceSpan(BaseModel):
    start: int = Field(description="Offset of the sentence's first character in the `text` that was sent")
    end: int = Field(description="Offset just past its last character: `text[start:end]` is the sentence")
    score: float = Field(description="How strongly the sentence states cooperation in this area (0-1)")


class TopicScore(BaseModel):
    label: str
    confidence: float
    evidence: list[EvidenceSpan] = Field(
        default_factory=list,
        description="The article's sentence that best states cooperation in this area, as offsets into `text` "
                    "(empty when the model has no sentence-level topic model)")


class Partner(BaseModel):
    code: str = Field(description="ISO 3166-1 alpha-2 code")
    name: str = Field(description="English name (pycountry)")
    region: str | None = Field(description="Region of the country in the taxonomy; null when it has none")


class ModelRef(BaseModel):
    name: str = Field(description="Registered model name (or the model folder's name when not registered)")
    version: str = Field(description="Registry version, or the model folder's name when not registered")
    run_id: str | None = Field(description="MLflow run that trained the model")


class Classification(BaseModel):
    sector: LabelScores = Field(description="Sector of the cooperation, `none` for domestic news")
    topics: list[TopicScore] = Field(description="Security topics past their thresholds, best first")
    topic_scores: dict[str, float] = Field(description="Probability of every topic")
    region: LabelScores = Field(description="Region of the main foreign partner")
    partners: list[Partner] = Field(description="Partner countries, most prominent first")
    language: str | None = Field(description="Detected language, an ISO 639-1 code (fr, en or vi); null when the "
                                 "text gives too little evidence (a warning then says so)")
    model: ModelRef
    warnings: list[str] = Field(description="Reasons to doubt the labels (low confidence, truncated text, ...)")


# A real answer of the service (newsclf v1 of a cold training with the defaults, 2026-11-30) to the example above.
_EXAMPLE_RESULT = {
    "sector": {
        "label": "security",
        "confidence": 0.9999,
        "scores": {
            "culture_society": 0.0,
            "defense": 0.0,
            "diplomacy": 0.0,
            "economy": 0.0,
            "none": 0.0001,
            "science_technology": 0.0,
            "security": 0.9999
        }
    },
    "topics": [
        {
            "label": "human_trafficking",
            "confidence": 0.9635,
            "evidence": [
                {
                    "start": 0,
                    "end": 382,
                    "score": 0.8687
                }
            ]
        },
        {
            "label": "information_sharing",
            "confidence": 0.8587,
            "evidence": [
                {
                    "start": 384,
                    "end": 704,
                    "score": 0.8122
                }
            ]
        },
        {
            "label": "fugitives",
            "confidence": 0.8448,
            "evidence": [
                {
                    "start": 870,
                    "end": 1032,
                    "score": 0.8035
                }
            ]
        },
        {
            "label": "fraud_gambling",
            "confidence": 0.8384,
            "evidence": [
                {
                    "start": 384,
                    "end": 704,
                    "score": 0.413
                }
            ]
        },
        {
            "label": "drugs",
            "confidence": 0.6671,
            "evidence": [
                {
                    "start": 0,
                    "end": 382,
                    "score": 0.5709
                }
            ]
        }
    ],
    "topic_scores": {
        "terrorism": 0.0065,
        "cybercrime": 0.1319,
        "drugs": 0.6671,
        "human_trafficking": 0.9635,
        "illegal_migration": 0.2073,
        "fraud_gambling": 0.8384,
        "fugitives": 0.8448,
        "capacity_building": 0.1285,
        "information_sharing": 0.8587,
        "protection": 0.198
    },
    "region": {
        "label": "southeast_asia",
        "confidence": 1.0,
        "scores": {
            "africa": 0.0,
            "americas": 0.0,
            "east_asia": 0.0,
            "europe": 0.0,
            "middle_east": 0.0,
            "multilateral": 0.0,
            "none": 0.0,
            "oceania": 0.0,
            "south_asia": 0.0,
            "southeast_asia": 1.0
        }
    },
    "partners": [
        {
            "code": "KH",
            "name": "Cambodia",
            "region": "southeast_asia"
        }
    ],
    "language": "fr",
    "model": {
        "name": "newsclf",
        "version": "1",
        "run_id": "f76ca7e1f3624da1859f1edbea3ff7b0"
    },
    "warnings": []
}


class ClassifyResponse(Classification):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RESULT]})

    explanation: Explanation | None = Field(None, description="Only with `?explain=true` (left out otherwise): "
                                            "where the labels come from in the text the model read")


class _Identified(BaseModel):
    id: str = Field(description="The id sent with the article")


class BatchItemResult(Classification, _Identified):
    pass


class BatchResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [{"id": "a1", **_EXAMPLE_RESULT}]}]})

    results: list[BatchItemResult] = Field(description="One result per article, in the order sent")


# --- service state ------------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["starting", "loading", "ready", "failed"]
    reason: str | None = Field(None, description="Why the service is not ready")
    model: ModelRef | None = None
    degraded: list[str] = Field(default_factory=list, description="What works less well than it should while the "
                                "service still answers, e.g. the embedding cache turned off")


class ReloadRequest(_Request):
    version: str | None = Field(None, pattern=r"^[0-9]{1,9}$", description="A registry version of the served model "
                                "name; default: whatever NEWSCLF_MODEL names now (e.g. the current @champion)")


class ReloadResult(BaseModel):
    previous: ModelRef | None
    current: ModelRef


class EmbedderInfo(BaseModel):
    identity: str = Field(description="Weights, prefix and long-text handling the model was trained with")
    config: dict


class LabelSets(BaseModel):
    sector: list[str]
    topics: list[str]
    region: list[str]


class ModelInfo(ModelRef):
    source: str = Field(description="Where the model was loaded from: a folder or an MLflow model URI")
    created_at: str | None = None
    embedder: EmbedderInfo
    labels: LabelSets
    topic_thresholds: dict[str, float]
    metrics: dict[str, float] = Field(description="Evaluation scores recorded at training (cv.*: cross-validation "
                                      "on the written corpus; seed.*: real seed-derived items)")
    dataset_hash: str | None = None
    registry: dict | None = Field(None, description="Registry outcome recorded at training")
    features: list[str] = Field(description="What the heads read: `embedding`, `lexical` (word and character "
                                "TF-IDF) or both")
    topic_evidence: bool = Field(description="Whether predicted topics come with their evidence sentence")


# --- errors -------------------------------------------------------------------------------------------------------
class FieldProblem(BaseModel):
    field: str = Field(description="Path of the field in the request body, e.g. articles[2].text")
    problem: str = Field(description="What is wrong and what to send instead")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_input, body_too_large")
    message: str = Field(description="What went wrong, naming the fields, in one sentence")
    fields: list[FieldProblem] = Field(default_factory=list)
    request_id: str | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "code": "invalid_input",
        "message": "invalid request: articles[2].text must not be empty, whitespace or invisible characters only "
                   "(NUL, zero-width space, byte-order mark): send the article's body text",
        "fields": [{"field": "articles[2].text",
                    "problem": "must not be empty, whitespace or invisible characters only (NUL, zero-width space, "
                               "byte-order mark): send the article's body text"}],
        "request_id": "5f0c6a1e9b7d4c2a8e3f1b6d0a9c7e42"}}]})

    error: ErrorBody
