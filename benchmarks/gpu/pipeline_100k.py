"""Part (c): ``tdmixup run`` on all 100k SNLI pairs available here, seed 1 — stage 1 (100 %)
against stage 4 (TDMixUp), in domain (SNLI test, 9,824 pairs) and out of domain (ChaosNLI
MNLI-matched, 1,599 pairs). The scaling study's fourth point, five times its largest.

Each stage runs as ``tdmixup run --until STAGE`` (the earlier ones are done, so the command
resumes after a cut-off: finished stages are skipped and an interrupted one goes on from its last
epoch checkpoint), and the JSON is rewritten after each stage with its wall time and the metrics
so far. Settings: the paper profile on MiniLM (the offline default) with ``--bf16`` (TF32 on),
batch 32 and learning rate 2e-5 (twice the paper's 16 / 1e-5: half the steps, the same
lr/batch ratio) to fit a lent GPU's minutes.

Run: ``python benchmarks/gpu/pipeline_100k.py`` (``--dry-run``: 120 pairs, 60 test rows, one
epoch of MiniLM cut to one layer, fp32, on this machine, nothing written under results/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine, write_json  # noqa: E402

STAGES = ("full", "datamap", "aum", "tdmixup", "report")
SETTINGS = [
    "--profile",
    "paper",
    "--train-size",
    "all",
    "--seed",
    "1",
    "--batch-size",
    "32",
    "--learning-rate",
    "2e-5",
    "--eval-batch-size",
    "512",
    "--bf16",
]
DRY = [
    "--train-size",
    "120",
    "--dev-size",
    "40",
    "--test-size",
    "60",
    "--seed",
    "1",
    "--epochs",
    "1",
    "--num-hidden-layers",
    "1",
    "--max-seq-length",
    "64",
]


def metrics(run_dir: Path) -> dict[str, Any]:
    """Accuracy / ECE (%) of stage 1 and stage 4 on each test set, and the training sizes."""
    out: dict[str, Any] = {}
    for name, folder in (("100%", "stage1_full"), ("tdmixup", "stage4_tdmixup")):
        done = run_dir / folder / "done.json"
        if not done.exists():
            continue
        summary = json.loads(done.read_text())
        sets = summary.get("metrics", {}).get("sets", {})
        out[name] = {
            "train_sizes": summary.get("train_sizes"),
            "train_seconds": summary.get("train_seconds"),
            "eval_seconds": summary.get("eval_seconds"),
            "sets": {
                s: {k: m.get(k) for k in ("n", "accuracy", "ece", "ece_scaled")}
                for s, m in sets.items()
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "gpu_snli_100k")
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline_100k.json")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    import torch

    settings = SETTINGS if not args.dry_run else DRY
    if args.dry_run and not torch.cuda.is_available():
        args.run_dir = args.run_dir.with_name(args.run_dir.name + "_dry")
    report: dict[str, Any] = {
        "part": "c: tdmixup run on 100k SNLI pairs, 100 % vs TDMixUp",
        "command": " ".join(["tdmixup", "run", "--output-dir", str(args.run_dir), *settings]),
        "machine": machine(),
        "stages": {},
    }
    for stage in STAGES:
        cmd = [
            sys.executable,
            "-m",
            "tdmixup.cli",
            "run",
            "--output-dir",
            str(args.run_dir),
            *settings,
            "--until",
            stage,
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        report["stages"][stage] = {
            "wall_s": round(time.perf_counter() - start, 1),
            "returncode": proc.returncode,
        }
        if proc.returncode != 0:
            report["stages"][stage]["error"] = proc.stderr[-2000:]
        report["metrics"] = metrics(args.run_dir)
        print(stage, report["stages"][stage]["wall_s"], "s", flush=True)
        if not args.dry_run:
            write_json(args.out, report)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], flush=True)
            break
    print(json.dumps(report["metrics"], indent=1), flush=True)


if __name__ == "__main__":
    main()
