"""The opt-in part of a classification (``POST /v1/classify?explain=true``): where the labels come from in the
text the model read. Kept out of the default answer, which stays small."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MentionSpan(BaseModel):
    code: str = Field(description="ISO 3166-1 alpha-2 code of the country named")
    start: int = Field(description="Offset into `explanation.document`")
    end: int
    form: str = Field(description="The words found: a name, a capital or a demonym")


class DocumentSpan(BaseModel):
    start: int = Field(description="Offset into `explanation.document`")
    end: int
    score: float


class TextSpan(BaseModel):
    start: int = Field(description="Offset into the `text` that was sent")
    end: int
    score: float


class Explanation(BaseModel):
    document: str = Field(description="What the model read: the title, then the cleaned body (teasers, captions, "
                          "repeated lines removed)")
    read_chars: int | None = Field(description="How many characters of `document` the embedding read before "
                                   "truncation (the word n-gram view reads all); null: all of it")
    mentions: list[MentionSpan] = Field(description="Countries named in `document`; the partners are among them")
    evidence: dict[str, list[DocumentSpan]] = Field(description="Each predicted topic's evidence sentence, "
                                                    "located in `document`")
    topic_sentences: dict[str, TextSpan] = Field(description="Every topic's best sentence, as offsets into "
                                                 "`text` (what a correction sends as evidence)")

