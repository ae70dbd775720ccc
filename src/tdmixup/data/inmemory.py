"""Data already in memory — a :class:`datasets.Dataset`, a pandas DataFrame, a list of dicts or a
dict of columns — turned into the schema of :mod:`tdmixup.data.schema` with the readers' checks.

:func:`dataset_from_records` is what the file readers are for files: the same validation
(:mod:`tdmixup.data._common`), the same one-line errors naming the row and the column, the same
stable ``sample_id`` (the 0-based row position unless a column gives them). Rows are counted from
0 in its errors, like the default ids and ``DataFrame.iloc``.

>>> ds, spec = dataset_from_records(
...     [{"sentence": "A lovely film.", "y": "pos"}, {"sentence": "Dull and long.", "y": "neg"}],
...     text="sentence", label="y")
>>> spec.kind, spec.label_names, ds[0]
('single', ('neg', 'pos'), {'sample_id': 0, 'text_a': 'A lovely film.', 'label': 1})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset

from tdmixup.data._common import (
    EmptyPolicy,
    Rows,
    build_mc,
    build_pair,
    int_ids,
    label_names_in,
    warn_rare_classes,
)
from tdmixup.data.readers import check_mapping
from tdmixup.data.schema import DataError, TaskSpec, data_error, is_classification

Records: TypeAlias = (
    Dataset | pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
)
"""What :func:`dataset_from_records` reads: a ``datasets.Dataset``, a pandas DataFrame, a list of
dicts (one per row) or a dict of equally long columns."""

_MAPPING_HINT = "name an existing column: text=..., text_pair=..., label=..., sample_id=..."
_LABEL_HINT = "label_names=[...]"


def dataset_from_records(
    data: Records,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = "label",
    sample_id: str | None = None,
    label_names: Sequence[str] | None = None,
    context: str | None = None,
    endings: str | Sequence[str] | None = None,
    ending_prefix: str | None = None,
    name: str = "custom",
    empty: EmptyPolicy = "error",
) -> tuple[Dataset, TaskSpec]:
    """In-memory rows with named columns → ``(dataset in the schema, its TaskSpec)``.

    The task kind follows the columns given: ``text`` alone is a single-sentence task,
    ``text`` and ``text_pair`` a pair task, ``context`` and ``endings`` multiple choice.

    Args:
        data: a :class:`datasets.Dataset`, a pandas DataFrame, a list of dicts or a dict of
            columns (see :data:`Records`).
        text: column of the (first) text; ``text_pair``: column of the second text (pairs).
        label: column of the gold label (class names or indices 0..C-1; rows whose label is
            missing, ``""``, ``"-"`` or -1 are skipped, as in the files); ``None`` for data
            without labels (every ``label`` is -1 and every row is kept).
        sample_id: column of unique integer ids; default: the 0-based row position.
        label_names: class names in index order. Default: a ``ClassLabel`` column's names; else,
            when the labels are names (strings), those names in sorted order; else (integers)
            ``"0".."C-1"`` with C = the largest label + 1. Multiple choice: the ending indices.
        context, endings: multiple choice: the question's column and the endings' (one list
            column, or one column per ending); ``ending_prefix`` is put before every ending.
        name: the task's name in the returned spec (recorded in run folders).
        empty: ``"error"`` (default) or ``"skip"`` rows with an empty text.

    Returns:
        ``(dataset, spec)``: ``dataset`` has the columns ``spec.columns`` in the input's row
        order (unlabelled rows skipped); ``spec.kind`` is ``"single"``, ``"pair"`` or
        ``"multiple_choice"``.

    Raises:
        DataError: one line naming the row (0-based) and column: a missing column, an empty
            text, an unknown label, a duplicate or non-integer id; a ``DatasetDict`` (its
            splits are not rows: pass one, e.g. ``ds["train"]``).
    """
    if isinstance(data, Mapping) and data and all(isinstance(v, Dataset) for v in data.values()):
        splits = ", ".join(repr(str(k)) for k in data)
        raise DataError(
            f"a DatasetDict (or dict of Datasets) holds splits ({splits}), not rows: pass one "
            f"split, e.g. ds[{next(iter(splits.split(', ')))}]"
        )
    source = _source_name(data)
    mapping = {
        field: column
        for field, column in (
            ("text_a", text),
            ("text_b", text_pair),
            ("context", context),
            ("endings", endings if isinstance(endings, str) or endings is None else ","),
            ("ending_prefix", ending_prefix),
            ("sample_id", sample_id),
        )
        if column is not None
    }
    hint = "give text= (and text_pair= for pairs), or context= and endings= for multiple choice"
    kind = check_mapping(source, {**mapping, "label": label or "(none)"}, hint)
    ends = [endings] if isinstance(endings, str) else list(endings or ())
    fields = [c for c in (text, text_pair, context, ending_prefix, label, sample_id) if c]
    frame, label_feature = _frame(data, source, [*fields, *ends], label)
    n = len(frame)
    rows = Rows(
        source,
        frame,
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
        mapping_hint=_MAPPING_HINT,
        label_hint=_LABEL_HINT,
        source_columns=_input_columns(data),
    )
    if sample_id is not None:
        rows.ids = int_ids(rows, sample_id)
    if not is_classification(kind):
        names = tuple(str(k) for k in range(len(label_names))) if label_names else None
        dataset = build_mc(
            rows,
            context=str(context),
            endings=ends if len(ends) > 1 else ends[0],
            label=label,
            prefix=ending_prefix,
            num_choices=len(names) if names else None,
            empty=empty,
        )
        k = len(dataset[0]["endings"]) if len(dataset) else len(names or ())
        return dataset, TaskSpec(name, "multiple_choice", tuple(str(i) for i in range(k)))
    names = _label_names(frame, label, label_names, label_feature)
    if label is not None and label_feature is not None and names is not None:
        frame[label] = _class_label_names(frame[label], label_feature)
    dataset = build_pair(
        rows, text_a=str(text), text_b=text_pair, label=label, label_names=names, empty=empty
    )
    if names is None:
        top = int(max(dataset["label"], default=-1))
        names = tuple(str(k) for k in range(top + 1))
    return dataset, TaskSpec(name, kind, tuple(names))


def _source_name(data: Any) -> str:
    if isinstance(data, Dataset):
        return "Dataset (rows from 0)"
    if isinstance(data, pd.DataFrame):
        return "DataFrame (rows from 0)"
    if isinstance(data, Mapping):
        return "dict of columns (rows from 0)"
    return "records (rows from 0)"


def _input_columns(data: Any) -> list[str]:
    """Every column name of the input, in its order (a list of dicts: each key, first seen first),
    for the error about a column that is not there (:meth:`Rows.column`)."""
    if isinstance(data, Dataset):
        return list(data.column_names)
    if isinstance(data, pd.DataFrame | Mapping):
        return [str(c) for c in (data.columns if isinstance(data, pd.DataFrame) else data)]
    keys = (k for row in data if isinstance(row, Mapping) for k in row)
    return [str(k) for k in dict.fromkeys(keys)]


def _frame(
    data: Any, source: str, columns: list[str], label: str | None
) -> tuple[pd.DataFrame, ClassLabel | None]:
    """The needed columns as an object-dtype DataFrame (absent ones all missing, so that
    :meth:`Rows.column` names them) and the label column's ``ClassLabel`` when it has one."""
    wanted = list(dict.fromkeys(columns))
    label_feature = None
    if isinstance(data, Dataset):
        present = [c for c in wanted if c in data.column_names]
        frame = data.select_columns(present).to_pandas()
        feature = data.features.get(label) if label is not None else None
        label_feature = feature if isinstance(feature, ClassLabel) else None
    elif isinstance(data, pd.DataFrame):
        frame = data[[c for c in wanted if c in data.columns]].reset_index(drop=True)
    elif isinstance(data, Mapping):
        lengths = {k: len(v) for k, v in data.items() if k in wanted}
        if len(set(lengths.values())) > 1:
            raise data_error(source, None, None, f"columns of different lengths: {lengths}", "")
        frame = pd.DataFrame({k: list(data[k]) for k in lengths})
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        bad = next((i for i, r in enumerate(data) if not isinstance(r, Mapping)), None)
        if bad is not None:
            problem = f"expected a dict, found {type(data[bad]).__name__}"
            raise data_error(source, bad, None, problem, "give one dict per row")
        frame = pd.DataFrame({c: [r.get(c) for r in data] for c in wanted})
    else:
        raise TypeError(
            "data must be a datasets.Dataset, a pandas DataFrame, a list of dicts or a dict of "
            f"columns; got {type(data).__name__}"
        )
    frame = frame.astype(object)
    for c in wanted:
        if c not in frame.columns:
            frame[c] = pd.Series([None] * len(frame), dtype=object)
    return frame, label_feature


def _label_names(
    frame: pd.DataFrame,
    label: str | None,
    label_names: Sequence[str] | None,
    label_feature: ClassLabel | None,
) -> tuple[str, ...] | None:
    """Class names in index order: given, a ``ClassLabel``'s, the sorted label strings, or None
    (integer labels)."""
    if label_names:
        names = tuple(str(n) for n in label_names)
        if len(set(names)) != len(names):
            raise DataError(f"label_names {list(names)}: each class name must appear once")
        return names
    if label is None or label not in frame.columns:
        return None
    if label_feature is not None:
        return tuple(label_feature.names)
    inferred = label_names_in(frame[label])
    if inferred is not None:
        rows = np.arange(len(frame))
        warn_rare_classes(frame[label], rows, f"label column {label!r}", "label_names=[...]")
    return inferred


def _class_label_names(cells: pd.Series, feature: ClassLabel) -> pd.Series:
    """A ``ClassLabel`` column's integers as its names (``-1`` and missing stay missing), so that
    given ``label_names`` may order the classes differently."""
    names = np.asarray(feature.names, dtype=object)

    def name_of(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or int(v) < 0:
            return None
        return names[int(v)] if int(v) < len(names) else v

    return cells.map(name_of)
