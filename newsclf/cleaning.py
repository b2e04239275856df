"""Text cleaning: the one function every caller uses before embedding or matching countries.

Scraped agency pages carry more than the article: a trailing "Voir plus" block of teasers for unrelated
stories, photo captions (VNA glues them to the title with "ảnh 1"), the title repeated as the first line,
and words glued together by the scraper. Teasers and captions name other countries and other subjects, so
leaving them in would teach the classifier the wrong labels.
"""

from __future__ import annotations

import re
import unicodedata

import regex

# A line that opens the site's block of links to other stories (French, English, Vietnamese pages).
_TEASER_MARKERS = {"voir plus", "read more", "see more", "xem thêm", "lire aussi", "related news", "tin liên quan"}
# "... ảnh 1<caption>": VNA's image marker, the whole line is a caption.
_IMAGE_MARKER = re.compile(r"\bảnh \d+\S")
# "... Photo : VNA", "(Photo : VNA)", "Photo ; VNA", "- Photo : VGP", "Photo diffusée par la VNA", "Ảnh: TTXVN".
_CAPTION_END = re.compile(
    r"\b(?:photo|ảnh)\s*(?:[:;]|diffusée par|courtesy of|by)\s*[\w/ .-]{1,25}\)?\.?\s*$", re.IGNORECASE
)
# "[Headline of a related story]" lines the scraper keeps from in-article links.
_RELATED_LINK = re.compile(r"^\[[^\]]{10,300}\]$")
# A lower-case letter directly followed by an upper-case one: "arméeTô", "dela Sécurité" stays as is.
_GLUED_CASE = regex.compile(r"(?<=\p{Ll})(?=\p{Lu}\p{Ll})")
_SPACES = re.compile(r"[ \t\u00a0\u2009\u202f]+")
# Longest caption line we drop; an article paragraph that happens to end in "Photo: X" is longer.
_MAX_CAPTION_CHARS = 600


def _normalise_line(line: str) -> str:
    return _SPACES.sub(" ", line).strip()


def _key(line: str) -> str:
    return regex.sub(r"[\W_]+", "", line.casefold())


def is_caption(line: str) -> bool:
    return bool(_IMAGE_MARKER.search(line)) or (
        len(line) <= _MAX_CAPTION_CHARS and bool(_CAPTION_END.search(line))
    )


def is_noise_line(line: str) -> bool:
    """A (normalised) line that belongs to another story or to the page, not to the article."""
    return is_caption(line) or bool(_RELATED_LINK.match(line))


def normalise_line(line: str) -> str:
    """Spaces of every kind collapsed, ends stripped."""
    return _normalise_line(line)


def clean_line(line: str) -> str:
    """A kept line as the model reads it: spaces collapsed, words glued at a case seam split. Also what a
    sentence of the sent text becomes in the prepared document (so evidence can be found there)."""
    return _GLUED_CASE.sub(" ", _normalise_line(line))


def split_teasers(text: str) -> tuple[str, str]:
    """Split a page into (article, teaser block); the block starts at the first marker line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if i > 0 and _normalise_line(line).casefold().rstrip(" :.") in _TEASER_MARKERS:
            return "\n".join(lines[:i]), "\n".join(lines[i:])
    return text, ""


def clean_text(text: str, title: str | None = None) -> str:
    """The article body without teasers, captions, related links, repeated lines or the repeated title."""
    text = unicodedata.normalize("NFC", text)
    body, _teasers = split_teasers(text)
    seen = {_key(title)} if title else set()
    kept: list[str] = []
    for raw in body.splitlines():
        line = _normalise_line(raw)
        if not line or is_noise_line(line):
            continue
        key = _key(line)
        if key in seen:  # the title again, or a paragraph the scraper doubled
            continue
        seen.add(key)
        kept.append(clean_line(line))
    return "\n".join(kept)


def prepare_document(text: str, title: str | None = None, *, clean: bool = True) -> str:
    """What the model reads: the title, then the (cleaned) body.

    ``clean=False`` exists only so that evaluation can measure what cleaning is worth.
    """
    title = _normalise_line(unicodedata.normalize("NFC", title)) if title else ""
    body = clean_text(text, title) if clean else unicodedata.normalize("NFC", text).strip()
    return f"{title}\n{body}" if title else body
