# Palisade: `make serve` sets up and runs the service; `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test lint typecheck policies pytest bench bench-gate proto

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ner]'
	if command -v npm >/dev/null && test -f tests/node/package-lock.json; then \
		npm ci --silent --prefix tests/node; fi
	touch $@

setup: $(STAMP)

serve: setup
	$(BIN)/palisade serve --rulesets rulesets

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

policies: setup
	$(BIN)/palisade check rulesets
	$(BIN)/palisade test rulesets

pytest: setup
	$(BIN)/pytest

proto: setup
	$(BIN)/python -m engine.server.codegen

test: lint typecheck policies pytest

# Every shipped ruleset's p95 against its budget, over gRPC under load (benchmarks/BUDGETS.md).
bench-gate: setup
	$(BIN)/palisade bench --rulesets rulesets --rate 10 --duration 20 --warmup 5 --repeat 5
