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
#   PYTHON=python bash benchmarks/gpu_check.sh   # another interpreter (default: python3)
# With pytest-xdist installed the suite runs on 12 workers (-p no:benchmark: pytest-benchmark,
# where installed, refuses to run beside xdist). The step limits add up to 510 s, under a
# lent GPU machine's 600 s per call. Open MPI (the multi-process tests' mpiexec on a machine
# without the dist extra's MPICH) is allowed to run as root.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
py="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" \
    | tee -a "$out/gpu.txt"
workers=()
"$py" -c "import xdist" 2>/dev/null && workers=(-n 12 -p no:benchmark)

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

step pytest-gpu 300 "$py" -m pytest -q -ra --device cuda -p no:cacheprovider "${workers[@]}"
step bench_train 150 "$py" benchmarks/bench_train.py --device cuda --precision float32,tf32 \
    --steps 10 --json "$out/bench_train.json"
step bench_ops 60 "$py" benchmarks/bench_ops.py --device cuda --repeats 5

echo "== summary (logs in $out/)"
printf '%s\n' "${summary[@]}"
grep -E '^(FAILED|ERROR) ' "$out/pytest-gpu.txt"
exit $status
