#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU, PyTorch already installed and no network:
#   1. build conv1d_ext in place with the CUDA sources (arch = the visible GPU's)
#   2. check that the extension imports and every op has a CUDA kernel
#   3. run the whole test suite (pytest tests/)
#   4. compute-sanitizer memcheck, racecheck and synccheck on benchmarks/sanitize_smoke.py
#   5. the benchmark against F.conv1d / cuDNN (fp32 strict and bf16), and the fp32 sweep again with TF32
#      allowed on both sides
# Every step runs even when an earlier one failed; a summary at the end; exit status 1 if any step failed.
# Logs, CSV, markdown and PNG go to OUTDIR.
#
#   benchmarks/gpu_check.sh OUTDIR
# Environment: PYTHON (default python3), CUDA_HOME (default: derived from nvcc like setup.py does),
# TORCH_CUDA_ARCH_LIST (default: the visible GPUs' compute capabilities), MAX_JOBS (default: nproc),
# SKIP_STEPS (space-separated step names to skip, e.g. "tests racecheck").
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
SKIP_STEPS=${SKIP_STEPS:-}

# --- CUDA toolkit: the prefix of the real nvcc (a wrapper script on PATH is followed), as setup.py does
if [ -z "${CUDA_HOME:-}" ]; then
    nvcc_path=$(command -v nvcc || true)
    if [ -n "$nvcc_path" ]; then
        nvcc_path=$(readlink -f "$nvcc_path")
        if [ "$(head -c 2 "$nvcc_path")" = "#!" ]; then  # a wrapper: find the nvcc binary it runs
            real=$(grep -o '/[^ "'"'"']*/bin/nvcc' "$nvcc_path" | head -n 1)
            [ -n "$real" ] && nvcc_path=$(readlink -f "$real")
        fi
        CUDA_HOME=$(dirname "$(dirname "$nvcc_path")")
    elif [ -x /usr/local/cuda/bin/nvcc ]; then
        CUDA_HOME=/usr/local/cuda
    fi
fi
if [ -n "${CUDA_HOME:-}" ]; then
    export CUDA_HOME
    export PATH="$CUDA_HOME/bin:$PATH"
fi
SANITIZER=$(command -v compute-sanitizer || true)
if [ -z "$SANITIZER" ]; then  # not on PATH: look in the usual toolkit places
    for c in "${CUDA_HOME:-/nonexistent}"/compute-sanitizer/compute-sanitizer \
             /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer \
             /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
        if [ -x "$c" ]; then SANITIZER=$c; break; fi
    done
fi

# --- architectures of the visible GPUs
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$PY" -c "
import torch
caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
print(';'.join(f'{a}.{b}' for a, b in caps))" 2>/dev/null)
fi
if [ -n "$TORCH_CUDA_ARCH_LIST" ]; then export TORCH_CUDA_ARCH_LIST; else unset TORCH_CUDA_ARCH_LIST; fi

NAMES=()
RESULTS=()
FAILED=0

# step NAME LOG TIMEOUT_S CMD...: run CMD with its output in LOG, record pass/fail, never stop the script
step() {
    local name=$1 log=$2 limit=$3
    shift 3
    case " $SKIP_STEPS " in *" $name "*)
        NAMES+=("$name"); RESULTS+=("SKIPPED"); echo "== [$name] skipped"; return 0 ;;
    esac
    echo "== [$name] $*"
    echo "   log: $log"
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=30 "$limit" "$@" >"$log" 2>&1
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    local verdict="PASS"
    if [ $rc -ne 0 ]; then
        verdict="FAIL (exit $rc$([ $rc -eq 124 ] && echo ", timed out after ${limit}s"))"
        FAILED=1
    fi
    NAMES+=("$name")
    RESULTS+=("$verdict, ${dt}s, $(basename "$log")")
    echo "   $verdict in ${dt}s; last lines:"
    tail -n 4 "$log" | sed 's/^/     | /'
}

{
    echo "date: $(date -u)"
    echo "git: $(git rev-parse HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed files"
    echo "CUDA_HOME=${CUDA_HOME:-unset} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset} MAX_JOBS=$MAX_JOBS"
    echo "compute-sanitizer: ${SANITIZER:-not found}"
    nvidia-smi 2>&1 || echo "nvidia-smi failed"
    nvcc --version 2>&1 || echo "nvcc not found"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
torch.backends.cudnn.version(), 'available', torch.cuda.is_available(),
[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])" 2>&1
} >"$OUT/env.txt"
cat "$OUT/env.txt"

step build "$OUT/build.log" 3600 \
    env CONV1D_EXT_CUDA=1 "$PY" setup.py build_ext --inplace

step import "$OUT/import.log" 300 "$PY" - <<'EOF'
import torch
import conv1d_ext

ops = ["conv1d", "conv1d_backward_input", "conv1d_backward_weight", "conv1d_backward_bias"]
missing = [op for op in ops
           if not torch._C._dispatch_has_kernel_for_dispatch_key(f"conv1d_ext::{op}", "CUDA")]
print("conv1d_ext from", conv1d_ext.__file__)
for attr in ("build_info", "cpu_isa"):
    if hasattr(conv1d_ext, attr):
        print(attr, getattr(conv1d_ext, attr)())
print("CUDA kernels missing for:", missing or "none")
assert torch.cuda.is_available(), "torch sees no GPU"
x = torch.randn(2, 4, 16, device="cuda")
w = torch.randn(4, 4, 3, device="cuda")
err = (conv1d_ext.conv1d(x, w, padding=1) - torch.nn.functional.conv1d(x, w, padding=1)).abs().max().item()
print("conv1d on CUDA, max error vs F.conv1d:", err)
assert not missing and err < 1e-3
EOF

# The whole suite on CUDA; the CPU-only tiers CI already runs (the CUDA emulator, planted CPU faults, the
# sanitizer tier's own tests, the > 2^31-element slow tier) are left out to fit the GPU's time.
step tests "$OUT/tests.log" 5400 \
    "$PY" -m pytest tests/ -ra -q -m "not emulated and not faults and not sanitize and not slow" \
    --junitxml="$OUT/tests.xml"

if [ -n "$SANITIZER" ]; then
    # No caching allocator under memcheck: every tensor its own allocation, so out-of-bounds accesses
    # past a tensor's end are caught instead of landing in a cached neighbour.
    step memcheck "$OUT/memcheck.log" 3600 \
        env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 99 \
        --print-limit 200 "$PY" benchmarks/sanitize_smoke.py
    step racecheck "$OUT/racecheck.log" 3600 \
        "$SANITIZER" --tool racecheck --racecheck-report analysis --error-exitcode 99 --print-limit 200 \
        "$PY" benchmarks/sanitize_smoke.py --quick
    step synccheck "$OUT/synccheck.log" 3600 \
        "$SANITIZER" --tool synccheck --error-exitcode 99 --print-limit 200 \
        "$PY" benchmarks/sanitize_smoke.py --quick
else
    for s in memcheck racecheck synccheck; do
        case " $SKIP_STEPS " in *" $s "*) NAMES+=("$s"); RESULTS+=("SKIPPED"); continue ;; esac
        echo "compute-sanitizer not found (CUDA_HOME=${CUDA_HOME:-unset})" >"$OUT/$s.log"
        NAMES+=("$s"); RESULTS+=("FAIL (compute-sanitizer not found)"); FAILED=1
    done
fi

# Three ways, cuDNN with cudnn.benchmark=True: float32 strict on both sides and bfloat16, then float32 with
# TF32 allowed on both sides (PyTorch's default). Batches x8 (--batch-scale's CUDA default).
step bench "$OUT/bench.log" 3600 \
    "$PY" benchmarks/bench.py --device cuda --dtypes float32,bfloat16 --out "$OUT" --no-progress
step bench-tf32 "$OUT/bench_tf32.log" 1800 \
    "$PY" benchmarks/bench.py --device cuda --dtypes float32 --allow-tf32 --out "$OUT/tf32" --no-progress

{
    echo "gpu_check summary ($(date -u)), $(head -c 200 <(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null))"
    for i in "${!NAMES[@]}"; do
        printf '  %-10s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
    done
    if [ $FAILED -ne 0 ]; then echo "RESULT: SOME STEPS FAILED"; else echo "RESULT: ALL PASSED"; fi
} | tee "$OUT/summary.txt"
exit $FAILED
