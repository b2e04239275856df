"""Where things live in a checkout. Everything generated goes under git-ignored folders."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
RAW_SEEDS = DATASETS / "raw" / "seeds"
CACHE = ROOT / ".cache"
MODELS = ROOT / "models"
REPORTS = ROOT / "reports"
DEFAULT_TRACKING_URI = f"sqlite:///{ROOT / 'mlflow.db'}"
