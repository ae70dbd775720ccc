"""A single-sentence task from real data: SNLI hypotheses alone (no premise), end to end.

Hypothesis-only classifiers reach 67–69 % on full SNLI (Gururangan et al. 2018; Poliak et al.
2018): the hypotheses carry annotation artefacts ("nobody", "sleeping" → contradiction), so the
task is learnable from one sentence. This script writes the hypotheses of the first ``--train``
gold-labelled SNLI training pairs (plus the ``--dev`` pairs after them) and of the official SNLI
test set as CSV files with only ``id, sentence, label``, then runs the README's single-sentence
command on them (``tdmixup run --task custom --column text_a=sentence --column label=label``,
profile cpu-small, the offline MiniLM by default) and records the 100 % baseline (stage 1,
strategy ``none``) and TDMixUp (stage 4) on the test hypotheses.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/single_sentence.py   # 47 min, shared cores
    PYTHONPATH=src python benchmarks/single_sentence.py --train 400 --model DIR --out /tmp/x.json

Writes ``benchmarks/results/single_sentence.json``: the command, both stages' accuracy / ECE /
NLL (as trained and after temperature scaling), sizes, wall time, load average and machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LABELS = ("entailment", "neutral", "contradiction")
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
"""Recorded in the JSON: on a shared machine one passive thread per run is much faster."""


def hypotheses(path: Path, limit: int | None) -> list[tuple[int, str, str]]:
    """``(line, hypothesis, gold label)`` of the first ``limit`` gold-labelled rows of an SNLI
    JSON-lines file (all when ``limit`` is None); ``line`` is the 0-based line number."""
    out: list[tuple[int, str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            row = json.loads(line)
            if row["gold_label"] in LABELS:
                out.append((line_no, row["sentence2"], row["gold_label"]))
                if limit is not None and len(out) == limit:
                    break
    return out


def write_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "sentence", "label"])
        writer.writerows(rows)
    return path


def stage_metrics(done: Path, test_name: str) -> dict[str, Any]:
    info = json.loads(done.read_text())
    sets = info["metrics"]["sets"]
    keep = ("n", "accuracy", "ece", "nll", "ece_scaled", "nll_scaled", "temperature")
    return {
        "strategy": info["strategy"],
        "train_sizes": info["train_sizes"],
        "train_seconds": info["train_seconds"],
        "learning_check": {
            k: info["metrics"]["learning_check"][k] for k in ("accuracy", "chance", "near_chance")
        },
        "sets": {name: {k: s[k] for k in keep if k in s} for name, s in sets.items()},
        "test": {k: sets[test_name][k] for k in keep if k in sets[test_name]},
    }


def main(argv: list[str] | None = None) -> int:
    from throughput import machine_info

    from tdmixup.core.runio import write_json
    from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN, find_data_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training hypotheses")
    parser.add_argument("--dev", type=int, default=500, help="dev hypotheses (after the train)")
    parser.add_argument("--model", default=None, help="encoder (default: the offline MiniLM)")
    parser.add_argument("--work-dir", default=None, help="CSV files and the run folder")
    parser.add_argument("--out", default=str(HERE / "results" / "single_sentence.json"))
    parser.add_argument("extra", nargs="*", help="more tdmixup run options (after --)")
    args = parser.parse_args(argv)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="single_sentence_"))
    work.mkdir(parents=True, exist_ok=True)
    train_path, test_path = find_data_file(SNLI_TRAIN), find_data_file(SNLI_TEST)
    if train_path is None or test_path is None:
        raise SystemExit("SNLI not found (see tdmixup.data.sources)")
    rows = hypotheses(Path(train_path), args.train + args.dev)
    train_csv = write_csv(work / "train.csv", rows)
    test_csv = write_csv(work / "snli_test_hypotheses.csv", hypotheses(Path(test_path), None))
    run_dir = work / "run"
    command = [
        "tdmixup", "run", "--task", "custom",
        "--train-file", str(train_csv), "--test-file", f"snli_test_hyp={test_csv}",
        "--column", "text_a=sentence", "--column", "label=label", "--column", "sample_id=id",
        "--label-names", ",".join(LABELS),
        "--train-size", str(args.train), "--dev-size", str(args.dev), "--test-size", "all",
        *(["--model", args.model] if args.model else []),
        *args.extra, "--output-dir", str(run_dir),
    ]  # fmt: skip
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), os.times()
    subprocess.run(
        [sys.executable, "-m", "tdmixup.cli", *command[1:]],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    wall = time.perf_counter() - start
    cpu_end = os.times()
    result = {
        "what": "SNLI hypotheses alone as a single-sentence task (text_a only), tdmixup run",
        "command": " ".join(c.replace(str(work), "WORK") for c in command),
        "data": {
            "train_source": f"first {args.train + args.dev} gold-labelled rows of {SNLI_TRAIN} "
            f"(hypotheses only; the last {args.dev} are dev)",
            "test_source": f"every gold-labelled row of {SNLI_TEST} (hypotheses only)",
        },
        "baseline_none": stage_metrics(run_dir / "stage1_full" / "done.json", "snli_test_hyp"),
        "tdmixup": stage_metrics(run_dir / "stage4_tdmixup" / "done.json", "snli_test_hyp"),
        "wall_seconds": wall,
        "child_cpu_seconds": (cpu_end.children_user - cpu_start.children_user)
        + (cpu_end.children_system - cpu_start.children_system),
        "threads": {k: os.environ.get(k) for k in THREAD_ENV},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": machine_info(),
        "reference": "hypothesis-only on full SNLI (550k pairs): 67-69 % "
        "(Gururangan et al. 2018; Poliak et al. 2018)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    for key in ("baseline_none", "tdmixup"):
        t = result[key]["test"]
        print(
            f"{key}: test hypotheses n={t['n']} acc {100 * t['accuracy']:.2f} "
            f"ECE {100 * t['ece']:.2f} (T: {100 * t['ece_scaled']:.2f})"
        )
    print(f"wall {wall:.0f} s → {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
