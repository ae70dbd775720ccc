"""``tdmixup experiment table1|table2|table3|steps``: the paper's tables as commands (and one
ablation), mean ± sample std over seeds.

Layout of ``<output_dir>/``::

    seed_<s>/                 one `tdmixup run` folder per seed (stage 1 = the 100 % row,
                              datamap, aum_easy, aum_ambiguous, stage4_tdmixup = the TDMixUp row)
    seed_<s>/rows/<row>/      every other row, a resumable training stage of its own
                              (aum_saliency: seed_<s>/aum_saliency_split + stage4_aum_saliency, as
                              `tdmixup run --strategy aum_saliency` writes them; "100% + temperature
                              scaling" is stage 1 read after scaling)
    <table>/table.{md,csv,json}, accuracy_vs_ece.png

(names from :class:`tdmixup.core.layout.ExperimentLayout` and
:class:`~tdmixup.core.layout.RunLayout`).

Rows share work: stage 1, the data map and the AUM runs are computed once per seed and reused by
every row and table that needs them; a finished row is never trained again (``done.json``).
What each table's rows are and how a finished table is written: :mod:`tdmixup.evaluation.tables`.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tdmixup.core.config import MixupConfig, ReportTo, RunConfig, TrainConfig
from tdmixup.core.layout import ExperimentLayout, RunLayout
from tdmixup.evaluation.tables import (
    NOT_RUN,
    PAPER_CODE,
    TABLES,
    Row,
    aggregate,
    select_rows,
    write_table,
)
from tdmixup.model.classifier import ModelLoadError
from tdmixup.strategies.step import check_batch_for_processes

if TYPE_CHECKING:
    from tdmixup.data.collate import TokenizedSet
    from tdmixup.run.session import Session
    from tdmixup.strategies.backtranslation import BackTranslationConfig

__all__ = [
    # defined here: running the rows over seeds
    "full_steps_per_epoch",
    "row_folder",
    "row_mixup_config",
    "row_steps_per_epoch",
    "run_experiment",
    "run_row",
    "write_finished_table",
    # the tables themselves live in tdmixup.evaluation.tables (kept importable from here)
    "TABLES",
    "Row",
    "aggregate",
    "select_rows",
    "write_table",
]

log = logging.getLogger("tdmixup.run.experiments")


def _seed_config(config: RunConfig, seed: int) -> RunConfig:
    return replace(config, train=replace(config.train, seed=seed))


def _row_sets(session: Session, row: Row, regions: dict[str, np.ndarray]) -> list[TokenizedSet]:
    from tdmixup.run.pipeline import filtered_ids, tdmixup_sets

    out = []
    for name in row.sets:
        if name == "all":
            out.append(session.train)
            continue
        if name == "backtranslation":
            out.append(_backtranslated(session))
            continue
        if name == "tdmixup":
            out.extend(tdmixup_sets(session))
            continue
        parts = []
        for region in name.split("+"):
            ids = regions[region]
            if region in row.aum:
                ids = filtered_ids(session, region, ids)
            parts.append(ids)
        out.append(
            session.train.subset(
                np.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0], source=name
            )
        )
    return out


def backtranslation_config(device: str = "auto") -> BackTranslationConfig:
    """The back-translation row's settings: the paper's, with one sampling seed for every
    training seed, so the seeds share one cache (translated once) and train on the same
    paraphrases, as they share the training set; ``device`` is this process's."""
    from tdmixup.strategies.backtranslation import BackTranslationConfig

    return BackTranslationConfig(device=device)


def _backtranslated(session: Session) -> TokenizedSet:
    from tdmixup.data.collate import tokenize
    from tdmixup.strategies.backtranslation import augment_with_back_translation

    acc = session.accelerator
    augmented = augment_with_back_translation(  # every process translates its share of chunks
        session.task.train,
        session.task.spec.kind,
        backtranslation_config(str(acc.device)),
        cache_dir=ExperimentLayout(session.run_dir.parent).backtranslation_cache,
        process_index=int(acc.process_index),
        num_processes=int(acc.num_processes),
        progress=bool(acc.is_main_process),
    )
    return tokenize(
        augmented,
        session.task.spec,
        session.tokenizer,
        max_length=session.config.data.max_seq_length,
    )


def run_row(session: Session, row: Row) -> dict[str, Any]:
    """Train (or reuse) one row for the session's seed and return its ``done.json`` summary."""
    from tdmixup.run.aum_training import run_aum
    from tdmixup.run.pipeline import (
        read_done,
        read_regions,
        stage_datamap,
        stage_full,
        stage_is_done,
        stage_tdmixup,
        train_and_evaluate,
    )

    if _is_stage1(row):  # e.g. "100% + temperature scaling": the same run, read after scaling
        return stage_full(session)
    stage_full(session)
    if (
        row.strategy == "aum_saliency"
    ):  # its own split of stage 1; shared with `tdmixup run --strategy aum_saliency`
        from tdmixup.run.pipeline import stage_aum_saliency

        return stage_aum_saliency(session)
    stage_datamap(session)
    regions = read_regions(session)
    aum_regions = set(row.aum) | (
        set(session.config.aum.subsets) if "tdmixup" in row.sets else set()
    )
    for region in sorted(
        aum_regions
    ):  # each AUM run is shared by every row that filters this region
        run_aum(session, session.layout.aum_dir(region), regions[region])
    if (
        row.key == "tdmixup" and row.epoch == "pass" and not row.mixup
    ):  # stage 4, shared with `tdmixup run`
        return stage_tdmixup(session)
    stage_dir = session.layout.row_dir(row.key)
    if stage_is_done(session, stage_dir):  # before building its sets (back-translation is costly)
        return read_done(stage_dir)
    sets = _row_sets(session, row, regions)
    return train_and_evaluate(
        session,
        stage_dir,
        strategy=row.strategy,
        train_sets=sets,
        train_config=_row_train_config(session, row),
        mixup_config=_row_mixup_config(session, row),
    )


def _row_train_config(session: Session, row: Row) -> TrainConfig | None:
    """The session's training settings with the row's steps per epoch; None for one pass."""
    if row.epoch == "pass":
        return None
    return replace(session.config.train, steps_per_epoch=row_steps_per_epoch(session, row))


def _row_mixup_config(session: Session, row: Row) -> MixupConfig | None:
    """The row's MixUp overrides and label smoothing on the session's; None when it has none."""
    mixup_config = None
    if row.mixup:
        mixup_config = row_mixup_config(
            row,
            session.config.mixup,
            batch_size=_batch_size(session),
            num_classes=session.task.spec.num_labels,
        )
    if row.label_smoothing is not None:
        mixup_config = replace(
            mixup_config or session.config.mixup, label_smoothing=row.label_smoothing
        )
    return mixup_config


def row_mixup_config(
    row: Row, base: MixupConfig, *, batch_size: int, num_classes: int
) -> MixupConfig:
    """``base`` with the row's strategy and :attr:`Row.mixup` overrides (:data:`PAPER_CODE` →
    ``0.01 · batch_size / num_classes``; ``num_classes`` = endings for multiple choice)."""
    values: dict[str, Any] = {
        name: 0.01 * batch_size / num_classes
        if (name, value) == ("mixed_weight", PAPER_CODE)
        else value
        for name, value in row.mixup
    }
    return replace(base, strategy=row.strategy, **values)


def _batch_size(session: Session) -> int:
    cfg = session.config.train
    return cfg.mc_batch_size if session.task.spec.kind == "multiple_choice" else cfg.batch_size


def _is_stage1(row: Row) -> bool:
    """Whether ``row`` trains exactly what stage 1 trains (100 %, plain CE, the run's settings)."""
    return (
        row.strategy == "none"
        and row.sets == ("all",)
        and not row.aum
        and row.epoch == "pass"
        and not row.mixup
        and row.label_smoothing is None
    )


def full_steps_per_epoch(session: Session) -> int:
    """Optimiser steps in one epoch of the 100 % row (one pass over the whole training set)."""
    from tdmixup.training.loop import steps_per_epoch

    return steps_per_epoch(
        [session.train], _batch_size(session), fixed=session.config.train.steps_per_epoch
    )


def row_steps_per_epoch(session: Session, row: Row) -> int:
    """Steps per epoch of a row whose epoch is not one pass (:attr:`Row.epoch`): the 100 % row's
    steps, or the steps in which the row's strategy trains on as many samples as the 100 % row
    (``⌈N / (batches per step × batch size)⌉``)."""
    from tdmixup.strategies.step import batches_per_step

    if row.epoch == "full_steps":
        return full_steps_per_epoch(session)
    if row.epoch == "full_samples":
        return math.ceil(
            len(session.train) / (batches_per_step(row.strategy) * _batch_size(session))
        )
    raise ValueError(f"row {row.key!r}: one pass over its data has no fixed step count")


def run_experiment(
    table: str,
    config: RunConfig,
    *,
    output_dir: Path,
    seeds: int | list[int],
    keep_training_state: bool = False,
    only_rows: Sequence[str] | None = None,
    report_to: ReportTo = "none",
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Run every row of ``table`` (or only the rows named in ``only_rows``) for every seed
    (resumably) and write the table files of the rows run (``keep_training_state``: see
    :class:`tdmixup.run.session.Session`; ``report_to``: each seed folder's stages are tracked runs,
    :mod:`tdmixup.training.tracking`).

    Unless ``keep_checkpoints``, each row's model checkpoint is deleted as soon as its
    ``done.json`` (the metrics the tables read) is written: a seed keeps its data map, dynamics,
    statistics and metrics, not one model per row (:func:`drop_checkpoint`)."""
    from tdmixup.run.pipeline import open_session

    if table == "steps" and config.train.steps_per_epoch is not None:
        raise ValueError(
            "the 'steps' table compares the paper's step count with the 100% row's; a global "
            "--steps-per-epoch would give every row the same count: leave it unset"
        )
    rows = select_rows(table, only_rows)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    results: dict[str, dict[int, dict[str, Any]]] = {row.key: {} for row in rows}
    folders = ExperimentLayout(output_dir)
    for seed in seed_list:
        session = open_session(
            _seed_config(config, seed),
            folders.seed_dir(seed),
            keep_training_state=keep_training_state,
            report_to=report_to,
        )
        for row in rows:  # before anything trains: a row's batch may be too small to mix
            check_batch_for_processes(
                row.strategy, _batch_size(session), session.accelerator.num_processes
            )
        for i, row in enumerate(rows, 1):
            start = time.perf_counter()
            try:
                results[row.key][seed] = run_row(session, row)
                if not keep_checkpoints:
                    drop_checkpoint(session, row_folder(session.run_dir, row))
            except (
                ImportError,
                ModelLoadError,
            ) as err:  # e.g. back-translation models need the hub
                results[row.key][seed] = {"skipped": str(err)}
            if session.is_main:
                print(
                    f"[{table}] seed {seed} row {i}/{len(rows)} {row.key}: "
                    f"{time.perf_counter() - start:.0f} s",
                    flush=True,
                )
    if _is_main():
        write_table(table, rows, results, config.data.task, folders.table_dir(table))
    return results


def drop_checkpoint(session: Session, stage_dir: Path) -> None:
    """Delete a finished stage's ``checkpoint/`` (main process; after its ``done.json``, so a
    kill never loses a result: a finished stage is never trained again)."""
    from tdmixup.core.layout import CHECKPOINT
    from tdmixup.run.pipeline import is_done

    if session.is_main and is_done(stage_dir):
        shutil.rmtree(stage_dir / CHECKPOINT, ignore_errors=True)
    session.accelerator.wait_for_everyone()


def row_folder(run_dir: Path, row: Row) -> Path:
    """The stage folder of one seed's run folder whose ``done.json`` holds ``row``'s result
    (rows share stage 1, stage 4 and ``tdmixup run --strategy aum_saliency``'s stage, see
    :func:`run_row`)."""
    layout = RunLayout(run_dir)
    if _is_stage1(row):
        return layout.stage1
    if row.strategy == "aum_saliency":
        return layout.aum_saliency_stage
    if row.key == "tdmixup" and row.epoch == "pass" and not row.mixup:
        return layout.tdmixup
    return layout.row_dir(row.key)


def write_finished_table(
    table: str, *, output_dir: Path, task: str, seeds: int | list[int]
) -> dict[str, Any]:
    """Write ``table``'s files from the rows already finished (no training): for a long run that is
    still going, or one stopped before every row of every seed had trained. A row with no finished
    seed shows "not run yet"; the ``seeds`` column says how many seeds each row has."""
    from tdmixup.run.pipeline import is_done, read_done

    rows = TABLES[table]
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    folders = ExperimentLayout(output_dir)
    for row in rows:
        done = {
            seed: read_done(folder)
            for seed in seed_list
            if is_done(folder := row_folder(folders.seed_dir(seed), row))
        }
        results[row.key] = done or {0: {"skipped": NOT_RUN}}
    write_table(table, rows, results, task, folders.table_dir(table))
    return results


def _is_main() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
