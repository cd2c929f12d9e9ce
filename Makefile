# The two commands of the README:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-fast lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/excise demo

# Where Chromium is present (test-deps.sh installs it when it can), the HTML report test must run.
# One pytest-xdist worker per core, a whole test file per worker (its module fixtures load once).
test: setup
	@bash scripts/test-deps.sh
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  export EXCISE_REQUIRE_CHROMIUM=1; fi; $(PY) -m pytest -q -n auto --dist loadfile tests

test-fast: setup
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow" tests

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/scoring.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
