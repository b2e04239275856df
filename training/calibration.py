"""The calibration documents of static int8 quantisation, cut from the bundled corpus into package data.

Why package data: the int8 embedder is exported on first use wherever a model runs, including a registered MLflow
model outside the checkout, where ``datasets/`` does not exist. The documents are prepared exactly as the model
reads them (cleaned, title first) and chosen deterministically (evenly spaced by id, the same number per language),
so every machine quantises the same way. Regenerate with ``python -m training.calibration`` after the corpus
changes (a data test says when the file is stale).
"""

from __future__ import annotations

import json
from pathlib import Path

from newsclf.backends import CALIBRATION_FILE
from newsclf.predictor import prepare_documents
from training.corpus import load_corpus
from training.records import Article

PER_LANGUAGE = 16
TARGET = Path(__file__).resolve().parents[1] / "newsclf" / "data" / CALIBRATION_FILE


def select_calibration(articles: list[Article], per_language: int = PER_LANGUAGE) -> list[Article]:
    chosen = []
    for lang in sorted({a.lang for a in articles}):
        pool = sorted((a for a in articles if a.lang == lang and a.source == "written"), key=lambda a: a.id)
        step = max(len(pool) / per_language, 1.0)
        chosen += [pool[int(i * step)] for i in range(min(per_language, len(pool)))]
    return chosen


def calibration_lines(articles: list[Article]) -> str:
    chosen = select_calibration(articles)
    return "".join(json.dumps({"id": a.id, "lang": a.lang, "document": d}, ensure_ascii=False) + "\n"
                   for a, d in zip(chosen, prepare_documents(chosen, clean=True), strict=True))


def main() -> None:
    TARGET.write_text(calibration_lines(load_corpus()), encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
