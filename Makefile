# One command sets everything up and runs the main job (`make demo`); one sets everything up and
# runs the tests (`make test`). The virtual environment is created from nothing on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPIKEFORGE_DATA ?= $(abspath ../shared/data)
export SPIKEFORGE_DATA

.PHONY: demo test lint bench bench-peers reproduce docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/spikeforge demo --out reports/demo

test: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs/tables.py

# TTFS benchmarks at 1 and 2 threads; copy a report to docs/results/ and run `make docs` to
# regenerate the docs' speed tables from it.
bench: $(BIN)/.installed bench-peers
	$(BIN)/python benchmarks/ttfs_inference.py --threads 1,2 --json reports/bench-ttfs-inference.json
	$(BIN)/python benchmarks/ttfs_training.py --threads 1,2 --json reports/bench-ttfs-training.json
	$(BIN)/python benchmarks/neurons.py --json reports/bench-neurons.json

# Rewrite every generated table in README.md and docs/*.md from docs/results/*.json
# (`python docs/tables.py --check` lists the stale ones without writing).
docs: $(BIN)/.installed
	$(BIN)/python docs/tables.py

# The `bench` extra's pins, without their dependencies (see pyproject.toml).
bench-peers: $(BIN)/.installed
	$(BIN)/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))" > $(VENV)/bench-peers.txt
	$(BIN)/pip install -q --no-deps -r $(VENV)/bench-peers.txt

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info
