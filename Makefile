# mer-gym: `make demo` runs the paper's pilot study end to end on the embedded default (its report
# and per-user gain plot land in runs/pilot), `make test` the whole suite.
# Both create the virtualenv (.venv) on first use; only Python 3.11 is needed on the machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs

.PHONY: demo corpus test lint bench models pool tables users venv clean

CORPUS := $(OUT)/corpus-default

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
	rm -rf $(OUT)/pilot
	$(BIN)/mer-gym run pilot --out $(OUT)/pilot

corpus: venv
	$(BIN)/mer-gym corpus --preset default --out $(OUT)/corpus-default --overwrite --jobs 2

lint: venv
	$(BIN)/ruff check .

# The whole suite, slow tests included (deselect them locally with: $(BIN)/pytest -m "not slow").
test: venv lint
	$(BIN)/python -m pytest -q --durations=10

$(CORPUS)/manifest.parquet: | venv
	$(BIN)/mer-gym corpus --preset default --out $(CORPUS) --overwrite --jobs 2

# Benchmarks: corpus generation, the frozen models (Keras vs TFLite), the embedding bank, the
# simulated users, the single and vector env, Q-learning on the vector env, the population study.
bench: venv $(CORPUS)/manifest.parquet
	$(BIN)/python benchmarks/bench_corpus.py
	$(BIN)/python benchmarks/bench_models.py --corpus $(CORPUS) --models-dir frozen_models
	$(BIN)/python benchmarks/bench_bank.py --corpus $(CORPUS)
	$(BIN)/python benchmarks/bench_users.py
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_agents.py
	$(BIN)/python benchmarks/bench_studies.py

# Retrain the shipped models from scratch into $(OUT)/models (about an hour on 2 cores: face and
# speech train in parallel, one core each), card them and export them to TFLite. Copy the folder
# over frozen_models/ to ship the result. CI never runs this.
models: venv $(CORPUS)/manifest.parquet
	taskset -c 0 $(BIN)/mer-gym models train --corpus $(CORPUS) --out $(OUT)/models --steps face --overwrite & face=$$!; \
	  sleep 5; taskset -c 1 $(BIN)/mer-gym models train --corpus $(CORPUS) --out $(OUT)/models --steps speech --overwrite \
	  && wait $$face
	$(BIN)/mer-gym models train --corpus $(CORPUS) --out $(OUT)/models --steps fusion --overwrite
	$(BIN)/mer-gym models export --corpus $(CORPUS) --models-dir $(OUT)/models

# Rebuild the shipped user pool (frozen_models/user_pool.npz + .json): the `users` corpus preset
# rendered under every named capture condition and run through the frozen models (about 8 minutes
# on 2 cores). Rerun it whenever the frozen models change. CI never runs this.
pool: venv
	$(BIN)/mer-gym corpus --preset users --out $(OUT)/corpus-users --overwrite --jobs 2
	$(BIN)/mer-gym pool --corpus $(OUT)/corpus-users --out frozen_models --jobs 2

# The simulated users of the paper's pilot and the hindsight-weight spread of the population.
users: venv
	$(BIN)/mer-gym users --preset paper-pilot --describe
	$(BIN)/mer-gym users --preset population

# The README's model tables, from the cards in frozen_models/.
tables: venv
	$(BIN)/mer-gym models table

clean:
	rm -rf $(OUT) .pytest_cache
