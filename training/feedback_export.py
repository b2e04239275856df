"""Analysts' corrections as corpus records: the one door from the page's feedback into training data.

    newsclf feedback export [--db feedback.db] [--root datasets]

Reads the corrections the service stored (``POST /v1/feedback``; ``NEWSCLF_FEEDBACK_DB``, default
``feedback.db`` in the checkout), keeps the newest correction of each article, turns them into corpus records
(``source: feedback``) and checks them with the corpus validator together with the rest of the corpus. The
records that pass are written to ``datasets/feedback/corrections.jsonl`` (replaced as a whole, atomically),
which the corpus reads like any labelled file; the others are listed with the validator's reason and left out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from newsclf.feedback_store import Correction, FeedbackStore
from training.paths import DATASETS, ROOT
from training.records import FEEDBACK_DIR, RawLine, corpus_files, read_lines
from training.validate_corpus import Problem, validate

DEFAULT_DB = ROOT / "feedback.db"  # the service's default NEWSCLF_FEEDBACK_DB
EXPORT_FILE = "corrections.jsonl"

EXAMPLES = """examples:
  newsclf feedback export                              # feedback.db -> datasets/feedback/corrections.jsonl
  newsclf feedback export --db /srv/newsclf/feedback.db
  newsclf validate                                     # the corpus, corrections included, still valid
"""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    written: list[dict]
    skipped: list[Problem]
    corrections: int


def article_key(title: str | None, text: str) -> str:
    return hashlib.sha256(f"{title or ''}\n{text}".encode()).hexdigest()


def to_record(correction: Correction) -> dict:
    key = article_key(correction.title, correction.text)[:16]
    return {
        "id": f"feedback-{key}", "lang": correction.language, "title": correction.title or "",
        "text": correction.text, "sector": correction.sector, "topics": list(correction.topics),
        "region": correction.region, "partners": list(correction.partners), "source": "feedback",
        # One article, one group: its versions must never straddle cross-validation folds.
        "group": f"feedback-{key}",
        "evidence": {t: [list(s) for s in spans] for t, spans in correction.evidence.items()
                     if t in correction.topics},
    }


def newest_per_article(corrections: Sequence[Correction]) -> list[Correction]:
    """The last correction of each article wins (an analyst may save twice)."""
    latest: dict[str, Correction] = {}
    for c in corrections:  # oldest first
        latest[article_key(c.title, c.text)] = c
    return list(latest.values())


def export(db: Path, root: Path = DATASETS) -> ExportResult:
    corrections = FeedbackStore(db).all()
    records = [to_record(c) for c in newest_per_article(corrections)]
    out = root / FEEDBACK_DIR / EXPORT_FILE
    rel = str(out.relative_to(root.parent)) if out.is_relative_to(root.parent) else str(out)
    others = [f for f in corpus_files(root) if f.resolve() != out.resolve()]
    ours = [RawLine(rel, i, record) for i, record in enumerate(records, 1)]
    problems = validate([*read_lines(others, root), *ours], root / "raw" / "seeds")
    # Only our lines decide what is written; a problem elsewhere in the corpus is `newsclf validate`'s business.
    bad_lines = {p.line for p in problems if p.file == rel}
    skipped = [p for p in problems if p.file == rel]
    written = [r for i, r in enumerate(records, 1) if i not in bad_lines]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in written:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)
    return ExportResult(out, written, skipped, len(corrections))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    cmd = sub.add_parser("export", help="write the corrections as corpus JSON Lines under datasets/feedback/")
    cmd.add_argument("--db", type=Path, default=Path(os.environ.get("NEWSCLF_FEEDBACK_DB") or DEFAULT_DB),
                     help="the corrections file (default: $NEWSCLF_FEEDBACK_DB, else feedback.db in the checkout)")
    cmd.add_argument("--root", type=Path, default=DATASETS, help="the datasets folder to write into and validate")
    args = parser.parse_args(argv)
    if not args.db.is_file():
        print(f"no corrections file at {args.db}: corrections are saved there by the service "
              "(POST /v1/feedback, the page's 'Correct the labels'); pass --db to read another one", file=sys.stderr)
        return 2
    result = export(args.db, args.root)
    print(f"{result.corrections} correction(s) stored, {len(result.written)} article(s) written to {result.path}")
    if result.skipped:
        print(f"{len(result.skipped)} problem(s): these corrections were left out:", file=sys.stderr)
        for problem in result.skipped:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
