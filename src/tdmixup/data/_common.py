"""Parsing and validation shared by every reader (private).

A reader loads its file into :class:`Rows` (one pandas column per source field, the 1-based
line number and the stable ``sample_id`` of each record), then :func:`build_pair` or
:func:`build_mc` validates the columns with vectorised checks and returns a
:class:`datasets.Dataset` in the schema of :mod:`tdmixup.data.schema`. Python-level
line-by-line parsing happens only to locate a malformed JSON line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
from datasets import Dataset
from datasets.table import InMemoryTable

from tdmixup.data.schema import data_error

logger = logging.getLogger("tdmixup.data")

EmptyPolicy = Literal["error", "skip"]
UNLABELED: tuple[object, ...] = (None, "", "-", -1, "-1")
"""Label cells that mean "no gold label": the row is skipped and counted, never an error."""


@dataclass
class Rows:
    """Raw records of one file before validation.

    Attributes:
        path: the source, used in error messages.
        frame: one column per source field, ``N`` rows, values as parsed (object dtype).
        lines: shape ``(N,)`` int64, the 1-based line of each record in the file.
        ids: shape ``(N,)`` int64, the stable ``sample_id`` of each record.
        mapping_hint: how to fix a column that is not found (the CLI's ``--column`` by default).
        label_hint: how to name the classes (the CLI's ``--label-names`` by default).
        source_columns: every column of the input when ``frame`` holds only the requested ones
            (in-memory data), so that a missing column's error lists what the input has.
    """

    path: object
    frame: pd.DataFrame
    lines: np.ndarray
    ids: np.ndarray
    mapping_hint: str = "map the right column, e.g. --column text_a=premise"
    label_hint: str = "--label-names a,b,c"
    label_fix: str | None = None
    """What to do about an unknown label when naming the classes is not the fix (a checkpoint's
    classes are fixed); None: fix the label or name the classes (``label_hint``)."""
    source_columns: list[str] | None = None

    def has(self, name: str) -> bool:
        """Whether some record has a value in column ``name``."""
        return name in self.frame.columns and not (
            len(self.frame) and self.frame[name].isna().all()
        )

    def found_columns(self) -> str:
        """The input's columns that hold a value, comma-separated (for "not found" messages):
        ``source_columns`` when the frame holds only the requested ones."""
        names = self.source_columns if self.source_columns is not None else self.frame.columns
        return ", ".join(
            str(c) for c in names if c not in self.frame.columns or self.frame[c].notna().any()
        )

    def column(self, name: str) -> pd.Series:
        """The column ``name``; a clear error when no record has it."""
        if not self.has(name):
            raise data_error(
                self.path,
                None,
                name,
                f"column '{name}' not found (found: {self.found_columns()})",
                self.mapping_hint,
            )
        return self.frame[name]

    def row_error(
        self, mask: np.ndarray, field: str | None, problem: str, fix: str = ""
    ) -> Exception:
        """Error naming the first record where boolean ``mask`` (shape ``(N,)``) is set."""
        i = int(np.flatnonzero(mask)[0])
        value = self.frame[field].iloc[i] if field in self.frame else None
        value = value.item() if isinstance(value, np.generic) else value
        return data_error(self.path, int(self.lines[i]), field, problem.format(value=value), fix)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressing ``.bz2`` and ``.gz``."""
    if not Path(path).is_file():
        raise data_error(path, None, None, "file not found", "check the path")
    raw = Path(path).read_bytes()
    if str(path).endswith(".bz2"):
        return bz2.decompress(raw)
    if str(path).endswith(".gz"):
        return gzip.decompress(raw)
    return raw


def decode(path: object, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        problem = (
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} "
            f"at byte {e.start - line_start + 1} of the line)"
        )
        raise data_error(
            path, data[: e.start].count(b"\n") + 1, None, problem, "save the file as UTF-8"
        ) from e


def _get(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; a literal key ``"a.b"`` first (a flattened file, e.g.
    ``tdmixup predict``'s output of nested input)."""
    if isinstance(obj, Mapping) and dotted in obj:
        return obj[dotted]
    for key in dotted.split("."):
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def arrow_schema(types: Mapping[str, pa.DataType]) -> pa.Schema:
    """Explicit pyarrow schema from dotted names, e.g. ``{"example.premise": pa.string()}``."""
    tree: dict[str, Any] = {}
    for dotted, typ in types.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = typ

    def build(node: dict[str, Any]) -> list[pa.Field]:
        return [
            pa.field(k, pa.struct(build(v)) if isinstance(v, dict) else v) for k, v in node.items()
        ]

    return pa.schema(build(tree))


def load_jsonl(
    path: Path, fields: Sequence[str], types: Mapping[str, pa.DataType] | None = None
) -> Rows:
    """Read a JSON-lines file; ``sample_id`` = 0-based line index (blank lines keep their slot).

    Fast path: pyarrow (explicit schema when ``types`` is given). On a parse error the file is
    re-read line by line with :mod:`json`, only to name the bad line.
    """
    data = read_bytes(path)
    decode(path, data)  # pyarrow would fail on bad UTF-8 with an ArrowException naming no line
    pieces, ids = jsonl_lines(data)
    frame: pd.DataFrame | None = None
    found: dict[str, None] = {}  # the file's columns, in order, for "column not found" messages
    try:
        opts = (
            pajson.ParseOptions(
                explicit_schema=arrow_schema(types), unexpected_field_behavior="ignore"
            )
            if types
            else None
        )
        table = pajson.read_json(io.BytesIO(data), parse_options=opts)
        while any(pa.types.is_struct(f.type) for f in table.schema):
            table = table.flatten()
        found = dict.fromkeys(table.column_names)
        if table.num_rows == len(ids):
            frame = pd.DataFrame(
                {
                    f: table[f].to_pandas()
                    if f in table.column_names
                    else pd.Series([None] * len(ids), dtype=object)
                    for f in fields
                }
            )
    except pa.ArrowException:  # any parse problem: the line-by-line reader below names the line
        frame = None
    if frame is None:
        records = []
        for obj in json_objects(path, pieces, ids):
            records.append([_get(obj, f) for f in fields])
            found.update(dict.fromkeys(obj))
        frame = pd.DataFrame(records, columns=list(fields), dtype=object)
    return Rows(path, frame.astype(object), ids + 1, ids, source_columns=list(found))


def jsonl_lines(data: bytes) -> tuple[list[bytes], np.ndarray]:
    """A JSON-lines file's lines and the 0-based index of each non-blank one (``sample_id``:
    blank lines keep their slot)."""
    pieces = data.split(b"\n")
    if pieces and not pieces[-1].strip():
        pieces.pop()
    return pieces, np.array([i for i, p in enumerate(pieces) if p.strip()], dtype=np.int64)


def json_objects(
    path: object, pieces: Sequence[bytes], ids: np.ndarray
) -> Iterator[dict[str, Any]]:
    """The JSON object on line ``pieces[i]`` for each ``i`` of ``ids``, in order.

    Raises:
        DataError: a malformed line, or one that holds no object, naming the file and line.
    """
    for i in ids:
        try:
            obj = json.loads(pieces[i])
        except json.JSONDecodeError as e:
            msg = e.msg.removesuffix(" at")  # "Unterminated string starting at" + " at column 5"
            raise data_error(
                path,
                int(i) + 1,
                None,
                f"malformed JSON ({msg} at column {e.colno})",
                "each line must hold one JSON object",
            ) from e
        if not isinstance(obj, dict):
            raise data_error(
                path,
                int(i) + 1,
                None,
                f"expected a JSON object, found {type(obj).__name__}",
                "each line must hold one JSON object",
            )
        yield obj


_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def load_delimited(path: Path, *, sep: str, header: bool) -> Rows:
    """Read CSV (``sep=","``, standard quoting) or TSV (``sep="\\t"``, no quoting, as GLUE).

    Columns are named by the header, or ``"0".."K-1"`` without one. ``sample_id`` = 0-based data
    row; the line of row ``i`` is ``i + 2`` with a header, ``i + 1`` without (one line per row).
    Rows whose cells are all empty (blank lines) keep their slot and are dropped.
    """
    text = decode(path, read_bytes(path))
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,
            quoting=quoting,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as e:
        raise data_error(path, None, None, "the file is empty", "") from e
    except pd.errors.ParserError as e:
        m = _FIELDS_RE.search(str(e))
        if m is None:
            raise data_error(path, None, None, f"cannot parse: {e}", "") from e
        raise data_error(
            path,
            int(m.group(2)),
            None,
            f"expected {m.group(1)} fields, found {m.group(3)}",
            "a stray separator or quote character; TSV is read without quoting",
        ) from e
    frame = frame.astype(object)
    frame.columns = [str(c) for c in frame.columns]
    ids = np.arange(len(frame), dtype=np.int64)
    lines = ids + (2 if header else 1)
    blank = (frame.isna() | (frame == "")).all(axis=1).to_numpy()
    return Rows(path, frame[~blank].reset_index(drop=True), lines[~blank], ids[~blank])


def unlabeled_mask(cells: pd.Series) -> np.ndarray:
    """``[N]`` bool: the cells that mean "no gold label" (:data:`UNLABELED`, or missing)."""
    return (cells.isna() | cells.isin([u for u in UNLABELED if u is not None])).to_numpy()


def label_names_in(cells: pd.Series) -> tuple[str, ...] | None:
    """The class names of a label column whose labels are names: its distinct labelled cells as
    strings, sorted (as ``sorted(set(labels))``); None when every labelled cell is an integer
    (indices ``0..C-1``, named by their digits) or none is labelled.

    >>> label_names_in(pd.Series(["pos", "neg", "-", None, "pos"]))
    ('neg', 'pos')
    >>> label_names_in(pd.Series(["1", 0, 2.0])) is None
    True
    """
    cells = cells[~unlabeled_mask(cells)]
    numeric = pd.to_numeric(cells.map(lambda v: None if isinstance(v, bool) else v), "coerce")
    if len(cells) == 0 or (numeric.notna() & (numeric == numeric.round())).all():
        return None
    return tuple(sorted({str(v) for v in cells}))


RARE_CLASS_ROWS = 2
"""A class named from the labels themselves with at most this many rows (of at least
``RARE_CLASS_MIN_ROWS`` labelled rows) is warned about: most likely a typo (``positve``)."""
RARE_CLASS_MIN_ROWS = 20


def warn_rare_classes(cells: pd.Series, rows: np.ndarray, source: object, fix: str) -> None:
    """Log one warning per class that the label cells name only a few times
    (:data:`RARE_CLASS_ROWS`), naming its first row: when the class names are read from the
    labels, a typo becomes a class of its own.

    Args:
        cells: ``[N]`` label cells (names).
        rows: ``[N]`` the row (or line) number of each cell as messages name it.
        source: the file or data, for the message.
        fix: how to fix the classes (``--label-names a,b,c`` or ``label_names=[...]``).
    """
    labelled = ~unlabeled_mask(cells)
    values = cells[labelled].astype(str).to_numpy()
    if len(values) < RARE_CLASS_MIN_ROWS:
        return
    names, first, counts = np.unique(values, return_index=True, return_counts=True)
    at = np.asarray(rows)[labelled]
    for name, i, n in zip(names, first, counts, strict=True):
        if n <= RARE_CLASS_ROWS:
            logger.warning(
                "%s: class %r has only %d of %d labelled rows (first: row %d); if it is a typo, "
                "fix the label, or name the classes with %s (a label outside them is then "
                "refused with its row)", source, str(name), n, len(values), at[i], fix,
            )  # fmt: skip


def encode_labels(
    rows: Rows, field: str, label_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Map label cells to class indices.

    A cell matches a name in ``label_names`` (compared as strings), or is an integer in
    ``[0, len(label_names))``. Without ``label_names`` any integer ``>= 0`` is accepted.

    Returns:
        ``(labels, labelled)``: int64 shape ``(N,)`` (``-1`` where unlabeled) and the bool mask
        of rows that have a gold label.
    """
    cells = rows.column(field)
    unlabeled = unlabeled_mask(cells)
    idx = pd.Series(np.nan, index=cells.index)
    if label_names:
        idx = cells.astype(str).map({str(n): i for i, n in enumerate(label_names)})
    todo = idx.isna().to_numpy() & ~unlabeled
    if todo.any():
        num = pd.to_numeric(
            cells[todo].map(lambda v: v if not isinstance(v, bool) else None), errors="coerce"
        )
        integral = num.notna() & (num == num.round())
        idx[todo] = num.where(integral)
    bad = idx.isna().to_numpy() & ~unlabeled
    names = ", ".join(str(n) for n in label_names or ())
    if bad.any():
        problem = (
            f"label {{value!r}} is not one of {names}"
            if label_names
            else "label {value!r} is not an integer"
        )
        raise rows.row_error(
            bad,
            field,
            problem,
            rows.label_fix
            or f"fix the label, or give the class names in class-index order: {rows.label_hint}",
        )
    labels = idx.fillna(-1).to_numpy(dtype=np.int64)
    n = len(label_names) if label_names else None
    out = ~unlabeled & ((labels < 0) | (labels >= (n if n is not None else np.iinfo(np.int64).max)))
    if out.any():
        rng = f"[0, {n}) ({names})" if n is not None else "[0, ∞)"
        raise rows.row_error(
            out,
            field,
            f"label {{value!r}} is outside {rng}: the number of labels disagrees with the data",
            rows.label_fix or f"give every class name in class-index order: {rows.label_hint}",
        )
    return np.where(unlabeled, -1, labels), ~unlabeled


def no_labels(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, labelled)`` of data without a label column (e.g. new text to classify): every
    label ``-1`` and every row kept."""
    n = len(rows.ids)
    return np.full(n, -1, dtype=np.int64), np.ones(n, dtype=bool)


def int_ids(rows: Rows, column: str) -> np.ndarray:
    """The integer ``sample_id`` of each row from ``column``; an error naming the first row whose
    cell is not an integer."""
    cells = rows.column(column)
    num = pd.to_numeric(cells, errors="coerce")
    bad = (num.isna() | (num != num.round())).to_numpy()
    if bad.any():
        raise rows.row_error(
            bad,
            column,
            "sample_id {value!r} is not an integer",
            "map sample_id to an integer column, or leave it out to use row numbers",
        )
    return num.to_numpy(dtype=np.int64)


def as_text(cells: pd.Series) -> pd.Series:
    """Cells as ``str`` (numbers are converted), ``None`` where missing."""
    return cells.map(
        lambda v: (
            v
            if isinstance(v, str)
            else None
            if v is None or (isinstance(v, float) and np.isnan(v))
            else str(v)
        )
    )


def empty_text(cells: pd.Series) -> np.ndarray:
    """Bool ``(N,)``: cell missing (None or NaN) or only whitespace."""
    return cells.map(lambda v: not isinstance(v, str) or not v.strip()).to_numpy(dtype=bool)


def check_present(rows: Rows, cells: pd.Series, field: str, labelled: np.ndarray) -> None:
    """Refuse a labelled row lacking ``field`` altogether (a JSON line without the key, or null)."""
    missing = cells.isna().to_numpy() & labelled
    if missing.any():
        raise rows.row_error(
            missing,
            field,
            "missing from this row",
            "every labelled row needs this field; add it or remove the row",
        )


def _finish(
    rows: Rows, keep: np.ndarray, skipped: Mapping[str, int], columns: dict[str, Any]
) -> Dataset:
    for reason, count in skipped.items():
        if count:
            logger.info("%s: skipped %d rows (%s)", rows.path, count, reason)
    if not keep.any():
        raise data_error(
            rows.path,
            None,
            None,
            "no usable rows (empty after skipping rows without a gold label)",
            "check the file and the column mapping",
        )
    ids = rows.ids[keep]
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(keep)[np.flatnonzero(dup)[0]])
        raise data_error(
            rows.path,
            int(rows.lines[i]),
            "sample_id",
            f"duplicate sample_id {int(rows.ids[i])}",
            "sample ids must be unique",
        )
    table = {"sample_id": pa.array(ids, pa.int64())}
    for name, values in columns.items():
        arr = (
            values[keep]
            if isinstance(values, np.ndarray)
            else [v for v, k in zip(values, keep, strict=True) if k]
        )
        table[name] = pa.array(arr) if name != "endings" else pa.array(arr, pa.list_(pa.string()))
    return Dataset(InMemoryTable(pa.table(table)))


def build_pair(
    rows: Rows,
    *,
    text_a: str,
    text_b: str | None,
    label: str | None,
    label_names: Sequence[str] | None,
    empty: EmptyPolicy = "error",
    extra: Mapping[str, np.ndarray] | None = None,
) -> Dataset:
    """Validate a single-sentence or pair task: ``text_a``/``text_b``/``label`` name the source
    fields; ``text_b=None`` gives a single-sentence dataset (no ``text_b`` column), ``label=None``
    an unlabelled one (every ``label`` -1)."""
    texts = [(text_a, as_text(rows.column(text_a)))]
    if text_b is not None:
        texts.append((text_b, as_text(rows.column(text_b))))
    labels, labelled = (
        encode_labels(rows, label, label_names) if label is not None else no_labels(rows)
    )
    blank = np.zeros(len(labels), bool)
    for field, cells in texts:
        if empty == "error":
            check_present(rows, cells, field, labelled)
        bad = empty_text(cells) & labelled
        if bad.any() and empty == "error":
            raise rows.row_error(bad, field, "empty text", "remove the row or fill in the sentence")
        blank |= bad
    keep = labelled & ~blank
    cols: dict[str, Any] = dict(
        zip(("text_a", "text_b"), (c.to_numpy() for _, c in texts), strict=False)
    )
    cols |= {"label": labels, **(extra or {})}
    return _finish(
        rows, keep, {"no gold label": int((~labelled).sum()), "empty text": int(blank.sum())}, cols
    )


def build_mc(
    rows: Rows,
    *,
    context: str,
    endings: str | Sequence[str],
    label: str | None,
    prefix: str | None = None,
    num_choices: int | None = None,
    empty: EmptyPolicy = "error",
) -> Dataset:
    """Validate a multiple-choice task.

    Args:
        endings: one field holding a list of endings, or one field per ending.
        prefix: optional field prepended to every ending with a space (SWAG ``sent2``,
            HellaSWAG ``ctx_b``), as Desai & Durrett's ``start_ending + " " + ending``.
        num_choices: expected number of endings; default: that of the first row.
        label: the gold ending's field; ``None`` for unlabelled items (every ``label`` -1).
    """
    ctx = as_text(rows.column(context))
    if isinstance(endings, str):
        lists = rows.column(endings).map(
            lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray)) else None
        )
        if lists.isna().any():
            raise rows.row_error(
                lists.isna().to_numpy(), endings, "endings must be a list of strings", ""
            )
        field = endings
    else:
        lists = pd.Series(
            list(zip(*(rows.column(e) for e in endings), strict=True)), dtype=object
        ).map(list)
        field = ",".join(endings)
    sizes = lists.map(len).to_numpy()
    k = num_choices if num_choices is not None else (int(sizes[0]) if len(sizes) else 0)
    names = tuple(str(i) for i in range(k))
    labels, labelled = encode_labels(rows, label, names) if label is not None else no_labels(rows)
    wrong = (sizes != k) & labelled
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise data_error(
            rows.path,
            int(rows.lines[i]),
            field,
            f"{sizes[i]} endings, expected {k}",
            "every item needs the same number of endings",
        )
    if empty == "error":
        check_present(rows, ctx, context, labelled)
    pre = (
        rows.column(prefix).fillna("").astype(str).to_numpy()
        if prefix
        else np.full(len(rows.ids), "", object)
    )
    blank = (
        empty_text(ctx)
        | lists.map(lambda es: any(not isinstance(e, str) or not e.strip() for e in es)).to_numpy()
    ) & labelled
    if blank.any() and empty == "error":
        raise data_error(
            rows.path,
            int(rows.lines[int(np.flatnonzero(blank)[0])]),
            f"{context}/{field}",
            "empty context or ending",
            "remove the row or fill it in",
        )
    joined = [[f"{p} {e}" if p else str(e) for e in es] for p, es in zip(pre, lists, strict=True)]
    keep = labelled & ~blank
    cols = {"context": ctx.to_numpy(), "endings": joined, "label": labels}
    return _finish(
        rows, keep, {"no gold label": int((~labelled).sum()), "empty text": int(blank.sum())}, cols
    )
