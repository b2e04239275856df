"""``newsclf serve`` (and ``python -m serving``): serve the configured model on HTTP.

The service never trains: with no model it exits 2 and says to run ``newsclf train`` (``make run`` does both).
Settings come from NEWSCLF_* variables (see serving/settings.py and the README). Exit status 2, with a message,
when a setting is wrong or the local model is refused (sha256 mismatch, corrupt or outdated manifest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from newsclf.model_format import ModelIntegrityError, verify
from serving.app import configure_logging, create_app
from serving.server import run
from serving.service import NoModel, model_source
from serving.settings import SettingsError, is_model_uri, load_settings

EXAMPLES = """examples:
  newsclf serve                                          # the newest model under models/, on 127.0.0.1:8000
  NEWSCLF_MODEL=models:/newsclf@champion newsclf serve   # the registry's champion
  NEWSCLF_PORT=9000 NEWSCLF_HOST=0.0.0.0 newsclf serve
settings: NEWSCLF_* environment variables (README, "Settings of the service")
"""


def _say(message: str) -> None:
    print(f"[serving] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argparse.ArgumentParser(prog=prog, description="Serve the news classifier's HTTP API.", epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    try:
        settings = load_settings()
        source = model_source(settings)
        if not is_model_uri(source):
            # Refuse a tampered model here, before listening: at a terminal an exit beats a server stuck at 503.
            verify(Path(source))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelIntegrityError as exc:
        print(f"error: model refused: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    _say(f"serving {source} on http://{settings.host}:{settings.port} (API docs at /docs; the model loads in the "
         "background, /readyz answers 200 once it is ready)")
    # uvicorn with h11, deadlines for heads and bodies, a head size limit and a connection cap (serving/server.py).
    run(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
