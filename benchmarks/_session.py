"""Setup shared by the benchmarks that run the pipeline's stages on real SNLI
(``human_ambiguity.py``, ``label_noise.py``, ``label_detection.py``): common options, the data
check, quiet logging, the run configuration, a resumable run folder, AUM tables at several k
from one pair of threshold passes, and K-fold out-of-sample logits (for cleanlab).

The benchmarks run as scripts (``python benchmarks/x.py``), so ``benchmarks/`` is on
``sys.path`` and they import this module as ``_session``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tdmixup.core.config as tc
from tdmixup.core.layout import AUM_PASS_PREFIX, CHECKPOINT, DYNAMICS, RunLayout
from tdmixup.core.runio import read_json, write_json
from tdmixup.data.sources import find_data_file


def add_run_options(
    p: argparse.ArgumentParser,
    *,
    run_dir: Path,
    results: Path,
    train_size_help: str = "SNLI training pairs.",
) -> None:
    """The options every SNLI pipeline benchmark takes: sizes, model, loop, data map, folders."""
    p.add_argument("--train-size", type=int, default=10_000, help=train_size_help)
    p.add_argument("--dev-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=1000, help="Rows of each test set.")
    p.add_argument("--model", default=tc.DEFAULT_MODEL)
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dynamics-mode", choices=("epoch_end", "train_pass"), default="epoch_end")
    p.add_argument("--fraction", type=float, default=0.33)
    p.add_argument("--run-dir", type=Path, default=run_dir)
    p.add_argument(
        "--resume", action="store_true", help="Reuse finished stages of --run-dir (same settings)."
    )
    p.add_argument("--out", type=Path, default=results)


def data_missing(names: tuple[str, ...]) -> bool:
    """Print a skip message and return True when any of the data files is absent."""
    missing = [name for name in names if find_data_file(name, download=False) is None]
    if missing:
        print(
            f"skipped: {', '.join(missing)} not found in ../shared/data "
            "(or $TDMIXUP_DATA_DIR); nothing written"
        )
    return bool(missing)


def quiet_logging() -> None:
    """tdmixup's progress at INFO, everything else (transformers included) at WARNING or less."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tdmixup").setLevel(logging.INFO)
    import transformers

    transformers.logging.set_verbosity_error()


def snli_config(args: argparse.Namespace, **sections: Any) -> tc.RunConfig:
    """The run configuration from :func:`add_run_options`' options (plus e.g.
    ``aum=AUMConfig(...)``)."""
    return tc.RunConfig(
        data=tc.DataConfig(
            task="snli",
            train_size=args.train_size,
            dev_size=args.dev_size,
            test_size=args.test_size,
        ),
        model=tc.ModelConfig(name_or_path=args.model, num_hidden_layers=args.num_hidden_layers),
        train=tc.TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
        ),
        dynamics=tc.DynamicsConfig(mode=args.dynamics_mode, fraction=args.fraction),
        **sections,
    )


def open_run(config: tc.RunConfig, run_dir: Path, settings: dict[str, Any], resume: bool) -> Any:
    """A session on a fresh run folder, or (``resume``) on one made with the same settings."""
    from tdmixup.run.pipeline import open_session

    marker = run_dir / "benchmark_settings.json"
    made = RunLayout(run_dir).config.exists()
    if resume and made and (not marker.exists() or read_json(marker) != settings):
        sys.exit(
            f"{run_dir} was made with other benchmark settings; "
            "run without --resume to start afresh"
        )
    session = open_session(config, run_dir, overwrite=not resume)
    write_json(marker, settings)
    return session


def provenance(
    args: argparse.Namespace, session: Any, load_before: tuple[float, ...]
) -> dict[str, Any]:
    """What a result JSON records about how it was made: config, folder, command, load, machine."""
    import os
    import shlex

    from tdmixup.core.runio import environment_info

    return {
        "config": tc.to_json_dict(session.config),  # as the run resolved it (e.g. the task's AUM k)
        "run_dir": str(args.run_dir),
        "command": shlex.join([sys.executable, *sys.argv]),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "machine": environment_info(world_size=session.accelerator.num_processes),
    }


def aum_tables(session: Any, aum_dir: Path, percentiles: list[float]) -> dict[float, pd.DataFrame]:
    """AUM tables at several k from the threshold passes that ``run_aum`` trained in
    ``aum_dir`` (no retraining): ``{k: find_mislabeled_with_aum(...).table}``."""
    from tdmixup.dynamics.aum import AUMPass, find_mislabeled_with_aum
    from tdmixup.dynamics.table import read_dynamics

    passes = []
    for pass_dir in sorted(aum_dir.glob(f"{AUM_PASS_PREFIX}*")):
        dyn = read_dynamics(pass_dir / DYNAMICS)  # threshold samples carry the extra class
        passes.append(
            AUMPass(
                dyn.sample_ids,
                dyn.logits,
                dyn.gold,
                dyn.sample_ids[dyn.gold == dyn.num_classes - 1],
            )
        )
    procedure = session.config.aum.procedure
    skip = session.config.aum.skip_epochs
    return {
        k: find_mislabeled_with_aum(
            passes, percentile=k, procedure=procedure, skip_epochs=skip
        ).table
        for k in percentiles
    }


def cross_validated_logits(session: Any, out_dir: Path, folds: int, seed: int) -> np.ndarray:
    """``[N, C]`` out-of-sample logits of ``session.train`` (training order): K models trained
    like stage 1 (same config, ``train_and_evaluate``), each on the other folds, each predicting
    its held-out fold (a random permutation of ``seed`` cut into ``folds`` near-equal parts).

    Resumable: each fold's held-out logits go to ``out_dir/fold{k}_heldout_logits.npz`` and its
    stage folder ``out_dir/fold{k}`` keeps ``done.json`` (its cost); checkpoints are deleted.
    """
    import os
    import shutil

    from tdmixup.model.classifier import load_classifier
    from tdmixup.model.predict import predict_logits
    from tdmixup.run.pipeline import train_and_evaluate

    data, cfg = session.train, session.config
    logits = np.zeros((len(data), session.task.spec.num_labels))
    for k, held in enumerate(
        np.array_split(np.random.default_rng(seed).permutation(len(data)), folds)
    ):
        fold_dir, saved = out_dir / f"fold{k}", out_dir / f"fold{k}_heldout_logits.npz"
        if not saved.exists():
            rest = data.sample_ids[np.setdiff1d(np.arange(len(data)), held)]
            train_and_evaluate(
                session, fold_dir, strategy="none", train_sets=[data.subset(rest)], evaluate=False
            )
            model, _ = load_classifier(fold_dir / CHECKPOINT)
            ids, z = predict_logits(
                model.to(session.accelerator.device),
                data.subset(data.sample_ids[held]),
                batch_size=cfg.train.eval_batch_size,
                accelerator=session.accelerator,
            )
            np.savez(out_dir / "heldout.tmp.npz", ids=ids, logits=z)
            os.replace(out_dir / "heldout.tmp.npz", saved)
            shutil.rmtree(fold_dir / CHECKPOINT)
        part = np.load(saved)
        logits[data.positions_of(part["ids"])] = part["logits"]
    return logits
