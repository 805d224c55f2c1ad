#!/usr/bin/env bash
# One-shot GPU check of the real-model tools, for a lent GPU machine (see shared/notes/gpu.md).
# Needs the wheels the machine lacks in .whl/ (diffusers, pydantic, transformers 5.19 + hub 2.4, pytest), carried
# with the call. Writes logs and bench JSON under $OUT and prints a short summary last.
#   run: bash bench/gpu_check.sh        (carry [".whl"])
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1 || tail -5 "$OUT/pip.log"
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
python3 -c "import sys, torch, diffusers, transformers, pydantic; print('python', sys.version.split()[0], 'torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())" 2>&1 | tail -1

step() { echo "== $1 ($(( $(date +%s) - T0 )) s)"; }

step "real-size bench, cuda fp16"
timeout "${BENCH_TIMEOUT:-260}" python3 bench/backends.py --device cuda --real-size --repeats 3 \
  --json "$OUT/bench_real.json" >"$OUT/bench_real.log" 2>&1
echo "rc=$?"; grep -v -i "warn\|deprecat\|Loading\|Writing" "$OUT/bench_real.log" | tail -12

step "tool tests on cuda fp16 (tiny models)"
SCENEWRIGHT_TEST_DEVICE=cuda SCENEWRIGHT_TEST_DTYPE=float16 timeout 150 python3 -m pytest -q -p no:cacheprovider \
  tests/test_diffusion_tools.py >"$OUT/tests_cuda.log" 2>&1
echo "rc=$?"; grep -E "passed|failed|FAILED|Error" "$OUT/tests_cuda.log" | tail -12

step "tool tests on cuda with model CPU offload"
SCENEWRIGHT_TEST_DEVICE=cuda SCENEWRIGHT_TEST_DTYPE=float16 SCENEWRIGHT_TEST_OFFLOAD=1 timeout 120 python3 -m pytest -q \
  -p no:cacheprovider tests/test_diffusion_tools.py -k "text_to_image or repaint or gligen or region_check or loads_once" \
  >"$OUT/tests_offload.log" 2>&1
echo "rc=$?"; grep -E "passed|failed|FAILED|Error" "$OUT/tests_offload.log" | tail -12
step "done"
