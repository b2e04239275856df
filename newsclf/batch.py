"""Score a file of articles through the one ``Predictor``: JSON Lines or CSV in, JSON Lines out.

Input rows have ``id`` and ``text`` (``title`` optional). A row that cannot be scored (bad JSON, no text, a
missing id) is reported as ``file:line: why`` and skipped; the others are scored. Results are written in input
order, one JSON object per line: ``{"id", "sector", "topics", "region", "partners", ...}``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from newsclf.predictor import ArticleInput, Prediction, Predictor

# Why a row cannot be scored, in the words every scorer uses (also newsclf.spark_job).
NO_ID = "no 'id'"
NO_TEXT = "no 'text' (or an empty one)"
BATCH = 32  # articles per call to the predictor: large enough to batch the embedder, small for the progress bar


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ScoreReport:
    read: int = 0
    scored: int = 0
    bad: list[BadRow] = field(default_factory=list)


def _rows(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row, error) for every non-empty row of a .jsonl/.json or .csv file."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "text" not in reader.fieldnames:
                yield 1, None, "the CSV header must name a 'text' column (and 'id', optionally 'title')"
                return
            for row in reader:
                yield reader.line_num, dict(row), None
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(row, dict):
                yield number, None, "a line must be a JSON object with 'id' and 'text'"
                continue
            yield number, row, None


def _article(row: dict) -> tuple[str, ArticleInput] | str:
    """The row's id and article, or why it cannot be scored."""
    rid, text, title = row.get("id"), row.get("text"), row.get("title")
    if rid is None or str(rid).strip() == "":
        return NO_ID
    if not isinstance(text, str) or not text.strip():
        return NO_TEXT
    if title is not None and not isinstance(title, str):
        return "'title' must be a string"
    return str(rid), ArticleInput(text=text, title=title or None)


def result_record(rid: str, prediction: Prediction) -> dict:
    return {
        "id": rid, "sector": prediction.sector.label, "sector_confidence": prediction.sector.confidence,
        "topics": [t for t, _ in prediction.topics], "topic_scores": dict(prediction.topics),
        "topic_evidence": {t: [[e.start, e.end] for e in spans] for t, spans in prediction.topic_evidence.items()},
        "region": prediction.region.label, "region_confidence": prediction.region.confidence,
        "partners": prediction.partners, "language": prediction.language, "warnings": prediction.warnings,
    }


def score_file(predictor: Predictor, source: Path, output: Path, *, progress: bool = True) -> ScoreReport:
    report = ScoreReport()
    pending: list[tuple[str, ArticleInput]] = []
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out, tqdm(desc="classify", unit="article", disable=not progress,
                                                         file=sys.stderr) as bar:
        def flush() -> None:
            predictions = predictor.predict([a for _, a in pending])
            for (rid, _), prediction in zip(pending, predictions, strict=True):
                out.write(json.dumps(result_record(rid, prediction), ensure_ascii=False) + "\n")
            report.scored += len(pending)
            bar.update(len(pending))
            pending.clear()

        for number, row, error in _rows(source):
            report.read += 1
            parsed = _article(row) if row is not None else error
            if isinstance(parsed, str):
                report.bad.append(BadRow(str(source), number, parsed))
                continue
            pending.append(parsed)
            if len(pending) >= BATCH:
                flush()
        if pending:
            flush()
    tmp.replace(output)  # a reader never sees a half-written results file
    return report
