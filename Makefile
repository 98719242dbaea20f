# Each target is a command from the README.
PY ?= python

.PHONY: install install-test install-dist train test test-gpu test-standin bench bench-ddp lint

install:            ## the library + training extras
	$(PY) -m pip install -e ".[train]"

install-test:       ## the library + test and lint tools
	$(PY) -m pip install -e ".[dev]"

install-dist:       ## the library + mpi4py and MPICH (data-parallel training)
	$(PY) -m pip install -e ".[dist]"

train: install      ## train GoogLeNet on the embedded digits dataset
	$(PY) googlenet.py

test:               ## the whole suite on the CPU (hypothesis profile 'ci')
	$(PY) -m pytest -q

test-gpu:           ## the same suite on the GPU
	$(PY) -m pytest -q --device cuda

test-standin:       ## the cuda code path without a GPU, under the CuPy stand-in (as CI runs it)
	PYTHONPATH=../shared/tools/fakecupy $(PY) -m pytest -q --device cuda -m "not slow"

bench:
	$(PY) benchmarks/bench_ops.py
	$(PY) benchmarks/bench_train.py

bench-ddp:          ## the training step on 2 MPI ranks against 1 rank and 1 process
	$(PY) benchmarks/bench_ddp.py --ranks 2 --steps 3

lint:
	ruff check . && ruff format --check .
