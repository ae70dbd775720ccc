"""What a dynamics table was recorded on: each row's id, gold label and a hash of its text.

A dynamics table (:mod:`tdmixup.dynamics.table`) keys logits by ``sample_id``. Joining texts or
labels from a data file by id is only right when the file is the one the table was recorded
on; a different file with the same ids would silently put the wrong sentences beside the
statistics. So the table also holds, per row, a 64-bit hash of the row's text
(:func:`text_hashes`), beside its ``gold`` label; :func:`check_data` compares both with the rows
of a dataset and refuses a mismatch in one line naming the first differing sample.

Hashing is vectorised (``pandas.util.hash_pandas_object``, SipHash with a fixed key, stable
across processes and runs): each text field is hashed as a column and the columns' hashes are
combined per row (the endings of a multiple-choice row are first joined with U+001E). 550,152
synthetic SNLI-sized pairs hashed in 3.7–5.9 s on a shared 2-core machine at load 17–18 (about
0.6 s per text column there for the hashing itself).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.data.schema import DataError

log = logging.getLogger("tdmixup.dynamics.fingerprint")

TEXT_FIELDS = ("text_a", "text_b", "context", "endings")
"""Text fields of the schema (:mod:`tdmixup.data.schema`), hashed in this order when present."""

_LIST_SEP = "\x1e"


def _as_strings(values: Any) -> pd.Series:
    """One string per row; list cells (endings) joined with U+001E."""
    series = pd.Series(list(values) if not isinstance(values, pd.Series) else values, dtype=object)
    if len(series) and isinstance(series.iloc[0], list | tuple | np.ndarray):
        return series.map(lambda cell: _LIST_SEP.join(str(x) for x in cell))
    if pd.api.types.infer_dtype(series, skipna=False) == "string":
        return series  # already str: no per-cell conversion (≈1 s per 550k cells)
    return series.astype(str)


def text_hashes(columns: Mapping[str, Any], fields: Sequence[str] | None = None) -> np.ndarray:
    """A 64-bit hash of each row's text: ``[N]`` uint64.

    Args:
        columns: column name → ``[N]`` values (a ``datasets.Dataset``'s ``to_dict()``, a
            DataFrame or a dict of lists). List cells (multiple-choice endings) are joined.
        fields: which columns make up the text, in order; default the schema's text fields
            (:data:`TEXT_FIELDS`) present in ``columns``.

    Raises:
        ValueError: when no text field is present.

    >>> a = text_hashes({"text_a": ["A dog.", "A cat."], "text_b": ["An animal.", "A pet."]})
    >>> b = text_hashes({"text_a": ["A dog.", "A cat"], "text_b": ["An animal.", "A pet."]})
    >>> (a == b).tolist()
    [True, False]
    """
    names = list(fields) if fields is not None else [f for f in TEXT_FIELDS if f in columns]
    if not names:
        raise ValueError(f"no text field to hash: expected one of {TEXT_FIELDS}")
    frame = pd.DataFrame({name: _as_strings(columns[name]).to_numpy() for name in names})
    return pd.util.hash_pandas_object(frame, index=False, categorize=False).to_numpy(np.uint64)


def _columns_of(dataset: Any) -> Mapping[str, Any]:
    if isinstance(dataset, pd.DataFrame | Mapping):
        return dataset
    names = getattr(dataset, "column_names", None)
    if isinstance(names, list):  # datasets.Dataset: read only the columns needed
        wanted = [c for c in ("sample_id", "label", *TEXT_FIELDS) if c in names]
        return {c: dataset[c] for c in wanted}
    raise TypeError(f"expected a datasets.Dataset, a DataFrame or a dict; got {type(dataset)}")


def check_data(
    recorded_ids: np.ndarray,
    recorded_gold: np.ndarray,
    recorded_hashes: np.ndarray | None,
    dataset: Any,
    *,
    table: object,
    data: object,
    recorded_label_names: Sequence[str] = (),
    label_names: Sequence[str] = (),
) -> None:
    """Refuse a dataset that is not the one a dynamics table (or its statistics) was recorded on.

    Every recorded id must be a row of ``dataset`` with the same gold label and, when the table
    holds text hashes, the same text. The dataset may hold more rows (a run on its first rows).

    Args:
        recorded_ids: ``[N]`` sample ids of the table.
        recorded_gold: ``[N]`` their gold class indices.
        recorded_hashes: ``[N]`` uint64 text hashes (:func:`text_hashes`), or None for a table
            written before tdmixup recorded them: then only ids and labels are checked, and a
            warning says so.
        dataset: rows in the schema of :mod:`tdmixup.data.schema` (``sample_id``, ``label`` and
            the text fields): a ``datasets.Dataset``, a DataFrame or a dict of columns.
        table: the table's name for messages (its path).
        data: the data's name for messages (e.g. ``--train-file train.csv``, or ``data`` for
            the Python API's rows).
        recorded_label_names: the class names the table stores, in index order (may be empty).
        label_names: the data's class names in index order (may be empty). With both, a
            differing gold label is shown with its names, and the same classes in another order
            are said to be that.

    Raises:
        DataError: one line naming the table, the data and the first differing sample id and
            field (``sample_id``, ``label`` or ``text``), and what to do.
    """
    ids = np.asarray(recorded_ids, dtype=np.int64)
    cols = _columns_of(dataset)
    data_ids = np.asarray(cols["sample_id"], dtype=np.int64)
    where = f"{data} is not the data {table} was recorded on"
    fix = "pass the rows the dynamics were recorded on, with the same column mapping (--column)"
    if len(np.unique(data_ids)) != len(data_ids):
        raise DataError(f"{data}: sample ids repeat; cannot match them with {table}")
    order = np.argsort(data_ids, kind="stable")
    pos = np.clip(np.searchsorted(data_ids, ids, sorter=order), 0, max(len(order) - 1, 0))
    found = order[pos] if len(order) else pos
    present = data_ids[found] == ids if len(order) else np.zeros(len(ids), dtype=bool)
    checks: list[tuple[str, np.ndarray]] = [("sample_id", ~present)]
    labels = np.asarray(cols["label"], dtype=np.int64)[found] if len(order) else ids
    checks.append(("label", present & (labels != np.asarray(recorded_gold, dtype=np.int64))))
    if recorded_hashes is not None:
        hashes = text_hashes({k: _take(v, found) for k, v in cols.items() if k in TEXT_FIELDS})
        checks.append(("text", present & (hashes != np.asarray(recorded_hashes, np.uint64))))
    else:
        log.warning(
            "%s was written before tdmixup recorded each row's text hash: only its ids and gold "
            "labels are checked against %s (re-record the dynamics to check the texts too)",
            table,
            data,
        )
    bad = np.zeros(len(ids), dtype=bool)
    for _, mask in checks:
        bad |= mask
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    field = next(name for name, mask in checks if mask[first])
    count = int(bad.sum())
    ours, theirs = tuple(map(str, label_names)), tuple(map(str, recorded_label_names))
    if field == "label" and ours != theirs and sorted(ours) == sorted(theirs):
        raise DataError(
            f"{where}: the same classes in another order: label names {', '.join(ours)} in the "
            f"data but {', '.join(theirs)} in the table, so {count} of {len(ids)} rows differ "
            "(give the label names in the table's order: label_names=[...] / --label-names)"
        )
    what = {
        "sample_id": "is not in the data",
        "label": f"has gold label {_named(int(labels[first]), ours)} in the data but "
        f"{_named(int(recorded_gold[first]), theirs)} in the table",
        "text": "has a different text",
    }[field]
    raise DataError(
        f"{where}: sample_id {int(ids[first])} (field '{field}') {what}; "
        f"{count} of {len(ids)} rows differ ({fix})"
    )


def _named(label: int, names: tuple[str, ...]) -> str:
    """``1 ('neutral')`` when ``names`` has the class, else ``1``."""
    return f"{label} ({names[label]!r})" if 0 <= label < len(names) else str(label)


def _take(values: Any, positions: np.ndarray) -> Any:
    """``values[positions]`` for a list, array or Series (unchanged when it is every row in
    order, the usual case: a table checked against the file it was recorded on)."""
    if len(positions) == len(values) and (positions == np.arange(len(positions))).all():
        return values
    if isinstance(values, pd.Series):
        return values.iloc[positions].to_numpy()
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)  # an object array even when the cells are lists (endings)
    return array[positions]


def hashes_by_id(dataset: Any) -> pd.Series:
    """``sample_id`` → text hash (uint64) of every row of a schema dataset."""
    cols = _columns_of(dataset)
    ids = np.asarray(cols["sample_id"], dtype=np.int64)
    return pd.Series(text_hashes(cols), index=pd.Index(ids, name="sample_id"))


class DataFingerprint:
    """What a recorder stores with a dynamics table besides ids and gold labels: each row's text
    hash (by sample id), the label names and the column mapping (JSON).

    Args:
        hashes: ``sample_id`` → uint64 text hash (:func:`hashes_by_id`), or None.
        label_names: class names in index order.
        columns: JSON of the column mapping / text columns the rows were read with.
    """

    def __init__(
        self,
        hashes: pd.Series | None,
        *,
        label_names: Sequence[str] = (),
        columns: str = "",
    ) -> None:
        self.hashes = hashes
        self.label_names = tuple(str(n) for n in label_names)
        self.columns = columns

    @classmethod
    def of(cls, dataset: Any, *, label_names: Sequence[str] = (), columns: str = "") -> Any:
        """The fingerprint of a schema dataset (``datasets.Dataset``, DataFrame or dict)."""
        return cls(hashes_by_id(dataset), label_names=label_names, columns=columns)

    def append_kwargs(self, sample_ids: np.ndarray) -> dict[str, Any]:
        """Keyword arguments of :func:`tdmixup.dynamics.table.append_epoch` for ``sample_ids``."""
        hashes = None
        if self.hashes is not None:
            found = self.hashes.reindex(np.asarray(sample_ids, dtype=np.int64))
            if not found.isna().any():
                hashes = found.to_numpy(np.uint64)
        return {"text_hash": hashes, "label_names": self.label_names, "columns": self.columns}


def check_statistics(
    stats: pd.DataFrame,
    dataset: Any,
    *,
    table: object,
    data: object,
    label_names: Sequence[str] = (),
) -> None:
    """:func:`check_data` for a per-sample statistics table (``statistics.parquet``: indexed by
    ``sample_id``, with ``gold``, when recorded ``text_hash``, and the class names in
    ``attrs["label_names"]`` when kept); ``label_names``: the data's."""
    ids = stats["sample_id"] if "sample_id" in stats.columns else stats.index
    hashes = stats["text_hash"].to_numpy(np.uint64) if "text_hash" in stats.columns else None
    check_data(
        np.asarray(ids, dtype=np.int64),
        stats["gold"].to_numpy(np.int64),
        hashes,
        dataset,
        table=table,
        data=data,
        recorded_label_names=stats.attrs.get("label_names", ()),
        label_names=label_names,
    )
