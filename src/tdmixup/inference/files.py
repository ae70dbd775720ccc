"""Reading the texts to classify (JSONL, CSV, TSV) and writing one prediction row per input.

:func:`read_inputs` takes the same ``--column FIELD=COLUMN`` mapping as training and keeps every
row (a label column is optional; rows without a label are predicted too). Errors are one line
naming the file, row and field (:func:`tdmixup.data.schema.data_error`).
:func:`prediction_table` is each input row as written (every column of the file, also those the
mapping does not read) with the prediction columns after it; :func:`write_predictions` writes it
as ``.jsonl``, ``.csv`` or ``.tsv`` atomically, in input order.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.core.runio import atomic_output
from tdmixup.data._common import (
    Rows,
    as_text,
    empty_text,
    encode_labels,
    load_delimited,
    load_jsonl,
)
from tdmixup.data.readers import _format_of, read_all_columns
from tdmixup.data.schema import data_error

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}
"""Output suffix → format of :func:`write_predictions`."""


DEFAULT_COLUMNS_BY_KIND: dict[str, dict[str, str]] = {
    "pair": {"text_a": "text_a", "text_b": "text_b", "label": "label"},
    "multiple_choice": {"context": "context", "endings": "endings", "label": "label"},
}
"""Columns of a checkpoint that records none (written before tdmixup recorded them)."""


def input_columns(
    recorded: Sequence[tuple[str, str]],
    kind: str,
    given: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Field → column of the inputs to classify: a checkpoint's ``recorded`` training columns
    (:attr:`CheckpointInfo.columns`; a default by ``kind`` when it records none), each replaced
    by the one ``given``."""
    base = dict(recorded) or DEFAULT_COLUMNS_BY_KIND.get(kind, {"text_a": "text", "label": "label"})
    return {**base, **dict(given)}


@dataclass(frozen=True)
class PredictionInputs:
    """The rows of an input file, in file order.

    Attributes:
        path: the file.
        ids: ``[N]`` int64 sample ids (the ``sample_id`` column, else the 0-based row).
        texts: field → N values: ``text_a`` (and ``text_b``) strings; multiple choice ``context``
            strings and ``endings`` lists of K strings.
        labels: ``[N]`` int64 gold class indices, ``-1`` where a row has none; None when the file
            has no label column.
        label_column: the source column of ``labels`` (for messages).
        source: the rows as written, N rows in file order, every column of the file (CSV/TSV
            cells as text; JSON values as parsed, nested objects as dotted columns); None: the
            table holds ``id`` and the texts instead.
    """

    path: Path
    ids: np.ndarray
    texts: dict[str, list[Any]]
    labels: np.ndarray | None
    label_column: str | None = None
    source: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def items(self) -> list[Any]:
        """The inputs as :meth:`TextClassifier.predict_proba` takes them: strings, ``(a, b)``
        pairs or ``(context, [endings])``."""
        if "endings" in self.texts:
            return list(zip(self.texts["context"], self.texts["endings"], strict=True))
        if "text_b" in self.texts:
            return list(zip(self.texts["text_a"], self.texts["text_b"], strict=True))
        return list(self.texts["text_a"])


def _fields(kind: str) -> tuple[str, ...]:
    if kind == "multiple_choice":
        return ("context", "endings")
    return ("text_a", "text_b") if kind == "pair" else ("text_a",)


def read_inputs(
    path: str | Path,
    *,
    kind: str,
    columns: Mapping[str, str],
    label_names: Sequence[str],
    label_given: bool = False,
    keep_source: bool = True,
) -> PredictionInputs:
    """Read the texts to classify.

    Args:
        path: a ``.jsonl``/``.json``, ``.csv`` or ``.tsv`` file (``.gz``/``.bz2`` too).
        kind: the classifier's task kind (``"pair"``, ``"multiple_choice"``; any other kind reads
            one text, ``text_a``).
        columns: field → source column, as in training (``text_a``, ``text_b``; multiple choice
            ``context``, ``endings`` (a list column or comma-separated columns), optional
            ``ending_prefix``; optional ``label`` and ``sample_id``).
        label_names: class names in index order; label cells may be names or indices.
        label_given: the label column was named by the user, so a file without it is an error
            (otherwise such a file is simply unlabelled).
        keep_source: also keep the rows as written (:attr:`PredictionInputs.source`, for the
            output table); False on processes that do not write (a JSON-lines file is parsed a
            second time for it).

    Raises:
        DataError: one line naming the file, the row and the field.
    """
    path = Path(path)
    need = _fields(kind)
    missing = [f for f in need if f not in columns]
    if missing:
        raise data_error(
            path,
            None,
            None,
            f"no column given for {', '.join(missing)}",
            "map it with --column " + " --column ".join(f"{f}=COLUMN" for f in missing),
        )
    fmt = _format_of(path)
    ends = columns["endings"].split(",") if kind == "multiple_choice" else []
    if fmt == "jsonl":
        wanted = [c for f, c in columns.items() if f != "endings"] + ends
        rows = load_jsonl(path, list(dict.fromkeys(wanted)))
    else:
        rows = load_delimited(path, sep="," if fmt == "csv" else "\t", header=True)
    if len(rows.ids) == 0:
        raise data_error(path, None, None, "no rows to classify", "check the file")
    rows.label_fix = (  # the checkpoint fixes the classes: nothing to name on the command line
        "the checkpoint's classes are fixed: fix the label, or leave the label column out to "
        "predict without scoring"
    )
    texts = _texts(rows, kind, columns, ends)
    labels, label_column = None, columns.get("label")
    has_label = label_column is not None and label_column in rows.frame.columns
    if has_label and label_column is not None and rows.frame[label_column].notna().any():
        labels, _ = encode_labels(rows, label_column, label_names)
    elif label_given:
        rows.column(str(label_column))  # raises: names the columns the file has
    ids = rows.ids
    id_column = columns.get("sample_id")
    if id_column in rows.frame.columns and rows.frame[id_column].notna().any():
        from tdmixup.data._common import int_ids  # an input without the id column: row numbers

        ids = int_ids(rows, columns["sample_id"])
    source = None
    if keep_source:
        source = rows.frame if fmt != "jsonl" else read_all_columns(path).reset_index(drop=True)
        if len(source) != len(ids):  # both keep every non-blank record, in file order
            raise RuntimeError(f"{path}: {len(source)} rows as written but {len(ids)} read")
    return PredictionInputs(
        path, ids, texts, labels, label_column if labels is not None else None, source
    )


def _texts(
    rows: Rows, kind: str, columns: Mapping[str, str], ends: list[str]
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if kind == "multiple_choice":
        ctx = as_text(rows.column(columns["context"]))
        _refuse_empty(rows, ctx, columns["context"])
        if len(ends) > 1:
            lists = pd.Series(
                list(zip(*(as_text(rows.column(e)) for e in ends), strict=True)), dtype=object
            ).map(list)
        else:
            lists = rows.column(ends[0]).map(
                lambda v: [str(e) for e in v] if isinstance(v, list | tuple | np.ndarray) else None
            )
            if lists.isna().any():
                raise rows.row_error(
                    lists.isna().to_numpy(), ends[0], "endings must be a list of strings"
                )
        sizes = lists.map(len).to_numpy()
        if (sizes != sizes[0]).any():
            raise rows.row_error(
                sizes != sizes[0], ",".join(ends), f"expected {sizes[0]} endings like row 1"
            )
        bad = lists.map(lambda es: any(not isinstance(e, str) or not e.strip() for e in es))
        if bad.any():
            raise rows.row_error(bad.to_numpy(), ",".join(ends), "empty ending", "fill it in")
        prefix = columns.get("ending_prefix")
        pre = rows.column(prefix).fillna("").astype(str).tolist() if prefix else [""] * len(ctx)
        out["context"] = ctx.tolist()
        out["endings"] = [
            [f"{p} {e}" if p else e for e in es] for p, es in zip(pre, lists, strict=True)
        ]
        return out
    for field in _fields(kind):
        cells = as_text(rows.column(columns[field]))
        _refuse_empty(rows, cells, columns[field])
        out[field] = cells.tolist()
    return out


def _refuse_empty(rows: Rows, cells: pd.Series, column: str) -> None:
    bad = empty_text(cells)
    if bad.any():
        raise rows.row_error(bad, column, "empty text", "fill in the text or remove the row")


def output_format(path: str | Path) -> str:
    """``jsonl``, ``csv`` or ``tsv`` from the output's suffix.

    Raises:
        ValueError: for any other suffix (one line saying which ones work).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(
            f"--output {path}: unknown format {suffix or '(no suffix)'}; "
            f"name the file {' or '.join(OUTPUT_FORMATS)}"
        )
    return OUTPUT_FORMATS[suffix]


def prediction_table(
    inputs: PredictionInputs, probs: np.ndarray, label_names: Sequence[str]
) -> pd.DataFrame:
    """One row per input, in input order: the input's own row (:attr:`PredictionInputs.source`:
    every column as written, the label column too; without it ``id`` and the text fields), then
    the prediction columns (:func:`with_predictions`). ``probs`` ``[N, C]`` rows on the
    simplex."""
    if inputs.source is None:
        table = pd.DataFrame({"id": inputs.ids, **inputs.texts})
    else:
        table = inputs.source.reset_index(drop=True)
    return with_predictions(table, probs, label_names, source=inputs.path)


def with_predictions(
    table: pd.DataFrame, probs: np.ndarray, label_names: Sequence[str], *, source: object
) -> pd.DataFrame:
    """``table`` (N rows, its index kept) with ``prediction`` (label name), ``probability`` (its
    probability) and ``prob_<name>`` per class after its columns. A column of one of those
    names (a table predicted before) is replaced, with a warning naming ``source``."""
    names = [str(n) for n in label_names]
    pred = probs.argmax(axis=1)
    added = pd.DataFrame(
        {
            "prediction": [names[i] for i in pred],
            "probability": probs[np.arange(len(pred)), pred],
            **{f"prob_{name}": probs[:, c] for c, name in enumerate(names)},
        },
        index=table.index,
    )
    replaced = [c for c in added.columns if c in table.columns]
    if replaced:
        logger.warning(
            "%s: its column%s %s replaced by this prediction's",
            source, "s" if len(replaced) > 1 else "", ", ".join(replaced),
        )  # fmt: skip
    return pd.concat([table.drop(columns=replaced), added], axis=1)


def write_predictions(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` atomically, in the format of the suffix (:func:`output_format`)."""
    fmt = output_format(path)
    with atomic_output(path) as tmp:
        if fmt == "jsonl":
            table.to_json(tmp, orient="records", lines=True, force_ascii=False, double_precision=15)
        else:  # a list cell (multiple-choice endings) as JSON
            flat = table.apply(
                lambda col: col.map(json.dumps) if col.map(type).eq(list).any() else col
            )
            if fmt == "tsv":  # as read: no quoting, so a cell cannot hold a tab or a line break
                refuse_tsv_breaks(flat, path)
                flat.to_csv(tmp, index=False, sep="\t", quoting=csv.QUOTE_NONE)
            else:
                flat.to_csv(tmp, index=False)
    return Path(path)


def refuse_tsv_breaks(table: pd.DataFrame, path: str | Path) -> None:
    """A TSV (read and written without quoting, as GLUE's) cannot hold a tab or line break in a
    cell: one line naming the first such row (1-based, after the header) and column."""
    for column in table.columns:
        text = table[column].map(
            lambda v: isinstance(v, str) and ("\t" in v or "\n" in v or "\r" in v)
        )
        if text.any():
            row = int(np.flatnonzero(text.to_numpy())[0]) + 1
            raise ValueError(
                f"--output {path}: row {row}, column {column!r} holds a tab or line break, "
                "which a TSV cannot: write .csv or .jsonl"
            )
