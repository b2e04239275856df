"""Partner countries found in the text: a multilingual gazetteer, ranked by prominence.

Names come from pycountry (English, French and Vietnamese translations of the ISO 3166 names); capitals,
demonyms and short forms that pycountry lacks come from ``newsclf/data/gazetteer.yaml``.
"""

from __future__ import annotations

import gettext
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pycountry
import yaml

EXTRAS_FILE = Path(__file__).parent / "data" / "gazetteer.yaml"
HOME = "VN"  # never its own partner
TITLE_WEIGHT = 3.0
LEAD_WEIGHT = 2.0  # the first paragraphs say who the story is about
LEAD_LINES = 2
MAX_PARTNERS = 5
# Words after which an ambiguous Vietnamese short name ("Anh", "Nga", "Đức", "Mỹ") is a country.
_VI_CUE = re.compile(r"(?:nước|phía|với|của|tại|sang|bạn|và|Việt Nam\s*[-–]|Việt\s*[-–]|,)\s*$")
_VI_CUE_AFTER = re.compile(r"^\s*[-–]\s*Việt")


@dataclass(frozen=True)
class Mention:
    code: str
    start: int
    end: int
    form: str


def _french_inflections(word: str) -> list[str]:
    forms = [word, word + "s"]
    if not word.endswith("e"):
        forms += [word + "e", word + "es"]
    if word.endswith("ien") or word.endswith("éen"):
        forms += [word + "ne", word + "nes"]
    return forms


def _sovereign_codes() -> set[str]:
    # Territories ("Réunion", "Jersey", "Guernesey") are not partners and their names are common words.
    import country_converter as coco

    # The ISO2 column holds a regex for the United Kingdom ("^GB$|^UK$"), hence the clean-up.
    members = coco.CountryConverter().UNas("ISO2")["ISO2"]
    return {code.strip("^$").split("$|^")[0] for code in members} | {"PS"}


def _pycountry_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    sovereign = _sovereign_codes()
    translations = {"en": gettext.NullTranslations()}
    for lang in ("fr", "vi"):
        translations[lang] = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
    for country in pycountry.countries:
        if country.alpha_2 not in sovereign:
            continue
        for attr in ("name", "common_name", "official_name"):
            value = getattr(country, attr, None)
            if not value:
                continue
            for tr in translations.values():
                local = tr.gettext(value)
                names[country.alpha_2].add(local)
                # "Corée, République de" -> "Corée" (kept only if no other country shares it, see below)
                if ", " in local:
                    names[country.alpha_2].add(local.split(", ")[0])
    return names


@cache
def surface_forms() -> tuple[dict[str, str], dict[str, str]]:
    """(form -> country code, context-only form -> country code)."""
    candidates: dict[str, set[str]] = defaultdict(set)
    for code, forms in _pycountry_names().items():
        for form in forms:
            candidates[form].add(code)
    context: dict[str, str] = {}
    extras = yaml.safe_load(EXTRAS_FILE.read_text(encoding="utf-8"))
    explicit: dict[str, str] = {}
    for code, by_lang in extras.items():
        # YAML 1.1 reads a bare NO (Norway) as false: the file quotes it, and this keeps it that way.
        if not (isinstance(code, str) and len(code) == 2):
            raise ValueError(f"{EXTRAS_FILE}: {code!r} is not an ISO alpha-2 code (quote it)")
        for lang, forms in by_lang.items():
            for form in forms:
                if lang == "vi_context":
                    context[form] = code
                elif lang == "fr" and form[:1].islower():
                    for inflected in _french_inflections(form):
                        explicit[inflected] = code
                else:
                    explicit[form] = code
    # pycountry forms shared by two countries ("Corée", "Congo") say nothing; hand-written forms win.
    forms = {form: next(iter(codes)) for form, codes in candidates.items() if len(codes) == 1 and len(form) > 2}
    forms.update(explicit)
    # Names are matched with their case ("US" the country, not "us"; "Chine" the country); a lower-case
    # demonym also at the start of a sentence ("Laotiens et Vietnamiens").
    forms.update({f[0].upper() + f[1:]: c for f, c in list(forms.items()) if f[:1].islower()})
    forms = {form: code for form, code in forms.items() if code != HOME}
    return forms, context


def _alternation(forms: list[str]) -> str:
    return "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    forms, context = surface_forms()
    boundary = r"(?<!\w)(?:{})(?!\w)"
    return (
        re.compile(boundary.format(_alternation(list(forms)))),
        re.compile(boundary.format(_alternation(list(context)))),
    )


def find_mentions(text: str) -> list[Mention]:
    forms, context = surface_forms()
    plain, ambiguous = _patterns()
    found = [Mention(forms[m.group(0)], m.start(), m.end(), m.group(0)) for m in plain.finditer(text)]
    for m in ambiguous.finditer(text):
        before, after = text[max(0, m.start() - 20):m.start()], text[m.end():m.end() + 12]
        if _VI_CUE.search(before) or _VI_CUE_AFTER.search(after):
            found.append(Mention(context[m.group(0)], m.start(), m.end(), m.group(0)))
    # Overlaps: the longest mention wins ("Papouasie-Nouvelle-Guinée" over "Guinée").
    found.sort(key=lambda x: (x.start, -(x.end - x.start)))
    kept: list[Mention] = []
    for mention in found:
        if not kept or mention.start >= kept[-1].end:
            kept.append(mention)
    return kept


def prominence(document: str) -> dict[str, float]:
    """Weighted mention counts per country; the document's first line is its title when it has one."""
    scores: dict[str, float] = defaultdict(float)
    lines = document.split("\n")
    for i, line in enumerate(lines):
        weight = TITLE_WEIGHT if i == 0 else LEAD_WEIGHT if i <= LEAD_LINES else 1.0
        for mention in find_mentions(line):
            scores[mention.code] += weight
    return dict(scores)


def rank_partners(document: str, min_share: float = 0.3) -> list[tuple[str, float]]:
    """Countries at least ``min_share`` as prominent as the most prominent one, best first, with scores."""
    scores = prominence(document)
    if not scores:
        return []
    top = max(scores.values())
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(code, score) for code, score in ranked if score >= min_share * top][:MAX_PARTNERS]


# --- organisations and multi-country formats (multilateral stories) -----------------------------------------------
ORGANISATIONS_FILE = Path(__file__).parent / "data" / "organisations.yaml"
MULTILATERAL = "multilateral"
MULTILATERAL_MIN_COUNTRIES = 3  # countries named in the lead alongside an organisation


@cache
def _organisation_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    entries = yaml.safe_load(ORGANISATIONS_FILE.read_text(encoding="utf-8"))
    owner = {str(form): name for name, forms in entries.items() for form in forms}
    return re.compile(rf"(?<!\w)(?:{_alternation(list(owner))})(?!\w)"), owner


def find_organisations(text: str) -> list[str]:
    """The organisations and formats named in ``text`` (canonical names, in order of mention)."""
    pattern, owner = _organisation_pattern()
    return [owner[m.group(0)] for m in pattern.finditer(text)]


def prior_region(document: str, ranked: list[tuple[str, float]], region_of: dict[str, str | None]) -> str | None:
    """The gazetteer's guess at the region: ``multilateral`` when the title or lead names an organisation or a
    multi-country format and no single country dominates it, else the region of the most prominent country.

    ``region_of``: country code -> region (the taxonomy's), passed in so that the gazetteer stays label-free.
    """
    lead = "\n".join(document.split("\n")[: LEAD_LINES + 1])
    if find_organisations(lead):
        counts = sorted(prominence(lead).values(), reverse=True)
        # One country clearly leading the lead: a bilateral meeting on the sidelines of a multilateral event.
        one_country_leads = 0 < len(counts) < MULTILATERAL_MIN_COUNTRIES and (
            len(counts) == 1 or counts[0] >= 2 * counts[1])
        if not one_country_leads:
            return MULTILATERAL
    return region_of.get(ranked[0][0]) if ranked else None
