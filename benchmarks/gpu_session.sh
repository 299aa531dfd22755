#!/usr/bin/env bash
# One prepared GPU session: the GPU tests, then the GPU benchmarks, each log in OUT (default ./gpu-session).
#
# For a machine with one CUDA GPU and the repository's venv (pip install -e ".[dev,gpu]"), in the order that
# matters most when the time runs out: correctness first (every gpu-marked test: NumPy/CuPy parity of the
# presets, the fused movement, daughter placement and line sweeps against their references, CUDA graphs on and
# off), then configs/large_3d.yaml at full size (384^3: benchmarks/large_3d.py times its first steps, at most
# LARGE_STEPS or LARGE_BUDGET_S seconds of them, and extrapolates the mean to its 2400 steps), then the figures
# docs/performance.md asks for (benchmarks/scale.py at the GPU sizes; cells.py and immune.py with fast paths on
# and off).
# Each step has its own time limit (seconds, env TEST_S / BENCH_S / LARGE_S) so one slow step cannot eat the
# session; a step that fails or times out is logged and the next one runs. The defaults fit one 10-minute
# command of the project's device tool (200 + 150 + 5 x 50 s); SIZES picks the scale benchmark's cubes.
#
# PYTHON picks the interpreter (default .venv/bin/python); on the project's device machine, which has no network,
# use its python3 and carry what it lacks as wheels (the device tool's README says how).
#
#   bash benchmarks/gpu_session.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-session}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
TEST_S="${TEST_S:-200}"
BENCH_S="${BENCH_S:-50}"
LARGE_S="${LARGE_S:-150}"
LARGE_STEPS="${LARGE_STEPS:-240}"
LARGE_BUDGET_S="${LARGE_BUDGET_S:-60}"
SIZES="${SIZES:-96,256,512}"
export OPENBLAS_NUM_THREADS=1

step() {  # name, limit in seconds, command...
    local name="$1" limit="$2"
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    echo "$name: exit $status in $((SECONDS - started)) s" | tee -a "$OUT/steps.txt"
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; git rev-parse HEAD; } > "$OUT/machine.txt"
step gpu_tests "$TEST_S" "$PY" -m pytest -q -m gpu -p no:cacheprovider
step large_3d_cupy "$LARGE_S" "$PY" benchmarks/large_3d.py --backend cupy --steps "$LARGE_STEPS" \
    --budget-s "$LARGE_BUDGET_S" --json "$OUT/large_3d_cupy.json"
step scale_cupy "$BENCH_S" "$PY" benchmarks/scale.py --backend cupy --sizes "$SIZES" --warmup 1 --steps 2 --json "$OUT/scale_cupy.json"
step cells_cupy "$BENCH_S" "$PY" benchmarks/cells.py --backend cupy --steps 12
step immune_cupy "$BENCH_S" "$PY" benchmarks/immune.py --backend cupy --steps 12
step immune_cupy_reference "$BENCH_S" env TME_FAST_PATHS=0 "$PY" benchmarks/immune.py --backend cupy --steps 12
step memory_cupy "$BENCH_S" "$PY" benchmarks/memory.py --backend cupy
