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

Smoke: ``--train-size 64 --dev-size 32 --test-size 32 --epochs 2 --model <tiny dir> --out /tmp/x.json``.
Skips (exit 0, nothing written) when the SNLI or ChaosNLI files are not in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tdmixup.config as tc
from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN, find_data_file
from tdmixup.runio import environment_info, read_json, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "human_ambiguity.json"
CHAOS_SNLI = "chaosnli/chaosNLI_snli.jsonl"
ID_OFFSET = 10_000_000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=10_000, help="SNLI pairs besides the ChaosNLI ones.")
    p.add_argument("--dev-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--chaos-label", choices=("old_label", "majority_label"), default="old_label")
    p.add_argument("--model", default=tc.DEFAULT_MODEL)
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dynamics-mode", choices=("epoch_end", "train_pass"), default="epoch_end")
    p.add_argument("--fraction", type=float, default=0.33)
    p.add_argument("--run-dir", type=Path, default=Path("/tmp/tdmixup-bench/human_ambiguity"))
    p.add_argument("--resume", action="store_true", help="Reuse finished stages of --run-dir (same settings).")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args()


def open_run(config: tc.RunConfig, run_dir: Path, settings: dict[str, Any], resume: bool) -> Any:
    """A session on a fresh run folder, or (``resume``) on one made with the same settings."""
    from tdmixup.pipeline import open_session

    marker = run_dir / "benchmark_settings.json"
    if resume and (run_dir / "config.json").exists() and (not marker.exists() or read_json(marker) != settings):
        sys.exit(f"{run_dir} was made with other benchmark settings; run without --resume to start afresh")
    session = open_session(config, run_dir, overwrite=not resume)
    write_json(marker, settings)
    return session


def add_chaos_rows(session: Any, path: Path, label_field: str) -> pd.Series:
    """Append the ChaosNLI pairs to the session's training data; return their entropy by sample id."""
    import datasets

    from tdmixup.data.collate import tokenize
    from tdmixup.data.readers import read_chaosnli

    datasets.disable_progress_bars()
    train = session.task.train
    chaos = read_chaosnli(path, label_names=session.task.spec.label_names, label_field=label_field)
    chaos = chaos.map(lambda b: {"sample_id": [i + ID_OFFSET for i in b["sample_id"]]}, batched=True)
    entropy = pd.Series(np.asarray(chaos["entropy"], dtype=float), index=np.asarray(chaos["sample_id"]), name="entropy")
    extra = chaos.select_columns(train.column_names).cast(train.features)
    combined = datasets.concatenate_datasets([train, extra])
    session.task = dataclasses.replace(session.task, train=combined)  # stage_datamap reads texts from it
    session.train = tokenize(combined, session.task.spec, session.tokenizer, max_length=session.config.data.max_seq_length)
    return entropy


def spearman(a: pd.Series, b: pd.Series) -> dict[str, float | None]:
    try:
        from scipy.stats import spearmanr
    except ImportError:  # Pearson correlation of average ranks = Spearman's rho
        return {"rho": float(a.rank().corr(b.rank())), "p_value": None}
    rho, p_value = spearmanr(a.to_numpy(), b.to_numpy())
    return {"rho": float(rho), "p_value": float(p_value)}


def main() -> None:
    args = parse_args()
    missing = [name for name in (SNLI_TRAIN, SNLI_TEST, CHAOS_SNLI) if find_data_file(name, download=False) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not found in ../shared/data (or $TDMIXUP_DATA_DIR); nothing written")
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tdmixup").setLevel(logging.INFO)
    import transformers

    transformers.logging.set_verbosity_error()
    from tdmixup.pipeline import read_regions, stage_datamap, stage_full

    load_before, start = os.getloadavg(), time.perf_counter()
    config = tc.RunConfig(
        data=tc.DataConfig(task="snli", train_size=args.train_size, dev_size=args.dev_size, test_size=args.test_size),
        model=tc.ModelConfig(name_or_path=args.model, num_hidden_layers=args.num_hidden_layers),
        train=tc.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                             seed=args.seed),
        dynamics=tc.DynamicsConfig(mode=args.dynamics_mode, fraction=args.fraction),
    )
    session = open_run(config, args.run_dir, {"chaos_label": args.chaos_label, "id_offset": ID_OFFSET}, args.resume)
    entropy = add_chaos_rows(session, find_data_file(CHAOS_SNLI, download=False), args.chaos_label)
    seconds = {"setup": time.perf_counter() - start}
    t = time.perf_counter()
    full = stage_full(session)
    seconds["stage_full"] = time.perf_counter() - t
    t = time.perf_counter()
    stage_datamap(session)
    seconds["stage_datamap"] = time.perf_counter() - t

    stats = pd.read_parquet(args.run_dir / "datamap" / "statistics.parquet")
    region = pd.Series("none", index=stats.index, name="region")
    for name, ids in read_regions(session).items():
        region.loc[ids] = name
    chaos = stats.loc[entropy.index].assign(entropy=entropy, region=region.loc[entropy.index])
    per_region = {}
    for name in ("easy", "ambiguous", "hard", "none"):
        rows = chaos.loc[chaos["region"] == name, "entropy"]
        per_region[name] = {"chaosnli_rows": int(len(rows)), "mean_entropy": float(rows.mean()) if len(rows) else None,
                            "median_entropy": float(rows.median()) if len(rows) else None,
                            "share_of_chaosnli_rows": len(rows) / len(chaos),
                            "share_of_all_rows": float((region == name).mean())}
    correlations = {f"{col}_vs_entropy": spearman(chaos[col], chaos["entropy"])
                    for col in ("variability", "confidence", "aum")}
    seconds["total"] = time.perf_counter() - start

    result = {
        "what": "ChaosNLI crowd-label entropy (bits) of the 1,514 ChaosNLI SNLI pairs, by data-map region",
        "rows": {"snli": int(len(stats) - len(chaos)), "chaosnli": int(len(chaos)), "chaos_label": args.chaos_label,
                 "chaosnli_mean_entropy": float(chaos["entropy"].mean())},
        "per_region": per_region,
        "spearman": correlations,
        "test_accuracy": {k: v["accuracy"] for k, v in full.get("metrics", {}).get("sets", {}).items()},
        "seconds": seconds,
        "resumed": args.resume,  # stages finished before a resume show ~0 s here; stage_full_train_seconds stays true
        "stage_full_train_seconds": full["train_seconds"],
        "config": tc.to_json_dict(config),
        "run_dir": str(args.run_dir),
        "command": shlex.join([sys.executable, *sys.argv]),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "machine": environment_info(world_size=session.accelerator.num_processes),
    }
    write_json(args.out, result)
    print(f"{result['rows']['snli']:,} SNLI + {len(chaos):,} ChaosNLI training rows ({args.chaos_label}); "
          f"ChaosNLI mean entropy {chaos['entropy'].mean():.3f} bits")
    print(f"{'region':<11}{'ChaosNLI rows':>14}{'share':>8}{'all rows':>11}{'mean H':>8}{'median H':>10}")
    for name, r in per_region.items():
        mean, median = (f"{r[k]:.3f}" if r[k] is not None else "-" for k in ("mean_entropy", "median_entropy"))
        print(f"{name:<11}{r['chaosnli_rows']:>14,}{r['share_of_chaosnli_rows']:>8.1%}{r['share_of_all_rows']:>11.1%}"
              f"{mean:>8}{median:>10}")
    print("Spearman with entropy: " + ", ".join(f"{k.split('_')[0]} {v['rho']:+.3f}" for k, v in correlations.items()))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
