"""A run folder's session, and the one way every stage trains and evaluates a model.

:func:`open_session` checks the folder's ``config.json`` against the configuration, loads and
tokenises the data once and sets up Accelerate; the :class:`Session` it returns is what every
stage reads. :func:`train_and_evaluate` is the one training stage: build the classifier, train
(resuming from the last epoch checkpoint), evaluate on every test set, write ``done.json``.
The AUM stage (:mod:`tdmixup.run.aum_training`) and the pipeline (:mod:`tdmixup.run.pipeline`) sit
above this module; it imports neither.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tdmixup.core.config import (
    DynamicsMode,
    MixupConfig,
    ReportTo,
    RunConfig,
    Strategy,
    TrainConfig,
    from_json_dict,
    to_json_dict,
)
from tdmixup.core.layout import (
    CHECKPOINT,
    CONFIG,
    DONE,
    DYNAMICS,
    FIT_DATA,
    TRAIN_ARGS,
    TRAINING_STATE,
    RunLayout,
)
from tdmixup.core.runio import (
    check_shared_folder,
    environment_info,
    main_process_decides,
    read_json,
    write_json,
)
from tdmixup.data.collate import TokenizedSet, tokenize
from tdmixup.data.schema import is_classification
from tdmixup.data.tasks import user_mapping  # noqa: F401 - re-exported (pipeline, cli)
from tdmixup.training import tracking

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedTokenizerBase

    from tdmixup.core.classmix import ClassMix
    from tdmixup.data.tasks import TaskData
    from tdmixup.model.classifier import CheckpointInfo, Classifier
    from tdmixup.training.loop import EpochCallback, TrainResult

log = logging.getLogger("tdmixup.run.pipeline")


class PipelineError(RuntimeError):
    """Inconsistent inputs between stages (the message says which files and what to do)."""


@dataclass
class Session:
    """What every stage shares: config, run folder, accelerator, tokenizer and tokenised data."""

    config: RunConfig
    run_dir: Path
    accelerator: Accelerator
    tokenizer: PreTrainedTokenizerBase
    task: TaskData
    train: TokenizedSet
    dev: TokenizedSet
    tests: dict[str, TokenizedSet]
    keep_training_state: bool = False
    """Keep each finished stage's optimizer, scheduler and RNG state
    (``checkpoint/training_state.pt``, about twice the model's size); by default only an unfinished
    stage keeps it, to resume exactly."""
    fingerprint_hashes: Any = None
    """Text hash of every training row by sample id (computed once, :func:`data_fingerprint`)."""
    whole_rows: Any = field(default=None, repr=False)
    """Every column of the training file, read once (:func:`whole_training_rows`)."""
    whole_rows_read: bool = False

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def layout(self) -> RunLayout:
        """Where this run's stages read and write (:class:`tdmixup.core.layout.RunLayout`)."""
        return RunLayout(self.run_dir)


# Config fields that only stages from this one on read: ``--from-stage X`` may change them.
CHANGEABLE_FROM: dict[str, tuple[str, ...]] = {
    "datamap": (
        "dynamics.fraction",
        "dynamics.allow_overlap",
        "dynamics.stratify_regions",
        "dynamics.rank_by",
        "dynamics.flag_fraction",
        "aum.",
        "mixup.",
    ),
    "aum": ("aum.", "mixup."),
    "tdmixup": ("mixup.",),
    "report": (),
}
READ_BY_EVERY_STAGE: tuple[str, ...] = ("mixup.label_smoothing",)
"""``mixup.`` fields that stage 1 and the AUM runs read too: only ``--from-stage full`` changes
them."""


FOLDER_KEEPS: dict[tuple[str, str], Any] = {
    ("aum", "percentile"): 80.0,
    ("dynamics", "stratify_regions"): False,
    ("aum", "threshold_balance"): "equal",
}
"""Settings whose default changed, with the value a ``config.json`` written before the field
existed ran with. Left unset (None), such a setting takes the folder's stored value, so an
existing run folder keeps its behaviour (k: folders made before k depended on the task stored
80 for every task; regions: unstratified; threshold samples: equal per class, then
proportional when a class was short). A new folder gets :func:`with_task_defaults`."""


def read_saved_config(path: Path) -> tuple[RunConfig, list[str]]:
    """A run folder's ``config.json`` as a :class:`RunConfig`, and the ``section.field`` names
    of :data:`FOLDER_KEEPS` missing from the file (written before the field existed), which get
    the value the run used."""
    values = read_json(path)["config"]
    missing = []
    for (section, name), legacy in FOLDER_KEEPS.items():
        if name not in values.setdefault(section, {}):
            values[section][name] = legacy
            missing.append(f"{section}.{name}")
    return from_json_dict(values), missing


def _keep_folder_settings(config: RunConfig, saved: RunConfig) -> RunConfig:
    """``config`` with each unset (None) field of :data:`FOLDER_KEEPS` taken from ``saved``."""
    for section, name in FOLDER_KEEPS:
        if getattr(getattr(config, section), name) is None:
            part = replace(
                getattr(config, section), **{name: getattr(getattr(saved, section), name)}
            )
            config = replace(config, **{section: part})
    return config


def open_session(
    config: RunConfig,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    from_stage: str | None = None,
    keep_training_state: bool = False,
    require_tests: bool = True,
    has_from_stage: bool = True,
    report_to: ReportTo = "none",
) -> Session:
    """Check ``config.json``, load and tokenise the data once, then write ``config.json``; set up
    Accelerate (with the experiment tracker ``report_to``, :mod:`tdmixup.training.tracking`: each
    training stage is then one tracked run).

    A folder keeps its configuration: a different one is refused, except for the fields that
    only the stages from ``from_stage`` on read (:data:`CHANGEABLE_FROM`), which ``--from-stage``
    re-runs anyway. Settings left unset keep the folder's values (:data:`FOLDER_KEEPS`).
    Nothing is written (and ``overwrite`` deletes nothing) until the data and the
    tokenizer have loaded, so a run refused for a missing or broken input file leaves no
    ``config.json`` that would refuse the corrected command; and a folder in which nothing was
    trained (:func:`trained_nothing`: a command refused after this, e.g. ``tdmixup aum`` for
    statistics of another file) takes the new configuration instead of refusing it.

    ``require_tests=False`` accepts data without a test set (``tdmixup dynamics`` and ``aum``
    evaluate none); ``has_from_stage=False`` leaves ``--from-stage`` out of the hint of a refused
    folder (only ``tdmixup run`` has that option).
    """
    from tdmixup.data.tasks import load_task
    from tdmixup.model.classifier import check_input_length, load_tokenizer
    from tdmixup.strategies.step import check_batch_for_processes
    from tdmixup.training.loop import make_accelerator, seed_everything

    run_dir = Path(run_dir)
    saved = RunLayout(run_dir).config
    untrained = saved.exists() and not overwrite and trained_nothing(run_dir)
    if saved.exists() and not overwrite and not untrained:
        config = _with_saved_folder_settings(config, saved)
    config = with_task_defaults(config)
    accelerator = make_accelerator(
        report_to, run_dir, mixed_precision="fp16" if config.train.fp16 else "no"
    )
    record = _check_config(
        config,
        run_dir,
        overwrite=overwrite,
        from_stage=from_stage,
        has_from_stage=has_from_stage,
        untrained=untrained,
    )
    seed_everything(config.train.seed)
    with accelerator.main_process_first():  # a first download/extraction happens once
        task = load_task(config.data, seed=config.data.split_seed, require_tests=require_tests)
    tokenizer = load_tokenizer(config.model.name_or_path)
    max_len = config.data.max_seq_length
    check_input_length(config.model.name_or_path, tokenizer, max_len)

    def tok(ds: Any) -> TokenizedSet:
        return tokenize(ds, task.spec, tokenizer, max_length=max_len)

    mc = task.spec.kind == "multiple_choice"
    check_batch_for_processes(  # stage 4's strategy, refused before stage 1 trains
        config.mixup.strategy,
        config.train.mc_batch_size if mc else config.train.batch_size,
        accelerator.num_processes,
    )
    session = Session(
        config,
        run_dir,
        accelerator,
        tokenizer,
        task,
        tok(task.train),
        tok(task.dev),
        {name: tok(ds) for name, ds in task.tests.items()},
        keep_training_state=keep_training_state,
    )
    if record is not None and accelerator.is_main_process:
        if overwrite and run_dir.exists():
            shutil.rmtree(run_dir)
        if untrained:  # the refused command's own options go with its configuration
            (run_dir / TRAIN_ARGS).unlink(missing_ok=True)
        write_json(saved, {**record, "environment": environment_info(accelerator.num_processes)})
    accelerator.wait_for_everyone()
    check_shared_folder(accelerator, run_dir)  # several machines need one shared folder
    return session


def trained_nothing(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing but what a command writes before its first training
    stage starts (``config.json``, ``train_args.json``, ``tdmixup.fit``'s ``data/``): a command
    refused (or interrupted) after opening its session (an ``aum`` subset or statistics of
    another file, a ``train`` subset of unknown ids, Ctrl-C while tokenising) leaves such a
    folder, which must not refuse the corrected command."""
    kept = (CONFIG, TRAIN_ARGS, FIT_DATA)
    return run_dir.is_dir() and all(p.name in kept for p in run_dir.iterdir())


def _with_saved_folder_settings(config: RunConfig, saved: Path) -> RunConfig:
    """``config`` with the unset :data:`FOLDER_KEEPS` fields taken from the folder's
    ``config.json`` at ``saved``; warns when the file predates one of them."""
    stored, missing = read_saved_config(saved)
    kept = [
        f"{section}.{name} = {value!r}"
        for (section, name), value in FOLDER_KEEPS.items()
        if f"{section}.{name}" in missing and getattr(getattr(config, section), name) is None
    ]
    config = _keep_folder_settings(config, stored)
    if kept:
        log.warning(
            "%s was written before these options: the folder keeps %s, as it ran (use another "
            "--output-dir for the current defaults)",
            saved,
            ", ".join(kept),
        )
    return config


def with_task_defaults(config: RunConfig) -> RunConfig:
    """``config`` with the settings left unset filled in, so that ``config.json`` records the
    values a run used: AUM's k (the task's: 80, or 50 for SWAG and HellaSWAG), stratified regions
    (on) and threshold samples drawn uniformly. :func:`open_session` first gives an existing
    folder its own values (:data:`FOLDER_KEEPS`)."""
    from tdmixup.data.schema import DEFAULT_AUM_PERCENTILE
    from tdmixup.data.tasks import TASKS

    aum, dyn = config.aum, config.dynamics
    if aum.percentile is None:
        spec = TASKS.get(config.data.task.lower())
        aum = replace(
            aum, percentile=spec.aum_percentile if spec is not None else DEFAULT_AUM_PERCENTILE
        )
    if aum.threshold_balance is None:
        aum = replace(aum, threshold_balance="uniform")
    if dyn.stratify_regions is None:
        dyn = replace(dyn, stratify_regions=True)
    if aum == config.aum and dyn == config.dynamics:
        return config
    return replace(config, aum=aum, dynamics=dyn)


def _check_config(
    config: RunConfig,
    run_dir: Path,
    *,
    overwrite: bool,
    from_stage: str | None = None,
    has_from_stage: bool = True,
    untrained: bool = False,
) -> dict[str, Any] | None:
    """Refuse a folder made by another configuration; return what ``config.json`` must say
    (without the environment), or None when it already says it. ``untrained``: the folder
    trained nothing (:func:`trained_nothing`), so another configuration replaces its own."""
    path = RunLayout(run_dir).config
    if path.exists() and not overwrite:
        saved, _ = read_saved_config(path)
        if saved == config:
            return None
        if untrained:
            log.info("%s: replaced (written by a command that trained nothing)", path)
            return {"config": to_json_dict(config)}
        changes = _config_changes(to_json_dict(saved), to_json_dict(config))
        changed = [name for name, _, _ in changes]
        allowed = CHANGEABLE_FROM.get(from_stage or "", None) if from_stage != "full" else ("",)
        if (
            allowed is not None
            and from_stage != "full"
            and any(f.startswith(READ_BY_EVERY_STAGE) for f in changed)
        ):
            allowed = None  # stage 1 was trained with the old value
        if allowed is None or not all(f.startswith(allowed) for f in changed):
            diff = "; ".join(f"{name}: {old!r} → {new!r}" for name, old, new in changes)
            hint = (
                f" (--from-stage {from_stage} may change only {', '.join(allowed) or 'nothing'})"
                if allowed is not None
                else ""
            )
            raise PipelineError(
                f"{path} was written by a different configuration ({diff}){hint}; "
                "use another --output-dir"
                + (", --from-stage," if has_from_stage else "")
                + " or --overwrite to start this one afresh"
            )
        return {
            "config": to_json_dict(config),
            "changed_from_stage": {"stage": from_stage, "fields": changed},
        }
    return {"config": to_json_dict(config)}


def _config_changes(
    a: dict[str, Any], b: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """``(section.field, old, new)`` for every leaf that differs between two ``to_json_dict``
    trees."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_changes(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out


def whole_training_rows(session: Session) -> Any:
    """Every column of the run's own training file by ``sample_id``
    (:func:`tdmixup.data.tasks.train_file_rows`), read once per session; None without one."""
    from tdmixup.data.tasks import train_file_rows

    if not session.whole_rows_read:
        session.whole_rows = train_file_rows(session.config.data)
        session.whole_rows_read = True
    return session.whole_rows


def data_fingerprint(session: Session, *, with_labels: bool = True) -> Any:
    """The :class:`tdmixup.dynamics.fingerprint.DataFingerprint` of the session's training rows
    (text hashes by id, the task's label names unless ``with_labels`` is False, e.g. for AUM's
    relabelled runs, and the column mapping as JSON), stored with every dynamics table."""
    import json

    from tdmixup.dynamics.fingerprint import DataFingerprint, hashes_by_id

    spec, data = session.task.spec, session.config.data
    columns = user_mapping(data, spec.name)
    if session.fingerprint_hashes is None:
        session.fingerprint_hashes = hashes_by_id(session.task.train)
    return DataFingerprint(
        session.fingerprint_hashes,
        label_names=spec.label_names if with_labels else (),
        columns=json.dumps({"task": spec.name, "kind": spec.kind, "columns": columns}),
    )


# --- stage bookkeeping ---------------------------------------------------------------------
def is_done(stage_dir: Path) -> bool:
    return (stage_dir / DONE).exists()


def stage_is_done(session: Session, stage_dir: Path) -> bool:
    """:func:`is_done` as the main process sees it, on every process (skip or train together)."""
    return main_process_decides(session.accelerator, is_done(stage_dir))


def mark_done(session: Session, stage_dir: Path, summary: dict[str, Any]) -> None:
    if session.is_main:
        write_json(stage_dir / DONE, summary)
    session.accelerator.wait_for_everyone()


def read_done(stage_dir: Path) -> dict[str, Any]:
    return dict(read_json(stage_dir / DONE))


# --- one training stage --------------------------------------------------------------------
def train_and_evaluate(
    session: Session,
    stage_dir: Path,
    *,
    strategy: Strategy,
    train_sets: list[TokenizedSet],
    dynamics_mode: DynamicsMode | None = None,
    evaluate: bool = True,
    num_labels: int | None = None,
    keep_checkpoint: bool = True,
    train_config: TrainConfig | None = None,
    mixup_config: MixupConfig | None = None,
    batch_columns: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train one model on ``train_sets`` with ``strategy``, then evaluate it on every test set.

    ``train_config`` replaces the session's loop settings for this stage only (an AUM run's own
    epoch count; an experiment row's step count), ``mixup_config`` its MixUp settings (an
    experiment row's loss weights or label smoothing; recorded in ``done.json``); ``batch_columns``
    adds per-row columns to every training batch (see :func:`tdmixup.training.loop.train`). Skipped
    (its ``done.json`` is returned) when the
    stage finished before; resumed from the last epoch checkpoint when it was interrupted.
    With a tracker (``open_session(report_to=...)``) the stage is one tracked run, which also gets
    dev accuracy and ECE after each epoch when ``evaluate`` (:mod:`tdmixup.training.tracking`).
    """
    from tdmixup.model.classifier import build_classifier
    from tdmixup.training.loop import seed_everything

    if stage_is_done(session, stage_dir):
        drop_training_state(session, stage_dir)
        return read_done(stage_dir)
    for s in train_sets:
        if len(s) == 0:
            raise PipelineError(f"{stage_dir.name}: a training set is empty; nothing to train on")
    cfg = session.config
    seed_everything(cfg.train.seed)
    model = build_classifier(
        cfg.model, session.task.spec.kind, num_labels or session.task.spec.num_labels
    )
    model.info = checkpoint_info(session, num_labels)
    mixup_cfg = replace(mixup_config or cfg.mixup, strategy=strategy)
    train_cfg = train_config or cfg.train
    # warns before training
    mix = _train_class_mix(session, stage_dir, train_sets, num_labels, warn=evaluate)
    stage = tracking.stage_name(session.run_dir, stage_dir, strategy)
    tracked = {"stage": stage, **to_json_dict(replace(cfg, train=train_cfg, mixup=mixup_cfg))}
    with tracking.stage_run(
        session.accelerator, session.run_dir, stage, tracking.flat_config(tracked)
    ):
        result = _train_stage_model(
            session,
            stage_dir,
            model,
            train_sets,
            train_cfg=train_cfg,
            mixup_cfg=mixup_cfg,
            dynamics_mode=dynamics_mode,
            num_labels=num_labels,
            evaluate=evaluate,
            batch_columns=batch_columns,
        )
        summary: dict[str, Any] = {
            "strategy": strategy,
            "train_sizes": [len(s) for s in train_sets],
            **mix,
            "train_seconds": result.seconds,
            "history": result.history,
            "dynamics_mode": dynamics_mode,
        }
        if mixup_config is not None:
            summary["mixup"] = to_json_dict(mixup_cfg)
        if evaluate:
            summary.update(_evaluate_stage(session, stage_dir, result))
    if not keep_checkpoint and session.is_main:
        shutil.rmtree(stage_dir / CHECKPOINT, ignore_errors=True)
    mark_done(session, stage_dir, summary)
    # only after done.json: a kill before it still resumes exactly
    drop_training_state(session, stage_dir)
    return summary


def _train_stage_model(
    session: Session,
    stage_dir: Path,
    model: Classifier,
    train_sets: list[TokenizedSet],
    *,
    train_cfg: TrainConfig,
    mixup_cfg: MixupConfig,
    dynamics_mode: DynamicsMode | None,
    num_labels: int | None,
    evaluate: bool,
    batch_columns: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> TrainResult:
    """Train ``model`` into ``stage_dir/checkpoint`` (resuming), recording its dynamics if asked."""
    from tdmixup.training.loop import train

    return train(
        model,
        train_sets,
        train_config=train_cfg,
        mixup_config=mixup_cfg,
        out_dir=stage_dir,
        accelerator=session.accelerator,
        dynamics_mode=dynamics_mode,
        dynamics_path=stage_dir / DYNAMICS if dynamics_mode else None,
        tokenizer=session.tokenizer,
        task_name=session.task.spec.name,
        dynamics_fingerprint=data_fingerprint(session, with_labels=num_labels is None)
        if dynamics_mode
        else None,
        resume=True,
        on_epoch_end=_tracked_dev_metrics(session) if evaluate else None,
        batch_columns=batch_columns,
    )


def checkpoint_info(session: Session, num_labels: int | None = None) -> CheckpointInfo:
    """What a stage's checkpoint records about its task: label names (an AUM pass's extra class
    is ``"threshold"``), the task, the columns of its files and the truncation length."""
    from tdmixup.model.classifier import CheckpointInfo

    spec, data = session.task.spec, session.config.data
    names = tuple(spec.label_names)
    if num_labels is not None and num_labels > len(names):
        names += ("threshold",)
    return CheckpointInfo(
        label_names=names,
        task=spec.name,
        columns=tuple(user_mapping(data, spec.name).items()),
        max_seq_length=data.max_seq_length,
    )


def dev_description(session: Session) -> dict[str, Any]:
    """Which dev set a temperature was fitted on: its size, where its rows came from and a
    sha256 of its sample ids (the same ids give the same hash)."""
    import hashlib

    data = session.config.data
    ids = np.sort(session.dev.sample_ids).astype("<i8")
    source = (
        data.dev_file
        if data.dev_file
        else f"held out from the training source of task {data.task}"
        + (f" ({data.train_file})" if data.train_file else "")
        + f", dev_size {data.dev_size}, split_seed {data.split_seed}"
    )
    return {
        "set": "dev",
        "n": len(session.dev),
        "source": source,
        "sample_ids_sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
    }


def _evaluate_stage(session: Session, stage_dir: Path, result: TrainResult) -> dict[str, Any]:
    """``metrics`` (every test set, before and after temperature scaling on dev, also written to
    ``metrics.json``) and ``eval_seconds`` of a trained stage; warns when the model is near
    chance and sends the metrics to the tracker, if any."""
    from tdmixup.evaluation.sets import evaluate_sets
    from tdmixup.training.optim import precision_of

    eval_start = time.perf_counter()
    metrics = evaluate_sets(
        result.model,
        session.tests,
        dev=session.dev,
        accelerator=session.accelerator,
        batch_size=session.config.train.eval_batch_size,
        out_dir=stage_dir,
        precision=precision_of(session.config.train),
    )
    seconds = time.perf_counter() - eval_start
    temperature = metrics.get("temperature")
    if temperature is not None and session.is_main and (stage_dir / CHECKPOINT).exists():
        from tdmixup.model.classifier import record_temperature

        record_temperature(stage_dir / CHECKPOINT, temperature, dev_description(session))
    check = metrics.get("learning_check") or {}
    if check.get("near_chance") and session.is_main:
        log.warning("%s: %s", stage_dir.name, check["message"])
    if tracking.tracking_on(session.accelerator):
        steps = sum(int(entry.get("steps", 0)) for entry in result.history)
        tracking.log_final_metrics(session.accelerator, metrics, step=steps)
    return {"metrics": metrics, "eval_seconds": seconds}


def _tracked_dev_metrics(session: Session) -> EpochCallback | None:
    """With a tracker: after each epoch, ``dev_accuracy`` and ``dev_ece`` (a fraction, 10 bins)
    of the model on the session's dev set (one inference pass; it draws no random numbers, so
    the training is the same as without it). None without a tracker or dev set."""
    if not tracking.tracking_on(session.accelerator) or len(session.dev) == 0:
        return None

    def dev_metrics(epoch: int, model: Classifier) -> dict[str, float]:
        from tdmixup.evaluation.calibration import accuracy, expected_calibration_error
        from tdmixup.model.predict import predict_logits

        dev = session.dev
        ids, logits = predict_logits(
            model,
            dev,
            batch_size=session.config.train.eval_batch_size,
            accelerator=session.accelerator,
            desc="dev",
        )
        labels = dev.labels[dev.positions_of(ids)]
        return {
            "dev_accuracy": accuracy(labels, logits),
            "dev_ece": expected_calibration_error(labels, logits),
        }

    return dev_metrics


def _train_class_mix(
    session: Session,
    stage_dir: Path,
    train_sets: list[TokenizedSet],
    num_labels: int | None,
    *,
    warn: bool,
) -> dict[str, Any]:
    """``train_class_counts`` (one ``{class: count}`` per training set, as trained: an AUM pass's
    fake class is ``"threshold"``) and ``class_warnings`` (single and pair tasks, when ``warn``)."""
    from tdmixup.core.classmix import class_counts, class_mix_warnings, log_warnings

    spec = session.task.spec
    names = list(spec.label_names)
    if is_classification(spec.kind) and (num_labels or spec.num_labels) > spec.num_labels:
        names.append("threshold")
    counts = [class_counts(s.labels, names) for s in train_sets]
    warnings: list[str] = []
    if warn and is_classification(spec.kind):
        reference = class_counts(session.train.labels, names)
        for i, c in enumerate(counts):
            warnings += [
                f"{stage_dir.name}: {w}"
                for w in class_mix_warnings(
                    c, reference, what=f"training set {i + 1} of {len(counts)}"
                )
            ]
        if session.is_main:
            log_warnings(warnings)
    return {"train_class_counts": counts, "class_warnings": warnings}


def drop_training_state(session: Session, stage_dir: Path) -> None:
    """Delete a finished stage's optimizer/scheduler/RNG state (``checkpoint/training_state.pt``)
    unless the session keeps it: later stages read only the model weights (MiniLM: 91 MB of a
    272 MB checkpoint)."""
    if not session.keep_training_state and session.is_main:
        (stage_dir / CHECKPOINT / TRAINING_STATE).unlink(missing_ok=True)


def class_mix(
    session: Session,
    sets: dict[str, np.ndarray],
    *,
    reference: str | None = None,
    warn_for: tuple[str, ...] | None = None,
    context: str = "",
) -> ClassMix:
    """Per-class counts (by label name) of the training-sample id ``sets`` and warnings for a
    class absent or far below its training-set share (single and pair tasks; logged by the main
    process) (:func:`tdmixup.core.classmix.describe_class_mix`)."""
    from tdmixup.core.classmix import describe_class_mix, log_warnings

    spec = session.task.spec
    mix = describe_class_mix(
        sets,
        sample_ids=session.train.sample_ids,
        labels=session.train.labels,
        label_names=spec.label_names,
        reference=reference,
        warn_for=warn_for if is_classification(spec.kind) else (),
        context=context,
    )
    if session.is_main:
        log_warnings(mix["warnings"])
    return mix
