# The two commands of the README: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import syft_flwr, flwr, pytest" && touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/syft-flwr demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check toolkit tests benchmarks datasets
	$(BIN)/ruff format --check toolkit tests benchmarks datasets

format: $(STAMP)
	$(BIN)/ruff check --fix toolkit tests benchmarks datasets
	$(BIN)/ruff format toolkit tests benchmarks datasets

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/simulation.py

clean:
	rm -rf $(VENV) .pytest_cache
