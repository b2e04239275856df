"""``newsclf agreement``: how far two independent annotators agree on a stratified sample of the corpus.

The sample (``datasets/agreement/sample.jsonl``: 15% of the corpus, weighted to multi-topic, diplomacy-with-
security and training items) was labelled twice under the same written rules, blind to each other:
``first_annotation.jsonl`` (the re-annotation pass) and ``second_annotation.jsonl``. The disagreements were then
resolved by the rules (``adjudication.jsonl``) and the corpus carries the resolved labels.
Cohen's kappa per field, per topic and pooled over every (item, topic) decision.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from newsclf.taxonomy import taxonomy
from training.paths import DATASETS

AGREEMENT = DATASETS / "agreement"
EXAMPLES = """examples:
  newsclf agreement                  # the kappa table of the dataset card
"""


@dataclass(frozen=True)
class Row:
    field: str
    items: int
    agreement: float  # share of identical answers
    kappa: float  # nan when one annotator never uses the label (kappa is undefined)


def _read(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}


def _row(field: str, a: list, b: list) -> Row:
    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    kappa = float(cohen_kappa_score(a, b)) if len(set(a) | set(b)) > 1 else math.nan
    return Row(field, len(a), same, kappa)


def agreement_table(folder: Path = AGREEMENT) -> list[Row]:
    first, second = _read(folder / "first_annotation.jsonl"), _read(folder / "second_annotation.jsonl")
    ids = [r["id"] for r in map(json.loads, (folder / "sample.jsonl").read_text().splitlines())]
    one, two = [first[i] for i in ids], [second[i] for i in ids]
    rows = [_row(head, [r[head] for r in one], [r[head] for r in two]) for head in ("sector", "region")]
    rows.append(_row("main partner", [(r["partners"] or ["-"])[0] for r in one],
                     [(r["partners"] or ["-"])[0] for r in two]))
    rows.append(_row("partner set", [" ".join(sorted(r["partners"])) for r in one],
                     [" ".join(sorted(r["partners"])) for r in two]))
    pooled_a, pooled_b = [], []
    topic_rows = []
    for topic in taxonomy().topics:
        a = [int(topic in r["topics"]) for r in one]
        b = [int(topic in r["topics"]) for r in two]
        pooled_a += a
        pooled_b += b
        topic_rows.append(_row(f"topic {topic}", a, b))
    rows.append(_row("topics (every item x topic decision)", pooled_a, pooled_b))
    rows.append(_row("topic set", [" ".join(sorted(r["topics"])) for r in one],
                     [" ".join(sorted(r["topics"])) for r in two]))
    return rows + topic_rows


def format_table(rows: list[Row]) -> str:
    out = ["| field | decisions | identical | Cohen's kappa |", "|---|---:|---:|---:|"]
    for r in rows:
        kappa = "n/a" if math.isnan(r.kappa) else f"{r.kappa:.3f}"
        out.append(f"| {r.field} | {r.items} | {r.agreement:.1%} | {kappa} |")
    return "\n".join(out)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    adjudicated = len((AGREEMENT / "adjudication.jsonl").read_text().splitlines())
    print(format_table(agreement_table()))
    print(f"\nDisagreements resolved by the written rules: {adjudicated} (datasets/agreement/adjudication.jsonl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
