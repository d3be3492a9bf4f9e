# The two commands of the README: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := toolkit tests benchmarks datasets fed-analytics-diabetes fl-diabetes-prediction images
# a failed install must fail the target, even through the filter that hides pip's noise
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

.PHONY: setup sandbox-tools demo demo-syftbox syftbox-env test lint format benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks,apps]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import syft_flwr, flwr, pytest, xdist, nbclient, hypothesis, ipykernel, pandas, ray, sklearn"
	$(BIN)/ruff --version >/dev/null
	$(BIN)/python -m compileall -q toolkit  # an editable install is not byte-compiled
	touch $(STAMP)

setup: $(STAMP)
	@command -v bwrap >/dev/null || echo "NOTE: bubblewrap (bwrap) is missing: data owners' jobs \
	cannot run sandboxed and tests/sandbox is skipped. Install it: apt-get install bubblewrap"

# SyftBox 0.4.0 (its server and client) pins old typer/fastapi/psutil: a venv of its own.
# An install that fails does not fail the target: the SyftBox tests then skip and say why.
SYFTBOX_VENV := .venv-syftbox
SYFTBOX_STAMP := $(SYFTBOX_VENV)/.installed

$(SYFTBOX_STAMP):
	@{ $(PYTHON) -m venv $(SYFTBOX_VENV) \
	  && $(SYFTBOX_VENV)/bin/python -m pip install --quiet 'syftbox==0.4.0' 'click<8.2' 2>&1 \
	     | { grep -v "^WARNING: Location" || true; } \
	  && $(SYFTBOX_VENV)/bin/syftbox version >/dev/null && touch $(SYFTBOX_STAMP); } \
	  || echo "syftbox could not be installed in $(SYFTBOX_VENV): the SyftBox tests skip, \
	  demo-syftbox cannot run (make demo runs the same workflow on one folder)"

syftbox-env: $(SYFTBOX_STAMP)

# bubblewrap sandboxes the data owners' jobs: installed where make can (root with apt)
sandbox-tools:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       --no-install-recommends bubblewrap >/dev/null; } ; } || true

demo: $(STAMP) sandbox-tools
	$(BIN)/syft-flwr demo

demo-syftbox: $(STAMP) $(SYFTBOX_STAMP)
	$(BIN)/syft-flwr demo --syftbox --folder demo_syftbox

test: $(STAMP) $(SYFTBOX_STAMP) sandbox-tools
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# the scale benchmark compares with Flower's simulation engine (Ray: the simulation extra, in dev)
benchmarks: $(STAMP)
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/simulation.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/syftbox.py

clean:
	rm -rf $(VENV) $(SYFTBOX_VENV) .pytest_cache
