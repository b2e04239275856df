"""Records of the labelled corpus: JSON Lines files under ``datasets/``, one article a line (read, not validated)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from training.paths import DATASETS

LANGS = ("fr", "en", "vi")
FEEDBACK_DIR = "feedback"  # under datasets/
SOURCES = ("seed", "seed_teaser", "written", "feedback")  # feedback: analysts' corrections, exported explicitly


@dataclass(frozen=True)
class Article:
    id: str
    lang: str
    title: str
    text: str
    sector: str
    topics: tuple[str, ...]
    region: str
    partners: tuple[str, ...]
    source: str
    group: str
    hard_cases: tuple[str, ...] = ()
    # topic -> character spans of ``text`` that state the cooperation in that area
    evidence: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    file: str = ""
    line: int = 0

    @classmethod
    def from_record(cls, record: dict, *, file: str = "", line: int = 0) -> Article:
        return cls(
            id=record["id"], lang=record["lang"], title=record["title"], text=record["text"],
            sector=record["sector"], topics=tuple(record["topics"]), region=record["region"],
            partners=tuple(record["partners"]), source=record["source"], group=record["group"],
            hard_cases=tuple(record.get("hard_cases") or ()),
            evidence={topic: tuple((int(start), int(end)) for start, end in spans)
                      for topic, spans in (record.get("evidence") or {}).items()},
            file=file, line=line,
        )


@dataclass(frozen=True)
class RawLine:
    """One line of a corpus file: its parsed record, or the JSON error that prevented parsing."""

    file: str
    line: int
    record: dict | None
    error: str | None = None


def corpus_files(root: Path = DATASETS) -> list[Path]:
    """The labelled files: the seed-derived items, the written ones, then the analysts' corrections that
    ``newsclf feedback export`` wrote, in a stable order."""
    return (sorted(root.glob("*.jsonl")) + sorted((root / "written").glob("*.jsonl"))
            + sorted((root / FEEDBACK_DIR).glob("*.jsonl")))


def read_lines(files: Iterable[Path], root: Path = DATASETS) -> Iterator[RawLine]:
    for path in files:
        rel = str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawLine(rel, number, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(record, dict):
                yield RawLine(rel, number, None, "a line must be a JSON object")
                continue
            yield RawLine(rel, number, record)


def dataset_hash(files: Iterable[Path]) -> str:
    """sha256 over the files' names and bytes: the data version logged with every training run."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
