#!/usr/bin/env bash
# The GPU sizes of the 3-D presets (configs/*_3d_gpu.yaml) on a GPU: each built at full size and its first cell
# steps timed (benchmarks/large_3d.py --config), with its live tumor and immune cells, the extrapolated time of
# its whole run and the device memory its pool holds; each log and JSON in OUT (default ./gpu-presets).
#
# A second prepared command for a GPU session, after benchmarks/gpu_session.sh: each preset gets PRESET_S seconds
# in all (build included) and BUDGET_S seconds of timed steps, so the defaults (6 presets x 90 s) fit one
# 10-minute command of the project's device tool. ARM names the arm to treat every preset by (default: each
# preset's first arm, from the config). PYTHON picks the interpreter, as in gpu_session.sh.
#
#   bash benchmarks/gpu_presets.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-presets}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
PRESET_S="${PRESET_S:-90}"
BUDGET_S="${BUDGET_S:-45}"
export OPENBLAS_NUM_THREADS=1

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; git rev-parse HEAD; } > "$OUT/machine.txt"
for config in configs/*_3d_gpu.yaml; do
    name="$(basename "$config" .yaml)"
    arm="${ARM:-$("$PY" -c "import sys; from abm.config import load_config; print(next(iter(load_config(sys.argv[1]).arms), ''))" "$config")}"
    started=$SECONDS
    timeout "$PRESET_S" "$PY" benchmarks/large_3d.py --config "$config" ${arm:+--arm "$arm"} --backend cupy \
        --steps 100000 --budget-s "$BUDGET_S" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
    echo "$name (arm ${arm:-none}): exit $? in $((SECONDS - started)) s" | tee -a "$OUT/steps.txt"
done
