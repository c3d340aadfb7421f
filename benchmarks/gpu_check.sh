#!/usr/bin/env bash
# The GPU proof in one command, on a machine with an NVIDIA GPU:
#
#     benchmarks/gpu_check.sh            # CuPy and PyTorch (CUDA builds) already installed
#     benchmarks/gpu_check.sh --install  # or: pip install -e ".[test,bench,cuda12]" first
#
# 1. checks that flowgrad sees the GPU (fg.cuda.is_available());
# 2. times the MLP step (784-256-10, SGD) at batch 128, 1024 and 8192 on the GPU, flowgrad
#    (CuPy) against PyTorch eager CUDA: python -m benchmarks --device cuda, written to
#    RESULTS-gpu.md (copy its mlp_train_cuda section and targets into the GPU section of
#    benchmarks/RESULTS.md) and gpu-bench.json;
# 3. runs the portable tests (op table, engine, transforms, devices, nn/optim training)
#    with every tensor on the GPU: python -m pytest --backend cuda.
#
# Logs and results go to $OUT when it is set (the device tool's folder), else to
# .ci-artifacts/gpu. PYTHON picks the interpreter (default python3); QUICK=0 times with the
# full profile (longer); TEST_TIMEOUT bounds the test run in seconds (default 420).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=${OUT:-.ci-artifacts/gpu}
mkdir -p "$DEST"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ "${1:-}" = "--install" ]; then
  "$PYTHON" -m pip install -q -e ".[test,bench,cuda12]"
fi
# array-api-strict (tests only) may come as a wheel in .whl/ where nothing can be fetched.
if ! "$PYTHON" -c "import array_api_strict" 2>/dev/null && ls .whl/array_api_strict-*.whl \
    >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/gpu-site .whl/array_api_strict-*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/gpu-site"
fi

"$PYTHON" - <<'EOF' 2>&1 | tee "$DEST/gpu-env.txt"
import sys
import flowgrad as fg
if not fg.cuda.is_available():
    try:
        fg.zeros(1, device="cuda")  # the error that says what is missing
    except RuntimeError as exc:
        sys.exit(f"gpu_check: {exc}")
import cupy, numpy
print(f"flowgrad sees {fg.cuda.device_count()} GPU(s); CuPy {cupy.__version__}, "
      f"NumPy {numpy.__version__}")
try:
    import torch
    print(f"PyTorch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
except ImportError:
    print("PyTorch is not installed: flowgrad's figures only")
EOF

profile=--quick
[ "${QUICK:-1}" = 0 ] && profile=
rm -f "$DEST/RESULTS-gpu.md"
"$PYTHON" -m benchmarks --device cuda $profile --markdown "$DEST/RESULTS-gpu.md" \
  --json "$DEST/gpu-bench.json" 2>&1 | tee "$DEST/gpu-bench.log"

status=0
timeout "${TEST_TIMEOUT:-420}" "$PYTHON" -m pytest -q -p no:cacheprovider --backend cuda \
  2>&1 | tee "$DEST/gpu-tests.log" || status=$?
echo "cuda backend tests run: $(grep -Eo '[0-9]+ passed' "$DEST/gpu-tests.log" | tail -1)"
exit $status
