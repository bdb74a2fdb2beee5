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
	$(VENV)/bin/hadolint Dockerfile
	scripts/image-build.sh $(VENV) var-image bundled-minilm  # the Dockerfile's build steps
	$(PY) -m pytest -q

lint: $(VENV)/.full
	$(PY) -m ruff check bot index tests benchmarks
	$(VENV)/bin/hadolint Dockerfile

bench: $(VENV)/.full
	$(PY) -m benchmarks.engine
	$(PY) -m benchmarks.channels
	$(PY) -m benchmarks.size

index: $(VENV)/.base
	$(PY) -m bot index build

clean:
	rm -rf $(VENV) var var-image .pytest_cache .ruff_cache
