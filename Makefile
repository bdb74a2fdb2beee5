# `make run` starts the bot (console chat without channel credentials); `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench eval index lock clean

$(VENV)/.base: pyproject.toml scripts/install.sh requirements/base.lock
	scripts/install.sh $(VENV)
	touch $@

$(VENV)/.full: pyproject.toml scripts/install.sh requirements/dev.lock requirements/torch-cpu.txt
	scripts/install.sh $(VENV) --st --dev
	touch $@ $(VENV)/.base

run: $(VENV)/.base
	$(PY) -m bot run

test: $(VENV)/.full
	scripts/ensure-browser.sh >/dev/null  # Chromium for the browser tests (they skip without)
	$(PY) -m ruff check bot index testing tests benchmarks
	$(PY) -m mypy bot index
	$(VENV)/bin/hadolint Dockerfile
	scripts/image-build.sh $(VENV) var-image bundled-minilm  # the Dockerfile's build steps
	$(PY) -m pytest -q

lint: $(VENV)/.full
	$(PY) -m ruff check bot index testing tests benchmarks
	$(PY) -m mypy bot index
	$(VENV)/bin/hadolint Dockerfile

# Regenerate requirements/*.lock from pyproject.toml, keeping the versions already locked;
# `make lock UPGRADE=--upgrade` takes the newest allowed, `UPGRADE="--upgrade-package NAME"` one.
# Needs only uv from the venv, so it works while pyproject.toml is ahead of the locks.
lock:
	test -x $(VENV)/bin/uv || scripts/install.sh $(VENV) --dev || test -x $(VENV)/bin/uv
	scripts/lock.sh $(VENV)/bin/uv $(UPGRADE)

bench: $(VENV)/.full
	$(PY) -m benchmarks.engine
	$(PY) -m benchmarks.channels
	$(PY) -m benchmarks.size
	$(PY) -m benchmarks.faults

eval: $(VENV)/.full
	$(PY) -m bot eval

index: $(VENV)/.base
	$(PY) -m bot index build

clean:
	rm -rf $(VENV) var var-image .pytest_cache .ruff_cache .mypy_cache
