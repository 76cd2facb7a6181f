# ShopFlow developer entry points. `make run` and `make test` create .venv and install on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.shopflow-installed

.PHONY: install run test test-fast ui bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the main job: generate a shop, validate, build features, train and register every model via Airflow
	$(BIN)/shopflow run

test: $(STAMP)  ## the whole suite, including the production profile against local PostgreSQL and Redis
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not production"

ui: $(STAMP)
	$(BIN)/shopflow ui

bench: $(STAMP)
	$(BIN)/python scripts/bench_serving.py

clean:
	rm -rf .shopflow
