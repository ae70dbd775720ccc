"""Do the data map's regions match human disagreement? ChaosNLI crowd-label entropy per region.

Trains with dynamics (``stage_full``) on the first ``--train-size`` SNLI training pairs plus the
1,514 ChaosNLI SNLI pairs (SNLI dev pairs with 100 crowd labels each, Nie et al. 2020), added as
extra training rows with ``sample_id = 10,000,000 + line`` and their original SNLI label
(``--chaos-label old_label``; or the crowd majority). Then ``stage_datamap`` splits all rows into
easy / ambiguous / hard, and for the ChaosNLI rows this reports:

* count, mean and median crowd entropy (bits, as published) per region and for rows in none;
* each region's share of the ChaosNLI rows next to its share of all rows;
* Spearman rank correlations of entropy with variability, confidence and AUM.

If the data map captures human ambiguity, the ambiguous region's entropy should be the highest
and variability should correlate positively with entropy. The data README asks not to train on
these pairs: the model here exists only for this check and is used for nothing else.

Full size (about 20 min on 2 quiet cores with MiniLM; ~10 min with --num-hidden-layers 3)::

    .venv/bin/python benchmarks/human_ambiguity.py

Smoke: ``--train-size 64 --dev-size 32 --test-size 32 --epochs 2 --model <tiny dir>
--out /tmp/x.json``.
Skips (exit 0, nothing written) when the SNLI or ChaosNLI files are not in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _session import add_run_options, data_missing, open_run, provenance, quiet_logging, snli_config  # noqa: E402

from tdmixup.core.runio import write_json  # noqa: E402
from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN, find_data_file  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "human_ambiguity.json"
CHAOS_SNLI = "chaosnli/chaosNLI_snli.jsonl"
ID_OFFSET = 10_000_000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(
        p,
        run_dir=Path("/tmp/tdmixup-bench/human_ambiguity"),
        results=RESULTS,
        train_size_help="SNLI pairs besides the ChaosNLI ones.",
    )
    p.add_argument("--chaos-label", choices=("old_label", "majority_label"), default="old_label")
    return p.parse_args()


def read_chaos_rows(path: Path, label_names: Any, label_field: str) -> Any:
    """The ChaosNLI pairs as a dataset, with the sample ids they get in a training set beside
    SNLI's (their own id + :data:`ID_OFFSET`)."""
    import datasets

    from tdmixup.data.readers import read_chaosnli

    datasets.disable_progress_bars()
    chaos = read_chaosnli(path, label_names=label_names, label_field=label_field)
    return chaos.map(lambda b: {"sample_id": [i + ID_OFFSET for i in b["sample_id"]]}, batched=True)


def add_chaos_rows(session: Any, path: Path, label_field: str) -> pd.Series:
    """Append the ChaosNLI pairs to the session's training data; return their entropy by
    sample id."""
    import datasets

    from tdmixup.data.collate import tokenize

    train = session.task.train
    chaos = read_chaos_rows(path, session.task.spec.label_names, label_field)
    entropy = pd.Series(
        np.asarray(chaos["entropy"], dtype=float),
        index=np.asarray(chaos["sample_id"]),
        name="entropy",
    )
    extra = chaos.select_columns(train.column_names).cast(train.features)
    combined = datasets.concatenate_datasets([train, extra])
    session.task = dataclasses.replace(
        session.task, train=combined
    )  # stage_datamap reads texts from it
    session.train = tokenize(
        combined,
        session.task.spec,
        session.tokenizer,
        max_length=session.config.data.max_seq_length,
    )
    return entropy


def spearman(a: pd.Series, b: pd.Series) -> dict[str, float | None]:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # Pearson correlation of average ranks = Spearman's rho
        return {"rho": float(a.rank().corr(b.rank())), "p_value": None}
    rho, p_value = spearmanr(a.to_numpy(), b.to_numpy())
    return {"rho": float(rho), "p_value": float(p_value)}


def entropy_by_region(
    stats: pd.DataFrame,
    regions: dict[str, np.ndarray],
    entropy: pd.Series,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], dict[str, dict[str, float | None]]]:
    """The ChaosNLI rows' crowd entropy per data-map region, and its Spearman correlations.

    Args:
        stats: the data map's statistics (``datamap/statistics.parquet``), indexed by sample id.
        regions: region name → sample ids (``read_regions``).
        entropy: crowd entropy (bits) by sample id of the ChaosNLI rows (:func:`add_chaos_rows`).

    Returns:
        ``(chaos rows with their statistics, entropy and region; per-region counts, shares and
        mean/median entropy, "none" = in no region; Spearman rho of variability, confidence and
        AUM with entropy)``.
    """
    region = pd.Series("none", index=stats.index, name="region")
    for name, ids in regions.items():
        region.loc[ids] = name
    chaos = stats.loc[entropy.index].assign(entropy=entropy, region=region.loc[entropy.index])
    per_region = {}
    for name in ("easy", "ambiguous", "hard", "none"):
        rows = chaos.loc[chaos["region"] == name, "entropy"]
        per_region[name] = {
            "chaosnli_rows": int(len(rows)),
            "mean_entropy": float(rows.mean()) if len(rows) else None,
            "median_entropy": float(rows.median()) if len(rows) else None,
            "share_of_chaosnli_rows": len(rows) / len(chaos),
            "share_of_all_rows": float((region == name).mean()),
        }
    correlations = {
        f"{col}_vs_entropy": spearman(chaos[col], chaos["entropy"])
        for col in ("variability", "confidence", "aum")
    }
    return chaos, per_region, correlations


def main() -> None:
    args = parse_args()
    if data_missing((SNLI_TRAIN, SNLI_TEST, CHAOS_SNLI)):
        return
    quiet_logging()
    from tdmixup.run.pipeline import read_regions, stage_datamap, stage_full

    load_before, start = os.getloadavg(), time.perf_counter()
    config = snli_config(args)
    session = open_run(
        config, args.run_dir, {"chaos_label": args.chaos_label, "id_offset": ID_OFFSET}, args.resume
    )
    entropy = add_chaos_rows(session, find_data_file(CHAOS_SNLI, download=False), args.chaos_label)
    seconds = {"setup": time.perf_counter() - start}
    t = time.perf_counter()
    full = stage_full(session)
    seconds["stage_full"] = time.perf_counter() - t
    t = time.perf_counter()
    stage_datamap(session)
    seconds["stage_datamap"] = time.perf_counter() - t

    stats = pd.read_parquet(session.layout.statistics)
    chaos, per_region, correlations = entropy_by_region(stats, read_regions(session), entropy)
    seconds["total"] = time.perf_counter() - start

    result = {
        "what": "ChaosNLI crowd-label entropy (bits) of the 1,514 ChaosNLI SNLI pairs, "
        "by data-map region",
        "rows": {
            "snli": int(len(stats) - len(chaos)),
            "chaosnli": int(len(chaos)),
            "chaos_label": args.chaos_label,
            "chaosnli_mean_entropy": float(chaos["entropy"].mean()),
        },
        "per_region": per_region,
        "spearman": correlations,
        "test_accuracy": {
            k: v["accuracy"] for k, v in full.get("metrics", {}).get("sets", {}).items()
        },
        "seconds": seconds,
        # stages finished before a resume show ~0 s here; stage_full_train_seconds stays true
        "resumed": args.resume,
        "stage_full_train_seconds": full["train_seconds"],
        **provenance(args, session, load_before),
    }
    write_json(args.out, result)
    print(
        f"{result['rows']['snli']:,} SNLI + {len(chaos):,} ChaosNLI training rows "
        f"({args.chaos_label}); "
        f"ChaosNLI mean entropy {chaos['entropy'].mean():.3f} bits"
    )
    print(
        f"{'region':<11}{'ChaosNLI rows':>14}{'share':>8}{'all rows':>11}"
        f"{'mean H':>8}{'median H':>10}"
    )
    for name, r in per_region.items():
        mean, median = (
            f"{r[k]:.3f}" if r[k] is not None else "-" for k in ("mean_entropy", "median_entropy")
        )
        print(
            f"{name:<11}{r['chaosnli_rows']:>14,}{r['share_of_chaosnli_rows']:>8.1%}{r['share_of_all_rows']:>11.1%}"
            f"{mean:>8}{median:>10}"
        )
    print(
        "Spearman with entropy: "
        + ", ".join(f"{k.split('_')[0]} {v['rho']:+.3f}" for k, v in correlations.items())
    )
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
