"""The data map's quality within each gold class: ChaosNLI crowd entropy per region and class.

The quality runs (``*_datamap_quality_*.json``) report mean crowd entropy per data-map region over
all ChaosNLI SNLI rows. The regions are class-stratified over the whole training set, but the
ChaosNLI rows inside a region are not (at 5,000 pairs about half of the easy region's ChaosNLI
rows are neutral), and humans disagree more on some classes than others, so a region's mean could
be a class-mix effect. This reads the quality runs' folders (``<run-dir>/<size>/seed_<s>_chaosnli/
datamap/regions/*.txt``, outside git) and reports, per size and seed, the mean entropy per
(class, region), the rows behind each, and the class-balanced mean per region (each class's mean
weighted equally). Seconds, no model::

    python benchmarks/scaling/entropy_by_class.py --run-dir runs/scaling

Run folders do not survive a fresh machine, so the output is merged: a run found under
``--run-dir`` is (re)computed, a run already in ``--out`` whose folder is gone is kept as it was,
with the folder it was computed from (``source_run_dir``); ``--fresh`` drops those.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # human_ambiguity

from human_ambiguity import CHAOS_SNLI, read_chaos_rows  # noqa: E402

from tdmixup.core.runio import read_json, write_json  # noqa: E402
from tdmixup.data.readers import NLI_LABELS as LABELS  # noqa: E402
from tdmixup.data.sources import find_data_file  # noqa: E402
from tdmixup.dynamics.datamap import read_region_file  # noqa: E402

REGIONS = ("easy", "ambiguous", "hard")


def crowd_entropy(label_field: str = "old_label") -> pd.DataFrame:
    """The ChaosNLI SNLI rows by the sample id the quality runs gave them: entropy (bits) and gold
    class index (the original SNLI label, as the quality runs trained on)."""
    path = find_data_file(CHAOS_SNLI, download=False)
    if path is None:
        raise FileNotFoundError(f"{CHAOS_SNLI} not found in ../shared/data")
    chaos = read_chaos_rows(path, list(LABELS), label_field)
    return pd.DataFrame(
        {"entropy": np.asarray(chaos["entropy"], float), "label": np.asarray(chaos["label"])},
        index=np.asarray(chaos["sample_id"]),
    )


def by_class(chaos: pd.DataFrame, regions_dir: Path) -> dict[str, Any]:
    """Mean entropy and row count per (class, region) of one quality run, and the class-balanced
    mean per region."""
    region = pd.Series("none", index=chaos.index)
    for g in REGIONS:
        ids = read_region_file(regions_dir / f"{g}.txt")
        region.loc[np.intersect1d(ids, chaos.index)] = g
    df = chaos.assign(region=region)
    df = df[df["region"] != "none"]
    grouped = df.groupby(["label", "region"])["entropy"]
    mean, count = grouped.mean(), grouped.count()
    out: dict[str, Any] = {"mean_entropy": {}, "rows": {}}
    for i, name in enumerate(LABELS):
        out["mean_entropy"][name] = {g: float(mean.get((i, g), np.nan)) for g in REGIONS}
        out["rows"][name] = {g: int(count.get((i, g), 0)) for g in REGIONS}
    out["class_balanced_mean"] = {
        g: float(np.nanmean([out["mean_entropy"][c][g] for c in LABELS])) for g in REGIONS
    }
    return out


def run_key(key: str) -> tuple[int, int]:
    """Sort key of a ``<size>_seed<seed>`` run name: by size, then seed (not as strings)."""
    size, seed = key.split("_seed")
    return int(size), int(seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=HERE.parents[1] / "runs" / "scaling")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "entropy_by_class.json")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="drop runs of an earlier --out whose folders are not under --run-dir",
    )
    args = parser.parse_args()
    chaos = crowd_entropy()
    runs: dict[str, Any] = {}
    if args.out.exists() and not args.fresh:
        earlier = read_json(args.out)
        for key, r in earlier.get("runs", {}).items():
            runs[key] = {**r, "source_run_dir": r.get("source_run_dir", earlier.get("run_dir"))}
    found = 0
    for regions_dir in sorted(args.run_dir.glob("*/seed_*_chaosnli/datamap/regions")):
        size, seed = regions_dir.parts[-4], regions_dir.parts[-3].split("_")[1]
        r = by_class(chaos, regions_dir)
        runs[f"{size}_seed{seed}"] = {**r, "source_run_dir": str(args.run_dir)}
        found += 1
    if not found:
        sys.exit(f"no quality runs under {args.run_dir} (*/seed_*_chaosnli/datamap/regions)")
    for key in sorted(runs, key=run_key):
        r = runs[key]
        kept = (
            ""
            if r["source_run_dir"] == str(args.run_dir)
            else f"  (kept from {r['source_run_dir']})"
        )
        balanced = " / ".join(f"{r['class_balanced_mean'][g]:.3f}" for g in REGIONS)
        size, seed = run_key(key)
        print(
            f"{size} seed {seed}: class-balanced mean entropy "
            f"easy / ambiguous / hard {balanced}{kept}"
        )
        for c in LABELS:
            cells = "  ".join(
                f"{g} {r['mean_entropy'][c][g]:.3f} (n={r['rows'][c][g]})" for g in REGIONS
            )
            print(f"    {c:13s} {cells}")
    result: dict[str, Any] = {
        "what": "ChaosNLI SNLI rows' crowd entropy (bits) per gold class and data-map region, "
        "from the scaling study's quality runs",
        "run_dir": str(args.run_dir),
        "runs": {key: runs[key] for key in sorted(runs, key=run_key)},
    }
    write_json(args.out, result)
    print(f"wrote {args.out}: {found} run(s) from {args.run_dir}, {len(runs) - found} kept")


if __name__ == "__main__":
    main()
