# a2i developer entry points. `make test` and `make demo` install into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test demo lint format clean

$(BIN)/a2i: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(BIN)/a2i

install: $(BIN)/a2i

test: $(BIN)/a2i
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

demo: $(BIN)/a2i
	$(BIN)/python -m a2i.demo

lint: $(BIN)/a2i
	$(BIN)/ruff check a2i tests benchmarks
	$(BIN)/ruff format --check a2i tests benchmarks

format: $(BIN)/a2i
	$(BIN)/ruff format a2i tests benchmarks
	$(BIN)/ruff check --fix a2i tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
