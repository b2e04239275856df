# Two entry points for a fresh clone (see README): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run serve train validate test browser ui clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the local CPU wheel, never the CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## Set up, train the default model if none exists, serve on 127.0.0.1:8000
run: setup
	$(BIN)/python -m serving

train: setup
	$(BIN)/python -m training.train

validate: setup
	$(BIN)/python -m training.validate_corpus

## Lint, then the whole test suite (code, data, model behaviour, API, notebooks, browser)
test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The MLflow UI test drives Debian's headless Chromium (no browser download is possible here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf .cache models/*/ mlflow.db mlartifacts reports
