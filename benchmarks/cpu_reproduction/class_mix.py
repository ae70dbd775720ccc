"""Per-seed class mix of the selected sets of a CPU-reproduction run (issue 9's evidence).

Reads ``<run>/seed_<s>/datamap/done.json`` and ``<run>/seed_<s>/aum_<region>/summary.json`` (written
by ``tdmixup experiment``) and writes a Markdown table and ``class_mix.json``: per seed, the samples
per class of the easy / ambiguous / hard regions and of the AUM kept and flagged easy sets, with the
AUM threshold. Nothing is trained.

    python benchmarks/cpu_reproduction/class_mix.py runs/cpu_reproduction/snli \
        --out benchmarks/cpu_reproduction/results/snli/class_mix.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tdmixup.core.layout import DONE, ExperimentLayout, RunLayout
from tdmixup.core.runio import atomic_write_text, write_json


def _counts(counts: dict[str, int] | None) -> str:
    return " / ".join(str(v) for v in counts.values()) if counts else "–"


def collect(run: Path) -> dict[str, Any]:
    """``{seed: {"regions": {...}, "aum_easy": {...}}}`` from the run folders that exist."""
    out: dict[str, Any] = {}
    for seed, seed_dir in ExperimentLayout(run).seed_dirs().items():
        entry: dict[str, Any] = {}
        layout = RunLayout(seed_dir)
        datamap = layout.datamap / DONE
        if datamap.exists():
            done = json.loads(datamap.read_text())
            entry["stratify_regions"] = done.get("stratify_regions")
            entry["regions"] = done.get("class_counts", {})
        aum = layout.aum_summary("easy")
        if aum.exists():
            summary = json.loads(aum.read_text())
            entry["aum_easy"] = {
                "counts": summary.get("class_counts", {}),
                "n_kept": summary.get("n_kept"),
                "n_flagged": summary.get("n_flagged"),
                "threshold": summary.get("threshold"),
                "threshold_balance": summary.get("threshold_balance"),
            }
        if entry:
            out[str(seed)] = entry
    return out


def markdown(mix: dict[str, Any]) -> str:
    names = next(
        (list(e["regions"].get("train", {})) for e in mix.values() if e.get("regions")), []
    )
    lines = [
        f"Samples per class ({' / '.join(names)}); "
        "AUM on the easy region, k = the task's percentile.",
        "",
        "| seed | easy | ambiguous | hard | AUM kept (easy) | AUM flagged (easy) |",
        "|---|---|---|---|---|---|",
    ]
    for seed, e in mix.items():
        regions, aum = e.get("regions", {}), e.get("aum_easy", {}).get("counts", {})
        lines.append(
            f"| {seed} | {_counts(regions.get('easy'))} | {_counts(regions.get('ambiguous'))} | "
            f"{_counts(regions.get('hard'))} | {_counts(aum.get('kept'))} | "
            f"{_counts(aum.get('flagged'))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="The experiment output folder (holds seed_<s>/).")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Write the JSON here (and the table beside it as .md).",
    )
    args = p.parse_args()
    mix = collect(args.run)
    table = markdown(mix)
    print(table)
    if args.out:
        write_json(args.out, mix)
        atomic_write_text(args.out.with_suffix(".md"), table)


if __name__ == "__main__":
    main()
