"""``python -m serving`` (what ``make run`` runs): train the default model if there is none, then serve it.

Settings come from NEWSCLF_* variables (see serving/settings.py and the README). Exit status 2, with a message,
when a setting is wrong or the local model fails its sha256 check.
"""

from __future__ import annotations

import sys
from pathlib import Path

from serving.settings import SettingsError, is_model_uri, load_settings
from training.model_store import ModelIntegrityError, newest_model, verify
from training.paths import MODELS


def _say(message: str) -> None:
    print(f"[serving] {message}", file=sys.stderr, flush=True)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.model and newest_model(MODELS) is None:
        _say(f"no trained model under {MODELS}: training the default model first "
             "(python -m training.train; a few minutes, only this once)")
        from training.train import main as train

        status = train([])
        if status != 0 or newest_model(MODELS) is None:
            print(f"error: training failed (exit status {status}); see the messages above", file=sys.stderr)
            return status or 1
    source = settings.model or str(newest_model(MODELS))
    if not is_model_uri(source):
        # Refuse a tampered model here, before listening: at a terminal an exit beats a server stuck at 503.
        try:
            verify(Path(source))
        except ModelIntegrityError as exc:
            print(f"error: model refused: {exc}", file=sys.stderr)
            return 2

    import uvicorn

    from serving.app import configure_logging, create_app

    configure_logging(settings.log_level)
    _say(f"serving {source} on http://{settings.host}:{settings.port} (API docs at /docs; the model loads in the "
         "background, /readyz answers 200 once it is ready)")
    # The service logs one line per request (with its id, size, labels, latency): uvicorn's access log would repeat it.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
