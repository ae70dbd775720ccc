"""Real Dataset Cartography logs through tdmixup: read, statistics, regions, plots, export, re-read.

Input: the TREC training-dynamics logs that Dataset Cartography's code wrote for BERT
(``../shared/data/cartography_dynamics/TREC_dynamics_epoch_{0,1,2}.jsonl``: 4,894 samples,
3 epochs, 6 classes, logged during the training pass). Steps, each timed:

1. :func:`tdmixup.dynamics.table.read_cartography` on the three files;
2. :func:`compute_statistics` and :func:`assign_regions` (disjoint, fraction 0.33, and
   Cartography's own selection: independent sorts of ``int(0.3319 · N) + 1`` rows);
3. the PNG and HTML data maps (written to ``--plots-dir``, not committed);
4. :func:`export_cartography` back to Cartography's format, re-read, and compare ids, gold
   labels and logits (exact, float32) and the statistics computed from the re-read logs;
5. the same round trip through tdmixup's Parquet table (``append_epoch`` / ``read_dynamics``).

Run: ``.venv/bin/python benchmarks/cartography_logs.py`` (about 10 s; writes
``benchmarks/results/cartography_logs.json``). Skips (exit 0, nothing written) without the data.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tdmixup.core.runio import environment_info, write_json
from tdmixup.data.sources import find_data_file
from tdmixup.dynamics.datamap import REGIONS, assign_regions
from tdmixup.dynamics.datamap_plots import plot_datamap_html, plot_datamap_png
from tdmixup.dynamics.table import (
    TrainingDynamics,
    append_epoch,
    compute_statistics,
    export_cartography,
    read_cartography,
    read_dynamics,
)

RESULTS = Path(__file__).resolve().parent / "results" / "cartography_logs.json"
FIRST_LOG = "cartography_dynamics/TREC_dynamics_epoch_0.jsonl"
SECONDS: dict[str, float] = {}


def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    SECONDS[name] = time.perf_counter() - start
    return result


def same_dynamics(a: TrainingDynamics, b: TrainingDynamics) -> dict[str, Any]:
    """Exact comparison of two dynamics (ids, gold, float32 logits) and of their statistics."""
    stats_a, stats_b = compute_statistics(a), compute_statistics(b)
    cols = ["confidence", "variability", "correctness", "forgetting_events", "aum"]
    return {
        "sample_ids_equal": bool(np.array_equal(a.sample_ids, b.sample_ids)),
        "gold_equal": bool(np.array_equal(a.gold, b.gold)),
        "logits_equal": bool(np.array_equal(a.logits, b.logits)),
        "logits_max_abs_diff": float(np.abs(a.logits.astype(np.float64) - b.logits).max()),
        "statistics_max_abs_diff": float(
            np.abs(stats_a[cols].to_numpy(float) - stats_b[cols].to_numpy(float)).max()
        ),
    }


def region_summary(stats: Any, regions: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {}
    for name in REGIONS:
        rows = stats.loc[regions[name]]
        out[name] = {
            "n": int(len(rows)),
            "mean_confidence": float(rows["confidence"].mean()),
            "mean_variability": float(rows["variability"].mean()),
            "mean_correctness": float(rows["correctness"].mean()),
        }
    out["easy_ambiguous_shared"] = int(np.intersect1d(regions["easy"], regions["ambiguous"]).size)
    out["hard_ambiguous_shared"] = int(np.intersect1d(regions["hard"], regions["ambiguous"]).size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Folder of the TREC_*.jsonl logs (default: ../shared/data).",
    )
    parser.add_argument("--prefix", default="TREC_")
    parser.add_argument("--fraction", type=float, default=0.33)
    parser.add_argument(
        "--plots-dir", type=Path, default=Path(tempfile.gettempdir()) / "tdmixup-cartography-logs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    folder = args.data_dir
    if folder is None:
        first = find_data_file(FIRST_LOG, download=False)
        if first is None:
            print(
                f"skipped: {FIRST_LOG} not found in ../shared/data "
                "(or $TDMIXUP_DATA_DIR); nothing written"
            )
            return
        folder = first.parent
    load_before, start = os.getloadavg(), time.perf_counter()

    dyn = timed("read_cartography", read_cartography, folder, prefix=args.prefix, task="trec")
    stats = timed("compute_statistics", compute_statistics, dyn)
    regions = timed("assign_regions", assign_regions, stats, fraction=args.fraction)
    cartography_count = int(0.3319 * len(stats)) + 1
    overlap = timed(
        "assign_regions_overlap", assign_regions, stats, count=cartography_count, allow_overlap=True
    )
    timed(
        "plot_png",
        plot_datamap_png,
        stats,
        args.plots_dir / "trec_datamap.png",
        title="TREC (Cartography logs)",
        regions=regions,
    )
    timed(
        "plot_html",
        plot_datamap_html,
        stats,
        args.plots_dir / "trec_datamap.html",
        title="TREC (Cartography logs)",
        regions=regions,
    )  # gold shown as class indices: the logs do not name the classes

    with tempfile.TemporaryDirectory() as tmp:
        exported = timed(
            "export_cartography", export_cartography, dyn, Path(tmp) / "jsonl", prefix=args.prefix
        )
        reread = timed(
            "reread_cartography", read_cartography, Path(tmp) / "jsonl", prefix=args.prefix
        )
        jsonl_check = same_dynamics(dyn, reread)
        table = Path(tmp) / "dynamics.parquet"
        start_parquet = time.perf_counter()
        for e in range(len(dyn.epochs)):
            append_epoch(
                table,
                epoch=int(dyn.epochs[e]),
                sample_ids=dyn.sample_ids,
                gold=dyn.gold,
                logits=dyn.logits[e],
                mode=dyn.mode,
                task=dyn.task,
            )
        SECONDS["append_epoch_all"] = time.perf_counter() - start_parquet
        parquet_check = same_dynamics(dyn, timed("read_dynamics", read_dynamics, table))
        export_mb = sum(p.stat().st_size for p in exported) / 1e6

    original_mb = (
        sum(p.stat().st_size for p in folder.glob(f"{args.prefix}dynamics_epoch_*.jsonl")) / 1e6
    )
    hits = dyn.logits.argmax(axis=2) == dyn.gold[None, :]
    result = {
        "input": {
            "folder": str(folder),
            "prefix": args.prefix,
            "samples": int(len(dyn.sample_ids)),
            "epochs": dyn.epochs.tolist(),
            "classes": dyn.num_classes,
            "mode": dyn.mode,
            "jsonl_mb": round(original_mb, 3),
            "gold_counts": np.bincount(dyn.gold, minlength=dyn.num_classes).tolist(),
        },
        "training_accuracy_per_epoch": hits.mean(axis=1).tolist(),
        "statistics": {
            "never_learnt": int((stats["correctness"] == 0).sum()),
            "always_learnt": int((stats["correctness"] == 1).sum()),
            "with_forgetting_events": int((stats["forgetting_events"] > 0).sum()),
            "mean_confidence": float(stats["confidence"].mean()),
            "mean_variability": float(stats["variability"].mean()),
        },
        "regions_disjoint": {"fraction": args.fraction, **region_summary(stats, regions)},
        "regions_cartography_selection": {
            "count": cartography_count,
            **region_summary(stats, overlap),
        },
        "round_trip_cartography_jsonl": {**jsonl_check, "exported_mb": round(export_mb, 3)},
        "round_trip_parquet": parquet_check,
        "plots": [
            str(args.plots_dir / "trec_datamap.png"),
            str(args.plots_dir / "trec_datamap.html"),
        ],
        "seconds": {**SECONDS, "total": time.perf_counter() - start},
        "command": shlex.join([sys.executable, *sys.argv]),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "machine": environment_info(world_size=1),
    }
    write_json(args.out, result)
    print(
        f"read {len(dyn.sample_ids):,} samples × {len(dyn.epochs)} epochs × "
        f"{dyn.num_classes} classes in {SECONDS['read_cartography']:.2f} s; "
        f"statistics {SECONDS['compute_statistics'] * 1e3:.1f} ms, "
        f"regions {SECONDS['assign_regions'] * 1e3:.1f} ms"
    )
    print(
        f"regions (disjoint, {args.fraction}): "
        + ", ".join(f"{k} {len(v)}" for k, v in regions.items())
        + f"; Cartography's selection ({cartography_count} each) shares "
        f"{result['regions_cartography_selection']['easy_ambiguous_shared']} easy/ambiguous samples"
    )
    disjoint, carto = (
        result["regions_disjoint"]["hard"],
        result["regions_cartography_selection"]["hard"],
    )
    print(
        "hard region mean confidence / correctness: "
        f"disjoint {disjoint['mean_confidence']:.3f} / {disjoint['mean_correctness']:.3f}; "
        f"Cartography's selection {carto['mean_confidence']:.3f} / "
        f"{carto['mean_correctness']:.3f} (shares "
        f"{result['regions_cartography_selection']['hard_ambiguous_shared']} "
        "with ambiguous)"
    )
    print(
        f"plots: png {SECONDS['plot_png']:.2f} s, html {SECONDS['plot_html']:.2f} s "
        f"→ {args.plots_dir}"
    )
    for name, check in (("Cartography jsonl", jsonl_check), ("Parquet", parquet_check)):
        same = check["sample_ids_equal"] and check["gold_equal"] and check["logits_equal"]
        print(
            f"round trip via {name}: {'identical' if same else 'DIFFERENT'} "
            f"(max logit diff {check['logits_max_abs_diff']:.1e}, "
            f"statistics {check['statistics_max_abs_diff']:.1e})"
        )
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
