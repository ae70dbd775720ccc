"""Which ranking finds label errors? tdmixup's AUM, data map and confidence against cleanlab.

Issue 23, item 4. On the first ``--sizes`` SNLI training pairs with 10 % of the labels flipped
(:func:`tdmixup.dynamics.noise.inject_label_noise`; dev and test stay clean), scores each method's
flags against the flips (precision, recall, F1; :func:`tdmixup.dynamics.noise.flag_metrics`) and
each threshold-free score's ranking (AUROC and average precision, flipped = positive):

* ``stage1`` (one training run with dynamics, the pipeline's ``stage_full`` + ``stage_datamap``;
  every method of this group shares it):
  ``aum_lowest_fraction`` (``find_mislabeled(fraction=0.10)`` on the run's logits; AUROC of
  stage-1 AUM), ``hard_region`` (the data map's hard region at the default
  ``--dynamics-fraction`` 0.33), ``hard_region_f0.1`` (the same at 0.1) and
  ``confidence_lowest_fraction`` (the 10 % of lowest mean gold probability; AUROC of
  confidence).
  Also ``confidence_within_class_fraction`` (the 10 % lowest confidence percentiles within
  each given class; AUROC of that percentile) and ``cleanlab_on_stage1_probs``
  (``find_label_issues`` on the run's own last-epoch, in-sample probabilities, to separate
  cleanlab's rule from the K-fold training it asks for).
* ``aum`` (``run_aum``: two threshold-sample runs with disjoint threshold sets):
  ``aum_threshold_k80`` and ``aum_threshold_k<k>`` for each lower ``--aum-ks`` (the same two
  runs; AUROC of the threshold runs' AUM).
* ``cleanlab`` (K models, each trained like stage 1 on K − 1 folds, predicting its held-out
  fold): ``cleanlab_find_label_issues`` (``cleanlab.filter.find_label_issues``, its defaults)
  and ``cleanlab_lowest_quality_fraction`` (the 10 % of lowest
  ``get_label_quality_scores``; AUROC of that score).

Noise (``--noises``): ``uniform`` (each chosen label moves to one of the other classes at
random) and ``class_conditional`` (neutral → entailment only; ``kind="class_conditional"``).
The noise seed is the training seed. The ``*_fraction`` methods are told the noise rate (they
flag ``floor(0.1 · N)`` samples); the others choose their own number.

Each (size, noise, seed, method run) writes one JSON under ``results/label_detection/`` with
its scores, its training cost (runs, optimiser steps, samples trained and inferred, train and
wall seconds), the machine, the code version and the command; finished ones are skipped, and
an interrupted one resumes from its last finished epoch (run folders under ``--run-root``).
``--summarize`` (also run after each job) writes ``results/label_detection.json`` and
``results/label_detection.md``: mean ± std (over seeds, ddof 1) per size, noise and method.

Full (MiniLM, cpu-small settings: lr 5e-5, 3 epochs, batch 16; one thread)::

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/label_detection.py > ld.log 2>&1 &

Smoke (tiny random BERT from tests/_tiny.py, 200 rows; summary /tmp/ld.json, nothing committed)::

    .venv/bin/python benchmarks/label_detection.py --sizes 200 --seeds 1 --folds 2 \\
        --model /tmp/tiny --max-seq-length 128 --learning-rate 1e-3 --epochs 2 \\
        --results-dir /tmp/ld --run-root /tmp/ld-runs

Skips (exit 0, nothing written) when the SNLI files are not in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tdmixup.core.config as tc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _session import (  # noqa: E402
    aum_tables,
    cross_validated_logits,
    data_missing,
    open_run,
    quiet_logging,
)

from tdmixup.core.layout import DONE  # noqa: E402
from tdmixup.core.runio import read_json, write_json  # noqa: E402
from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
METHOD_RUNS = ("stage1", "aum", "cleanlab")
NOISES = {
    "uniform": {"kind": "symmetric"},
    "class_conditional": {"kind": "class_conditional", "transitions": {1: 0}},
}
"""Noise name → :func:`tdmixup.dynamics.noise.inject_label_noise` options (SNLI: 0 entailment,
1 neutral, 2 contradiction)."""
SCORE_KEYS = ("precision", "recall", "f1", "auroc", "average_precision", "n_flagged")
COST_KEYS = (
    "runs",
    "optimizer_steps",
    "samples_trained",
    "samples_inferred",
    "train_seconds",
    "wall_seconds",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1500, 5000])
    p.add_argument("--noises", nargs="+", choices=tuple(NOISES), default=list(NOISES))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--methods", nargs="+", choices=METHOD_RUNS, default=list(METHOD_RUNS))
    p.add_argument(
        "--order",
        choices=("seed", "stage1-first"),
        default="seed",
        help="Within each (size, noise): every method run of a seed before the next seed "
        "(seed), or stage 1 of every seed first, then the other runs seed by seed "
        "(stage1-first: the cheap run's methods reach all seeds soonest).",
    )
    p.add_argument("--noise-rate", type=float, default=0.1)
    p.add_argument("--folds", type=int, default=5, help="Cross-validation folds for cleanlab.")
    p.add_argument("--aum-ks", type=float, nargs="+", default=[80.0, 50.0])
    p.add_argument("--dev-size", type=int, default=300)
    p.add_argument("--test-size", type=int, default=500, help="SNLI test rows (accuracy).")
    p.add_argument("--model", default=tc.DEFAULT_MODEL)
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument(
        "--max-seq-length", type=int, default=tc.DataConfig.max_seq_length, help="Tokens per pair."
    )
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (share the machine).")
    p.add_argument("--run-root", type=Path, default=HERE.parent / "runs" / "label_detection")
    p.add_argument("--results-dir", type=Path, default=RESULTS / "label_detection")
    p.add_argument(
        "--summary",
        type=Path,
        default=None,
        help="Summary JSON; the markdown table goes beside it (.md). Default: beside "
        "--results-dir, named after it (results/label_detection.json for the default).",
    )
    p.add_argument("--summarize", action="store_true", help="Only rewrite the summary.")
    args = p.parse_args(argv)
    if args.summary is None:
        args.summary = args.results_dir.parent / f"{args.results_dir.name}.json"
    return args


# --- scores ----------------------------------------------------------------------------------
def ranking_scores(suspicion: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """AUROC and average precision of a ranking (higher ``suspicion`` = more likely flipped)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "auroc": float(roc_auc_score(truth, suspicion)),
        "average_precision": float(average_precision_score(truth, suspicion)),
    }


def score(flags: np.ndarray, truth: np.ndarray, suspicion: np.ndarray | None) -> dict[str, Any]:
    """Flag metrics, plus the ranking's when the method has a threshold-free score."""
    from tdmixup.dynamics.noise import flag_metrics

    out: dict[str, Any] = dict(flag_metrics(flags, truth))
    if suspicion is not None:
        out |= ranking_scores(suspicion, truth)
    return out


def lowest(values: np.ndarray, fraction: float) -> np.ndarray:
    """``[N]`` bool: the ``floor(fraction · N)`` lowest values (ties by position), as
    :func:`tdmixup.find_mislabeled` counts."""
    flags = np.zeros(values.size, dtype=bool)
    flags[np.argsort(values, kind="stable")[: int(np.floor(values.size * fraction + 1e-9))]] = True
    return flags


# --- cost ------------------------------------------------------------------------------------
def stage_cost(stage_dirs: list[Path], *, inferred: int = 0) -> dict[str, Any]:
    """Runs, optimiser steps, samples trained (epochs × set size) and train seconds summed over
    finished stage folders (their ``done.json``), plus ``inferred`` inference samples."""
    dones = [read_json(d / DONE) for d in stage_dirs]
    return {
        "runs": len(dones),
        "optimizer_steps": int(sum(h["steps"] for d in dones for h in d["history"])),
        "samples_trained": int(sum(sum(d["train_sizes"]) * len(d["history"]) for d in dones)),
        "samples_inferred": int(inferred),
        "train_seconds": float(sum(d["train_seconds"] for d in dones)),
        "eval_seconds": float(sum(d.get("eval_seconds", 0.0) for d in dones)),
    }


# --- the three method runs -------------------------------------------------------------------
def run_stage1(session: Any, truth: np.ndarray, rate: float) -> tuple[dict[str, Any], ...]:
    """Stage 1 + data map; the AUM-fraction, hard-region and confidence flags."""
    from tdmixup import find_mislabeled
    from tdmixup.dynamics.datamap import assign_regions
    from tdmixup.dynamics.table import read_dynamics
    from tdmixup.run.pipeline import read_regions, stage_datamap, stage_full, with_task_defaults

    full = stage_full(session)
    stage_datamap(session)
    layout, ids = session.layout, session.train.sample_ids
    dyn = read_dynamics(layout.stage1_dynamics)
    if not np.array_equal(dyn.sample_ids, ids):
        raise RuntimeError(f"{layout.stage1_dynamics}: sample ids differ from the training set")
    stats = pd.read_parquet(layout.statistics).loc[ids]
    dcfg = with_task_defaults(session.config).dynamics
    hard_f01 = assign_regions(
        stats, fraction=0.1, allow_overlap=dcfg.allow_overlap, stratify=bool(dcfg.stratify_regions)
    )["hard"]
    aum, conf = stats["aum"].to_numpy(), stats["confidence"].to_numpy()
    in_class = within_class_percentile(conf, dyn.gold)
    methods = {
        "aum_lowest_fraction": score(
            find_mislabeled(dyn.logits, dyn.gold, fraction=rate), truth, -aum
        ),
        "hard_region": score(np.isin(ids, read_regions(session)["hard"]), truth, None),
        "hard_region_f0.1": score(np.isin(ids, hard_f01), truth, None),
        "confidence_lowest_fraction": score(lowest(conf, rate), truth, -conf),
        "confidence_within_class_fraction": score(lowest(in_class, rate), truth, -in_class),
        **in_sample_cleanlab(dyn.logits[-1], dyn.gold, truth),
    }
    epochs = len(full["history"])
    evaluated = sum(len(t) for t in session.tests.values()) + len(session.dev)
    cost = stage_cost([layout.stage1], inferred=epochs * len(ids) + evaluated)
    extra = {
        "test_accuracy": {k: v["accuracy"] for k, v in full["metrics"]["sets"].items()},
        "region_fraction_default": dcfg.fraction,
        "stratify_regions": bool(dcfg.stratify_regions),
    }
    return methods, cost, extra


def within_class_percentile(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``[N]`` each value's rank within its (given) class, divided by the class size, in (0, 1]
    (ties share their mean rank): a per-class ranking on one scale."""
    from scipy.stats import rankdata

    out = np.empty(values.size)
    for c in np.unique(classes):
        members = classes == c
        out[members] = rankdata(values[members]) / members.sum()
    return out


def in_sample_cleanlab(
    logits: np.ndarray, labels: np.ndarray, truth: np.ndarray
) -> dict[str, dict[str, Any]]:
    """cleanlab on stage 1's own last-epoch probabilities (in-sample, no extra training):
    ``find_label_issues`` flags, ranked by ``get_label_quality_scores``. Empty without
    cleanlab."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        return {}
    from scipy.special import softmax

    probs = softmax(logits, axis=1)
    issues = np.asarray(find_label_issues(labels=labels, pred_probs=probs), dtype=bool)
    quality = np.asarray(get_label_quality_scores(labels, probs))
    return {"cleanlab_on_stage1_probs": score(issues, truth, -quality)}


def run_aum_stage(session: Any, truth: np.ndarray, ks: list[float]) -> tuple[dict[str, Any], ...]:
    """``run_aum`` on every training sample; flags at each k from the same two passes."""
    from tdmixup.core.layout import AUM_PASS_PREFIX
    from tdmixup.run.aum_training import run_aum

    layout, ids = session.layout, session.train.sample_ids
    aum_dir = layout.aum_dir("all")
    summary = run_aum(session, aum_dir, ids)
    tables = aum_tables(session, aum_dir, ks)
    methods = {}
    for k, table in tables.items():
        t = table.set_index("sample_id").loc[ids]
        methods[f"aum_threshold_k{k:g}"] = score(
            t["flagged"].to_numpy(bool), truth, -t["aum"].to_numpy()
        ) | {"threshold_mean": float(np.mean(t["threshold"].to_numpy()))}
    cost = stage_cost(sorted(aum_dir.glob(f"{AUM_PASS_PREFIX}*")))
    extra = {
        "default_k_flags_match_run_aum": int(summary["n_flagged"])
        == methods[f"aum_threshold_k{session.config.aum.percentile:g}"]["n_flagged"],
        "procedure": summary["procedure"],
        "threshold_balance": summary["threshold_balance"],
    }
    return methods, cost, extra


def run_cleanlab(
    session: Any, truth: np.ndarray, clean: np.ndarray, rate: float, folds: int, seed: int
) -> tuple[dict[str, Any], ...]:
    """K-fold out-of-sample probabilities → ``find_label_issues`` and label quality scores."""
    import cleanlab
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from scipy.special import softmax

    out_dir = session.run_dir / "cleanlab"
    logits = cross_validated_logits(session, out_dir, folds, seed)
    probs, labels = softmax(logits, axis=1), session.train.labels
    issues = np.asarray(find_label_issues(labels=labels, pred_probs=probs), dtype=bool)
    quality = np.asarray(get_label_quality_scores(labels, probs))
    methods = {
        "cleanlab_find_label_issues": score(issues, truth, -quality),
        "cleanlab_lowest_quality_fraction": score(lowest(quality, rate), truth, -quality),
    }
    cost = stage_cost(sorted(out_dir.glob("fold*/")), inferred=len(labels))
    extra = {
        "cleanlab_version": cleanlab.__version__,
        "folds": folds,
        "fold_split": "random permutation (seed = the run's seed) cut into near-equal parts",
        "quality_score": "get_label_quality_scores default (self_confidence)",
        "heldout_accuracy": {
            "vs_clean_labels": float(np.mean(probs.argmax(1) == clean)),
            "vs_noisy_labels": float(np.mean(probs.argmax(1) == labels)),
        },
    }
    return methods, cost, extra


# --- one job ---------------------------------------------------------------------------------
def code_version() -> dict[str, Any]:
    """The checkout's commit and whether ``src/`` or ``benchmarks/`` (results aside) had
    uncommitted changes."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=HERE.parent, capture_output=True, text=True, check=False
        ).stdout.strip()

    code = ("--", "src", "benchmarks", ":(exclude)benchmarks/results")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", *code))}


def use_labels(session: Any, labels: np.ndarray) -> None:
    """Train on ``labels`` (aligned with ``session.train``'s rows): both the tokenised set and
    the task's training rows, which the dynamics fingerprint and the CSV writers read."""
    import dataclasses

    rows = session.task.train
    if not np.array_equal(np.asarray(rows["sample_id"]), session.train.sample_ids):
        raise RuntimeError("the task's training rows are not in the tokenised set's order")
    relabelled = (
        rows.remove_columns("label")
        .add_column("label", np.asarray(labels).tolist())
        .cast_column("label", rows.features["label"])
    )
    session.task = dataclasses.replace(session.task, train=relabelled)
    session.train = session.train.with_labels(labels)  # text hashes stay: they hash text only


def job_path(args: argparse.Namespace, size: int, noise: str, seed: int, run: str) -> Path:
    return args.results_dir / f"{size}_{noise}_seed{seed}_{run}.json"


def run_job(args: argparse.Namespace, size: int, noise: str, seed: int, run: str) -> None:
    """One method run on one noisy set: train (or resume), score, write its JSON."""
    from throughput import machine_info

    from tdmixup.dynamics.noise import inject_label_noise

    start, load_before = time.perf_counter(), os.getloadavg()
    config = tc.RunConfig(
        data=tc.DataConfig(
            task="snli",
            train_size=size,
            dev_size=args.dev_size,
            test_size=args.test_size,
            max_seq_length=args.max_seq_length,
        ),
        model=tc.ModelConfig(name_or_path=args.model, num_hidden_layers=args.num_hidden_layers),
        train=tc.TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=seed,
        ),
        aum=tc.AUMConfig(percentile=max(args.aum_ks)),
    )
    noise_options = NOISES[noise]
    settings = {"noise": noise, "noise_rate": args.noise_rate, "noise_seed": seed}
    run_dir = args.run_root / f"{size}_{noise}_seed{seed}"
    session = open_run(
        config, run_dir, settings, resume=(run_dir / "benchmark_settings.json").exists()
    )
    spec = session.task.spec
    clean = session.train.labels
    noisy, flipped = inject_label_noise(
        clean, spec.num_labels, rate=args.noise_rate, seed=seed, **noise_options
    )
    use_labels(session, noisy)
    runners: dict[str, Callable[[], tuple[dict[str, Any], ...]]] = {
        "stage1": lambda: run_stage1(session, flipped, args.noise_rate),
        "aum": lambda: run_aum_stage(session, flipped, sorted(args.aum_ks, reverse=True)),
        "cleanlab": lambda: run_cleanlab(
            session, flipped, clean, args.noise_rate, args.folds, seed
        ),
    }
    done_before = set(run_dir.rglob(DONE))
    methods, cost, extra = runners[run]()
    cost["wall_seconds"] = time.perf_counter() - start  # of this process (see the next line)
    cost["stages_finished_in_this_process"] = len(set(run_dir.rglob(DONE)) - done_before)
    machine = {
        **machine_info(),
        "world_size": session.accelerator.num_processes,
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
    }
    result = {
        "what": "label-error detection against injected flips: precision / recall / F1 of each "
        "method's flags, AUROC / average precision of its score (fractions); training cost",
        "size": size,
        "noise": {
            **settings,
            **{k: str(v) for k, v in noise_options.items()},
            "flipped": int(flipped.sum()),
            "flips_per_true_class": np.bincount(clean[flipped], minlength=spec.num_labels).tolist(),
            "flips_per_noisy_class": np.bincount(
                noisy[flipped], minlength=spec.num_labels
            ).tolist(),
            "label_names": list(spec.label_names),
        },
        "seed": seed,
        "method_run": run,
        "methods": methods,
        "cost": cost,
        **extra,
        "config": tc.to_json_dict(session.config),
        "run_dir": str(run_dir),
        "command": shlex.join([sys.executable, *sys.argv]),
        "code_version": args.code_version,
        "machine": machine,
    }
    write_json(job_path(args, size, noise, seed, run), result)
    line = ", ".join(
        f"{m} P {s['precision']:.3f} R {s['recall']:.3f}"
        + (f" AUROC {s['auroc']:.3f}" if "auroc" in s else "")
        for m, s in methods.items()
    )
    print(f"{size} {noise} seed {seed} {run}: {line}; {cost['wall_seconds']:.0f} s", flush=True)


# --- summary ---------------------------------------------------------------------------------
def mean_std(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "n": int(arr.size),
        "values": arr.tolist(),
    }


def summarize(args: argparse.Namespace) -> dict[str, Any]:
    """Mean ± std over seeds per (size, noise, method); the markdown table beside the JSON."""
    rows = [read_json(p) for p in sorted(args.results_dir.glob("*.json"))]
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        for name, s in r["methods"].items():
            groups.setdefault((r["size"], r["noise"]["noise"], name), []).append(
                {**s, **r["cost"], "seed": r["seed"], "method_run": r["method_run"]}
            )
    table = []
    for (size, noise, name), items in sorted(groups.items()):
        entry: dict[str, Any] = {
            "size": size,
            "noise": noise,
            "method": name,
            "method_run": items[0]["method_run"],
            "seeds": sorted(i["seed"] for i in items),
        }
        for key in (*SCORE_KEYS, *COST_KEYS):
            if all(key in i for i in items):
                entry[key] = mean_std([i[key] for i in items])
        table.append(entry)
    machines = sorted({r["machine"].get("cpu_model", "?") for r in rows})
    summary = {
        "what": "label-error detection on SNLI with 10 % flipped labels: mean ± std (ddof 1) "
        "over seeds; cost per method run (methods of one run share its cost)",
        "jobs_finished": sorted(
            f"{r['size']}_{r['noise']['noise']}_seed{r['seed']}_{r['method_run']}" for r in rows
        ),
        "machines": machines,
        "code_versions": sorted({r["code_version"]["commit"][:12] for r in rows}),
        "table": table,
    }
    write_json(args.summary, summary)
    args.summary.with_suffix(".md").write_text(markdown(summary))
    return summary


def _fmt(entry: dict[str, Any], key: str, scale: float = 1.0, digits: int = 3) -> str:
    if key not in entry:
        return "–"
    m, s = entry[key]["mean"] * scale, entry[key]["std"]
    return f"{m:.{digits}f}" if s is None else f"{m:.{digits}f} ± {s * scale:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """One table per (size, noise): scores and the cost of the run(s) each method needs."""
    out = [
        "# Label-error detection on SNLI (10 % flipped labels)",
        "",
        "Generated by `benchmarks/label_detection.py --summarize` from "
        "`results/label_detection/*.json`; mean ± std over the seeds listed (ddof 1). "
        "Cost is per method run (methods of one run share it): runs, optimiser steps, "
        "samples trained, train minutes (1 torch thread on a shared machine: "
        f"{'; '.join(summary['machines'])}).",
        "",
    ]
    by_group: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for e in summary["table"]:
        by_group.setdefault((e["size"], e["noise"]), []).append(e)
    order = {m: i for i, m in enumerate(METHOD_RUNS)}
    for (size, noise), entries in sorted(by_group.items()):
        out += [
            f"## {size:,} rows, {noise.replace('_', '-')} noise",
            "",
            "| method | seeds | flagged | precision | recall | F1 | AUROC | runs | steps "
            "| samples trained | train min |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in sorted(entries, key=lambda e: (order[e["method_run"]], e["method"])):
            out.append(
                f"| {e['method']} | {','.join(map(str, e['seeds']))} "
                f"| {_fmt(e, 'n_flagged', digits=0)} | {_fmt(e, 'precision')} "
                f"| {_fmt(e, 'recall')} | {_fmt(e, 'f1')} | {_fmt(e, 'auroc')} "
                f"| {_fmt(e, 'runs', digits=0)} | {_fmt(e, 'optimizer_steps', digits=0)} "
                f"| {_fmt(e, 'samples_trained', digits=0)} "
                f"| {_fmt(e, 'train_seconds', scale=1 / 60, digits=1)} |"
            )
        out.append("")
    return "\n".join(out)


def job_order(args: argparse.Namespace) -> list[tuple[int, str, int, str]]:
    """Every (size, noise, seed, method run) in the order ``--order`` asks for."""
    jobs = []
    for size in args.sizes:
        for noise in args.noises:
            block = [(size, noise, seed, run) for seed in args.seeds for run in args.methods]
            if args.order == "stage1-first":
                block.sort(key=lambda j: j[3] != "stage1")  # stable: seeds keep their order
            jobs += block
    return jobs


def main() -> None:
    args = parse_args()
    args.code_version = code_version()  # what this process runs, whatever is committed later
    if args.summarize:
        summarize(args)
        print(f"→ {args.summary}, {args.summary.with_suffix('.md')}")
        return
    if data_missing((SNLI_TRAIN, SNLI_TEST)):
        return
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    quiet_logging()
    jobs = job_order(args)
    todo = [j for j in jobs if not job_path(args, *j).exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} jobs already done; {len(todo)} to run")
    for job in tqdm(todo, desc="label_detection jobs", unit="job", file=sys.stdout):
        run_job(args, *job)
        summarize(args)
    print(f"→ {args.summary}, {args.summary.with_suffix('.md')}")


if __name__ == "__main__":
    main()
