"""Body of ``POST /v1/feedback``: an analyst's corrected labels for one article, checked against the taxonomy."""

from __future__ import annotations

from typing import Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from newsclf.taxonomy import taxonomy
from serving.schemas import ArticleRequest, ModelRef

MAX_NOTE_CHARS = 2000


class FeedbackRequest(ArticleRequest):
    """The article as it was classified, and the labels it should have had."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "title": "Vietnam-Cambodge : coopération policière", "text": "Phnom Penh, 12 juin (VNA) – ...",
        "language": "fr", "sector": "security", "topics": ["fraud_gambling"], "region": "southeast_asia",
        "partners": ["KH"], "evidence": {"fraud_gambling": [[0, 120]]},
        "model": {"name": "newsclf", "version": "1", "run_id": "f76ca7e1f3624da1859f1edbea3ff7b0"}}]})

    language: Literal["fr", "en", "vi"] = Field(description="Language of the article (the corpus holds fr, en, vi)")
    # The label sets come from the taxonomy file, so they are published as enums in the schema (clients and the
    # fuzzer see them) and checked by the validators below (which word the error for a person).
    sector: str = Field(description="Corrected sector", json_schema_extra={"enum": list(taxonomy().sectors)})
    topics: list[str] = Field(default_factory=list, description="Corrected security topics",
                              json_schema_extra={"items": {"type": "string", "enum": list(taxonomy().topics)}})
    region: str = Field(description="Corrected region of the main partner",
                        json_schema_extra={"enum": list(taxonomy().regions)})
    partners: list[str] = Field(default_factory=list, description="Corrected partners, ISO alpha-2, main first",
                                json_schema_extra={"items": {"type": "string", "pattern": "^[A-Za-z]{2}$"}})
    evidence: dict[str, list[tuple[int, int]]] = Field(
        default_factory=dict, description="For each topic, [start, end] spans of `text` that state it")
    model: ModelRef | None = Field(None, description="The model whose answer is corrected; default: the one served")
    predicted: dict | None = Field(None, description="The labels the model gave (kept to measure what changes)")
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, description="The analyst's remark")

    @field_validator("sector")
    @classmethod
    def _sector(cls, value: str) -> str:
        if value not in taxonomy().sectors:
            raise ValueError(f"{value!r} is not a sector: send one of {', '.join(taxonomy().sectors)}")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in taxonomy().regions:
            raise ValueError(f"{value!r} is not a region: send one of {', '.join(taxonomy().regions)}")
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in taxonomy().topics]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))} not a topic: send topics among "
                             f"{', '.join(taxonomy().topics)}")
        return list(dict.fromkeys(value))

    @field_validator("partners")
    @classmethod
    def _partners(cls, value: list[str]) -> list[str]:
        codes = [c.strip().upper() for c in value]
        bad = [c for c in codes if c == "VN" or pycountry.countries.get(alpha_2=c) is None]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: send ISO 3166-1 alpha-2 codes of foreign countries "
                             "(e.g. KH, FR), never VN")
        return list(dict.fromkeys(codes))

    @model_validator(mode="after")
    def _one_story(self) -> FeedbackRequest:
        # The corpus rules (taxonomy.yaml): domestic news has no partner, region or topic; the export's validator
        # checks the rest, but an analyst should hear about these while the page is open.
        if self.sector == "none" and (self.region != "none" or self.partners or self.topics):
            raise ValueError("sector 'none' (domestic news) needs region 'none', no partners and no topics")
        if self.region == "none" and self.sector != "none":
            raise ValueError(f"region 'none' (no foreign partner) contradicts sector {self.sector!r}: pick the "
                             "partner's region")
        for topic, spans in self.evidence.items():
            for start, end in spans:
                if not 0 <= start < end <= len(self.text):
                    raise ValueError(f"evidence of {topic!r}: [{start}, {end}] is not a span inside text "
                                     f"({len(self.text)} characters)")
        return self


class FeedbackSaved(BaseModel):
    id: int = Field(description="Number of the stored correction")
    created_at: str
    model: ModelRef
    status: Literal["saved"] = "saved"
