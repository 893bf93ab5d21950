# One command sets everything up and runs the main job (`make demo`); one sets everything up and
# runs the tests (`make test`). The virtual environment is created from nothing on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPIKEFORGE_DATA ?= $(abspath ../shared/data)
export SPIKEFORGE_DATA

.PHONY: demo test lint bench reproduce clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/spikeforge demo --out reports/demo

test: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/ttfs_inference.py
	$(BIN)/python benchmarks/ttfs_training.py

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info
