"""Which of the service's languages an article is in: Vietnamese by its letters, French vs English by words."""

from __future__ import annotations

import re

# Letters that only Vietnamese uses among the three languages (horn vowels, đ, and the tone-marked vowels).
_VI_LETTERS = re.compile(r"[ăơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.IGNORECASE)
_WORD = re.compile(r"[a-zàâçéèêëîïôûùüÿœ']+", re.IGNORECASE)
_FR = frozenset("le la les des du de et est une un dans pour avec sur au aux qui que ont été son ses leur".split())
_EN = frozenset("the of and to in is a for with on was were that by as has have its their from".split())


def detect_language(text: str) -> str | None:
    """``fr``, ``en`` or ``vi`` (ISO 639-1), or None when the text gives too little evidence."""
    sample = text[:4000]
    letters = sum(ch.isalpha() for ch in sample)
    if letters == 0:
        return None
    if len(_VI_LETTERS.findall(sample)) / letters > 0.03:
        return "vi"
    words = [w.lower() for w in _WORD.findall(sample)]
    fr = sum(w in _FR for w in words)
    en = sum(w in _EN for w in words)
    if fr + en < 3:
        return None
    return "fr" if fr > en else "en"
