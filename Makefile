# Two commands a new user needs (see README):
#   make demo   set up, generate the embedded corpus, run the whole pipeline (offline)
#   make test   set up, run the tests
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg

.PHONY: demo test lint bench setup clean-outputs

setup: $(VENV)/.installed

# torch first: the pinned CPU build lies on this machine's disk; letting pip
# resolve torch through another package would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,ui,team]"
	$(BIN)/python -m melodance.features.warmup   # numba kernels compiled once, serially
	touch $@

demo: setup
	melodance data synth
	dvc status data.dvc
	dvc repro
	@echo "--- dvc status (should be clean) ---"
	dvc status
	dvc metrics show
	@echo "Runs: mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db, then http://127.0.0.1:5000/#/experiments/1/runs"
	@echo "git status shows dvc.lock changed: commit it (README, Quick start)"

# Two processes, whole files to each (module fixtures such as tests/test_readme.py's demo
# run once): the slow tests train on one torch thread, so the second core was idle.
# --no-loadscope-reorder keeps tests/conftest.py's order (files with slow tests first);
# xdist's own puts files with many tests first, which left tests/test_pipeline.py (3
# tests, 20 min) to run alone at the end.
# One BLAS/OpenMP thread per process: two workers already fill both cores, and a second
# thread in each (torch, OpenBLAS) only waits for the core the other worker holds.
TEST_WORKERS ?= 2
test: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

lint: setup
	ruff check src tests benchmarks

bench: setup
	python benchmarks/run_all.py
