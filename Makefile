PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test

# The two set-up commands of the README. Both create $(VENV) if it is missing and install into it.

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python  ## install tradeloop with its dask extra (no dev tools) and run the demo into ./tradeloop.duckdb
	$(BIN)/pip install -q -e '.[dask]'
	$(BIN)/tradeloop demo

test: $(BIN)/python  ## install the dev extra and the `tradeloop` Jupyter kernel, run the whole suite
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name tradeloop --display-name 'Python (tradeloop)'
	$(BIN)/python -m pytest
