# mer-gym: `make demo` runs the main job on the embedded default, `make test` the whole suite.
# Both create the virtualenv (.venv) on first use; only Python 3.11 is needed on the machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs

.PHONY: demo test lint bench venv clean

venv: $(VENV)/.installed

# torch is installed first and pinned to 2.13.0: the CPU build of that release is what pip takes
# here; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/mer-gym corpus --preset default --out $(OUT)/corpus-default --overwrite --jobs 2

lint: venv
	$(BIN)/ruff check .

# The whole suite, slow tests included (deselect them locally with: $(BIN)/pytest -m "not slow").
test: venv lint
	$(BIN)/python -m pytest -q --durations=10

bench: venv
	$(BIN)/python benchmarks/bench_corpus.py

clean:
	rm -rf $(OUT) .pytest_cache
