"""Label-noise recovery on real SNLI: AUM flags and the hard-to-learn region against injected flips.

Flips ``--noise-rate`` (10 %) of the labels of the first ``--train-size`` SNLI training pairs
(:func:`tdmixup.dynamics.noise.inject_label_noise`, symmetric, seeded; dev and test stay clean),
then runs the pipeline's own pieces on the noisy set: ``stage_full`` (training with dynamics),
``stage_datamap`` (regions) and ``run_aum`` on every training sample (two threshold-sample
passes). Precision / recall / F1 (:func:`tdmixup.dynamics.noise.flag_metrics`) against the flips,
for:

* AUM flags at the configured k (``--aum-percentile``) and at ``--extra-percentiles``,
  recomputed with :func:`find_mislabeled_with_aum` from the same two passes' dynamics tables;
* the three data-map regions (hard-to-learn is the one meant to catch mislabelled samples);
* references that know the noise rate: the ``round(rate · N)`` samples of lowest stage-1
  confidence, of lowest stage-1 AUM (no threshold samples) and of lowest threshold-run AUM;
* with ``--cleanlab`` (needs the ``cleanlab`` package): ``cleanlab.filter.find_label_issues``
  on K-fold cross-validated probabilities (one model per fold, trained on the other folds).

Full size (about 40 min on 2 quiet cores with MiniLM; ~20 min with --num-hidden-layers 3;
--cleanlab adds ~13 / ~7 min)::

    .venv/bin/python benchmarks/label_noise.py --cleanlab

Smoke: ``--train-size 64 --dev-size 32 --test-size 32 --epochs 2 --model <tiny dir>
--out /tmp/x.json``.
Skips (exit 0, nothing written) when the SNLI files are not in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tdmixup.core.config as tc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _session import (  # noqa: E402
    add_run_options,
    aum_tables,
    cross_validated_logits,
    data_missing,
    open_run,
    provenance,
    quiet_logging,
    snli_config,
)

from tdmixup.core.layout import DONE  # noqa: E402
from tdmixup.core.runio import read_json, write_json  # noqa: E402
from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "label_noise.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(p, run_dir=Path("/tmp/tdmixup-bench/label_noise"), results=RESULTS)
    p.add_argument("--noise-rate", type=float, default=0.1)
    p.add_argument("--noise-kind", choices=("symmetric", "flip"), default="symmetric")
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--aum-epochs", type=int, default=None, help="Default: --epochs.")
    p.add_argument("--aum-percentile", type=float, default=80.0)
    p.add_argument("--extra-percentiles", type=float, nargs="*", default=[99.0, 50.0])
    p.add_argument(
        "--cleanlab", action="store_true", help="Also score cleanlab's find_label_issues."
    )
    p.add_argument("--folds", type=int, default=2, help="Cross-validation folds for --cleanlab.")
    return p.parse_args()


def cleanlab_flags(session: Any, out_dir: Path, folds: int, seed: int) -> np.ndarray:
    """``find_label_issues`` on K-fold out-of-sample probabilities of models trained like
    stage 1."""
    from cleanlab.filter import find_label_issues
    from scipy.special import softmax

    logits = cross_validated_logits(session, out_dir, folds, seed)
    return np.asarray(
        find_label_issues(labels=session.train.labels, pred_probs=softmax(logits, axis=1)),
        dtype=bool,
    )


def main() -> None:
    args = parse_args()
    if data_missing((SNLI_TRAIN, SNLI_TEST)):
        return
    quiet_logging()
    from tdmixup.dynamics.noise import flag_metrics, inject_label_noise
    from tdmixup.run.pipeline import read_regions, stage_datamap, stage_full

    load_before, start = os.getloadavg(), time.perf_counter()
    config = snli_config(
        args, aum=tc.AUMConfig(percentile=args.aum_percentile, epochs=args.aum_epochs)
    )
    settings = {
        "noise_rate": args.noise_rate,
        "noise_kind": args.noise_kind,
        "noise_seed": args.noise_seed,
        "folds": args.folds,
    }
    session = open_run(config, args.run_dir, settings, args.resume)
    num_labels, clean = session.task.spec.num_labels, session.train.labels
    noisy, flipped = inject_label_noise(
        clean, num_labels, rate=args.noise_rate, seed=args.noise_seed, kind=args.noise_kind
    )
    session.train = session.train.with_labels(noisy)  # dev / tests keep their clean labels
    ids, n_flip = session.train.sample_ids, int(flipped.sum())
    seconds: dict[str, float] = {"setup": time.perf_counter() - start}

    def timed(name: str, fn: Any, *a: Any) -> Any:
        t = time.perf_counter()
        out = fn(*a)
        seconds[name] = time.perf_counter() - t
        return out

    from tdmixup.run.aum_training import run_aum

    full = timed("stage_full", stage_full, session)
    timed("stage_datamap", stage_datamap, session)
    layout = session.layout
    timed("aum", run_aum, session, layout.aum_dir("all"), ids)
    percentiles = [
        args.aum_percentile,
        *[k for k in args.extra_percentiles if k != args.aum_percentile],
    ]
    tables = timed("aum_recompute", aum_tables, session, layout.aum_dir("all"), percentiles)
    stored = pd.read_parquet(layout.aum_table("all"))
    recomputed_ok = bool(
        np.array_equal(
            stored["flagged"].to_numpy(), tables[args.aum_percentile]["flagged"].to_numpy()
        )
    )

    def members(flagged_ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, flagged_ids)

    def lowest(values: pd.Series) -> np.ndarray:
        return members(values.sort_values(kind="stable").index[:n_flip].to_numpy())

    stats = pd.read_parquet(layout.statistics)
    aum_run = tables[args.aum_percentile].set_index("sample_id")["aum"]
    masks = {
        f"aum_k{k:g}": members(t.loc[t["flagged"], "sample_id"].to_numpy())
        for k, t in tables.items()
    }
    masks |= {f"region_{name}": members(region) for name, region in read_regions(session).items()}
    masks |= {
        "lowest_stage1_confidence": lowest(stats["confidence"]),
        "lowest_stage1_aum": lowest(stats["aum"]),
        "lowest_threshold_run_aum": lowest(aum_run),
    }
    if args.cleanlab:
        try:
            import cleanlab  # noqa: F401
        except ImportError:
            print("--cleanlab: the cleanlab package is not installed; skipping it")
        else:
            masks["cleanlab_find_label_issues"] = timed(
                "cleanlab",
                cleanlab_flags,
                session,
                args.run_dir / "cleanlab",
                args.folds,
                args.seed,
            )
    scores = {name: flag_metrics(mask, flipped) for name, mask in masks.items()}
    seconds["total"] = time.perf_counter() - start

    result = {
        "what": "precision / recall / F1 of flagged samples against injected label flips "
        "(fractions)",
        "noise": {
            **settings,
            "train_size": len(ids),
            "flipped": n_flip,
            "flips_per_true_class": np.bincount(clean[flipped], minlength=num_labels).tolist(),
        },
        "scores": scores,
        "aum_recomputed_at_default_k_matches_stored_table": recomputed_ok,
        "test_accuracy_after_noisy_training": {
            k: v["accuracy"] for k, v in full.get("metrics", {}).get("sets", {}).items()
        },
        "seconds": seconds,
        # stages finished before a resume show ~0 s here; stage_train_seconds stay true
        "resumed": args.resume,
        "stage_train_seconds": {
            "stage_full": full["train_seconds"],
            "aum": read_json(layout.aum_summary("all"))["train_seconds"],
            "cleanlab_folds": [
                read_json(d / DONE)["train_seconds"]
                for d in sorted((args.run_dir / "cleanlab").glob("fold*/"))
            ],
        },
        **provenance(args, session, load_before),
    }
    write_json(args.out, result)
    print(
        f"{len(ids):,} SNLI pairs, {n_flip:,} labels flipped "
        f"({args.noise_kind}, seed {args.noise_seed}); "
        f"AUM recomputation matches run_aum's table: {recomputed_ok}"
    )
    print(f"{'flags':<28}{'flagged':>9}{'precision':>11}{'recall':>8}{'F1':>7}")
    for name, s in scores.items():
        print(
            f"{name:<28}{s['n_flagged']:>9,}{s['precision']:>11.3f}{s['recall']:>8.3f}{s['f1']:>7.3f}"
        )
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
