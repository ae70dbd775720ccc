"""``tdmixup run``: the TDMixUp method as stages over one run directory.

Stages (each reads only the previous stages' files, and is skipped when its ``done.json`` exists;
every folder and file name, and the stage order, is in :mod:`tdmixup.core.layout`):

1. ``full``     — fine-tune on 100 % of the training data while recording training dynamics;
                  this is also the "100 % train" baseline (``stage1_full/``).
2. ``datamap``  — statistics, regions (easy / ambiguous / hard), PNG + HTML data map (``datamap/``).
3. ``aum``      — AUM with threshold samples on the easy set (and others when asked)
                  (``aum_<subset>/``).
4. ``tdmixup``  — MixUp between easy-with-AUM and ambiguous batches (``stage4_tdmixup/``).

With ``--strategy aum_saliency`` (Park & Caragea, ACL 2022; :mod:`tdmixup.strategies.aum_saliency`)
stage 3 splits the training set at the median AUM of stage 1 (``aum_saliency_split/``, no
threshold-sample runs) and stage 4 trains that method (``stage4_aum_saliency/``).
5. ``report``   — ``report.md`` with accuracy / ECE tables, sample counts and plots.

Evaluation (every in-domain and out-of-domain set, temperature fitted on dev) runs at the end of
each training stage and is stored with it. A killed run loses at most the epoch in progress:
training stages resume from their last epoch checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tdmixup.core.layout import AUM_SALIENCY_SPLIT, AUM_SALIENCY_STAGE, STAGES  # re-exported
from tdmixup.core.runio import main_process_decides
from tdmixup.data.collate import TokenizedSet
from tdmixup.run.session import (  # the pipeline's public API is re-exported from here
    CHANGEABLE_FROM,
    DONE,
    FOLDER_KEEPS,
    READ_BY_EVERY_STAGE,
    PipelineError,
    Session,
    class_mix,
    is_done,
    mark_done,
    open_session,
    read_done,
    read_saved_config,
    stage_is_done,
    train_and_evaluate,
    user_mapping,
    whole_training_rows,
    with_task_defaults,
)

if TYPE_CHECKING:
    from tdmixup.core.config import RankBy
    from tdmixup.strategies.aum_saliency import SaliencyColumn

__all__ = [
    "AUM_SALIENCY_SPLIT",
    "AUM_SALIENCY_STAGE",
    "CHANGEABLE_FROM",
    "DONE",
    "FOLDER_KEEPS",
    "READ_BY_EVERY_STAGE",
    "STAGES",
    "PipelineError",
    "Session",
    "aum_saliency_sets",
    "class_mix",
    "filtered_ids",
    "is_done",
    "stage_is_done",
    "mark_done",
    "open_session",
    "read_done",
    "read_regions",
    "read_saved_config",
    "run_pipeline",
    "stage_aum",
    "stage_aum_saliency",
    "stage_aum_saliency_split",
    "stage_datamap",
    "stage_full",
    "stage_tdmixup",
    "tdmixup_sets",
    "datamap_suspects",
    "train_and_evaluate",
    "user_mapping",
    "with_task_defaults",
]

log = logging.getLogger("tdmixup.run.pipeline")


# --- the stages ------------------------------------------------------------------------------
def stage_full(session: Session) -> dict[str, Any]:
    """Stage 1: 100 % fine-tuning with dynamics (the baseline row)."""
    return train_and_evaluate(
        session,
        session.layout.stage1,
        strategy="none",
        train_sets=[session.train],
        dynamics_mode=session.config.dynamics.mode,
    )


def stage_datamap(session: Session) -> dict[str, Any]:
    """Stage 2: statistics, regions and data-map plots from stage 1's dynamics table."""
    from tdmixup.dynamics.datamap import assign_regions, datamap_summary, datamap_title
    from tdmixup.dynamics.datamap_plots import save_datamap
    from tdmixup.dynamics.table import compute_statistics, read_dynamics

    out = session.layout.datamap
    if stage_is_done(session, out):
        return read_done(out)
    table = session.layout.stage1_dynamics
    if not main_process_decides(session.accelerator, table.exists()):
        raise PipelineError(f"{table} is missing: run stage 'full' first")
    dyn = read_dynamics(table)
    dyn.check_data(
        session.task.train,
        data=_train_data_name(session),
        table=table,
        label_names=session.task.spec.label_names,
    )
    stats = compute_statistics(dyn)
    dcfg = with_task_defaults(session.config).dynamics
    stratify = bool(dcfg.stratify_regions)
    regions = assign_regions(
        stats, fraction=dcfg.fraction, allow_overlap=dcfg.allow_overlap, stratify=stratify
    )
    names = list(session.task.spec.label_names)
    if session.is_main:
        save_datamap(
            stats,
            regions,
            out,
            title=datamap_title(stats),
            texts=_sample_texts(session),
            gold_names=names,
            source=session.task.train,
            mapping=user_mapping(session.config.data, session.task.spec.name),
            rank_by=dcfg.rank_by,
            flag_fraction=dcfg.flag_fraction,
            stratified=stratify,
            own_rows=whole_training_rows(session),
        )
    mix = class_mix(session, regions, reference="train", context="data map: ")
    suspects = datamap_suspects(stats, names, dcfg.rank_by, dcfg.flag_fraction)
    summary = datamap_summary(stats, regions, stratify=stratify, class_mix=mix, suspects=suspects)
    mark_done(session, out, summary)
    return summary


def datamap_suspects(
    stats: Any, label_names: list[str], rank_by: RankBy, flag_fraction: float
) -> dict[str, Any]:
    """The data map's flag summary (``suspects.csv``: every training row ranked by ``rank_by``,
    the lowest ``flag_fraction`` flagged as likely label issues): per-class table and warnings,
    each warning also logged (one line)."""
    from tdmixup.core.layout import SUSPECTS
    from tdmixup.dynamics.suspects import flag_summary, rank_label_issues, training_learning_check
    from tdmixup.evaluation.sets import learning_check

    _, flagged = rank_label_issues(stats, method=rank_by, fraction=flag_fraction)
    summary = flag_summary(
        what="suspects.csv",
        file=f"{SUSPECTS}.csv",
        flagged_ids=flagged,
        pool_ids=stats.index.to_numpy(),
        gold=stats["gold"],
        predicted=stats["prediction"],
        label_names=label_names,
        fix=f"lower --dynamics-flag-fraction (now {flag_fraction:g}; default 0.1) and read "
        "suspects.csv from the top",
        rank_by=rank_by,
        learning=training_learning_check(stats, learning_check),
    )
    summary["flag_fraction"] = flag_fraction
    for line in summary["warnings"]:
        log.warning("%s", line)
    return summary


def _train_data_name(session: Session) -> str:
    """How messages name this run's training data (its file, or the task)."""
    data = session.config.data
    return (
        f"--train-file {data.train_file}" if data.train_file else f"task {data.task}'s training set"
    )


def _sample_texts(session: Session) -> dict[int, str]:
    """Each training sample's readable text by ``sample_id`` (for the region CSVs and the HTML)."""
    from tdmixup.core.samples import sample_texts

    return sample_texts(session.task.train, session.task.spec.kind)


def read_regions(session: Session) -> dict[str, np.ndarray]:
    """The region id lists written by stage 2, checked against this run's training set."""
    from tdmixup.dynamics.datamap import read_region_file

    regions = {}
    for name in ("easy", "ambiguous", "hard"):
        path = session.layout.region_file(name)
        if not main_process_decides(session.accelerator, path.exists()):
            raise PipelineError(f"{path} is missing: run stage 'datamap' first")
        ids = read_region_file(path)
        session.train.positions_of(ids, source=str(path))
        regions[name] = ids
    return regions


def stage_aum(session: Session) -> dict[str, Any]:
    """Stage 3: AUM with threshold samples on each configured region (default: easy)."""
    from tdmixup.run.aum_training import run_aum

    regions = read_regions(session)
    summary = {}
    for subset in session.config.aum.subsets:
        if subset not in regions:
            raise PipelineError(f"--aum-subsets {subset!r}: not a region (easy, ambiguous, hard)")
        summary[subset] = run_aum(session, session.layout.aum_dir(subset), regions[subset])
    return summary


def filtered_ids(session: Session, subset: str, ids: np.ndarray) -> np.ndarray:
    """``ids`` minus the samples flagged by the AUM stage for ``subset``."""
    from tdmixup.dynamics.aum import read_aum_table

    path = session.layout.aum_table(subset)
    if not main_process_decides(session.accelerator, path.exists()):
        raise PipelineError(
            f"{path} is missing: run stage 'aum' first (with --aum-subsets {subset})"
        )
    table = read_aum_table(path)
    flagged = table.loc[table["flagged"], "sample_id"].to_numpy()
    return ids[~np.isin(ids, flagged)]


def stage_tdmixup(session: Session) -> dict[str, Any]:
    """Stage 4: TDMixUp on easy-with-AUM (+ ambiguous, AUM-filtered only when asked)."""
    return train_and_evaluate(
        session, session.layout.tdmixup, strategy="tdmixup", train_sets=tdmixup_sets(session)
    )


def tdmixup_sets(session: Session) -> list[TokenizedSet]:
    """TDMixUp's two training sets: easy with AUM, ambiguous (with AUM when ``--aum-subsets``
    names it). Needs stage 2's regions and the AUM runs."""
    regions = read_regions(session)
    easy = filtered_ids(session, "easy", regions["easy"])
    amb = regions["ambiguous"]
    if "ambiguous" in session.config.aum.subsets:
        amb = filtered_ids(session, "ambiguous", amb)
    if len(easy) == 0:
        raise PipelineError(
            f"the easy set is empty after AUM filtering (k = {session.config.aum.percentile}); "
            "lower --aum-percentile or raise --dynamics-fraction"
        )
    return [
        session.train.subset(easy, source="easy (AUM-filtered)"),
        session.train.subset(amb, source="ambiguous"),
    ]


# --- stages 3 and 4 of --strategy aum_saliency (Park & Caragea, ACL 2022) -------------------


def stage_aum_saliency_split(session: Session) -> dict[str, Any]:
    """Stage ``aum`` of ``--strategy aum_saliency``: ``aum_saliency_split/`` from stage 1's dynamics
    (``split.parquet``: sample_id, gold, aum, high, saliency_0..C−1; ``high.txt``, ``low.txt``).
    Recomputed when the folder's quantile differs from the configured one (it is cheap)."""
    import pandas as pd

    from tdmixup.core.runio import atomic_output
    from tdmixup.dynamics.datamap import write_regions
    from tdmixup.dynamics.table import read_dynamics
    from tdmixup.strategies.aum_saliency import split_by_aum

    out = session.layout.aum_saliency_split
    quantile = session.config.mixup.aum_saliency_quantile
    if main_process_decides(
        session.accelerator, is_done(out) and read_done(out).get("quantile") == quantile
    ):
        return read_done(out)
    table = session.layout.stage1_dynamics
    if not main_process_decides(session.accelerator, table.exists()):
        raise PipelineError(f"{table} is missing: run stage 'full' first")
    dyn = read_dynamics(table)
    session.train.positions_of(dyn.sample_ids, source=str(table))
    dyn.check_data(
        session.task.train,
        data=_train_data_name(session),
        table=table,
        label_names=session.task.spec.label_names,
    )
    split = split_by_aum(dyn.sample_ids, dyn.gold, dyn.logits, quantile=quantile)
    n_high = int(split.high.sum())
    if n_high in (0, len(split.high)):
        raise PipelineError(
            f"the AUM split at quantile {quantile} (AUM {split.threshold:.4g}) "
            f"leaves one half empty ({n_high} of {len(split.high)} high); "
            "change --aum-saliency-quantile"
        )
    if session.is_main:
        frame = pd.DataFrame(
            {
                "sample_id": split.sample_ids,
                "gold": split.gold,
                "aum": split.aum,
                "high": split.high,
            }
        )
        for k in range(split.saliency.shape[1]):
            frame[f"saliency_{k}"] = split.saliency[:, k]
        with atomic_output(session.layout.aum_saliency_split_table) as tmp:
            frame.to_parquet(tmp, index=False)
        write_regions(
            {"high": split.sample_ids[split.high], "low": split.sample_ids[~split.high]}, out
        )
    summary = {
        "quantile": quantile,
        "threshold": split.threshold,
        "n": len(split.high),
        "n_high": n_high,
        "n_low": len(split.high) - n_high,
        "dynamics_mode": dyn.mode,
        "epochs": len(dyn.epochs),
        "saliency_epoch": int(dyn.epochs[-1]),
    }
    mark_done(session, out, summary)
    return summary


def aum_saliency_sets(session: Session) -> tuple[list[TokenizedSet], SaliencyColumn]:
    """The high and low halves (in that order) and the saliency column for the training stage."""
    from tdmixup.strategies.aum_saliency import SaliencyColumn, read_split

    stage_aum_saliency_split(session)
    ids, high, saliency = read_split(session.layout.aum_saliency_split_table)
    sets = [
        session.train.subset(ids[high], source="aum_saliency high half"),
        session.train.subset(ids[~high], source="aum_saliency low half"),
    ]
    return sets, SaliencyColumn(ids, saliency)


def stage_aum_saliency(session: Session) -> dict[str, Any]:
    """Stage ``tdmixup`` of ``--strategy aum_saliency``: train on (high, low)
    → ``stage4_aum_saliency/``."""
    sets, column = aum_saliency_sets(session)
    return train_and_evaluate(
        session,
        session.layout.aum_saliency_stage,
        strategy="aum_saliency",
        train_sets=sets,
        batch_columns=column,
    )


def run_pipeline(
    session: Session, *, from_stage: str | None = None, until: str = "report"
) -> dict[str, Any]:
    """Run the stages in order (skipping finished ones); ``from_stage`` re-runs it and the rest."""
    if from_stage is not None:
        _invalidate_from(session, from_stage)
    runners = {
        "full": stage_full,
        "datamap": stage_datamap,
        "aum": stage_aum,
        "tdmixup": stage_tdmixup,
    }
    if session.config.mixup.strategy == "aum_saliency":  # Park & Caragea (ACL 2022)
        runners.update(aum=stage_aum_saliency_split, tdmixup=stage_aum_saliency)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    for name in STAGES[: STAGES.index(until) + 1]:
        start = time.perf_counter()
        if name == "report":
            from tdmixup.evaluation.report import write_run_report

            if session.is_main:
                write_run_report(session.run_dir)
        else:
            results[name] = runners[name](session)
        timings[name] = time.perf_counter() - start
        if session.is_main:
            log.info("stage %s: %.1f s", name, timings[name])
    results["stage_seconds"] = timings
    return results


def _invalidate_from(session: Session, stage: str) -> None:
    if stage not in STAGES:
        raise PipelineError(f"--from-stage {stage!r}: expected one of {', '.join(STAGES)}")
    if session.is_main:
        for later in STAGES[STAGES.index(stage) :]:
            for d in session.layout.stage_dirs(later):
                shutil.rmtree(d, ignore_errors=True)
    session.accelerator.wait_for_everyone()
