# `make demo` and `make test` set up .venv on first use (CPU torch via constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/timetok: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(BIN)/timetok
	$(BIN)/timetok tokenizer train --dataset etth1 --context-points 96 --batch-size 64 \
		--n-epochs 3 --save-path runs/demo-tokenizer --overwrite
	$(BIN)/timetok tokenizer eval --model runs/demo-tokenizer --dataset etth1

test: $(BIN)/timetok
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/timetok
	$(BIN)/python benchmarks/tokenizer.py

clean:
	rm -rf runs .pytest_cache
