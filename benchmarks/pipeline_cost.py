"""Cost of the whole ``tdmixup run`` against one 3-epoch baseline run on 100 %, same data.

Runs, in one invocation and each in its own subprocess (for a clean peak RSS):

1. ``tdmixup train --strategy none`` — the plain fine-tuning baseline (train + evaluation);
2. ``tdmixup run`` — every stage of TDMixUp (stage 1 doubles as the baseline row).

Prints wall time, peak RSS and the per-stage breakdown (from each stage's ``done.json``), and the
ratio pipeline / baseline (the paper's procedure costs about 2.1×: baseline-sized dynamics run,
AUM run, TDMixUp run). Writes ``benchmarks/results/pipeline_cost.json``.

Run: ``.venv/bin/python benchmarks/pipeline_cost.py`` (default = the ``make demo`` configuration).
Extra arguments after ``--`` go to both commands, e.g. ``-- --train-size 1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tdmixup.core.layout import DONE, RunLayout
from tdmixup.core.runio import environment_info, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline_cost.json"


def timed(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd`` under GNU time; wall seconds and its own peak RSS (MiB)."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    peak_kb = int(proc.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return {
        "command": cmd,
        "wall_s": wall,
        "peak_rss_mib": peak_kb / 1024,
        "stdout": proc.stdout[-3000:],
    }


def stage_breakdown(run: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for done in sorted(run.rglob(DONE)):
        summary = json.loads(done.read_text())
        key = str(done.parent.relative_to(run))
        out[key] = round(summary.get("train_seconds", 0.0) + summary.get("eval_seconds", 0.0), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", default="runs/bench_pipeline_cost")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("extra", nargs="*", help="options passed to both commands (after --)")
    args = parser.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    exe = [sys.executable, "-m", "tdmixup.cli"]
    common = list(args.extra)  # none: the default profile, cpu-small = `make demo`
    baseline = timed(
        [*exe, "train", "--strategy", "none", "--output-dir", str(work / "baseline"), *common]
    )
    pipeline = timed([*exe, "run", "--output-dir", str(work / "pipeline"), *common])
    stages = stage_breakdown(work / "pipeline")
    layout = RunLayout(work / "pipeline")
    full = json.loads((layout.stage1 / DONE).read_text())
    td = json.loads((layout.tdmixup / DONE).read_text())
    result = {
        "benchmark": "pipeline_cost",
        "baseline": {k: v for k, v in baseline.items() if k != "stdout"},
        "pipeline": {k: v for k, v in pipeline.items() if k != "stdout"},
        "ratio_pipeline_over_baseline": pipeline["wall_s"] / baseline["wall_s"],
        "pipeline_stage_seconds": stages,
        "metrics": {
            "stage1_full_100pct": full["metrics"],
            "stage4_tdmixup": td["metrics"],
            "train_sizes": {"full": full["train_sizes"], "tdmixup": td["train_sizes"]},
        },
        "environment": environment_info(),
        "load_average": os.getloadavg(),
    }
    write_json(args.out, result)
    print(f"baseline: {baseline['wall_s']:.0f} s, peak RSS {baseline['peak_rss_mib']:.0f} MiB")
    print(f"pipeline: {pipeline['wall_s']:.0f} s, peak RSS {pipeline['peak_rss_mib']:.0f} MiB")
    print(f"ratio: {result['ratio_pipeline_over_baseline']:.2f}× (paper's procedure ≈ 2.1×)")
    for stage, seconds in stages.items():
        print(f"  {stage:>20}: {seconds:7.1f} s (train + eval)")
    print(pipeline["stdout"])


if __name__ == "__main__":
    main()
