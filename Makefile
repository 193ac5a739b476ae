# The two commands of the README's quickstart. Each creates .venv and installs the project first.
#   make demo   the default study on the embedded synthetic data (CPU), ends with RESULTS.md's path
#   make test   lint, format check and the test suite (what CI runs)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -e ".[test]"  # bytecode: compileall in `make test`, else on import
	touch $(STAMP)

install: $(STAMP)

# Two jobs at a time (joblib's workers get one CPU thread each): the tiny net uses two cores
# better as two jobs than as one job on two threads (docs/BENCHMARKS.md).
demo: $(STAMP)
	$(BIN)/python run.py -m ablation=default hydra/launcher=joblib hydra.launcher.n_jobs=2

test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	@# Bytecode for every installed module, once (seconds when already there). Most tests start
	@# the real CLI in a subprocess; where PYTHONDONTWRITEBYTECODE is set, each would otherwise
	@# compile torch & co. from source again (20 s instead of 7 s per import on dev-cpu).
	@$(BIN)/python -m compileall -q -j 2 $(VENV)/lib > /dev/null 2>&1 || true
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python bench/harness_overhead.py

clean:
	rm -rf $(VENV) .cache multirun outputs
