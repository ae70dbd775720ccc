"""Speed of data-map statistics, regions and AUM on an SNLI-sized dynamics table.

Compares, on the same seeded random logits (550,152 samples × 3 epochs × 3 classes):

* tdmixup: ``compute_statistics`` (confidence, variability, correctness, forgetting, AUM) +
  ``assign_regions``, on ``[E, N, C]`` arrays;
* a straightforward pandas implementation: a long table, row-wise softmax / margin columns,
  ``groupby("sample_id")`` aggregation and ``sort_values`` regions;
* the ``aum`` package (1.0.2): ``AUMCalculator.update`` fed per-epoch shuffled batches of 512,
  as a training loop would, then ``finalize``. If the full run is projected to exceed the
  budget (``--aum-budget-s``), only a subset is timed and the figure is extrapolated linearly.

It also times ``append_epoch`` and ``read_dynamics`` on the Parquet table, checks that all three
implementations agree (AUM to 1e-5), and writes ``benchmarks/results/statistics_speed.json``.

Run: ``.venv/bin/python benchmarks/statistics_speed.py`` (about 1–3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.dynamics.datamap import assign_regions
from tdmixup.dynamics.table import (
    TrainingDynamics,
    append_epoch,
    area_under_margin,
    compute_statistics,
    read_dynamics,
)

RESULTS = Path(__file__).resolve().parent / "results" / "statistics_speed.json"


CPU_SECONDS: dict[str, float] = {}
"""Process CPU time of each timed step (its fastest run), recorded beside the wall times."""


def best_of(fn: Callable[[], Any], repeats: int, name: str) -> tuple[float, Any]:
    """Smallest wall time of ``repeats`` calls (seconds) and the last result."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_SECONDS[name] = cpu[int(np.argmin(times))]
    return min(times), result


def pandas_statistics(
    dyn: TrainingDynamics, fraction: float
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The obvious pandas version: long table → per-row columns → groupby → sort_values."""
    num_epochs, num_samples, num_classes = dyn.logits.shape
    long = pd.DataFrame(
        dyn.logits.reshape(-1, num_classes).astype(np.float64),
        columns=[f"z{k}" for k in range(num_classes)],
    )
    long["sample_id"] = np.tile(dyn.sample_ids, num_epochs)
    long["epoch"] = np.repeat(dyn.epochs, num_samples)
    long["gold"] = np.tile(dyn.gold, num_epochs)
    logit_cols = long[[f"z{k}" for k in range(num_classes)]]
    gold_logit = logit_cols.to_numpy()[np.arange(len(long)), long["gold"].to_numpy()]
    exp = np.exp(logit_cols.sub(logit_cols.max(axis=1), axis=0))
    long["p_gold"] = np.exp(gold_logit - logit_cols.max(axis=1)) / exp.sum(axis=1)
    long["correct"] = logit_cols.to_numpy().argmax(axis=1) == long["gold"].to_numpy()
    others = logit_cols.mask(np.eye(num_classes, dtype=bool)[long["gold"].to_numpy()])
    long["margin"] = gold_logit - others.max(axis=1)
    long = long.sort_values(["sample_id", "epoch"])
    previous = long.groupby("sample_id")["correct"].shift(1, fill_value=False)
    long["forgot"] = previous & ~long["correct"]
    grouped = long.groupby("sample_id")
    stats = pd.DataFrame(
        {
            "confidence": grouped["p_gold"].mean(),
            "variability": grouped["p_gold"].std(ddof=0),
            "correctness": grouped["correct"].mean(),
            "forgetting_events": grouped["forgot"].sum(),
            "aum": grouped["margin"].mean(),
        }
    )
    n = int(np.floor(fraction * len(stats) + 1e-9))
    regions = {
        "easy": stats.sort_values("confidence", ascending=False).index[:n].to_numpy(),
        "ambiguous": stats.sort_values("variability", ascending=False).index[:n].to_numpy(),
        "hard": stats.sort_values("confidence").index[:n].to_numpy(),
    }
    return stats, regions


def aum_package(
    dyn: TrainingDynamics, rows: np.ndarray, batch_size: int, seed: int
) -> tuple[float, float, np.ndarray]:
    """Feed the ``aum`` package like a training loop; return (update seconds, finalize seconds,
    AUM)."""
    import torch
    from aum import AUMCalculator

    rng = np.random.default_rng(seed)
    gold = torch.from_numpy(dyn.gold)
    calculator = AUMCalculator(save_dir=tempfile.mkdtemp(prefix="aum-bench-"), compressed=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    for e in range(len(dyn.epochs)):
        logits = torch.from_numpy(
            np.array(dyn.logits[e])
        )  # writable copy, as a model would hand over
        order = rng.permutation(rows)
        batches = np.array_split(
            order, max(1, len(order) // batch_size)
        )  # no batch of one (the package fails)
        for batch in batches:
            index = torch.from_numpy(batch)
            calculator.update(logits[index], gold[index], dyn.sample_ids[batch].tolist())
    updates = time.perf_counter() - start
    start = time.perf_counter()
    calculator.finalize()
    finalize = time.perf_counter() - start
    CPU_SECONDS[f"aum_package_{len(rows)}"] = time.process_time() - start_cpu
    values = np.array(
        [calculator.sums[i] / calculator.counts[i] for i in dyn.sample_ids[rows].tolist()]
    )
    return updates, finalize, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=550_152, help="N (SNLI train: 550,152).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.33)
    parser.add_argument(
        "--repeats", type=int, default=5, help="Best of this many runs for the fast paths."
    )
    parser.add_argument("--aum-batch-size", type=int, default=512)
    parser.add_argument(
        "--aum-subset",
        type=int,
        default=55_015,
        help="Samples timed first to project the aum package's full run.",
    )
    parser.add_argument(
        "--aum-budget-s",
        type=float,
        default=300.0,
        help="Run the aum package on all samples only if projected below this.",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    n, e, c = args.samples, args.epochs, args.classes
    ids = rng.permutation(n).astype(np.int64)  # recorder order; the table sorts by id
    gold = rng.integers(0, c, n)
    drift = (
        rng.normal(size=(1, n, c)) * np.linspace(0.5, 2.0, e)[:, None, None]
    )  # logits that move across epochs
    logits = (drift + rng.normal(scale=1.5, size=(e, n, c))).astype(np.float32)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dynamics.parquet"
        append_s = []
        for epoch in range(e):
            start = time.perf_counter()
            append_epoch(
                path,
                epoch=epoch,
                sample_ids=ids,
                gold=gold,
                logits=logits[epoch],
                mode="epoch_end",
                task="snli",
            )
            append_s.append(time.perf_counter() - start)
        file_mb = path.stat().st_size / 1e6
        read_s, dyn = best_of(lambda: read_dynamics(path), args.repeats, "read_dynamics")

    stats_s, stats = best_of(lambda: compute_statistics(dyn), args.repeats, "compute_statistics")
    regions_s, regions = best_of(
        lambda: assign_regions(stats, fraction=args.fraction), args.repeats, "assign_regions"
    )
    overlap_s, overlap = best_of(
        lambda: assign_regions(stats, fraction=args.fraction, allow_overlap=True),
        args.repeats,
        "assign_regions_overlap",
    )
    aum_s, _ = best_of(
        lambda: area_under_margin(dyn.logits, dyn.gold), args.repeats, "area_under_margin"
    )
    tdmixup_s = stats_s + regions_s
    pandas_s, (pandas_stats, pandas_regions) = best_of(
        lambda: pandas_statistics(dyn, args.fraction), 1, "pandas_groupby"
    )

    columns = ["confidence", "variability", "correctness", "forgetting_events", "aum"]
    pandas_diff = float(
        np.abs(pandas_stats[columns].to_numpy(float) - stats[columns].to_numpy(float)).max()
    )
    region_mismatch = {k: int(len(np.setxor1d(pandas_regions[k], overlap[k]))) for k in regions}

    subset = np.sort(rng.choice(n, size=min(args.aum_subset, n), replace=False))
    sub_update, sub_finalize, sub_values = aum_package(dyn, subset, args.aum_batch_size, args.seed)
    projected = (sub_update + sub_finalize) * n / len(subset)
    if projected <= args.aum_budget_s and len(subset) < n:
        update_s, finalize_s, values = aum_package(
            dyn, np.arange(n), args.aum_batch_size, args.seed
        )
        aum_pkg = {
            "measured_on": n,
            "extrapolated": False,
            "update_s": update_s,
            "finalize_s": finalize_s,
        }
        aum_diff = float(np.abs(values - stats["aum"].to_numpy()).max())
    else:
        aum_pkg = {
            "measured_on": len(subset),
            "extrapolated": True,
            "update_s": sub_update * n / len(subset),
            "finalize_s": sub_finalize * n / len(subset),
            "note": f"timed on {len(subset):,} random samples and scaled linearly to {n:,}",
        }
        aum_diff = float(np.abs(sub_values - stats["aum"].to_numpy()[subset]).max())
    aum_pkg["total_s"] = aum_pkg["update_s"] + aum_pkg["finalize_s"]
    aum_pkg["subset_probe"] = {
        "samples": len(subset),
        "update_s": sub_update,
        "finalize_s": sub_finalize,
    }

    import aum
    import pyarrow
    import torch

    result = {
        "table": {
            "samples": n,
            "epochs": e,
            "classes": c,
            "seed": args.seed,
            "parquet_mb": round(file_mb, 2),
        },
        "seconds": {
            "tdmixup_statistics_plus_regions": tdmixup_s,
            "tdmixup_compute_statistics": stats_s,
            "tdmixup_assign_regions": regions_s,
            "tdmixup_assign_regions_overlap": overlap_s,
            "tdmixup_area_under_margin_only": aum_s,
            "pandas_groupby": pandas_s,
            "aum_package": aum_pkg,
            "append_epoch": append_s,
            "read_dynamics": read_s,
        },
        "speedup": {
            "aum_package_vs_tdmixup_total": aum_pkg["total_s"] / tdmixup_s,
            "aum_package_vs_tdmixup_aum_only": aum_pkg["total_s"] / aum_s,
            "pandas_vs_tdmixup_total": pandas_s / tdmixup_s,
        },
        "speedup_cpu_seconds": {
            "aum_package_vs_tdmixup_total": CPU_SECONDS[f"aum_package_{aum_pkg['measured_on']}"]
            * n
            / aum_pkg["measured_on"]
            / (CPU_SECONDS["compute_statistics"] + CPU_SECONDS["assign_regions"]),
            "pandas_vs_tdmixup_total": CPU_SECONDS["pandas_groupby"]
            / (CPU_SECONDS["compute_statistics"] + CPU_SECONDS["assign_regions"]),
        },
        "agreement": {
            "max_abs_diff_aum_vs_aum_package": aum_diff,
            "aum_within_1e-5": aum_diff <= 1e-5,
            "max_abs_diff_stats_vs_pandas": pandas_diff,
            "overlap_regions_ids_not_shared_with_pandas_sorts": region_mismatch,
        },
        "cpu_seconds": CPU_SECONDS,
        "timing": (
            f"wall seconds, best of {args.repeats} for tdmixup and read_dynamics; "
            "one run for pandas and the aum package (its update loop is single-threaded Python, "
            "so its CPU seconds are the fairer figure on a loaded machine); "
            "load averages show how busy the shared machine was"
        ),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "aum": getattr(aum, "__version__", "1.0.2"),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"tdmixup statistics + regions: {tdmixup_s:.3f} s (statistics {stats_s:.3f}, "
        f"regions {regions_s:.3f}, AUM alone {aum_s:.3f})"
    )
    print(
        f"pandas groupby:               {pandas_s:.3f} s  → {pandas_s / tdmixup_s:.1f}× slower "
        f"(max diff {pandas_diff:.1e})"
    )
    extrapolated = " (extrapolated)" if aum_pkg["extrapolated"] else ""
    print(
        f"aum package:                  {aum_pkg['total_s']:.1f} s{extrapolated} "
        f"→ {aum_pkg['total_s'] / tdmixup_s:.0f}× slower "
        f"than tdmixup total, {aum_pkg['total_s'] / aum_s:.0f}× than its AUM "
        f"(max diff {aum_diff:.1e})"
    )
    print(f"CPU seconds: {', '.join(f'{k} {v:.3f}' for k, v in CPU_SECONDS.items())}")
    print(
        f"append_epoch: {', '.join(f'{s:.2f}' for s in append_s)} s; "
        f"read_dynamics: {read_s:.3f} s ({file_mb:.1f} MB)"
    )
    print(f"→ {args.output}")


if __name__ == "__main__":
    main()
