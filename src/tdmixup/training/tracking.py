"""Experiment tracking (``--report-to``): TensorBoard, W&B or MLflow through Accelerate's trackers.

Each training stage of a run folder is one tracked run: the project is the run folder's name,
the run is the stage (``stage1_full``, ``aum_easy/pass1``, ``stage4_tdmixup``; ``tdmixup train``'s
folder is ``train_<strategy>``). Its configuration is stored with the run, and it logs:

* every :data:`LOG_EVERY_STEPS` optimiser steps: ``train/loss`` (the mean over the steps since
  the last point; with several processes, the main process's share of each global batch, an
  unbiased estimate that needs no all-reduce) and ``train/learning_rate`` (the rate those steps
  ended with);
* every epoch: ``epoch/train_loss``, ``epoch/train_accuracy`` and, for a stage that is
  evaluated, ``epoch/dev_accuracy`` and ``epoch/dev_ece`` (one extra pass over dev per epoch,
  made only when tracking);
* at the end of the stage: ``final/<set>/accuracy``, ``final/<set>/ece`` (before temperature
  scaling), ``final/<set>/ece_scaled`` (after) and the other metrics of ``metrics.json``.

The x-axis (``step``) is the optimiser step. Only the main process logs (Accelerate keeps the
trackers there), and logging adds no device sync: the loss is the running sum the loop keeps
anyway. Local files go under the run folder's ``tracking/`` (:data:`tdmixup.core.layout.TRACKING`):
``tensorboard/<stage>/``, ``wandb/`` (``WANDB_MODE=offline`` works without a network) and
``mlflow.db`` (MLflow's local SQLite store, unless ``MLFLOW_TRACKING_URI`` names another; MLflow
3 refuses its old ``file://`` store unless ``MLFLOW_ALLOW_FILE_STORE=true``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tdmixup.core.config import ReportTo
from tdmixup.core.layout import MLFLOW_ARTIFACTS, MLFLOW_DB, TENSORBOARD_DIR, TRACKING

__all__ = [
    "LOG_EVERY_STEPS",
    "TRACKER_PACKAGES",
    "TrackingError",
    "accelerator_options",
    "flat_config",
    "log_epoch",
    "log_final_metrics",
    "log_steps",
    "mlflow_store",
    "require_tracker",
    "stage_run",
    "tracking_on",
]

LOG_EVERY_STEPS = 20
"""Optimiser steps between two ``train/loss`` points (the progress bar's interval too)."""

TRACKER_PACKAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "tensorboard": (("tensorboard", "tensorboard"),),
    "wandb": (("wandb", "wandb"),),
    "mlflow": (("mlflow", "mlflow-skinny"), ("sqlalchemy", "sqlalchemy"), ("alembic", "alembic")),
}
"""``--report-to`` value → its (module imported, package to ``pip install``) pairs; MLflow's local
store needs SQLAlchemy and Alembic (not when ``MLFLOW_TRACKING_URI`` names another store)."""


class TrackingError(RuntimeError):
    """A tracker cannot be used (its package is missing); the message says what to install."""


def require_tracker(report_to: ReportTo) -> None:
    """Fail at once, in one line, when ``report_to``'s package is not installed.

    (Accelerate itself only warns and then tracks nothing.)

    Raises:
        TrackingError: naming the option and the package to install.
        ValueError: for a value other than ``none`` or a :data:`TRACKER_PACKAGES` key.
    """
    if report_to == "none":
        return
    if report_to not in TRACKER_PACKAGES:
        raise ValueError(
            f"--report-to {report_to!r} is not one of none, {', '.join(TRACKER_PACKAGES)}"
        )
    needed = TRACKER_PACKAGES[report_to]
    if report_to == "mlflow" and os.environ.get("MLFLOW_TRACKING_URI"):
        needed = needed[:1]
    missing = [package for module, package in needed if importlib.util.find_spec(module) is None]
    if missing:
        raise TrackingError(
            f"--report-to {report_to} needs the package {', '.join(missing)}, which is not "
            f"installed: pip install 'tdmixup[tracking]' (or pip install {' '.join(missing)})"
        )


def accelerator_options(report_to: ReportTo, run_dir: Path) -> dict[str, Any]:
    """Keyword arguments for :class:`accelerate.Accelerator` that make it track to ``report_to``
    (``log_with`` and a ``project_config`` whose logging folder is ``run_dir/tracking``);
    ``{}`` for ``none``."""
    if report_to == "none":
        return {}
    from accelerate.utils import ProjectConfiguration

    return {
        "log_with": report_to,
        "project_config": ProjectConfiguration(
            project_dir=str(run_dir), logging_dir=str(run_dir / TRACKING / TENSORBOARD_DIR)
        ),
    }


def tracking_on(accelerator: Any) -> bool:
    """Whether ``accelerator`` was made with a tracker (true on every process, not only the
    main one)."""
    return bool(getattr(accelerator, "log_with", None))


def stage_name(run_dir: Path, stage_dir: Path, strategy: str) -> str:
    """A stage's run name: its folder relative to the run folder (``aum_easy/pass1``), or
    ``train_<strategy>`` when the stage is the run folder itself (``tdmixup train``)."""
    try:
        relative = stage_dir.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        relative = stage_dir.name
    return relative if relative not in ("", ".") else f"train_{strategy}"


@contextmanager
def stage_run(
    accelerator: Any, run_dir: Path, stage: str, config: Mapping[str, Any]
) -> Iterator[None]:
    """Track one stage as one run of the project ``run_dir.name`` named ``stage``.

    Opens the run with ``config`` (flat, :func:`flat_config`), yields, then finishes the run (its
    files are complete afterwards) and forgets the tracker, so that the next stage opens a new
    run. Does nothing when ``accelerator`` tracks nothing. The process group stays up (Accelerate's
    ``end_training`` would also destroy it; the command does that at its end).
    """
    if not tracking_on(accelerator):
        yield
        return
    project = run_dir.resolve().name
    tracking_dir = run_dir / TRACKING
    if accelerator.is_main_process:
        tracking_dir.mkdir(parents=True, exist_ok=True)
        _point_mlflow_at(accelerator, tracking_dir)
    accelerator.init_trackers(  # main process only (Accelerate)
        project_name=stage if _is(accelerator, "tensorboard") else project,
        config=dict(config),
        init_kwargs={
            "wandb": {"name": stage, "group": project, "dir": str(tracking_dir)},
            "mlflow": {
                "run_name": stage,
                "logging_dir": (tracking_dir / MLFLOW_ARTIFACTS).resolve().as_uri(),
            },
        },
    )
    try:
        yield
    finally:
        for tracker in accelerator.trackers:
            tracker.finish()
        accelerator.trackers = []


def _is(accelerator: Any, name: str) -> bool:
    return any(str(t) == name for t in accelerator.log_with)


def _point_mlflow_at(accelerator: Any, tracking_dir: Path) -> None:
    """MLflow's tracking URI: the user's (``MLFLOW_TRACKING_URI``), else the SQLite store
    ``tracking/mlflow.db`` (local and offline; set in mlflow's module state, not in
    ``os.environ``)."""
    if not _is(accelerator, "mlflow") or os.environ.get("MLFLOW_TRACKING_URI"):
        return
    import mlflow

    mlflow.set_tracking_uri(mlflow_store(tracking_dir.parent))


def mlflow_store(run_dir: Path) -> str:
    """The MLflow tracking URI a run folder's stages log to when ``MLFLOW_TRACKING_URI`` is unset:
    ``sqlite:///<run_dir>/tracking/mlflow.db`` (read it with
    ``mlflow.tracking.MlflowClient(tracking_uri=...)`` or ``mlflow ui --backend-store-uri ...``)."""
    return f"sqlite:///{(run_dir / TRACKING / MLFLOW_DB).resolve()}"


def flat_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """A nested config (``to_json_dict``) as one level of ``section.field`` keys whose values
    every tracker stores: numbers, strings and booleans stay, anything else (None, lists)
    becomes its ``repr``-like string.

    >>> flat_config({"train": {"lr": 2e-05, "size": None}, "seed": 1})
    {'train.lr': 2e-05, 'train.size': 'None', 'seed': 1}
    """
    out: dict[str, int | float | str | bool] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def log_steps(accelerator: Any, *, loss: float, learning_rate: float, step: int) -> None:
    """One ``train/`` point: ``loss`` (mean over the steps since the last point) and the
    learning rate that step ``step`` used, at optimiser step ``step`` (1-based, counted over all
    epochs)."""
    accelerator.log({"train/loss": loss, "train/learning_rate": learning_rate}, step=step)


def log_epoch(accelerator: Any, entry: Mapping[str, Any], *, step: int) -> None:
    """An epoch's ``history`` entry (:func:`tdmixup.training.epoch_totals.epoch_entry` plus the
    ``on_epoch_end`` metrics) as ``epoch/<name>`` at optimiser step ``step``; ``steps`` (a
    per-process count) is left out."""
    values = {
        f"epoch/{k}": float(v)
        for k, v in entry.items()
        if k != "steps" and isinstance(v, int | float) and not isinstance(v, bool)
    }
    accelerator.log(values, step=step)


def log_final_metrics(accelerator: Any, metrics: Mapping[str, Any], *, step: int) -> None:
    """A stage's :func:`tdmixup.evaluation.sets.evaluate_sets` result as ``final/<set>/<metric>``
    (accuracy, ECE before and after temperature scaling, NLL, Brier, ...) and
    ``final/temperature``, at optimiser step ``step`` (the stage's last)."""
    values: dict[str, float] = {}
    if isinstance(metrics.get("temperature"), int | float):
        values["final/temperature"] = float(metrics["temperature"])
    for set_name, scores in (metrics.get("sets") or {}).items():
        for key, value in scores.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[f"final/{set_name}/{key}"] = float(value)
    accelerator.log(values, step=step)
