#!/usr/bin/env bash
# CPU-scale reproduction of the paper's Tables 2 and 3 with the offline MiniLM on 2 CPU cores.
# SNLI: train on the first $SIZE labelled pairs, in-domain test = the first $TEST rows of the official
# SNLI test set, out-of-domain = the 1,599 real MultiNLI pairs of ChaosNLI. HellaSWAG (multiple
# choice, split from its validation set): $HS_SIZE training items, $HS_SEEDS seed(s).
# SNLI_TABLES picks the SNLI tables (default: table1 table2 table3 steps; `steps` is the step-matched
# ablation, not in the paper).
# Resumable: re-running continues where it stopped; raising SEEDS adds seeds, reusing the others.
# Usage: SIZE=1500 SEEDS=3 bash benchmarks/cpu_reproduction/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE=${SIZE:-1500}; SEEDS=${SEEDS:-3}; TEST=${TEST:-3000}; LR=${LR:-5e-5}
HS_SIZE=${HS_SIZE:-400}; HS_SEEDS=${HS_SEEDS:-1}; SNLI_TABLES=${SNLI_TABLES:-table1 table2 table3 steps}
OUT=${OUT:-runs/cpu_reproduction}
RESULTS=benchmarks/cpu_reproduction/results
BIN=${BIN:-.venv/bin/tdmixup}
export HF_HUB_OFFLINE=1
mkdir -p "$RESULTS"
run() {  # table task seeds extra...
  local table=$1 task=$2 seeds=$3; shift 3
  local start=$(date +%s)
  $BIN experiment "$table" --task "$task" --seeds "$seeds" --learning-rate "$LR" --output-dir "$OUT/$task" "$@"
  local end=$(date +%s)
  mkdir -p "$RESULTS/$task/$table"
  cp "$OUT/$task/$table"/table.{md,csv,json} "$OUT/$task/$table/accuracy_vs_ece.png" "$RESULTS/$task/$table/"
  echo "{\"table\": \"$table\", \"task\": \"$task\", \"seeds\": $seeds, \"wall_s_this_invocation\": $((end - start)), \"args\": \"$*\", \"host\": \"$(uname -srm)\", \"cpus\": $(nproc), \"finished\": \"$(date -u +%FT%TZ)\"}" > "$RESULTS/$task/$table/run.json"
}
if [ "${SKIP_SNLI:-0}" != 1 ]; then
  for table in $SNLI_TABLES; do
    run "$table" snli "$SEEDS" --train-size "$SIZE" --dev-size 500 --test-size "$TEST"
  done
fi
if [ "${SKIP_HELLASWAG:-0}" != 1 ]; then
  run table2 hellaswag "$HS_SEEDS" --train-size "$HS_SIZE" --dev-size 200 --test-size 1000 --aum-percentile 50
  run table3 hellaswag "$HS_SEEDS" --train-size "$HS_SIZE" --dev-size 200 --test-size 1000 --aum-percentile 50
fi
