# The two commands of the README's quickstart. Each creates .venv and installs the project first.
#   make demo   the default study on the embedded synthetic data (CPU), ends with RESULTS.md's path
#   make test   lint, format check and the test suite (what CI runs)
#   make bench-gpu   on a GPU machine: every GPU check in one process, one table (bench/gpu.py)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bench-gpu clean

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

# Every GPU check in one process, under 8 minutes, one markdown table (+ JSON) into $$OUT when set
# (docs/BENCHMARKS.md, "GPU check"). It installs nothing, so it does not depend on the venv: on the
# GPU machine it runs the image's python3 with the carried wheels in .site (shared/gpu/README.md),
# elsewhere the venv's python. On a CPU: make bench-gpu ARGS=--dry-run
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
bench-gpu:
	PYTHONPATH=$(CURDIR)/.site:$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH)) $(GPU_PYTHON) bench/gpu.py $(ARGS)

clean:
	rm -rf $(VENV) .cache multirun outputs
