# Two commands for a new user: `make demo` and `make test`. Each creates .venv and installs
# the pinned dependencies first (torch/torchvision come from the machine's local wheel cache).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/edgeslim run recipes/demo.yaml

test: setup
	bash scripts/ensure-sshd.sh || true
	bash scripts/ensure-postgres.sh || true
	bash scripts/ensure-chromium.sh || true
	# both cores: tests in parallel by file; then, alone, the ones whose verdict is measured latency
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not serial"; a=$$?; \
	$(PY) -m pytest -q -m serial; b=$$?; \
	test $$a -eq 0 && test $$b -eq 0

test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(PY) scripts/lint_imports.py

clean:
	rm -rf runs build *.egg-info
