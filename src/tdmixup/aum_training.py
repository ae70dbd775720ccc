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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tdmixup.data.collate import TokenizedSet
from tdmixup.data.schema import is_classification
from tdmixup.layout import (
    AUM_TABLE,
    DYNAMICS,
    FLAGGED,
    KEPT,
    SUMMARY,
    aum_pass_dir,
    id_file,
    sample_csv,
)
from tdmixup.runio import atomic_write_text, read_json, write_json
from tdmixup.session import (
    PipelineError,
    Session,
    class_mix,
    train_and_evaluate,
    with_task_defaults,
)

if TYPE_CHECKING:
    from tdmixup.aum import Balance

log = logging.getLogger("tdmixup.aum")


def _relabelled(
    session: Session, subset: TokenizedSet, threshold_ids: np.ndarray, *, seed: int
) -> TokenizedSet:
    """The subset with its threshold samples relabelled
    (:func:`tdmixup.aum.relabel_threshold_labels`): the extra fake class for single-sentence and
    pair tasks, a wrong
    existing ending for multiple choice."""
    from tdmixup.aum import relabel_threshold_labels

    spec = session.task.spec
    is_th = np.isin(subset.sample_ids, threshold_ids)
    labels = relabel_threshold_labels(
        subset.labels, is_th, kind=spec.kind, num_classes=spec.num_labels, seed=seed
    )
    return subset.with_labels(labels)


def run_aum(
    session: Session, out_dir: Path, ids: np.ndarray, *, statistics: Path | None = None
) -> dict[str, Any]:
    """AUM with threshold samples on the training samples ``ids``; returns the summary.

    ``two_pass`` (default): two trainings with disjoint threshold sets, every sample judged in
    the pass where it was a normal sample. ``paper``: one training; its threshold samples are
    dropped, as the paper's code does. Threshold samples are drawn with
    ``AUMConfig.threshold_balance`` (default: uniformly over the region); margins are averaged
    from epoch ``AUMConfig.skip_epochs`` on. The summary records these settings and the
    per-class counts of the region, the kept and flagged sets and each pass's threshold set.

    Writes ``aum.parquet``, ``kept.txt`` (a ``--subset`` file), ``kept.csv`` and ``flagged.csv``
    (readable: text, gold label, AUM, threshold, and the data map's confidence, variability and
    correctness from ``statistics``, default ``<run>/datamap/statistics.parquet``, when it
    exists) and ``summary.json``.
    """
    from tdmixup.aum import AUMPass, find_mislabeled_with_aum, write_aum_table
    from tdmixup.dynamics import read_dynamics

    summary_path = out_dir / SUMMARY
    if summary_path.exists():
        return dict(read_json(summary_path))
    cfg = with_task_defaults(session.config)  # already resolved in a session made by open_session
    spec = session.task.spec
    extra = int(is_classification(spec.kind))  # the fake class of threshold samples
    subset = session.train.subset(ids, source=f"{out_dir.name} subset")
    passes = 2 if cfg.aum.procedure == "two_pass" else 1
    epochs = cfg.aum.epochs or cfg.train.epochs
    if cfg.aum.skip_epochs >= epochs:
        raise ValueError(
            f"--aum-skip-epochs {cfg.aum.skip_epochs} leaves none of the AUM run's {epochs} epochs"
        )
    # Margins are averaged over passes through the data: every sample once per epoch, whatever
    # step count the session's other stages use.
    train_cfg = replace(cfg.train, epochs=epochs, steps_per_epoch=None)
    balance = cfg.aum.threshold_balance or "uniform"
    threshold_sets: list[np.ndarray] = []
    balances: list[str] = []
    pass_results = []
    seconds = 0.0
    for p in range(passes):
        exclude = np.concatenate(threshold_sets) if threshold_sets else None
        seed = cfg.train.seed + 101 * p
        chosen, used = _choose(
            subset.labels, spec.num_labels, balance=balance, seed=seed, exclude=exclude
        )
        threshold_ids = subset.sample_ids[chosen]
        threshold_sets.append(chosen)
        balances.append(used)
        trained_on = _relabelled(session, subset, threshold_ids, seed=seed)
        pass_dir = aum_pass_dir(out_dir, p + 1)
        done = train_and_evaluate(
            session,
            pass_dir,
            strategy="none",
            train_sets=[trained_on],
            dynamics_mode=cfg.aum.dynamics_mode,
            evaluate=False,
            num_labels=spec.num_labels + extra,
            keep_checkpoint=False,
            train_config=train_cfg,
        )
        seconds += float(done["train_seconds"])
        dyn = read_dynamics(pass_dir / DYNAMICS)
        if dyn.logits.shape[2] != spec.num_labels + extra:
            raise PipelineError(
                f"{pass_dir}: logits over {dyn.logits.shape[2]} choices, expected "
                f"{spec.num_labels + extra}: "
                "this pass was trained by an older tdmixup "
                "(multiple choice then added a 5th ending); re-run with --from-stage aum"
            )
        pass_results.append(
            AUMPass(dyn.sample_ids, dyn.logits, dyn.gold, threshold_ids, extra_class=bool(extra))
        )
    k = cfg.aum.percentile
    assert k is not None
    result = find_mislabeled_with_aum(
        pass_results, percentile=k, procedure=cfg.aum.procedure, skip_epochs=cfg.aum.skip_epochs
    )
    table = result.table
    kept = np.sort(table.loc[~table["flagged"], "sample_id"].to_numpy())
    sets = {
        "region": subset.sample_ids,
        "kept": kept,
        "flagged": table.loc[table["flagged"], "sample_id"].to_numpy(),
    }
    sets |= {f"threshold_pass{p + 1}": subset.sample_ids[c] for p, c in enumerate(threshold_sets)}
    mix = class_mix(session, sets, warn_for=("kept",), context=f"{out_dir.name}: ")
    summary = {
        "n": int(len(subset)),
        "n_flagged": int(table["flagged"].sum()),
        "n_kept": int((~table["flagged"]).sum()),
        "procedure": cfg.aum.procedure,
        "percentile": k,
        "thresholds": [float(t) for t in result.thresholds],
        "threshold_balance": balance,
        "threshold_balance_per_pass": balances,
        "skip_epochs": cfg.aum.skip_epochs,
        "passes": passes,
        "epochs": epochs,
        "dynamics_mode": cfg.aum.dynamics_mode,
        "class_counts": mix["counts"],
        "class_warnings": mix["warnings"],
        "train_seconds": seconds,
    }
    if session.is_main:
        write_aum_table(table, out_dir / AUM_TABLE)
        kept_text = "".join(f"{i}\n" for i in kept)
        atomic_write_text(id_file(out_dir, KEPT), kept_text)  # a --subset file
        _write_readable(session, out_dir, table, statistics or session.layout.statistics)
        write_json(summary_path, summary)
    session.accelerator.wait_for_everyone()
    return summary


_FALLBACKS: dict[str, tuple[Balance, ...]] = {
    "uniform": ("uniform",),
    "equal": ("equal", "proportional", "available"),
    "proportional": ("proportional", "available"),
}


def _write_readable(session: Session, out_dir: Path, table: pd.DataFrame, statistics: Path) -> None:
    """``kept.csv`` (in ``kept.txt`` order) and ``flagged.csv`` (lowest AUM first) for reading."""
    from tdmixup.samples import sample_table, sample_texts, write_sample_csv

    spec = session.task.spec
    ids = table["sample_id"].to_numpy()
    gold = pd.Series(session.train.labels[session.train.positions_of(ids)], index=ids)
    stats = None
    if statistics.exists():
        stats = pd.read_parquet(statistics)[["confidence", "variability", "correctness"]]
    texts = sample_texts(
        session.task.train.select(session.train.positions_of(ids).tolist()), spec.kind
    )
    indexed = table.set_index("sample_id")
    extra = {"aum": indexed["aum"], "threshold": indexed["threshold"]}
    by_aum = ["aum", "sample_id"]
    for name, rows in (
        (KEPT, table[~table["flagged"]].sort_values("sample_id")),
        (FLAGGED, table[table["flagged"]].sort_values(by_aum, na_position="last")),
    ):
        readable = sample_table(
            rows["sample_id"].to_numpy(),
            texts=texts,
            gold=gold,
            label_names=spec.label_names,
            stats=stats,
            extra=extra,
        )
        write_sample_csv(readable, sample_csv(out_dir, name))


def _choose(
    labels: np.ndarray, num_classes: int, *, balance: str, seed: int, exclude: np.ndarray | None
) -> tuple[np.ndarray, str]:
    """One pass's threshold samples (positions into ``labels``) and the balance used.

    ``uniform`` (the default) always succeeds on a region of more than ``c + 1`` samples. A
    class-balanced draw that a skewed region cannot fill (a class too small for an equal share,
    or too little of it left in a second pass) falls back to ``proportional``, then to
    ``available`` (each class gives at most what it has left), as folders written before the
    uniform default did; the summary records what each pass used."""
    from tdmixup.aum import choose_threshold_samples

    tries = _FALLBACKS[balance]
    for i, used in enumerate(tries):
        try:
            pos = choose_threshold_samples(
                labels, num_classes, seed=seed, exclude=exclude, balance=used
            )
            return pos, used
        except ValueError as err:
            if i == len(tries) - 1:
                raise
            log.info(
                "threshold samples: balance=%s does not fit this region (%s); trying %s",
                used,
                err,
                tries[i + 1],
            )
    raise AssertionError("unreachable")
