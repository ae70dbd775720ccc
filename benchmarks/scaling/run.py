"""The scaling study (issue 10): where, between 1,500 and 20,000 SNLI pairs, TDMixUp starts to pay
off against plain fine-tuning — resumable at any point.

One job = one (training size, row, seed). Every job runs through the library's experiment
machinery (:func:`tdmixup.run.experiments.run_row` on a per-(size, seed) run folder, so stage 1, the
data map and the AUM runs are shared by the rows of that size and seed, and every stage resumes
from its last epoch checkpoint), and when it finishes writes one small JSON,
``<results>/runs/<size>_<row>_seed<s>.json`` (atomically; ``--commit`` commits that file at once).
A job whose JSON exists is skipped, so after a stop the same command simply goes on.

Rows: ``full`` (100 % fine-tuning; its ECE after temperature scaling is the "100 % + TS" line),
``tdmixup`` (the library's TDMixUp with its current defaults), ``random_pairs`` (the library's
Table 3 control), ``manifold`` (Manifold MixUp), all taken from
:data:`tdmixup.run.experiments.TABLES` at run time, and ``datamap_quality`` (a dynamics-only run on
the size's pairs plus the 1,514 ChaosNLI SNLI pairs: crowd entropy by data-map region; see the
README for why it is separate).

The order is :data:`ORDER`: cheap and informative first. Usage::

    python benchmarks/scaling/run.py --commit              # the whole plan (hours; resumable)
    python benchmarks/scaling/run.py plan                  # jobs, their state, estimated hours
    python benchmarks/scaling/run.py --only 5000 --max-seeds 2
    python benchmarks/scaling/run.py summarize             # summary.json, table.md, scaling.png
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: see throughput.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]  # scaling_summary; _session, human_ambiguity

import scaling_summary  # noqa: E402
from jobs import QUALITY, SNLI_TEST_ROWS, Job  # noqa: E402  (light: its heavy imports are inside functions)

RESULTS = HERE / "results"
RUN_DIR = REPO / "runs" / "scaling"
MAIN_ROWS = ("full", "tdmixup", "random_pairs", "manifold")
ROWS = (*MAIN_ROWS, QUALITY)
CHAOS_SNLI_PAIRS = 1514

ORDER: tuple[tuple[int, tuple[int, ...], tuple[str, ...], str | None], ...] = (
    (1500, (1, 2, 3), MAIN_ROWS, None),
    (1500, (1, 2, 3), (QUALITY,), None),
    (5000, (1, 2, 3), MAIN_ROWS, None),
    (5000, (1, 2, 3), (QUALITY,), None),
    (20000, (1,), ("full", "tdmixup", "random_pairs"), None),
    (20000, (2,), ("full", "tdmixup", "random_pairs"), None),
    (20000, (1,), (QUALITY,), None),
    (20000, (3,), ("full", "tdmixup", "random_pairs"), None),
    (20000, (2, 3), (QUALITY,), None),
    (20000, (1, 2, 3), ("manifold",), "manifold_20k"),
    (50000, (1,), ("full", "tdmixup", "random_pairs", QUALITY), "with_50k"),
)
"""The plan, in the order it runs: (size, seeds, rows, the flag it needs). Within a block, seed by
seed and row by row. All rows at 1,500 × 3 seeds (cheap), then 5,000 × 3, then 20,000 seed by
seed (two seeds and the data map's quality first: the issue's "done" point), Manifold MixUp at
20,000 only with ``--manifold-20k``, one 50,000 seed only with ``--with-50k``."""

PRIOR_S_PER_PAIR = {
    "full": 0.14,
    "tdmixup": 0.26,
    "random_pairs": 0.06,
    "manifold": 0.11,
    QUALITY: 0.13,
}
"""Seconds per training pair of a job before any has finished (MiniLM, 3 epochs, fp32), from the
CPU reproduction at 1,500 pairs on this machine's 2 cores, often shared (its table.json train
seconds + ~40 s of evaluation), and benchmarks/results/pipeline_cost.json (AUM: 0.15 s/pair);
the finished jobs' own costs replace them."""
PRIOR_BF16_FACTOR = 0.75
"""The priors' cost with bf16 training: training steps are ~75 % of a job's time and 1.48x faster
(benchmarks/results/throughput.json, speed_options); evaluation and dynamics passes stay fp32."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "command",
        nargs="?",
        choices=("run", "plan", "summarize"),
        default="run",
        help="run the pending jobs (default), list the plan, or only write the summary",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="results folder (runs/*.json, summary.json, ...)",
    )
    p.add_argument(
        "--run-dir", type=Path, default=RUN_DIR, help="run folders (checkpoints; outside git)"
    )
    p.add_argument("--only", type=int, nargs="+", metavar="SIZE", help="only these training sizes")
    p.add_argument("--max-seeds", type=int, default=None, help="only seeds 1..N")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="only these rows")
    p.add_argument(
        "--manifold-20k", action="store_true", help="also Manifold MixUp at 20,000 (3 seeds)"
    )
    p.add_argument("--with-50k", action="store_true", help="also 50,000 pairs, one seed")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="replace the plan's sizes (each: every row, --seeds seeds); for smoke tests",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per size with --sizes")
    p.add_argument(
        "--test-size",
        type=int,
        default=3000,
        help="rows of the official SNLI test set used (the first N; ChaosNLI MNLI keeps all 1,599)",
    )
    p.add_argument(
        "--full-test", action="store_true", help=f"all {SNLI_TEST_ROWS:,} SNLI test rows"
    )
    p.add_argument(
        "--dev-size", type=int, default=500, help="held-out dev pairs (temperature scaling)"
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--fp32",
        action="store_true",
        help="train in fp32 (default: TrainConfig.bf16, bfloat16 autocast of the training "
        "forward pass, 1.48x faster steps with the fp32 loss curve on a CPU with native "
        "bfloat16 (AMX), benchmarks/results/throughput.json; on a CPU without it, where bf16 "
        "is 13-18x slower, the study trains in fp32 anyway and says so)",
    )
    p.add_argument("--model", default=None, help="default: the library's offline MiniLM")
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument(
        "--max-runs", type=int, default=None, help="stop after this many jobs (then summarise)"
    )
    p.add_argument(
        "--commit",
        action="store_true",
        help="git-commit each run JSON (and the summary at the end)",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep finished stages' epoch checkpoints "
        "(default: removed once the run's JSON is written; "
        "~270 MB each with MiniLM, ~14 GB for the whole study otherwise)",
    )
    return p.parse_args(argv)


# --- the plan --------------------------------------------------------------------------------
def plan(args: argparse.Namespace) -> list[Job]:
    """Every job of the study in :data:`ORDER` (or the ``--sizes`` plan), filtered by
    ``--only``, ``--max-seeds`` and ``--rows``; finished ones included."""
    if args.sizes:
        seeds = tuple(range(1, args.seeds + 1))
        blocks: list[tuple[int, tuple[int, ...], tuple[str, ...], str | None]] = []
        for size in args.sizes:
            blocks += [(size, seeds, MAIN_ROWS, None), (size, seeds, (QUALITY,), None)]
    else:
        blocks = [b for b in ORDER if b[3] is None or getattr(args, b[3])]
    jobs = []
    for size, seeds, rows, _ in blocks:
        for seed in seeds:
            for row in rows:
                if (
                    (args.only and size not in args.only)
                    or (args.max_seeds and seed > args.max_seeds)
                    or row not in args.rows
                ):
                    continue
                jobs.append(Job(size, row, seed))
    return list(dict.fromkeys(jobs))


def result_path(results: Path, job: Job) -> Path:
    return results / "runs" / f"{job.name}.json"


def pending(jobs: list[Job], results: Path) -> list[Job]:
    """The jobs whose result JSON does not exist yet, in plan order."""
    return [j for j in jobs if not result_path(results, j).exists()]


def study_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one study shares; runs with other settings cannot be averaged together."""
    from tdmixup.core.config import DEFAULT_MODEL

    return {
        "task": "snli",
        "model": args.model or DEFAULT_MODEL,
        "num_hidden_layers": args.num_hidden_layers,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "dev_size": args.dev_size,
        "test_size": None if args.full_test else args.test_size,
        "bf16": not args.fp32,
        "chaos_label": "old_label",
    }


def choose_precision(args: argparse.Namespace) -> None:
    """Train in fp32 (``args.fp32 = True``) where bfloat16 autocast would be slow: on a CPU without
    native bfloat16 its steps were measured 13-18x slower than fp32 (AMD EPYC, AVX2). A study moving
    between machines then holds runs of both precisions; each run's JSON records its own and the
    summary lists them (:data:`scaling_summary.COMPUTE_SETTINGS`)."""
    if args.fp32:
        return
    import torch

    from tdmixup.training.optim import cpu_has_native_bf16

    if torch.cuda.is_available() or cpu_has_native_bf16():
        return
    args.fp32 = True
    print(
        "[scaling] this CPU has no native bfloat16 (torch capability "
        f"{torch.backends.cpu.get_cpu_capability()}): training in fp32 "
        "(bf16 autocast measured 13-18x slower on such a CPU); each run records its precision",
        flush=True,
    )


def check_results_settings(results: Path, settings: dict[str, Any]) -> None:
    """Refuse to add runs to a results folder whose finished runs have other study settings
    (precision aside: :data:`scaling_summary.COMPUTE_SETTINGS` may differ per run)."""
    import json

    ours = scaling_summary.study_part(settings)
    for path in sorted((results / "runs").glob("*_seed*.json"))[:1]:
        found = json.loads(path.read_text()).get("settings")
        theirs = scaling_summary.study_part(found) if found else None
        if theirs != ours:
            diff = {
                k: (theirs.get(k) if theirs else None, ours.get(k))
                for k in ours
                if not theirs or theirs.get(k) != ours.get(k)
            }
            sys.exit(
                f"{path} was made with other study settings (theirs, these): {diff}; "
                "use another --results (and --run-dir) for these settings"
            )


def estimate_hours(jobs: list[Job], results: Path, *, bf16: bool = True) -> dict[int, float]:
    """Estimated hours per size for ``jobs``: seconds per training pair of each row from the
    finished runs in ``results`` (median of ``cost_seconds`` / training pairs: the job's training
    and evaluation from scratch, whatever was reused), else :data:`PRIOR_S_PER_PAIR`."""

    def pairs(size: int, row: str) -> int:  # the quality runs also train on the ChaosNLI pairs
        return size + CHAOS_SNLI_PAIRS if row == QUALITY else size

    rates: dict[str, list[float]] = {}
    for r in scaling_summary.load_runs(results / "runs"):
        if r.get("cost_seconds"):
            rates.setdefault(r["row"], []).append(r["cost_seconds"] / pairs(r["size"], r["row"]))
    out: dict[int, float] = {}
    for j in jobs:
        rate = (
            statistics.median(rates[j.row])
            if j.row in rates
            else PRIOR_S_PER_PAIR[j.row] * (PRIOR_BF16_FACTOR if bf16 else 1.0)
        )
        out[j.size] = out.get(j.size, 0.0) + rate * pairs(j.size, j.row) / 3600
    return out


# --- git -------------------------------------------------------------------------------------
def commit_files(
    paths: list[Path], message: str, *, attempts: int = 6, wait_s: float = 2.0
) -> bool:
    """Commit only ``paths`` (one commit) to the git repository they lie in (``git add`` + ``git
    commit -- paths``; other staged or modified files stay as they are), retrying while another
    git process holds ``.git/index.lock``. Returns False (with a warning: the study goes on)
    when it cannot."""

    def git(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *cmd], cwd=cwd, capture_output=True, text=True)

    top = git("rev-parse", "--show-toplevel", cwd=paths[0].parent)
    if top.returncode != 0:
        print(
            f"warning: {paths[0].parent} is not in a git repository; nothing committed", flush=True
        )
        return False
    repo = Path(top.stdout.strip())
    rel = [str(p.resolve().relative_to(repo.resolve())) for p in paths]
    err = ""
    for attempt in range(attempts):
        done = git("add", "--", *rel, cwd=repo)
        if done.returncode == 0:
            if git("diff", "--cached", "--quiet", "--", *rel, cwd=repo).returncode == 0:
                return True  # committed before (unchanged): nothing to do
            done = git("commit", "-q", "-m", message, "--", *rel, cwd=repo)
            if done.returncode == 0:
                return True
        err = (done.stderr or done.stdout).strip()
        if "index.lock" not in err:
            break
        time.sleep(wait_s * (attempt + 1))
    print(f"warning: could not commit {' '.join(rel)}: {err}", flush=True)
    return False


def hold_lock(run_dir: Path) -> Any:
    """An exclusive lock on ``<run-dir>/.lock`` for this process's lifetime: a second study started
    on the same run folders by mistake stops at once instead of training the same jobs twice."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / ".lock", "a+")  # noqa: SIM115  (kept open: the lock lives with it)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        sys.exit(
            f"another run.py works on {run_dir} (pid {handle.read().strip() or '?'}); "
            "stop it first or use another --run-dir"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def code_version() -> dict[str, Any]:
    """The commit of this checkout and whether it had uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "benchmarks/scaling/run.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return {"git_commit": head.stdout.strip() or None, "src_dirty": bool(dirty.stdout.strip())}


# --- running ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "summarize":
        summarize(args)
        return
    jobs = plan(args)
    todo = pending(jobs, args.results)
    if todo:
        choose_precision(args)
    hours = estimate_hours(todo, args.results, bf16=not args.fp32)
    print(
        f"{len(jobs)} jobs in the plan, {len(jobs) - len(todo)} finished, {len(todo)} to run; "
        "estimated hours (at the pace of "
        f"{'the finished runs' if len(todo) < len(jobs) else 'the CPU reproduction'}): "
        + ", ".join(f"{s:,}: {h:.1f}" for s, h in hours.items())
        + f" (total {sum(hours.values()):.1f})"
    )
    if args.command == "plan":
        for j in jobs:
            print(f"  {'done   ' if j not in todo else 'pending'} {j.name}")
        return
    if not todo:
        summarize(args)
        return
    from jobs import JobRunner

    settings = study_settings(args)
    check_results_settings(args.results, settings)
    lock = hold_lock(args.run_dir)  # noqa: F841  (held until the process ends)
    runner = JobRunner(args, settings, code_version(), shlex.join([sys.executable, *sys.argv]))
    failed = []
    for n, job in enumerate(todo, 1):
        if args.max_runs is not None and n > args.max_runs:
            break
        path = result_path(args.results, job)
        if path.exists():  # finished meanwhile by another invocation
            continue
        print(f"[scaling] {n}/{len(todo)} {job.name} ...", flush=True)
        try:
            record = runner.run(job)
        except Exception:  # one failed job must not stop hours of others; the next start retries it
            traceback.print_exc()
            print(
                f"[scaling] {job.name} FAILED (no JSON written); going on with the next job",
                flush=True,
            )
            failed.append(job.name)
            runner.forget_session()
            continue
        from tdmixup.core.runio import write_json

        write_json(path, record)
        print(f"[scaling] {job.name}: {record['wall_seconds']:.0f} s → {path}", flush=True)
        if args.commit:
            commit_files([path], f"scaling study: {job.name}")
        if not args.keep_checkpoints:
            runner.prune_checkpoints(job)
    summarize(args)
    if failed:
        sys.exit(f"[scaling] {len(failed)} job(s) failed: {', '.join(failed)} (tracebacks above)")


def summarize(args: argparse.Namespace) -> None:
    runs_dir = args.results / "runs"
    if not any(runs_dir.glob("*_seed*.json")):
        print(f"no finished runs in {runs_dir}; no summary written")
        return
    scaling_summary.summarize(args.results)
    print(f"wrote {args.results}/summary.json, table.md, scaling.png")
    if args.commit:
        commit_files(
            [args.results / n for n in ("summary.json", "table.md", "scaling.png")],
            "scaling study: summary, table and figure",
        )


if __name__ == "__main__":
    main()
