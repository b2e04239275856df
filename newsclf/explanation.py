"""Why an article got its labels, in the text the model read: for the analysts' page (``?explain=true``).

A ``Prediction`` says *what*; an ``Explanation`` shows *where*: the prepared document (title first, cleaned
body: exactly what ``prepare_documents`` gives the heads), the country mentions the gazetteer found in it
(the partners come from them), each predicted topic's evidence sentence located in that document, how much of
the document the embedding read before truncation, and every topic's best sentence in the text that was
sent (offsets into ``text``, as corpus evidence is), so a correction that adds a topic can carry evidence.

Nothing here decides a label: it re-reads what ``Predictor.predict`` used, with the same functions.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from newsclf.cleaning import clean_line
from newsclf.gazetteer import find_mentions
from newsclf.predictor import HasText, Prediction, Predictor, read_sentences


@dataclass(frozen=True)
class MentionSpan:
    """A country named in the document (by name, capital or demonym): offsets into ``Explanation.document``."""

    code: str
    start: int
    end: int
    form: str


@dataclass(frozen=True)
class DocumentSpan:
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class TextSpan:
    """A span of the ``text`` the client sent (the offsets corpus evidence uses)."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Explanation:
    document: str
    read_chars: int | None  # characters of ``document`` the embedding read; None: all of it
    mentions: list[MentionSpan]
    evidence: dict[str, list[DocumentSpan]]  # predicted topics' evidence, located in ``document``
    topic_sentences: dict[str, TextSpan]  # every topic's best sentence in ``text`` (empty without a sentence model)

    def to_dict(self) -> dict:
        return asdict(self)


def document_mentions(document: str) -> list[MentionSpan]:
    """Mentions line by line, as ``gazetteer.prominence`` finds them (the lines of the document are its units)."""
    out, offset = [], 0
    for line in document.split("\n"):
        out += [MentionSpan(m.code, offset + m.start, offset + m.end, m.form) for m in find_mentions(line)]
        offset += len(line) + 1
    return out


def locate(sentence: str, document: str) -> tuple[int, int] | None:
    """Where a sentence of the sent text stands in the prepared document (cleaning collapses spaces and splits
    glued words, so the sentence is cleaned the same way first); None if cleaning dropped it."""
    cleaned = clean_line(unicodedata.normalize("NFC", sentence))
    at = document.find(cleaned) if cleaned else -1
    return (at, at + len(cleaned)) if at >= 0 else None


def read_chars(predictor: Predictor, document: str) -> int | None:
    """The end (in characters of ``document``) of what the embedding view read; None when it read everything.
    The lexical view always reads the whole document."""
    if "embedding" not in predictor.heads.views:
        return None
    embedder = predictor.embedder
    cfg = embedder.config
    prefix = cfg.prefix
    tokenizer = embedder.model.tokenizer
    if cfg.long_text == "windows":
        limit, with_prefix = cfg.window_tokens * cfg.max_windows, ""
    else:
        limit, with_prefix = embedder.max_tokens, prefix
    # The embedder's lock: a tokenizer call resets the truncation state a concurrent encode() relies on.
    with embedder._lock:
        encoded = tokenizer(with_prefix + document, add_special_tokens=cfg.long_text != "windows",
                            return_offsets_mapping=True)
    offsets = [(s, e) for s, e in encoded["offset_mapping"] if e > s]  # special tokens have empty spans
    if len(encoded["input_ids"]) <= limit:
        return None
    kept = limit - (len(encoded["input_ids"]) - len(offsets))  # special tokens count against the limit
    end = offsets[max(kept, 1) - 1][1] - len(with_prefix)
    return max(0, min(end, len(document)))


def explain(predictor: Predictor, articles: Sequence[str | HasText],
            predictions: Sequence[Prediction]) -> list[Explanation]:
    """The explanation of each prediction ``predictor.predict(articles)`` returned."""
    documents = predictor.documents(articles)
    heads = predictor.heads
    topic_sentences: list[dict[str, TextSpan]] = [{} for _ in documents]
    texts = [a if isinstance(a, str) else a.text for a in articles]
    if heads.sentences is not None:
        sentences = read_sentences(articles)
        scores, best = heads.sentences.best([s.texts for s in sentences])
        for i, s in enumerate(sentences):
            for j, topic in enumerate(heads.topic_labels):
                k = int(best[i, j])
                if k >= 0:
                    span = s.spans[k]
                    topic_sentences[i][topic] = TextSpan(span.start, span.end, round(float(scores[i, j]), 4))
    out = []
    for document, text, prediction, sentences_of in zip(documents, texts, predictions, topic_sentences,
                                                         strict=True):
        evidence: dict[str, list[DocumentSpan]] = {}
        for topic, spans in prediction.topic_evidence.items():
            located = [(where, e.score) for e in spans if (where := locate(text[e.start:e.end], document))]
            evidence[topic] = [DocumentSpan(start, end, score) for (start, end), score in located]
        out.append(Explanation(document, read_chars(predictor, document), document_mentions(document), evidence,
                               sentences_of))
    return out
