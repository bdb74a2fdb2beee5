# `make run` starts the bot (console chat without channel credentials); `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench eval index clean

$(VENV)/.base: pyproject.toml scripts/install.sh
	scripts/install.sh $(VENV)
	touch $@

$(VENV)/.full: pyproject.toml scripts/install.sh
	scripts/install.sh $(VENV) --st --dev
	touch $@ $(VENV)/.base

run: $(VENV)/.base
	$(PY) -m bot run

test: $(VENV)/.full
	$(PY) -m ruff check bot index tests benchmarks
	$(PY) -m pytest -q

lint: $(VENV)/.full
	$(PY) -m ruff check bot index tests benchmarks

bench: $(VENV)/.full
	$(PY) -m benchmarks.engine

index: $(VENV)/.base
	$(PY) -m bot index build

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
