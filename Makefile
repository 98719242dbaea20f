# Each target is a command from the README.
PY ?= python

.PHONY: install install-test train test test-gpu test-standin bench lint

install:            ## the library + training extras
	$(PY) -m pip install -e ".[train]"

install-test:       ## the library + test and lint tools
	$(PY) -m pip install -e ".[dev]"

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

lint:
	ruff check . && ruff format --check .
