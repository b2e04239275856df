"""Validate the labelled corpus and print its counts.

    newsclf validate [--root DATASETS_DIR] [--markdown]

Every problem is printed with file, line, id and field, and the command exits 1 if there is any.
Near duplicates: Jaccard similarity of the sets of word 3-grams of the cleaned texts (casefolded,
punctuation dropped); a pair of items from different groups at or above NEAR_DUPLICATE_JACCARD is a problem.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pycountry

from newsclf.cleaning import clean_text
from newsclf.taxonomy import Taxonomy, taxonomy
from training.paths import DATASETS
from training.records import LANGS, SOURCES, RawLine, corpus_files, read_lines

NEAR_DUPLICATE_JACCARD = 0.5
SHINGLE_WORDS = 3
WRITTEN_LENGTH = (300, 4000)
HARD_CASES = (
    "second_country_in_passing", "diplomatic_vocabulary", "domestic_crime", "multi_topic",
    "capital_or_demonym", "scraped_noise", "translation",
    # Added with the files w9-w11 (aimed at what real copy got wrong, see the dataset card).
    "protocol_register", "security_words_diplomacy", "multilateral_meeting", "sideline_bilateral",
    "communique_list", "topic_in_passing", "sapo", "no_dateline",
)
REQUIRED = {
    "id": str, "lang": str, "title": str, "text": str, "sector": str, "topics": list,
    "region": str, "partners": list, "source": str, "group": str,
}
OPTIONAL = {"hard_cases": list, "evidence": dict}
LENGTH_BANDS = ((0, 300), (300, 1000), (1000, 2000), (2000, 3000), (3000, 10**9))
REAL_PEOPLE = DATASETS / "real_people.txt"  # written items may not name them (annotation rule R9)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_WORD = re.compile(r"\w+")

EXAMPLES = """examples:
  newsclf validate                               # the bundled corpus under datasets/
  newsclf validate --root /path/to/datasets      # another datasets folder
"""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} [{self.id or '?'}] {self.field}: {self.message}"


class CorpusInvalid(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(
            f"the corpus has {len(self.problems)} problem(s); run `newsclf validate`:\n"
            f"{shown}{more}"
        )


def _iso2_codes() -> set[str]:
    return {country.alpha_2 for country in pycountry.countries}


def _check_record(raw: RawLine, tax: Taxonomy, iso2: set[str]) -> list[Problem]:
    rec = raw.record or {}
    rid = rec.get("id") if isinstance(rec.get("id"), str) else ""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(raw.file, raw.line, rid, field, message))

    for field, kind in REQUIRED.items():
        if field not in rec:
            bad(field, "missing")
        elif not isinstance(rec[field], kind):
            bad(field, f"must be a {kind.__name__}, got {type(rec[field]).__name__}")
    for field, kind in OPTIONAL.items():
        if field in rec and not isinstance(rec[field], kind):
            bad(field, f"must be a {kind.__name__}, got {type(rec[field]).__name__}")
    for field in sorted(set(rec) - set(REQUIRED) - set(OPTIONAL)):
        bad(field, "unknown field (typo?)")
    if problems:  # the label checks below need well-typed fields
        return problems

    if not _ID.match(rec["id"]):
        bad("id", "use lower-case letters, digits and dashes")
    if rec["lang"] not in LANGS:
        bad("lang", f"{rec['lang']!r} is not one of {', '.join(LANGS)}")
    if rec["source"] not in SOURCES:
        bad("source", f"{rec['source']!r} is not one of {', '.join(SOURCES)}")
    if not rec["text"].strip():
        bad("text", "empty")
    if not rec["group"].strip():
        bad("group", "empty")
    if rec["sector"] not in tax.sectors:
        bad("sector", f"{rec['sector']!r} is not in the taxonomy ({', '.join(tax.sectors)})")
    if rec["region"] not in tax.regions:
        bad("region", f"{rec['region']!r} is not in the taxonomy ({', '.join(tax.regions)})")
    for name, allowed in (("topics", tax.topics), ("hard_cases", HARD_CASES)):
        values = rec.get(name, [])
        for value in values:
            if value not in allowed:
                bad(name, f"{value!r} is not one of {', '.join(allowed)}")
        if len(set(map(str, values))) != len(values):
            bad(name, "repeated value")
    partners = rec["partners"]
    for code in partners:
        if code == "VN":
            bad("partners", "VN is never its own partner")
        elif code not in iso2:
            bad("partners", f"{code!r} is not an ISO 3166-1 alpha-2 code")
    if len(set(map(str, partners))) != len(partners):
        bad("partners", "repeated country")

    # Region, partners and sector must tell one story (taxonomy.yaml, partners guidance).
    sector, region = rec["sector"], rec["region"]
    if sector == "none" and (region != "none" or partners or rec["topics"]):
        bad("sector", "sector 'none' needs region 'none', no partners and no topics")
    if region == "none" and sector != "none":
        bad("region", f"region 'none' (no foreign partner) contradicts sector {sector!r}")
    if region not in ("none", "multilateral") and region in tax.regions:
        if not partners:
            bad("partners", f"region {region!r} needs its main partner in partners")
        elif partners[0] in iso2 and tax.region_of_country(partners[0]) != region:
            bad("region", f"main partner {partners[0]} is in {tax.region_of_country(partners[0])!r}, not {region!r}")

    problems += [Problem(raw.file, raw.line, rid, "evidence", m) for m in evidence_problems(rec)]

    if rec["source"] == "written":
        low, high = WRITTEN_LENGTH
        if not low <= len(rec["text"]) <= high:
            bad("text", f"{len(rec['text'])} characters; written articles have {low} to {high}")
        for name in real_people_in(f"{rec['title']}\n{rec['text']}"):
            bad("text", f"names {name!r}, a real person (datasets/real_people.txt): use a title or an invented name")
    return problems


def evidence_problems(rec: dict) -> list[str]:
    """Every topic has at least one span ``[start, end]`` of ``text`` that carries it, and nothing else is there."""
    evidence = rec.get("evidence")
    if evidence is None:
        return ["missing: every item gives, for each topic, the character spans of text that carry it"] \
            if rec["topics"] else []
    out = []
    for topic in sorted(set(evidence) - set(rec["topics"])):
        out.append(f"{topic!r} has evidence but is not among the item's topics")
    for topic in rec["topics"]:
        spans = evidence.get(topic)
        if not spans:
            out.append(f"topic {topic!r} has no evidence span")
            continue
        for span in spans:
            ok = (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                  and 0 <= span[0] < span[1] <= len(rec["text"]))
            if not ok:
                out.append(f"{topic!r}: {span!r} is not a [start, end] span inside the text "
                           f"({len(rec['text'])} characters)")
    return out


def _fold(text: str) -> str:
    """Lower case without diacritics (Vietnamese names are written with and without them)."""
    text = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


@cache
def _real_people() -> tuple[tuple[str, re.Pattern[str]], ...]:
    names = [line.strip() for line in REAL_PEOPLE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")] if REAL_PEOPLE.is_file() else []
    return tuple((name, re.compile(rf"(?<!\w){re.escape(_fold(name))}(?!\w)")) for name in names)


def real_people_in(text: str) -> list[str]:
    folded = _fold(text)
    return [name for name, pattern in _real_people() if pattern.search(folded)]


def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return frozenset(zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False))


def _check_corpus(records: list[RawLine], seeds_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    groups: dict[str, list[RawLine]] = defaultdict(list)
    for raw in records:
        groups[raw.record["group"]].append(raw)

    # A group is one story in several versions: one file, one set of labels.
    for group, members in groups.items():
        files = {m.file for m in members}
        labels = {(m.record["sector"], frozenset(m.record["topics"]), m.record["region"],
                   frozenset(m.record["partners"])) for m in members}
        for m in members[1:]:
            if len(files) > 1:
                problems.append(Problem(m.file, m.line, m.record["id"], "group",
                                        f"group {group!r} is split across files {sorted(files)}"))
            if len(labels) > 1:
                problems.append(Problem(m.file, m.line, m.record["id"], "group",
                                        f"versions of group {group!r} carry different labels"))

    # Seed items must still be the raw pages' own text (raw data is immutable, items derive from it).
    raw_pages = {p.stem.split("_")[0]: p.read_text(encoding="utf-8") for p in seeds_dir.glob("*.txt")}
    for raw in records:
        rec = raw.record
        if rec["source"] in ("seed", "seed_teaser"):
            page = raw_pages.get(rec["id"].split("-")[1] if rec["id"].count("-") >= 1 else "")
            if page is None:
                problems.append(Problem(raw.file, raw.line, rec["id"], "id", "names no raw seed page"))
            elif rec["text"] not in page or rec["title"] not in page:
                problems.append(Problem(raw.file, raw.line, rec["id"], "text",
                                        "not found verbatim in its raw seed page"))

    # Exact and near duplicates, on what the model reads (cleaned text).
    cleaned = [(raw, clean_text(raw.record["text"], raw.record["title"])) for raw in records]
    seen: dict[str, RawLine] = {}
    for raw, text in cleaned:
        key = " ".join(_WORD.findall(text.casefold()))
        if key in seen and seen[key].record["group"] != raw.record["group"]:
            other = seen[key]
            problems.append(Problem(raw.file, raw.line, raw.record["id"], "text",
                                    f"exact duplicate of {other.record['id']} ({other.file}:{other.line})"))
        seen.setdefault(key, raw)
    shingled = [(raw, _shingles(text)) for raw, text in cleaned]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, (_, sh) in enumerate(shingled):
        for s in sh:
            index[s].append(i)
    for i, (raw, sh) in enumerate(shingled):
        overlap: Counter[int] = Counter(j for s in sh for j in index[s] if j > i)
        for j, shared in overlap.items():
            other, other_sh = shingled[j]
            if other.record["group"] == raw.record["group"]:
                continue
            jaccard = shared / len(sh | other_sh)
            if jaccard >= NEAR_DUPLICATE_JACCARD:
                problems.append(Problem(other.file, other.line, other.record["id"], "text",
                                        f"near duplicate of {raw.record['id']} (word-3-gram Jaccard {jaccard:.2f})"))
    return problems


def validate(lines: Iterable[RawLine], seeds_dir: Path | None = None) -> list[Problem]:
    """Every problem in the corpus lines; an empty list means valid."""
    tax, iso2 = taxonomy(), _iso2_codes()
    problems: list[Problem] = []
    good: list[RawLine] = []
    lines = list(lines)
    if not lines:
        return [Problem("datasets", 0, "", "corpus", "no labelled articles found")]
    first_of_id: dict[str, RawLine] = {}
    for raw in lines:
        if raw.error:
            problems.append(Problem(raw.file, raw.line, "", "json", raw.error))
            continue
        rid = raw.record.get("id")
        if isinstance(rid, str) and rid in first_of_id:  # checked on every record, well-formed or not
            first = first_of_id[rid]
            problems.append(Problem(raw.file, raw.line, rid, "id", f"duplicate of {first.file}:{first.line}"))
        elif isinstance(rid, str):
            first_of_id[rid] = raw
        found = _check_record(raw, tax, iso2)
        problems.extend(found)
        if not found:
            good.append(raw)
    problems.extend(_check_corpus(good, seeds_dir or DATASETS / "raw" / "seeds"))
    return problems


def length_band(n: int) -> str:
    for low, high in LENGTH_BANDS:
        if low <= n < high:
            return f"{low}-{high - 1}" if high < 10**9 else f">={low}"
    raise AssertionError(n)


def count(records: Iterable[dict]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in records:
        counts["source"][rec["source"]] += 1
        counts["language"][rec["lang"]] += 1
        counts["sector"][rec["sector"]] += 1
        counts["region"][rec["region"]] += 1
        counts["length (characters)"][length_band(len(rec["text"]))] += 1
        for topic in rec["topics"]:
            counts["topic"][topic] += 1
        for partner in rec["partners"]:
            counts["partner"][partner] += 1
        for tag in rec.get("hard_cases") or ():
            counts["hard case"][tag] += 1
    return counts


def format_counts(records: list[dict]) -> str:
    """Markdown tables, by source for each dimension: the table the dataset card carries."""
    # A column per source present: the card's tables stay as they are until corrections are exported.
    present = {r["source"] for r in records}
    by_source = {"all": records} | {s: [r for r in records if r["source"] == s] for s in SOURCES if s in present}
    counts = {name: count(recs) for name, recs in by_source.items()}
    tax = taxonomy()
    orders = {
        "language": LANGS, "sector": tax.sectors, "topic": tax.topics, "region": tax.regions,
        "length (characters)": [length_band(low) for low, _ in LENGTH_BANDS], "source": list(by_source)[1:],
        "hard case": HARD_CASES,
    }
    out = [f"Articles: {len(records)}; distinct partner countries: {len(counts['all']['partner'])}.", ""]
    for dim in ("source", "language", "sector", "topic", "region", "length (characters)", "hard case"):
        out.append(f"| {dim} | " + " | ".join(by_source) + " |")
        out.append("|---|" + "---:|" * len(by_source))
        for key in orders[dim]:
            out.append(f"| {key} | " + " | ".join(str(counts[s][dim][key]) for s in by_source) + " |")
        out.append("")
    partners = counts["all"]["partner"].most_common()
    out.append("| partner | articles |")
    out.append("|---|---:|")
    out.extend(f"| {code} | {n} |" for code, n in partners)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DATASETS, help="the datasets folder to check")
    parser.add_argument("--markdown", action="store_true", help="print only the counts tables")
    args = parser.parse_args(argv)
    files = corpus_files(args.root)
    lines = list(read_lines(files, args.root))
    problems = validate(lines, args.root / "raw" / "seeds")
    flagged = {(p.file, p.line) for p in problems}
    clean = [raw.record for raw in lines if raw.record and (raw.file, raw.line) not in flagged]
    print(format_counts(clean))
    if len(clean) < len(lines):
        print(f"\n({len(lines) - len(clean)} item(s) with problems are left out of these counts)")
    if args.markdown:
        return 1 if problems else 0
    print()
    print(f"Files: {', '.join(str(f.relative_to(args.root.parent)) for f in files) or 'none'}")
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("The corpus is valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
