"""Turn the raw scraped seed pages into corpus items: the main article, and each "Voir plus" teaser.

The raw files under ``datasets/raw/seeds/`` are never modified. ``python -m training.seeds`` prints the
items as JSON Lines (text only, no labels); the labelled ``datasets/seeds.jsonl`` was made from that output
by hand-labelling, and the data tests check that every seed item's text still comes from its raw page.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from newsclf.cleaning import is_caption, split_teasers
from training.paths import RAW_SEEDS


@dataclass(frozen=True)
class SeedItem:
    id: str
    source: str  # "seed" or "seed_teaser"
    title: str
    text: str
    group: str


def _lines(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip()]


def parse_seed(path: Path) -> tuple[SeedItem, list[SeedItem]]:
    raw = path.read_text(encoding="utf-8")
    stem = path.stem.split("_")[0]
    article, teaser_block = split_teasers(raw)
    first, _, rest = article.lstrip().partition("\n")
    # One page (004) starts straight with the body: no title line to take.
    has_title = len(first) < 200 and not first.rstrip().endswith(".")
    title, body = (first.strip(), rest.strip()) if has_title else ("", article.strip())
    main = SeedItem(
        id=f"seed-{stem}", source="seed", title=title,
        text=body + ("\n\n" + teaser_block.strip() if teaser_block else ""), group=f"seed-{stem}",
    )
    # Teaser block: caption line, headline, summary, repeated; captions dropped, doubled headlines merged.
    lines = [line for line in _lines(teaser_block)[1:] if not is_caption(line)]
    deduped = [line for i, line in enumerate(lines) if i == 0 or line != lines[i - 1]]
    teasers = [
        SeedItem(id=f"seed-{stem}-t{n:02d}", source="seed_teaser", title=headline, text=summary,
                 group=f"seed-{stem}-t{n:02d}")
        for n, (headline, summary) in enumerate(zip(deduped[::2], deduped[1::2], strict=False), 1)
    ]
    return main, teasers


def seed_items(folder: Path = RAW_SEEDS) -> list[SeedItem]:
    """All items, teasers repeated across pages kept once (the first page that shows them)."""
    items: list[SeedItem] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.txt")):
        main, teasers = parse_seed(path)
        items.append(main)
        for teaser in teasers:
            if teaser.title not in seen:
                seen.add(teaser.title)
                items.append(teaser)
    return items


if __name__ == "__main__":
    for item in seed_items():
        sys.stdout.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")
