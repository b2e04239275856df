"""The label sets, read from the package's ``data/taxonomy.yaml``: the single source of label names for the corpus,
the code, the API and the docs (it travels inside the registered model)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

TAXONOMY_FILE = Path(__file__).parent / "data" / "taxonomy.yaml"


@dataclass(frozen=True)
class Taxonomy:
    sectors: tuple[str, ...]
    topics: tuple[str, ...]
    regions: tuple[str, ...]
    definitions: dict[str, dict[str, dict[str, str]]]  # head -> label -> lang -> text
    un_subregions: dict[str, str]
    region_overrides: dict[str, str]

    def region_of_country(self, iso2: str) -> str | None:
        """Region of a country (ISO alpha-2), or None when the country is unknown."""
        if iso2 in self.region_overrides:
            return self.region_overrides[iso2]
        return self.un_subregions.get(_un_subregion(iso2) or "")


@cache
def _un_subregion_table() -> dict[str, str]:
    # Imported lazily: building country_converter's tables costs a few hundred milliseconds.
    import country_converter as coco
    import pycountry

    codes = [country.alpha_2 for country in pycountry.countries]
    subregions = coco.CountryConverter().convert(codes, src="ISO2", to="UNregion", not_found=None)
    return {iso2: sub for iso2, sub in zip(codes, subregions, strict=True) if isinstance(sub, str)}


def _un_subregion(iso2: str) -> str | None:
    return _un_subregion_table().get(iso2)


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    region = raw["region"]
    return Taxonomy(
        sectors=tuple(raw["sector"]["labels"]),
        topics=tuple(raw["topics"]["labels"]),
        regions=tuple(region["labels"]),
        definitions={head: raw[head]["labels"] for head in ("sector", "topics", "region")},
        un_subregions=dict(region["un_subregions"]),
        region_overrides=dict(region.get("overrides") or {}),
    )


@cache
def taxonomy() -> Taxonomy:
    """The project's taxonomy, loaded once."""
    return load_taxonomy()
