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
	# The Spark extra too: `make test` runs the Spark job's tests (Java 17+ needed; the job says so when missing).
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	touch $(STAMP)

setup: $(STAMP)

## Set up, train the default model if none exists (the server never trains), serve on 127.0.0.1:8000
run: setup
	$(BIN)/newsclf train --if-missing
	$(BIN)/newsclf serve

train: setup
	$(BIN)/newsclf train

validate: setup
	$(BIN)/newsclf validate

## Lint, check the import contracts, then the whole test suite (code, data, model behaviour, API, notebooks, browser)
test: setup browser
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The MLflow UI test drives Debian's headless Chromium (no browser download is possible here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf .cache models/*/ mlflow.db mlartifacts reports
