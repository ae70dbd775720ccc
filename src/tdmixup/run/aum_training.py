"""The training half of AUM with threshold samples: relabel, train, record margins, flag.

The maths (threshold-sample choice, AUM, percentile threshold, flags) is in
:mod:`tdmixup.dynamics.aum`; this module runs the threshold-sample trainings through the same loop
as every other stage and writes ``<out_dir>/aum.parquet`` and ``summary.json``. Each pass is a
resumable training stage (``pass1/``, ``pass2/``), so a killed AUM run restarts at the epoch it was
in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tdmixup.core.layout import (
    AUM_TABLE,
    DYNAMICS,
    FLAGGED,
    KEPT,
    SUMMARY,
    aum_pass_dir,
    id_file,
    sample_csv,
)
from tdmixup.core.runio import atomic_write_text, main_process_decides, read_json, write_json
from tdmixup.data.collate import TokenizedSet
from tdmixup.data.schema import is_classification
from tdmixup.dynamics.suspects import flag_summary
from tdmixup.run.session import (
    PipelineError,
    Session,
    class_mix,
    train_and_evaluate,
    user_mapping,
    with_task_defaults,
)

if TYPE_CHECKING:
    from tdmixup.core.config import RunConfig, TrainConfig
    from tdmixup.dynamics.aum import AUMPass, Balance

log = logging.getLogger("tdmixup.dynamics.aum")


def _relabelled(
    session: Session, subset: TokenizedSet, threshold_ids: np.ndarray, *, seed: int
) -> TokenizedSet:
    """The subset with its threshold samples relabelled
    (:func:`tdmixup.dynamics.aum.relabel_threshold_labels`): the extra fake class for
    single-sentence and pair tasks, a wrong
    existing ending for multiple choice."""
    from tdmixup.dynamics.aum import relabel_threshold_labels

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
    from tdmixup.dynamics.aum import find_mislabeled_with_aum

    summary_path = out_dir / SUMMARY
    if main_process_decides(session.accelerator, summary_path.exists()):
        return dict(read_json(summary_path))
    cfg = with_task_defaults(session.config)  # already resolved in a session made by open_session
    subset = session.train.subset(ids, source=f"{out_dir.name} subset")
    statistics = statistics or session.layout.statistics
    stats = _checked_statistics(session, statistics, subset.sample_ids)  # before any training
    passes = 2 if cfg.aum.procedure == "two_pass" else 1
    epochs = _aum_epochs(cfg)
    balance = cfg.aum.threshold_balance or "uniform"
    trained = _train_threshold_passes(
        session, out_dir, subset, cfg, passes=passes, epochs=epochs, balance=balance
    )
    k = cfg.aum.percentile
    assert k is not None
    result = find_mislabeled_with_aum(
        trained.results, percentile=k, procedure=cfg.aum.procedure, skip_epochs=cfg.aum.skip_epochs
    )
    table = result.table
    kept = np.sort(table.loc[~table["flagged"], "sample_id"].to_numpy())
    sets = {
        "region": subset.sample_ids,
        "kept": kept,
        "flagged": table.loc[table["flagged"], "sample_id"].to_numpy(),
    }
    sets |= {
        f"threshold_pass{p + 1}": subset.sample_ids[c] for p, c in enumerate(trained.threshold_sets)
    }
    mix = class_mix(session, sets, warn_for=("kept",), context=f"{out_dir.name}: ")
    predicted, probability, learning = _predictions(trained.probs, subset)
    flags = _logged_flag_summary(
        session, out_dir, subset, sets["flagged"], predicted, learning, percentile=k
    )
    summary = {
        "n": int(len(subset)),
        "n_flagged": int(table["flagged"].sum()),
        "n_kept": int((~table["flagged"]).sum()),
        "procedure": cfg.aum.procedure,
        "percentile": k,
        "thresholds": [float(t) for t in result.thresholds],
        "threshold_balance": balance,
        "threshold_balance_per_pass": trained.balances,
        "skip_epochs": cfg.aum.skip_epochs,
        "passes": passes,
        "epochs": epochs,
        "dynamics_mode": cfg.aum.dynamics_mode,
        "class_counts": mix["counts"],
        "class_warnings": mix["warnings"],
        "flags": flags,
        "train_seconds": trained.seconds,
    }
    if session.is_main:
        _write_aum_files(session, out_dir, table, kept, stats, predicted, probability, summary)
    session.accelerator.wait_for_everyone()
    return summary


def _aum_epochs(cfg: RunConfig) -> int:
    """The AUM run's epochs (``--aum-epochs``, else the training's), checked against
    ``--aum-skip-epochs``."""
    epochs = cfg.aum.epochs or cfg.train.epochs
    if cfg.aum.skip_epochs >= epochs:
        raise ValueError(
            f"--aum-skip-epochs {cfg.aum.skip_epochs} leaves none of the AUM run's {epochs} epochs"
        )
    return epochs


@dataclass
class _TrainedPasses:
    """What the threshold-sample trainings leave for the flags and the summary."""

    threshold_sets: list[np.ndarray] = field(default_factory=list)  # positions into the subset
    balances: list[str] = field(default_factory=list)  # the balance each pass's draw used
    results: list[AUMPass] = field(default_factory=list)
    probs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (ids judged, probs)
    seconds: float = 0.0


def _train_threshold_passes(
    session: Session,
    out_dir: Path,
    subset: TokenizedSet,
    cfg: RunConfig,
    *,
    passes: int,
    epochs: int,
    balance: str,
) -> _TrainedPasses:
    """Draw each pass's threshold samples (disjoint from earlier passes'), relabel and train."""
    spec = session.task.spec
    # Margins are averaged over passes through the data: every sample once per epoch, whatever
    # step count the session's other stages use.
    train_cfg = replace(cfg.train, epochs=epochs, steps_per_epoch=None)
    trained = _TrainedPasses()
    for p in range(passes):
        exclude = np.concatenate(trained.threshold_sets) if trained.threshold_sets else None
        seed = cfg.train.seed + 101 * p
        chosen, used = _choose(
            subset.labels, spec.num_labels, balance=balance, seed=seed, exclude=exclude
        )
        threshold_ids = subset.sample_ids[chosen]
        trained.threshold_sets.append(chosen)
        trained.balances.append(used)
        trained_on = _relabelled(session, subset, threshold_ids, seed=seed)
        result, judged_probs, seconds = _train_threshold_pass(
            session, aum_pass_dir(out_dir, p + 1), trained_on, threshold_ids, cfg, train_cfg
        )
        trained.seconds += seconds
        trained.results.append(result)
        trained.probs.append(judged_probs)
    return trained


def _train_threshold_pass(
    session: Session,
    pass_dir: Path,
    trained_on: TokenizedSet,
    threshold_ids: np.ndarray,
    cfg: RunConfig,
    train_cfg: TrainConfig,
) -> tuple[AUMPass, tuple[np.ndarray, np.ndarray], float]:
    """Train one pass; its margins, its judged samples' last-epoch probabilities, its seconds."""
    from tdmixup.dynamics.aum import AUMPass
    from tdmixup.dynamics.table import read_dynamics

    spec = session.task.spec
    extra = int(is_classification(spec.kind))  # the fake class of threshold samples
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
    dyn = read_dynamics(pass_dir / DYNAMICS)
    if dyn.logits.shape[2] != spec.num_labels + extra:
        raise PipelineError(
            f"{pass_dir}: logits over {dyn.logits.shape[2]} choices, expected "
            f"{spec.num_labels + extra}: "
            "this pass was trained by an older tdmixup "
            "(multiple choice then added a 5th ending); re-run with --from-stage aum"
        )
    result = AUMPass(dyn.sample_ids, dyn.logits, dyn.gold, threshold_ids, extra_class=bool(extra))
    judged = ~np.isin(dyn.sample_ids, threshold_ids)
    last = np.asarray(dyn.logits[-1][judged, : spec.num_labels], dtype=np.float64)
    z = np.exp(last - last.max(axis=1, keepdims=True))
    judged_probs = (dyn.sample_ids[judged], z / z.sum(axis=1, keepdims=True))
    return result, judged_probs, float(done["train_seconds"])


def _logged_flag_summary(
    session: Session,
    out_dir: Path,
    subset: TokenizedSet,
    flagged_ids: np.ndarray,
    predicted: pd.Series,
    learning: dict[str, Any],
    *,
    percentile: float,
) -> dict[str, Any]:
    """The summary's ``flags`` (:func:`tdmixup.dynamics.suspects.flag_summary`); its warnings
    logged."""
    spec = session.task.spec
    gold = pd.Series(subset.labels, index=subset.sample_ids)
    flags = flag_summary(
        what=f"AUM on {out_dir.name.removeprefix('aum_')}",
        file=f"{FLAGGED}.csv",
        flagged_ids=flagged_ids,
        pool_ids=subset.sample_ids,
        gold=gold,
        predicted=predicted,
        label_names=spec.label_names,
        fix=f"lower --aum-percentile (now {percentile:g}; e.g. 50), or read flagged.csv from the "
        "top (lowest AUM first)",
        rank_by="aum",
        learning=learning,
    )
    for line in flags["warnings"]:
        log.warning("%s", line)
    return flags


def _write_aum_files(
    session: Session,
    out_dir: Path,
    table: pd.DataFrame,
    kept: np.ndarray,
    stats: pd.DataFrame | None,
    predicted: pd.Series,
    probability: pd.Series,
    summary: dict[str, Any],
) -> None:
    """``aum.parquet``, ``kept.txt``, ``kept.csv``, ``flagged.csv`` and, last, ``summary.json``."""
    from tdmixup.dynamics.aum import write_aum_table

    write_aum_table(table, out_dir / AUM_TABLE)
    kept_text = "".join(f"{i}\n" for i in kept)
    atomic_write_text(id_file(out_dir, KEPT), kept_text)  # a --subset file
    _write_readable(session, out_dir, table, stats, predicted, probability)
    write_json(out_dir / SUMMARY, summary)


_FALLBACKS: dict[str, tuple[Balance, ...]] = {
    "uniform": ("uniform",),
    "equal": ("equal", "proportional", "available"),
    "proportional": ("proportional", "available"),
}


def _checked_statistics(session: Session, statistics: Path, ids: np.ndarray) -> pd.DataFrame | None:
    """The data map's statistics of ``ids`` (for ``kept.csv`` / ``flagged.csv``), checked against
    this run's training data (:func:`tdmixup.dynamics.fingerprint.check_statistics`); None when
    absent."""
    from tdmixup.dynamics.fingerprint import check_statistics

    if not statistics.exists():
        return None
    stats = pd.read_parquet(statistics)
    if "sample_id" in stats.columns:
        stats = stats.set_index("sample_id")
    stats = stats.loc[stats.index.isin(ids)]
    data = session.config.data
    check_statistics(
        stats,
        session.task.train,
        table=statistics,
        data=f"--train-file {data.train_file}" if data.train_file else f"task {data.task}",
        label_names=session.task.spec.label_names,
    )
    return stats


def _predictions(
    probs: list[tuple[np.ndarray, np.ndarray]], subset: TokenizedSet
) -> tuple[pd.Series, pd.Series, dict[str, Any]]:
    """The AUM runs' prediction per sample: the argmax of its real-class probabilities at the last
    epoch, averaged over the passes in which it was judged (not a threshold sample), with that
    probability; and a learning check of those predictions against the given labels."""
    from tdmixup.evaluation.sets import learning_check

    ids = np.concatenate([p[0] for p in probs])
    frame = pd.DataFrame(np.concatenate([p[1] for p in probs]), index=ids)
    mean = frame.groupby(level=0).mean()
    predicted = pd.Series(mean.to_numpy().argmax(axis=1), index=mean.index)
    probability = pd.Series(mean.to_numpy().max(axis=1), index=mean.index)
    labels = subset.labels[subset.positions_of(mean.index.to_numpy())]
    check = learning_check(
        labels, np.log(np.clip(mean.to_numpy(), 1e-12, None)), set_name="AUM runs' training"
    )
    return predicted, probability, check


def _write_readable(
    session: Session,
    out_dir: Path,
    table: pd.DataFrame,
    stats: pd.DataFrame | None,
    predicted: pd.Series,
    probability: pd.Series,
) -> None:
    """``kept.csv`` (in ``kept.txt`` order) for reading, and ``flagged.csv``, the relabelling
    table (:func:`tdmixup.dynamics.suspects.suspect_table`: the user's own columns, lowest AUM
    first)."""
    from tdmixup.core.samples import sample_table, sample_texts, write_sample_csv
    from tdmixup.dynamics.suspects import suspect_table, write_suspects
    from tdmixup.run.session import whole_training_rows

    spec = session.task.spec
    ids = table["sample_id"].to_numpy()
    gold = pd.Series(session.train.labels[session.train.positions_of(ids)], index=ids)
    columns = ["confidence", "variability", "correctness"]
    stats = stats[columns] if stats is not None else None
    rows = session.task.train.select(session.train.positions_of(ids).tolist())
    indexed = table.set_index("sample_id")
    extra = {"aum": indexed["aum"], "threshold": indexed["threshold"]}
    kept = table[~table["flagged"]].sort_values("sample_id")
    readable = sample_table(
        kept["sample_id"].to_numpy(),
        texts=sample_texts(rows, spec.kind),
        gold=gold,
        label_names=spec.label_names,
        stats=stats,
        extra=extra,
    )
    write_sample_csv(readable, sample_csv(out_dir, KEPT))
    flagged = table[table["flagged"]].sort_values(["aum", "sample_id"], na_position="last")
    relabel = suspect_table(
        flagged["sample_id"].to_numpy(),
        rows.to_dict(),
        mapping=user_mapping(session.config.data, spec.name),
        label_names=spec.label_names,
        stats=stats,
        predicted=predicted,
        probability=probability,
        extra=extra,
        own_rows=whole_training_rows(session),
    )
    write_suspects(relabel, sample_csv(out_dir, FLAGGED))


def _choose(
    labels: np.ndarray, num_classes: int, *, balance: str, seed: int, exclude: np.ndarray | None
) -> tuple[np.ndarray, str]:
    """One pass's threshold samples (positions into ``labels``) and the balance used.

    ``uniform`` (the default) always succeeds on a region of more than ``c + 1`` samples. A
    class-balanced draw that a skewed region cannot fill (a class too small for an equal share,
    or too little of it left in a second pass) falls back to ``proportional``, then to
    ``available`` (each class gives at most what it has left), as folders written before the
    uniform default did; the summary records what each pass used."""
    from tdmixup.dynamics.aum import choose_threshold_samples

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
