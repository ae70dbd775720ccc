"""The training half of AUM with threshold samples: relabel, train, record margins, flag.

The maths (threshold-sample choice, AUM, percentile threshold, flags) is in :mod:`tdmixup.aum`;
this module runs the threshold-sample trainings through the same loop as every other stage and
writes ``<out_dir>/aum.parquet`` and ``summary.json``. Each pass is a resumable training stage
(``pass1/``, ``pass2/``), so a killed AUM run restarts at the epoch it was in.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.data.collate import TokenizedSet, tokenize
from tdmixup.runio import atomic_write_text, read_json, write_json

log = logging.getLogger("tdmixup.aum")


def _relabelled(session: Any, subset: TokenizedSet, threshold_ids: np.ndarray) -> TokenizedSet:
    """The subset with its threshold samples moved to the fake extra class (or extra ending)."""
    from tdmixup.aum import relabel_threshold_samples

    spec = session.task.spec
    if spec.kind == "pair":
        labels = subset.labels.copy()
        labels[np.isin(subset.sample_ids, threshold_ids)] = spec.num_labels
        return subset.with_labels(labels)
    positions = session.train.positions_of(subset.sample_ids)
    rows = session.task.train.select(positions.tolist())
    relabelled = relabel_threshold_samples(rows, threshold_ids, kind=spec.kind, num_classes=spec.num_labels)
    return tokenize(relabelled, spec, session.tokenizer, max_length=session.config.data.max_seq_length)


def run_aum(session: Any, out_dir: Path, ids: np.ndarray, *, statistics: Path | None = None) -> dict[str, Any]:
    """AUM with threshold samples on the training samples ``ids``; returns the summary.

    ``two_pass`` (default): two trainings with disjoint threshold sets, every sample judged in
    the pass where it was a normal sample. ``paper``: one training; its threshold samples are
    dropped, as the paper's code does.

    Writes ``aum.parquet``, ``kept.txt`` (a ``--subset`` file), ``kept.csv`` and ``flagged.csv``
    (readable: text, gold label, AUM, threshold, and the data map's confidence, variability and
    correctness from ``statistics``, default ``<run>/datamap/statistics.parquet``, when it
    exists) and ``summary.json``.
    """
    from tdmixup.aum import AUMPass, find_mislabeled_with_aum, write_aum_table
    from tdmixup.dynamics import read_dynamics
    from tdmixup.pipeline import train_and_evaluate, with_task_defaults

    summary_path = out_dir / "summary.json"
    if summary_path.exists():
        return dict(read_json(summary_path))
    cfg = session.config
    spec = session.task.spec
    subset = session.train.subset(ids, source=f"{out_dir.name} subset")
    passes = 2 if cfg.aum.procedure == "two_pass" else 1
    epochs = cfg.aum.epochs or cfg.train.epochs
    # Margins are averaged over passes through the data: every sample once per epoch, whatever
    # step count the session's other stages use.
    train_cfg = replace(cfg.train, epochs=epochs, steps_per_epoch=None)
    mode = cfg.aum.dynamics_mode
    if spec.kind == "multiple_choice" and mode == "train_pass":
        # The extra ending of a normal item is a copy of a wrong ending: with dropout on, the two
        # copies score differently and bias margins down; an eval-mode pass scores them equally.
        log.info("multiple choice: AUM margins from an end-of-epoch pass (dropout off)")
        mode = "epoch_end"
    threshold_sets: list[np.ndarray] = []
    pass_results = []
    seconds = 0.0
    for p in range(passes):
        exclude = np.concatenate(threshold_sets) if threshold_sets else None
        chosen, balance = _choose(subset.labels, spec.num_labels, seed=cfg.train.seed + 101 * p, exclude=exclude)
        threshold_ids = subset.sample_ids[chosen]
        threshold_sets.append(chosen)
        trained_on = _relabelled(session, subset, threshold_ids)
        pass_dir = out_dir / f"pass{p + 1}"
        done = train_and_evaluate(
            session, pass_dir, strategy="none", train_sets=[trained_on], dynamics_mode=mode,
            evaluate=False, num_labels=spec.num_labels + 1, keep_checkpoint=False,
            train_config=train_cfg,
        )
        seconds += float(done["train_seconds"])
        dyn = read_dynamics(pass_dir / "dynamics.parquet")
        pass_results.append(AUMPass(dyn.sample_ids, dyn.logits, dyn.gold, threshold_ids))
    k = with_task_defaults(cfg).aum.percentile  # already resolved in a session made by open_session
    assert k is not None
    result = find_mislabeled_with_aum(pass_results, percentile=k, procedure=cfg.aum.procedure)
    table = result.table
    summary = {
        "n": int(len(subset)),
        "n_flagged": int(table["flagged"].sum()),
        "n_kept": int((~table["flagged"]).sum()),
        "procedure": cfg.aum.procedure,
        "percentile": k,
        "thresholds": [float(t) for t in result.thresholds],
        "threshold_balance": balance,
        "passes": passes,
        "epochs": epochs,
        "train_seconds": seconds,
    }
    if session.is_main:
        write_aum_table(table, out_dir / "aum.parquet")
        kept = np.sort(table.loc[~table["flagged"], "sample_id"].to_numpy())
        atomic_write_text(out_dir / "kept.txt", "".join(f"{i}\n" for i in kept))  # a --subset file
        _write_readable(session, out_dir, table, statistics or session.run_dir / "datamap" / "statistics.parquet")
        write_json(summary_path, summary)
    session.accelerator.wait_for_everyone()
    return summary


def _write_readable(session: Any, out_dir: Path, table: pd.DataFrame, statistics: Path) -> None:
    """``kept.csv`` (in ``kept.txt`` order) and ``flagged.csv`` (lowest AUM first) for reading."""
    from tdmixup.samples import sample_table, sample_texts, write_sample_csv

    spec = session.task.spec
    ids = table["sample_id"].to_numpy()
    gold = pd.Series(session.train.labels[session.train.positions_of(ids)], index=ids)
    stats = None
    if statistics.exists():
        stats = pd.read_parquet(statistics)[["confidence", "variability", "correctness"]]
    texts = sample_texts(session.task.train.select(session.train.positions_of(ids).tolist()), spec.kind)
    indexed = table.set_index("sample_id")
    extra = {"aum": indexed["aum"], "threshold": indexed["threshold"]}
    for name, rows in (("kept", table[~table["flagged"]].sort_values("sample_id")),
                       ("flagged", table[table["flagged"]].sort_values(["aum", "sample_id"], na_position="last"))):
        readable = sample_table(rows["sample_id"].to_numpy(), texts=texts, gold=gold, label_names=spec.label_names,
                                stats=stats, extra=extra)
        write_sample_csv(readable, out_dir / f"{name}.csv")


def _choose(labels: np.ndarray, num_classes: int, *, seed: int, exclude: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Threshold samples spread equally over classes (the paper's code); when a class of an
    imbalanced subset is too small for that, proportionally (Pleiss et al.); when even that fails
    (a second pass on a very skewed region), each class gives at most what it has left."""
    from tdmixup.aum import choose_threshold_samples

    for balance in ("equal", "proportional"):
        try:
            return choose_threshold_samples(labels, num_classes, seed=seed, exclude=exclude, balance=balance), balance
        except ValueError as err:
            log.warning("threshold samples with balance=%s impossible (%s)", balance, err)
    return choose_threshold_samples(labels, num_classes, seed=seed, exclude=exclude, balance="available"), "available"
