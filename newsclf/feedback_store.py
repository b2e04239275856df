"""Analysts' corrections of the labels: a durable SQLite store written by the service, read by the export.

It sits in the core because two packages that may not import each other use it: ``serving`` writes a
correction (``POST /v1/feedback``), ``training`` exports them as corpus records (``newsclf feedback export``).
One file, one table; every correction is one transaction, committed with ``synchronous=FULL`` in WAL mode, so a
correction the API acknowledged survives a crash of the process or the machine. Nothing here enters training:
the export does, explicitly.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    title TEXT,
    text TEXT NOT NULL,
    language TEXT NOT NULL,
    sector TEXT NOT NULL,
    topics TEXT NOT NULL,      -- JSON list
    region TEXT NOT NULL,
    partners TEXT NOT NULL,    -- JSON list of ISO alpha-2 codes
    evidence TEXT NOT NULL,    -- JSON {topic: [[start, end], ...]}, offsets into text
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_run_id TEXT,
    predicted TEXT NOT NULL,   -- JSON: the labels the model gave, to measure what analysts change
    note TEXT
)
"""


@dataclass(frozen=True)
class Correction:
    text: str
    title: str | None
    language: str
    sector: str
    topics: tuple[str, ...]
    region: str
    partners: tuple[str, ...]
    model_name: str
    model_version: str
    model_run_id: str | None = None
    evidence: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    predicted: dict = field(default_factory=dict)
    note: str | None = None
    id: int | None = None
    created_at: str | None = None


class FeedbackStore:
    """The corrections file. A connection per call: requests run in worker threads, and SQLite serialises
    writers itself."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the API answers
        conn.execute(SCHEMA)
        return conn

    def add(self, correction: Correction) -> Correction:
        """Store one correction in its own transaction; returns it with its id and time."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        c = correction
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "INSERT INTO corrections (created_at, title, text, language, sector, topics, region, partners,"
                    " evidence, model_name, model_version, model_run_id, predicted, note)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (created, c.title, c.text, c.language, c.sector, json.dumps(list(c.topics)), c.region,
                     json.dumps(list(c.partners)), json.dumps({t: [list(s) for s in v] for t, v in c.evidence.items()}),
                     c.model_name, c.model_version, c.model_run_id, json.dumps(c.predicted, ensure_ascii=False),
                     c.note),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return Correction(**{**c.__dict__, "id": cursor.lastrowid, "created_at": created})

    def all(self) -> list[Correction]:
        """Every correction, oldest first (an empty list when the file does not exist yet)."""
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT id, created_at, title, text, language, sector, topics, region, partners, evidence,"
                " model_name, model_version, model_run_id, predicted, note FROM corrections ORDER BY id"
            ).fetchall()
        return [Correction(
            id=r[0], created_at=r[1], title=r[2], text=r[3], language=r[4], sector=r[5],
            topics=tuple(json.loads(r[6])), region=r[7], partners=tuple(json.loads(r[8])),
            evidence={t: [tuple(s) for s in v] for t, v in json.loads(r[9]).items()},
            model_name=r[10], model_version=r[11], model_run_id=r[12], predicted=json.loads(r[13]), note=r[14],
        ) for r in rows]
