"""The sentences of an article, as character spans of the text the client sent.

Topic evidence is a sentence of the article itself: spans are cut from the original ``text`` (so an analyst's
offsets point into what they sent), inside the article part only: the teaser block after "Voir plus" and its
equivalents, photo captions and related-story links are left out, as cleaning leaves them out of what the
model reads.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from newsclf.cleaning import is_noise_line, normalise_line, split_teasers

# A sentence ends at . ! ? … ; (French and Vietnamese copy lists agreed areas as "; "-separated clauses),
# with closing quotes or brackets kept; a line end also ends one.
_SENTENCE = re.compile(r"[^.!?…;\n]+(?:[.!?…;]+[\"»”’)\]]*|$)")
MIN_CHARS = 20  # shorter pieces are datelines, sign-offs or list bullets, not statements


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def article_sentences(text: str) -> list[Span]:
    """Spans of the article's sentences in ``text`` (NFC-normalised offsets equal the original's for NFC input)."""
    body, _teasers = split_teasers(unicodedata.normalize("NFC", text))
    spans: list[Span] = []
    offset = 0
    for line in body.split("\n"):
        normalised = normalise_line(line)
        if normalised and not is_noise_line(normalised):
            for m in _SENTENCE.finditer(line):
                piece = m.group(0)
                stripped = piece.strip()
                if len(stripped) >= MIN_CHARS:
                    start = offset + m.start() + (len(piece) - len(piece.lstrip()))
                    spans.append(Span(start, start + len(stripped)))
        offset += len(line) + 1
    return spans
