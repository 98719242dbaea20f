#!/usr/bin/env bash
# Everything that needs a GPU, in one call (a lent GPU machine's time is short):
#   1. the GPU test suite (real CUDA kernels against the generic CuPy code, TF32 loss curve)
#   2. the training-step benchmark: CIFAR stem w1 and w0.25 at batch 128, ImageNet stem 224x224
#      at batch 64; float32 and TF32 products
#   3. the per-layer conv benchmark
# Logs go to $OUT (or ./gpu-check) so they come back from a remote machine.
#
#   bash benchmarks/gpu_check.sh            # assumes numpy, cupy, pytest, hypothesis installed
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" \
    | tee -a "$out/gpu.txt"
rc=0
timeout 240 python -m pytest -q -x --device cuda -p no:cacheprovider tests/functional \
    tests/test_training.py -k "not digits" 2>&1 | tail -25 | tee "$out/pytest-gpu.txt" || rc=1
timeout 240 python benchmarks/bench_train.py --device cuda --precision float32,tf32 --steps 10 \
    --json "$out/bench_train.json" 2>&1 | tee "$out/bench_train.txt" || rc=1
timeout 90 python benchmarks/bench_ops.py --device cuda --repeats 5 2>&1 | tail -60 \
    | tee "$out/bench_ops.txt" || rc=1
exit $rc
