"""Settings of the prediction service: environment variables ``NEWSCLF_*``, validated when the service starts.

A wrong value stops the start-up with one line per problem naming the variable (``SettingsError``);
nothing falls back silently to a default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsclf.model_format import MANIFEST

# The checkout the service runs from: its models/ folder, its .cache (shared with training) and its MLflow store.
CHECKOUT = Path(__file__).resolve().parent.parent
MODELS_DIR = CHECKOUT / "models"
CACHE_DIR = CHECKOUT / ".cache"
FEEDBACK_DB = CHECKOUT / "feedback.db"  # analysts' corrections (git-ignored; exported by `newsclf feedback export`)
DEFAULT_TRACKING_URI = f"sqlite:///{CHECKOUT / 'mlflow.db'}"

ENV_PREFIX = "NEWSCLF_"
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_TITLE_CHARS = 1_000
DEFAULT_MAX_BATCH_ITEMS = 64
# Worst case of one character in a JSON body: \uXXXX, which Python's json.dumps and requests use by default for
# every non-ASCII character (most letters of a Vietnamese text). Astral characters (emoji) take 12 bytes and are
# the only ones a full-size text may not fit with.
JSON_BYTES_PER_CHAR = 6
BODY_OVERHEAD_BYTES = 64 * 1024  # keys, ids, punctuation of a full batch
# Something that looks like "scheme:/...": an MLflow model URI (models:/, runs:/, s3://, file:/...).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def body_bytes_for(max_batch_items: int, max_text_chars: int, max_title_chars: int) -> int:
    """The largest body a client may need: a full batch of max-size texts and titles, fully escaped."""
    return max_batch_items * (max_text_chars + max_title_chars) * JSON_BYTES_PER_CHAR + BODY_OVERHEAD_BYTES


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list (blank items ignored)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def is_model_uri(value: str) -> bool:
    return bool(_URI.match(value))


def _default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each variable and what to fix."""


class ServiceSettings(BaseSettings):
    """Every knob of the service. Construct with keyword arguments (tests) or from ``NEWSCLF_*`` variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True)

    model: str = Field(
        "",
        description="A trained-model folder, or an MLflow model URI such as models:/newsclf@champion; "
        "empty: the newest folder under models/",
    )
    tracking_uri: str = Field(
        default_factory=_default_tracking_uri,
        description="MLflow tracking/registry URI used to resolve a models:/ or runs:/ model; "
        "default: $MLFLOW_TRACKING_URI, else the repository's mlflow.db",
    )
    max_text_chars: int = Field(DEFAULT_MAX_TEXT_CHARS, ge=1, le=10_000_000,
                                description="Longest accepted article text, in characters")
    max_title_chars: int = Field(DEFAULT_MAX_TITLE_CHARS, ge=1, le=100_000,
                                 description="Longest accepted title, in characters")
    max_batch_items: int = Field(DEFAULT_MAX_BATCH_ITEMS, ge=1, le=10_000,
                                 description="Most articles in one /v1/classify/batch request")
    max_body_bytes: int = Field(
        body_bytes_for(DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_TITLE_CHARS), ge=1024,
        description="Largest accepted request body; default: derived from the three limits above so that a full "
        "batch of max-size articles fits even with every character \\u-escaped",
    )
    models_dir: Path = Field(MODELS_DIR, description="Folder of trained models; with NEWSCLF_MODEL empty, the "
                             "newest one is served")
    embedding_cache_dir: Path = Field(
        CACHE_DIR,
        description="Folder of the embedding cache (and of the bundled embedder's weights, built there once); "
        "default: the repository's .cache, shared with training",
    )
    torch_threads: int | None = Field(
        None, ge=1, le=256,
        description="Threads torch uses for a forward pass; default: torch's own (one per core). 1 is far faster "
        "when other jobs keep a core busy (two threads then wait on each other at every step)",
    )
    # --- traffic: backpressure and coalescing (serving/dispatcher.py) ---
    max_in_flight: int = Field(
        32, ge=1, le=100_000,
        description="Most articles queued or being classified at once; a request past it gets 503 with "
        "Retry-After at once instead of waiting behind everyone (latency = queue / throughput)",
    )
    max_queue_wait_s: float = Field(
        2.0, gt=0, le=600,
        description="Most seconds of work (at the throughput measured so far) queued at once; past it, 503 with "
        "Retry-After. Keeps answers within about this time when the machine is slower than expected",
    )
    coalesce_window_ms: float = Field(
        5.0, ge=0, le=1000,
        description="How long the inference worker waits for more requests to predict together with the first",
    )
    coalesce_max_batch: int = Field(8, ge=1, le=1024, description="Most articles predicted in one call")
    inference_workers: int = Field(2, ge=1, le=16, description="Threads taking requests from the queue (forward "
                                   "passes are serialised by the embedder; the rest of a prediction overlaps)")
    # --- connections (`newsclf serve`, serving/server.py) ---
    header_timeout_s: float = Field(10.0, gt=0, le=600,
                                    description="Seconds a connection has to send a complete request head")
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="Seconds a client has to send the whole body")
    keep_alive_s: float = Field(5.0, gt=0, le=600, description="Seconds an idle keep-alive connection stays open")
    max_header_bytes: int = Field(32 * 1024, ge=4096, le=1024 * 1024,
                                  description="Largest request head (request line and headers)")
    max_connections: int = Field(
        2048, ge=16, le=1_000_000,
        description="Open connections past which the oldest one still sending its head is closed (slow clients "
        "cannot hold every descriptor); also kept under the process's open-file limit",
    )
    # --- access ---
    api_keys: str = Field(
        "", repr=False,
        description="Comma-separated keys; when set, classify and model routes need `Authorization: Bearer <key>` "
        "(several keys for rotation). Health probes, /metrics and /docs stay open",
    )
    admin_keys: str = Field(
        "", repr=False,
        description="Comma-separated keys for /v1/admin/* (hot reload); when empty the admin routes are disabled",
    )
    allowed_hosts: str = Field(
        "localhost,127.0.0.1,::1",
        description="Comma-separated Host header values the service answers (a leading `*.` matches "
        "subdomains; `*` allows any); set it to the names clients use when listening beyond localhost",
    )
    embedding_cache_max_bytes: int = Field(
        1024**3, ge=1024**2, le=1024**4,
        description="Size limit of the embedding cache; least recently used vectors are evicted past it",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Interface `newsclf serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port `newsclf serve` listens on")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Level of the service's logs")
    feedback_db: Path = Field(FEEDBACK_DB, description="SQLite file of the analysts' corrections (POST /v1/feedback); "
                              "created on the first correction")
    mlflow_ui_url: str | None = Field(None, description="Base URL of an MLflow UI on the tracking store (e.g. "
                                      "http://127.0.0.1:5000): the page then links the model to its run")

    @field_validator("feedback_db")
    @classmethod
    def _feedback_dir_exists(cls, value: Path) -> Path:
        # Fail at start-up, not on the first correction an analyst tries to save.
        folder = value.expanduser().absolute().parent
        if not folder.is_dir():
            raise ValueError(f"the folder {folder} does not exist: create it or point to a file in an existing one")
        return value.expanduser().absolute()

    @field_validator("mlflow_ui_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:5000")
        return value

    @model_validator(mode="before")
    @classmethod
    def _derive_body_limit(cls, data):
        # An unset body limit follows the other limits, so raising max_text_chars alone cannot make full batches
        # impossible to send.
        if isinstance(data, dict) and data.get("max_body_bytes") in (None, ""):
            try:
                derived = body_bytes_for(
                    int(data.get("max_batch_items", DEFAULT_MAX_BATCH_ITEMS)),
                    int(data.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)),
                    int(data.get("max_title_chars", DEFAULT_MAX_TITLE_CHARS)),
                )
            except (TypeError, ValueError):
                return data  # the field errors say what is wrong
            data = {k: v for k, v in data.items() if k != "max_body_bytes"} | {"max_body_bytes": derived}
        return data

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        value = value.strip()
        if not value or is_model_uri(value):
            if value.startswith("models:/") and len(value) <= len("models:/"):
                raise ValueError("a models:/ URI needs a name, e.g. models:/newsclf@champion or models:/newsclf/3")
            return value
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{value!r} is neither an existing model folder nor an MLflow model URI "
                             "(models:/name@alias, models:/name/version, runs:/run_id/model)")
        if not (folder / MANIFEST).is_file():
            raise ValueError(f"{value!r} is not a trained-model folder: it has no {MANIFEST} "
                             "(point to a folder under models/, e.g. models/20250101T000000000000Z)")
        return str(folder.resolve())

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _keys_usable(cls, value: str) -> str:
        for key in split_list(value):
            if len(key) < 16 or any(ch.isspace() for ch in key):
                raise ValueError("each key must have at least 16 characters and no spaces (comma-separated; "
                                 "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_given(cls, value: str) -> str:
        if not split_list(value):
            raise ValueError("must name at least one host (or `*` to allow any Host header)")
        return value

    @property
    def api_key_list(self) -> list[str]:
        return split_list(self.api_keys)

    @property
    def admin_key_list(self) -> list[str]:
        return split_list(self.admin_keys)

    @property
    def allowed_host_list(self) -> list[str]:
        return split_list(self.allowed_hosts)

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_uri_usable(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty (e.g. sqlite:///mlflow.db or http://127.0.0.1:5000)")
        return value

    @model_validator(mode="after")
    def _registry_exists(self) -> ServiceSettings:
        # MLflow creates an empty SQLite store for a path that does not exist: the registry lookup would then
        # fail later with a confusing "model not found" instead of naming the wrong path.
        if is_model_uri(self.model) and self.tracking_uri.startswith("sqlite:///"):
            db = Path(self.tracking_uri.removeprefix("sqlite:///")).absolute()  # sqlite:////abs or relative
            if not db.is_file():
                raise ValueError(f"{ENV_PREFIX}TRACKING_URI={self.tracking_uri!r}: no MLflow database at {db}, "
                                 f"so the model {self.model!r} cannot be resolved")
        return self


_SECRET_FIELDS = frozenset({"api_keys", "admin_keys"})


def _name(loc: tuple) -> str:
    return f"{ENV_PREFIX}{loc[0]}".upper() if loc else "settings"


def load_settings(**overrides) -> ServiceSettings:
    """Settings from the environment (and ``overrides``), or ``SettingsError`` naming each bad variable."""
    try:
        return ServiceSettings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            got = error.get("input")
            secret = bool(error["loc"]) and error["loc"][0] in _SECRET_FIELDS  # never echo a key into a log
            shown = f" (got {got!r})" if isinstance(got, str | int | float) and error["loc"] and not secret else ""
            lines.append(f"  {_name(error['loc'])}: {message}{shown}")
        raise SettingsError("invalid service settings:\n" + "\n".join(lines)) from None
