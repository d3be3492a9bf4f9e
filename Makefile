# The two commands of the README: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := toolkit tests benchmarks datasets fed-analytics-diabetes fl-diabetes-prediction images
# a failed install must fail the target, even through the filter that hides pip's noise
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: setup demo test lint format benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import syft_flwr, flwr, pytest, xdist, nbclient, hypothesis, ipykernel"
	$(BIN)/ruff --version >/dev/null
	$(BIN)/python -m compileall -q toolkit  # an editable install is not byte-compiled
	touch $(STAMP)

setup: $(STAMP)
	@command -v bwrap >/dev/null || echo "NOTE: bubblewrap (bwrap) is missing: data owners' jobs \
	cannot run sandboxed and tests/sandbox is skipped. Install it: apt-get install bubblewrap"

demo: $(STAMP)
	$(BIN)/syft-flwr demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# the scale benchmark compares with Flower's simulation engine: Ray, in the bench extra only
benchmarks: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' 2>&1 | { grep -v "^WARNING: Location" || true; } \
	  || echo "no Ray here: benchmarks/scale.py reports Flower's side as unavailable"
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/simulation.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) .pytest_cache
