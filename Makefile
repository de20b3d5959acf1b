# Palisade: `make serve` sets up and runs the service; `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test lint typecheck policies traffic pytest bench bench-gate proto

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ner]'
# xds-protos (Envoy's messages) ships an older copy of opentelemetry-proto's modules, and
# whichever installs last wins: put the OTLP exporter's own back (engine/telemetry/tracing.py)
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	if command -v npm >/dev/null && test -f tests/node/package-lock.json; then \
		npm ci --silent --prefix tests/node; fi
	if command -v npm >/dev/null && test -f tests/mcp_proxy/node/package-lock.json; then \
		npm ci --silent --prefix tests/mcp_proxy/node; fi
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
	$(BIN)/palisade gate rulesets/support_bot.pal --skip-performance  # go-live gates (docs/rollout.md)

# Each ruleset on held-out everyday agent traffic (code, command output, documents, pages, messages,
# and attacks planted in them): the false alarms and recall the shipped models reach (coding_agent
# 1.0% / 0.920, rag_assistant 1.33% / 0.920), plus a row of false alarms for score jitter, so that a
# change that loses either fails; recall is held to issue 16's 0.90, false alarms not yet to its 1%
# on rag_assistant (MODEL_CARD.md of each model).
traffic: setup
	$(BIN)/palisade score rulesets/coding_agent.pal --data rulesets/coding_agent.traffic.jsonl \
		--by kind --max-fpr 0.014 --min-recall 0.90
	$(BIN)/palisade score rulesets/rag_assistant.pal --data rulesets/rag_assistant.traffic.jsonl \
		--by kind --max-fpr 0.017 --min-recall 0.90

pytest: setup
	$(BIN)/pytest

proto: setup
	$(BIN)/python -m engine.protocol.codegen

test: lint typecheck policies traffic pytest

# Every shipped ruleset's p95 against its budget, over gRPC under load (benchmarks/BUDGETS.md).
bench-gate: setup
	$(BIN)/palisade bench --rulesets rulesets --rate 10 --duration 20 --warmup 5 --repeat 5

# The fuzz tests of tests/fuzz at length (thousands of examples a property, new ones each run; `make test`
# runs them briefly and deterministically). A failure prints the input to keep in tests/fuzz/corpus/.
.PHONY: fuzz
fuzz: setup
	PALISADE_FUZZ=long $(BIN)/pytest tests/fuzz
