"""``tdmixup predict``'s core: classify every row of a file, write one prediction row per input.

:func:`predict_file` reads the file with the checkpoint's own columns (:func:`resolve_columns`),
predicts in length-sorted batches (sharded over processes under Accelerate, gathered by
position), writes the table atomically (main process only) and, when the file has labels, scores
accuracy and ECE before and after temperature scaling.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdmixup.inference.classifier import TextClassifier, probabilities
from tdmixup.inference.files import (
    input_columns,
    output_format,
    prediction_table,
    read_inputs,
    refuse_tsv_breaks,
    write_predictions,
)
from tdmixup.model.classifier import check_label_names


def resolve_columns(
    clf: TextClassifier, given: Mapping[str, str] | Sequence[tuple[str, str]] = ()
) -> dict[str, str]:
    """The checkpoint's recorded training columns, each replaced by the one given (``--column``)."""
    return input_columns(clf.info.columns, clf.kind, given)


@dataclass(frozen=True)
class PredictionResult:
    """What :func:`predict_file` did.

    Attributes:
        output: the file written.
        n: rows predicted.
        seconds: wall time of tokenising + predicting (not reading or writing).
        temperature: the T the probabilities were divided by (1.0: raw).
        metrics: with labels: ``n_labelled``, ``accuracy``, ``ece`` (at ``temperature``),
            ``ece_raw``, ``ece_calibrated`` (when a T was fitted), fractions; else None.
    """

    output: Path
    n: int
    seconds: float
    temperature: float
    metrics: dict[str, Any] | None


def predict_file(
    clf: TextClassifier,
    input_path: str | Path,
    output_path: str | Path,
    *,
    columns: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    label_names: Sequence[str] = (),
    temperature: bool = True,
    batch_size: int = 32,
    max_length: int | None = None,
) -> PredictionResult:
    """Classify every row of ``input_path`` and write ``output_path`` (see the module docstring).

    Args:
        clf: the loaded classifier.
        input_path: JSONL / CSV / TSV with the training columns (a label column is optional).
        output_path: ``.jsonl``, ``.csv`` or ``.tsv``.
        columns: ``FIELD=COLUMN`` overrides of the checkpoint's recorded columns.
        label_names: must equal the checkpoint's when given.
        temperature: divide by the checkpoint's T (default) or give the raw probabilities.
        batch_size: inputs per forward pass.
        max_length: truncation (tokens); default: the training length.

    Raises:
        ValueError / DataError: one line naming the option, file, row or field.
    """
    output_format(output_path)  # refuse a bad suffix before any work
    if not Path(input_path).is_file():
        raise ValueError(f"--input {input_path}: file not found")
    check_label_names(tuple(label_names), clf.info, "the checkpoint")
    given = dict(columns)
    inputs = read_inputs(
        input_path,
        kind=clf.kind,
        columns=resolve_columns(clf, given),
        label_names=clf.label_names,
        label_given="label" in given,
        # only the main process writes; every process checks a TSV's cells, so that all stop
        keep_source=clf.accelerator.is_main_process or output_format(output_path) == "tsv",
    )
    if output_format(output_path) == "tsv" and inputs.source is not None:
        refuse_tsv_breaks(inputs.source, output_path)  # before the model runs, not after
    start = time.perf_counter()
    logits = clf.predict_logits(inputs.items(), batch_size=batch_size, max_length=max_length)
    seconds = time.perf_counter() - start
    t = clf.resolve_temperature(temperature)
    probs = probabilities(logits, t)
    metrics = (
        _score(inputs.labels, logits, t, clf.temperature) if inputs.labels is not None else None
    )
    if clf.accelerator.is_main_process:
        write_predictions(prediction_table(inputs, probs, clf.label_names), output_path)
    return PredictionResult(Path(output_path), len(inputs), seconds, t, metrics)


def _score(
    labels: np.ndarray, logits: np.ndarray, t: float, fitted: float | None
) -> dict[str, Any] | None:
    from tdmixup.evaluation.calibration import accuracy, expected_calibration_error

    known = labels >= 0
    if not known.any():
        return None
    y, z = labels[known], logits[known]
    out: dict[str, Any] = {
        "n_labelled": int(known.sum()),
        "accuracy": accuracy(y, z),
        "ece": expected_calibration_error(y, z / t),
        "ece_raw": expected_calibration_error(y, z),
    }
    if fitted is not None:
        out["ece_calibrated"] = expected_calibration_error(y, z / fitted)
    return out


def format_result(result: PredictionResult) -> str:
    """One line: rows, speed, the file, and accuracy / ECE (×100) when the input had labels."""
    line = (
        f"predicted {result.n} row{'' if result.n == 1 else 's'} in {result.seconds:.1f} s "
        f"({result.n / max(result.seconds, 1e-9):.0f}/s) → {result.output}"
    )
    m = result.metrics
    if m:
        line += f"; {m['n_labelled']} labelled: accuracy {100 * m['accuracy']:.2f}, ECE raw "
        line += f"{100 * m['ece_raw']:.2f}"
        if "ece_calibrated" in m:
            line += f", calibrated {100 * m['ece_calibrated']:.2f}"
    return line
