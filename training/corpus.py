"""The labelled corpus, validated: what training, evaluation and the notebooks read."""

from __future__ import annotations

from pathlib import Path

from training.paths import DATASETS
from training.records import Article, corpus_files, read_lines
from training.validate_corpus import CorpusInvalid, validate


def load_corpus(root: Path = DATASETS) -> list[Article]:
    """Validated articles; raises :class:`training.validate_corpus.CorpusInvalid` listing every problem."""
    lines = list(read_lines(corpus_files(root), root))
    problems = validate(lines)
    if problems:
        raise CorpusInvalid(problems)
    return [Article.from_record(raw.record, file=raw.file, line=raw.line) for raw in lines if raw.record]
