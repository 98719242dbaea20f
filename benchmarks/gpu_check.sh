#!/usr/bin/env bash
# Everything that needs a GPU, in one call (a lent GPU machine's time is short):
#   1. the whole test suite on the GPU (pytest --device cuda), never stopping at a failure:
#      the real CUDA kernels against the generic CuPy code, exact resume, the TF32 loss curve,
#      the NVRTC compile when the nvrtc extra is installed
#   2. the training-step benchmark: CIFAR stem w1 and w0.25 at batch 128, ImageNet stem 224x224
#      at batch 64; float32 and TF32 products
#   3. the per-layer conv benchmark
# Every step runs whatever the steps before it gave; a summary at the end lists each step's
# exit status, time and last line, and every failed test. Logs go to $OUT (or ./gpu-check),
# so they come back from a remote machine. Exit status: 0 only when every step passed.
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

status=0
summary=()
step() {  # step NAME SECONDS COMMAND...: run it into $out/NAME.txt, show its tail, note the outcome
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    rc=$?
    tail -n 25 "$out/$name.txt"
    [ "$rc" -eq 0 ] || status=1
    summary+=("$(printf '%-14s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - start))" \
        "$(grep -v '^[[:space:]]*$' "$out/$name.txt" | tail -n 1)")")
}

step pytest-gpu 420 python -m pytest -q -ra --device cuda -p no:cacheprovider
step bench_train 240 python benchmarks/bench_train.py --device cuda --precision float32,tf32 \
    --steps 10 --json "$out/bench_train.json"
step bench_ops 90 python benchmarks/bench_ops.py --device cuda --repeats 5

echo "== summary (logs in $out/)"
printf '%s\n' "${summary[@]}"
grep -E '^(FAILED|ERROR) ' "$out/pytest-gpu.txt"
exit $status
