"""One call on in-memory data: :func:`fit` trains the whole method (or any strategy) on a
``datasets.Dataset``, a pandas DataFrame or a list of dicts and returns a :class:`FitResult`.

``fit`` writes the same run folder as the command line. The rows, checked by
:func:`tdmixup.data.inmemory.dataset_from_records`, are written as JSONL under
``output_dir/data/`` (atomically, in the user's own column names), and the run is a ``custom``
task that reads those files, exactly as ``tdmixup run --task custom --train-file …`` would:
``config.json`` repeats the run, and a second ``fit()`` on the same folder skips (or resumes) the
finished stages. A folder that holds a run on other data is refused in one line naming the first
differing row. :func:`load_run` reads a finished folder back into a :class:`FitResult`::

    import tdmixup
    result = tdmixup.fit(df, text="sentence", label="label", output_dir="runs/reviews")
    result.classifier.predict(["A lovely film."]), result.metrics["stage4_tdmixup"]["test"]["ece"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import pandas as pd

from tdmixup.core import config as C
from tdmixup.core.layout import (
    AUM_TABLE,
    CHECKPOINT,
    CONFIG,
    DONE,
    DYNAMICS,
    FIT_DATA,
    SUMMARY,
    TRAIN_ARGS,
    RunLayout,
)
from tdmixup.core.runio import atomic_write_bytes, read_json, write_json
from tdmixup.data.inmemory import Records, dataset_from_records
from tdmixup.data.schema import DataError, TaskSpec, is_classification

if TYPE_CHECKING:
    from datasets import Dataset

    from tdmixup.inference.classifier import TextClassifier
    from tdmixup.run.session import Session

__all__ = ["DATA_DIR", "PIPELINE_STRATEGIES", "FitResult", "config_overrides", "fit", "load_run"]

log = logging.getLogger("tdmixup.run.fitting")

DATA_DIR = FIT_DATA
"""``output_dir/data/``: the rows ``fit`` trained on (``train.jsonl``, ``dev.jsonl``,
``test_<name>.jsonl``), the files its ``config.json`` names."""
PIPELINE_STRATEGIES = ("tdmixup", "aum_saliency")
"""Strategies that run the whole pipeline (``tdmixup run``); the others train one model on all
rows (``tdmixup train --strategy S``), recording dynamics for the statistics."""


@dataclass
class FitResult:
    """What :func:`fit` (or :func:`load_run`) returns.

    Attributes:
        classifier: the final stage's model (a :class:`tdmixup.inference.TextClassifier`:
            ``predict_proba`` calibrated with the temperature fitted on dev, ``predict``).
        metrics: stage → set → ``{"n", "accuracy", "ece", "ece_scaled", …}`` (accuracy and ECE
            as fractions; ``*_scaled``: after temperature scaling on dev), e.g.
            ``metrics["stage1_full"]["test"]["accuracy"]``.
        statistics: the data map's per-sample table indexed by ``sample_id``: ``confidence``,
            ``variability``, ``correctness``, ``aum``, ``prediction``, … and ``region``
            (``easy`` / ``ambiguous`` / ``hard`` / ``""``); ``None`` without dynamics.
        flagged_ids: ``[F]`` int64 ids AUM flagged (empty for strategies without AUM).
        output_dir: the run folder.
        stage: the folder of the final stage (its ``checkpoint/`` is ``classifier``'s).
    """

    classifier: TextClassifier
    metrics: dict[str, dict[str, dict[str, Any]]]
    statistics: pd.DataFrame | None
    flagged_ids: np.ndarray
    output_dir: Path
    stage: Path


def config_overrides(base: C.RunConfig, overrides: Mapping[str, Any]) -> C.RunConfig:
    """``base`` with ``overrides`` applied; each key is a command-line option's name with
    ``_`` for ``-`` (``epochs``, ``batch_size``, ``aum_percentile``, ``dynamics_fraction``).

    >>> cfg = config_overrides(C.RunConfig(), {"epochs": 1, "aum_epochs": 2})
    >>> cfg.train.epochs, cfg.aum.epochs
    (1, 2)
    >>> config_overrides(C.RunConfig(), {"epoch": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: fit() got an unknown option 'epoch' (options: the command line's, e.g. epochs=3, ...)
    """
    names: dict[str, tuple[str, str]] = {}
    for section, cls in C.SECTIONS.items():
        for f in dataclasses.fields(cls):
            option = C.cli_option(section, f.name).lstrip("-").replace("-", "_")
            names[option] = (section, f.name)
    parts: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if key not in names:
            raise TypeError(
                f"fit() got an unknown option {key!r} (options: the command line's, e.g. "
                "epochs=3, batch_size=16, learning_rate=5e-05, aum_percentile=80, "
                "dynamics_fraction=0.33)"
            )
        section, name = names[key]
        parts.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(
        base, **{s: dataclasses.replace(getattr(base, s), **v) for s, v in parts.items()}
    )


def _to_records(
    dataset: Dataset, spec: TaskSpec, columns: Mapping[str, str], *, ids: bool
) -> list[dict[str, Any]]:
    """Schema rows back in the user's column names (labels by name for classification)."""
    cols = dataset.to_dict()
    n = len(dataset)
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    if ids:
        for row, v in zip(out, cols["sample_id"], strict=True):
            row[columns["sample_id"]] = int(v)
    for field in ("text_a", "text_b", "context"):
        if field in cols and field in columns:
            for row, v in zip(out, cols[field], strict=True):
                row[columns[field]] = v
    if "endings" in cols:
        names = columns["endings"].split(",")
        for row, ends in zip(out, cols["endings"], strict=True):
            if len(names) > 1:
                row.update({name: e for name, e in zip(names, ends, strict=False)})
            else:
                row[names[0]] = list(ends)
    for row, y in zip(out, cols["label"], strict=True):
        row[columns["label"]] = spec.label_names[int(y)] if is_classification(spec.kind) else int(y)
    return out


def _named_sets(test: Any) -> bool:
    """``test`` is ``{name: data}`` (not one dict of columns): its values are data sets."""
    if not isinstance(test, Mapping) or not test:
        return False
    return all(
        isinstance(v, (pd.DataFrame, Mapping))
        or hasattr(v, "column_names")
        or (
            isinstance(v, Sequence)
            and not isinstance(v, str)
            and bool(v)
            and isinstance(v[0], Mapping)
        )
        for v in test.values()
    )


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _check_data(path: Path, data: bytes) -> bool:
    """Whether ``path`` must be written (absent); an existing different file (a run on other
    data) is refused in one line naming its first differing row."""
    if not path.exists():
        return True
    old = path.read_bytes()
    if old == data:
        return False
    a, b = old.splitlines(), data.splitlines()
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    where = f"row {first}" if first is not None else f"{len(a)} rows, now {len(b)}"
    raise DataError(
        f"{path}: this folder holds a run on other data (first difference: {where}); use "
        "another output_dir, or overwrite=True to start it again"
    )


def fit(
    train: Records,
    dev: Records | None = None,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str = "label",
    context: str | None = None,
    endings: str | Sequence[str] | None = None,
    sample_id: str | None = None,
    label_names: Sequence[str] | None = None,
    strategy: C.Strategy = "tdmixup",
    output_dir: str | Path,
    test: Records | Mapping[str, Records] | None = None,
    model: str | None = None,
    profile: str = "cpu-small",
    seed: int | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> FitResult:
    """Train on in-memory rows and return the classifier, metrics, statistics and flags.

    The task kind follows the columns given (as :func:`tdmixup.dataset_from_records`): ``text``
    alone is single-sentence, ``text`` + ``text_pair`` a pair task, ``context`` + ``endings``
    multiple choice.

    Args:
        train: a ``datasets.Dataset``, a pandas DataFrame, a list of dicts or a dict of columns.
        dev: the dev set (temperature fitting, dev metrics), same columns; default: the last
            ``dev_size`` training rows held out (``dev_size`` defaults to a fifth of the rows,
            at most the profile's 500).
        text, text_pair, label, context, endings, sample_id, label_names: the columns, as
            :func:`tdmixup.dataset_from_records` (``label_names`` fixes the class order).
        strategy: ``"tdmixup"`` (default) or ``"aum_saliency"`` run every stage of ``tdmixup
            run``; ``"none"``, ``"mixup"``, ``"manifold"``, ``"kong"``, ``"random_pairs"`` train
            one model on all rows as ``tdmixup train --strategy S --record-dynamics`` does.
        output_dir: the run folder (the CLI's ``--output-dir``).
        test: a test set, or ``{name: data}`` for several (each evaluated, by name).
        model: the encoder (``--model``; default: the offline MiniLM).
        profile: the starting configuration (``cpu-small`` or ``paper``); every training and
            test row is used whatever the profile (``train_size=N`` / ``test_size=N`` to cut).
        seed: ``--seed``.
        overwrite: delete a previous run in ``output_dir`` first (``--overwrite``).
        **overrides: any command-line option, ``-`` written ``_``: ``epochs=3``,
            ``batch_size=16``, ``learning_rate=2e-5``, ``aum_percentile=50``, ….

    Returns:
        :class:`FitResult` of the final stage (``stage4_tdmixup`` for the whole method).

    Raises:
        DataError: one line for a bad row or column, or a folder holding a run on other data.
        TypeError: an unknown option.
    """
    from tdmixup.run.pipeline import open_session, run_pipeline

    if strategy not in get_args(C.Strategy):
        raise ValueError(f"strategy must be one of {', '.join(get_args(C.Strategy))}")
    out = Path(output_dir)
    columns = _user_columns(
        text=text,
        text_pair=text_pair,
        context=context,
        endings=endings,
        label=label,
        sample_id=sample_id,
    )
    kw: dict[str, Any] = {
        "text": text,
        "text_pair": text_pair,
        "label": label,
        "context": context,
        "endings": endings,
    }
    data = _rows_as_jsonl(
        train, dev, test, columns, kw, sample_id=sample_id, label_names=label_names
    )
    _write_data_files(out, data.files, overwrite=overwrite)
    cfg = _fit_config(out, data, columns, profile=profile, has_dev=dev is not None)
    extra = dict(overrides)
    if model is not None:
        extra["model"] = model
    if seed is not None:
        extra["seed"] = seed
    if strategy != "tdmixup":  # as `tdmixup run`: the default leaves mixup.strategy as it is
        extra["strategy"] = strategy
    cfg = config_overrides(cfg, extra)

    pipeline = strategy in PIPELINE_STRATEGIES
    session = open_session(cfg, out, require_tests=bool(data.test_names), has_from_stage=False)
    if pipeline:
        run_pipeline(session)
    else:
        _train_one_model(session, out, strategy, cfg)
    session.accelerator.wait_for_everyone()
    return load_run(out)


def _user_columns(
    *,
    text: str | None,
    text_pair: str | None,
    context: str | None,
    endings: str | Sequence[str] | None,
    label: str,
    sample_id: str | None,
) -> dict[str, str]:
    """Schema field → the user's column name (the ``--column`` mapping written to the config)."""
    columns: dict[str, str] = {
        k: v
        for k, v in (
            ("text_a", text),
            ("text_b", text_pair),
            ("context", context),
            ("endings", endings if isinstance(endings, str) or endings is None else ","),
            ("label", label),
        )
        if v is not None
    }
    if endings is not None and not isinstance(endings, str):
        columns["endings"] = ",".join(endings)
    columns["sample_id"] = sample_id or "sample_id"
    return columns


@dataclass(frozen=True)
class _FitData:
    """:func:`fit`'s rows, checked and turned into the JSONL files its config names."""

    files: dict[str, bytes]  # file stem (``train``, ``dev``, ``test_<name>``) → JSONL bytes
    num_train: int  # training rows
    label_names: Sequence[str] | None  # class names (None for multiple choice)
    test_names: list[str]  # the test sets' names, in order


def _rows_as_jsonl(
    train: Records,
    dev: Records | None,
    test: Records | Mapping[str, Records] | None,
    columns: dict[str, str],
    kw: dict[str, Any],
    *,
    sample_id: str | None,
    label_names: Sequence[str] | None,
) -> _FitData:
    """Check every set's rows (:func:`dataset_from_records`) and write them as JSONL bytes."""
    train_ds, spec = dataset_from_records(train, **kw, sample_id=sample_id, label_names=label_names)
    names = spec.label_names if is_classification(spec.kind) else None
    files: dict[str, bytes] = {"train": _jsonl(_to_records(train_ds, spec, columns, ids=True))}
    if dev is not None:
        dev_ds, _ = dataset_from_records(dev, **kw, label_names=names)
        files["dev"] = _jsonl(_to_records(dev_ds, spec, columns, ids=False))
    tests: dict[str, Records] = {}
    if test is not None:
        tests = dict(test) if _named_sets(test) else {"test": test}  # type: ignore[arg-type]
    for name, rows in tests.items():
        test_ds, _ = dataset_from_records(rows, **kw, label_names=names)
        files[f"test_{name}"] = _jsonl(_to_records(test_ds, spec, columns, ids=False))
    return _FitData(files, len(train_ds), names, list(tests))


def _write_data_files(out: Path, files: dict[str, bytes], *, overwrite: bool) -> None:
    """Write ``out/data/<name>.jsonl`` (main process), refusing a folder with other data."""
    from accelerate import PartialState

    state = PartialState()  # under `accelerate launch`: every process checks, the main one writes
    data_dir = out / DATA_DIR
    if overwrite and (out / CONFIG).exists() and state.is_main_process:
        import shutil

        shutil.rmtree(out)
    state.wait_for_everyone()
    for name, content in files.items():
        path = data_dir / f"{name}.jsonl"
        if (overwrite or _check_data(path, content)) and state.is_main_process:
            atomic_write_bytes(path, content)
    state.wait_for_everyone()


def _fit_config(
    out: Path, data: _FitData, columns: dict[str, str], *, profile: str, has_dev: bool
) -> C.RunConfig:
    """The ``profile``'s configuration for a ``custom`` task reading ``out/data/``'s files."""
    data_dir = out / DATA_DIR
    base = C.profile_config(profile)
    data_values: dict[str, Any] = {
        "task": "custom",
        "train_file": str(data_dir / "train.jsonl"),
        "dev_file": str(data_dir / "dev.jsonl") if has_dev else None,
        "test_files": tuple(f"{n}={data_dir / f'test_{n}.jsonl'}" for n in data.test_names),
        "columns": tuple(columns.items()),
        "label_names": tuple(data.label_names) if data.label_names else (),
        "train_size": None,
        "test_size": None,  # the test sets given are evaluated whole, whatever the profile
    }
    if not has_dev:
        data_values["dev_size"] = max(1, min(base.data.dev_size, data.num_train // 5))
    return dataclasses.replace(base, data=dataclasses.replace(base.data, **data_values))


def _train_one_model(session: Session, out: Path, strategy: C.Strategy, cfg: C.RunConfig) -> None:
    """``tdmixup train --strategy S --record-dynamics``: one model on all rows, in ``out``."""
    from tdmixup.run.pipeline import train_and_evaluate

    args: dict[str, Any] = {
        "strategy": strategy,
        "record_dynamics": cfg.dynamics.mode,
        "subsets": [],
    }
    if (out / TRAIN_ARGS).exists() and read_json(out / TRAIN_ARGS) != args:
        raise DataError(
            f"{out / TRAIN_ARGS}: this folder was trained with another strategy; use "
            "another output_dir, or overwrite=True"
        )
    if session.is_main:
        write_json(out / TRAIN_ARGS, args)
    train_and_evaluate(
        session,
        out,
        strategy=strategy,
        train_sets=[session.train],
        dynamics_mode=cfg.dynamics.mode,
    )


def _metrics(stage: Path) -> dict[str, dict[str, Any]]:
    done = read_json(stage / DONE) if (stage / DONE).exists() else {}
    sets = (done.get("metrics") or {}).get("sets") or {}
    return {name: dict(values) for name, values in sets.items()}


def load_run(output_dir: str | Path, *, device: str | None = None) -> FitResult:
    """A finished run folder (written by :func:`fit`, ``tdmixup run`` or ``tdmixup train``)
    read back into a :class:`FitResult`; nothing is trained.

    Raises:
        FileNotFoundError: no finished training stage in ``output_dir``.
    """
    from tdmixup.dynamics.datamap import read_region_file
    from tdmixup.dynamics.table import compute_statistics, read_dynamics
    from tdmixup.inference.classifier import TextClassifier

    out = Path(output_dir)
    layout = RunLayout(out)
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    stage: Path | None = None
    for candidate in (
        layout.stage1,
        layout.tdmixup,
        layout.aum_saliency_stage,
        out,  # `tdmixup train` / fit(strategy=...): the folder is the stage
    ):
        if (candidate / DONE).exists() and (candidate / CHECKPOINT).exists():
            metrics[candidate.name if candidate != out else "train"] = _metrics(candidate)
            stage = candidate
    if stage is None:
        raise FileNotFoundError(f"{out}: no finished training stage (no */done.json + checkpoint/)")
    statistics: pd.DataFrame | None = None
    if layout.statistics.exists():
        statistics = pd.read_parquet(layout.statistics)
    elif (out / DYNAMICS).exists():
        statistics = compute_statistics(read_dynamics(out / DYNAMICS))
    if statistics is not None:
        region = pd.Series("", index=statistics.index, dtype=object)
        for name in ("easy", "ambiguous", "hard"):
            path = layout.region_file(name)
            if path.exists():
                ids = read_region_file(path)
                region.loc[region.index.intersection(ids)] = name
        statistics = statistics.assign(region=region)
    flagged = [
        pd.read_parquet(d / AUM_TABLE)
        for d in layout.aum_dirs()
        if (d / SUMMARY).exists() and (d / AUM_TABLE).exists()
    ]
    flagged_ids = (
        np.sort(np.concatenate([t.loc[t["flagged"], "sample_id"].to_numpy() for t in flagged]))
        if flagged
        else np.zeros(0, dtype=np.int64)
    ).astype(np.int64)
    clf = TextClassifier.from_checkpoint(stage / CHECKPOINT, device=device)
    return FitResult(clf, metrics, statistics, flagged_ids, out, stage)
