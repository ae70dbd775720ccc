"""One reader per source format; each returns a :class:`datasets.Dataset` in the schema of
:mod:`tdmixup.data.schema`.

``sample_id`` is the 0-based record index in the source file: the line index for JSON lines
and the six-line HellaSWAG text, the data-row index (header excluded) for CSV/TSV. Rows
without a gold label (SNLI ``"-"``, TwitterPPDB ``n = 3``) are skipped, their count is logged
on the ``"tdmixup.data"`` logger, and the other rows keep their ids. Errors are
:class:`~tdmixup.data.schema.DataError` naming the file, the 1-based line and the field.

Label order: NLI defaults to the GLUE / Hugging Face order ``entailment 0, neutral 1,
contradiction 2`` (:data:`NLI_LABELS`). Desai & Durrett (2020) and the TDMixUp code use
``entailment 0, contradiction 1, neutral 2``: pass ``label_names=DD_NLI_LABELS`` to match
their ids (e.g. to compare with their saved predictions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import Dataset

from tdmixup.data._common import (
    EmptyPolicy,
    Rows,
    build_mc,
    build_pair,
    decode,
    int_ids,
    json_objects,
    jsonl_lines,
    label_names_in,
    load_delimited,
    load_jsonl,
    read_bytes,
    unlabeled_mask,
    warn_rare_classes,
)
from tdmixup.data.schema import TaskKind, data_error, kind_of_columns

NLI_LABELS = ("entailment", "neutral", "contradiction")
"""GLUE / Hugging Face NLI label order (the default)."""
DD_NLI_LABELS = ("entailment", "contradiction", "neutral")
"""Desai & Durrett's (and the TDMixUp code's) NLI label order."""
QQP_LABELS = ("not_duplicate", "duplicate")
PARAPHRASE_LABELS = ("not_paraphrase", "paraphrase")
SST2_LABELS = ("negative", "positive")
"""SST-2's classes in its hub order (a single-sentence task)."""
MC4_LABELS = ("0", "1", "2", "3")
FileFormat = Literal["auto", "jsonl", "csv", "tsv"]
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "single": ("text_a", "label"),
    "pair": ("text_a", "text_b", "label"),
    "multiple_choice": ("context", "endings", "label"),
}
"""The fields a column mapping must give, per task kind (``sample_id`` is always optional)."""
_CHAOS_LETTERS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def read_nli_jsonl(path: str | Path, *, label_names: Sequence[str] = NLI_LABELS) -> Dataset:
    """SNLI 1.0 / MultiNLI original JSON lines (``sentence1``, ``sentence2``, ``gold_label``).

    Rows with ``gold_label == "-"`` are skipped. Returns a pair dataset,
    ``label`` = index of ``gold_label`` in ``label_names``.
    """
    types = {"sentence1": pa.string(), "sentence2": pa.string(), "gold_label": pa.string()}
    rows = load_jsonl(Path(path), list(types), types)
    return build_pair(
        rows, text_a="sentence1", text_b="sentence2", label="gold_label", label_names=label_names
    )


def read_chaosnli(
    path: str | Path,
    *,
    label_names: Sequence[str] = NLI_LABELS,
    label_field: Literal["majority_label", "old_label"] = "majority_label",
) -> Dataset:
    """ChaosNLI JSON lines (Nie et al. 2020): 100 crowd labels per SNLI/MNLI pair.

    Args:
        label_field: ``majority_label`` (of the 100 crowd labels) or ``old_label`` (the
            original dataset's gold label); both are letters ``e``/``n``/``c``.

    Returns:
        A pair dataset plus ``entropy`` (float64, in bits, as published) and
        ``label_dist`` (list of ``len(label_names)`` floats summing to 1, in ``label_names``
        order, from ``label_counter``).
    """
    if sorted(label_names) != sorted(_CHAOS_LETTERS.values()):
        raise ValueError(
            f"label_names must order entailment, neutral, contradiction; got {tuple(label_names)}"
        )
    fields = {
        "example.premise": pa.string(),
        "example.hypothesis": pa.string(),
        label_field: pa.string(),
        "entropy": pa.float64(),
        **{f"label_counter.{k}": pa.int64() for k in _CHAOS_LETTERS},
    }
    rows = load_jsonl(Path(path), list(fields), fields)
    rows.frame[label_field] = rows.frame[label_field].map(lambda v: _CHAOS_LETTERS.get(v, v))
    letters = {name: letter for letter, name in _CHAOS_LETTERS.items()}
    counts = np.stack(
        [
            pd.to_numeric(rows.frame[f"label_counter.{letters[n]}"]).fillna(0).to_numpy(float)
            for n in label_names
        ],
        axis=1,
    )
    total = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    extra = {
        "entropy": pd.to_numeric(rows.frame["entropy"]).to_numpy(float),
        "label_dist": list(counts / total),
    }
    return build_pair(
        rows,
        text_a="example.premise",
        text_b="example.hypothesis",
        label=label_field,
        label_names=label_names,
        extra=extra,
    )


def read_twitter_url_corpus(path: str | Path, *, empty: EmptyPolicy = "error") -> Dataset:
    """Twitter URL Corpus file (Lan et al. 2017), the source of TwitterPPDB.

    Each line is ``s1 \\t s2 \\t (n,6) \\t url`` where ``n`` of 6 annotators said
    "paraphrase": ``n >= 4`` → 1, ``n <= 2`` → 0, ``n == 3`` has no gold label and is skipped
    (Desai & Durrett 2020). Blank lines keep their line index.
    """
    path = Path(path)
    lines = decode(path, read_bytes(path)).split("\n")
    ids, s1, s2, label = [], [], [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("\t")
        m = _count(parts[2]) if len(parts) >= 3 else None
        if m is None:
            raise data_error(
                path,
                i + 1,
                "(n,6)",
                f"expected 's1<TAB>s2<TAB>(n,6)<TAB>url', found {line[:80]!r}",
                "this reader is for the Twitter URL Corpus format",
            )
        ids.append(i)
        s1.append(parts[0])
        s2.append(parts[1])
        label.append(None if m == 3 else int(m >= 4))
    frame = pd.DataFrame({"s1": s1, "s2": s2, "label": label}, dtype=object)
    rows = Rows(path, frame, np.asarray(ids, np.int64) + 1, np.asarray(ids, np.int64))
    return build_pair(
        rows, text_a="s1", text_b="s2", label="label", label_names=PARAPHRASE_LABELS, empty=empty
    )


def _count(cell: str) -> int | None:
    inner = cell.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        return None
    n = inner[1:-1].split(",")[0].strip()
    return int(n) if n.isdigit() else None


def read_qqp_tsv(path: str | Path, *, empty: EmptyPolicy = "error") -> Dataset:
    """GLUE QQP TSV with header ``id qid1 qid2 question1 question2 is_duplicate``.

    Labels: ``0`` not duplicate, ``1`` duplicate (:data:`QQP_LABELS`). GLUE's QQP has a few
    empty questions; pass ``empty="skip"`` to drop them (logged) instead of failing.
    """
    rows = load_delimited(Path(path), sep="\t", header=True)
    return build_pair(
        rows,
        text_a="question1",
        text_b="question2",
        label="is_duplicate",
        label_names=QQP_LABELS,
        empty=empty,
    )


def read_swag_csv(path: str | Path) -> Dataset:
    """SWAG CSV (Zellers et al. 2018): ``sent1, sent2, ending0..ending3, label``.

    ``context = sent1`` and ending ``k`` = ``sent2 + " " + ending_k``, as Desai & Durrett.
    """
    rows = load_delimited(Path(path), sep=",", header=True)
    return build_mc(
        rows,
        context="sent1",
        prefix="sent2",
        endings=[f"ending{k}" for k in range(4)],
        label="label",
        num_choices=4,
    )


def read_hellaswag_jsonl(path: str | Path) -> Dataset:
    """HellaSWAG JSON lines (official release, Desai & Durrett's ``calibration_data``).

    ``context = ctx_a`` and ending ``k`` = ``ctx_b + " " + endings[k]`` (``ctx_b`` may be
    empty), as Desai & Durrett's code.
    """
    rows = load_jsonl(Path(path), ["ctx_a", "ctx_b", "endings", "label"])
    return build_mc(
        rows, context="ctx_a", prefix="ctx_b", endings="endings", label="label", num_choices=4
    )


def read_hellaswag_text(path: str | Path) -> Dataset:
    """HellaSWAG as plain text (optionally ``.bz2``), 6 lines per item.

    Lines: context, label (``0``–``3``), then the 4 endings. ``sample_id`` = item index
    (item ``i`` starts at line ``6 i + 1``). The context line is the full context
    (``activity_label: ctx_a ctx_b``), so endings carry no prefix, unlike
    :func:`read_hellaswag_jsonl`.
    """
    path = Path(path)
    lines = decode(path, read_bytes(path)).split("\n")
    if lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 6:
        raise data_error(
            path,
            len(lines) - len(lines) % 6 + 1,
            None,
            f"{len(lines)} lines is not a multiple of 6 (context, label, 4 endings)",
            "the last item is incomplete",
        )
    items = np.array(lines, dtype=object).reshape(-1, 6)
    bad = ~pd.Series(items[:, 1]).str.strip().isin(MC4_LABELS).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise data_error(
            path,
            6 * i + 2,
            "label",
            f"{items[i, 1]!r} is not one of 0, 1, 2, 3",
            "items must be 6 lines: context, label, 4 endings",
        )
    frame = pd.DataFrame(
        {
            "context": items[:, 0],
            "label": pd.Series(items[:, 1]).str.strip(),
            **{f"e{k}": items[:, 2 + k] for k in range(4)},
        },
        dtype=object,
    )
    ids = np.arange(len(items), dtype=np.int64)
    return build_mc(
        Rows(path, frame, 6 * ids + 1, ids),
        context="context",
        endings=[f"e{k}" for k in range(4)],
        label="label",
        num_choices=4,
    )


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | Sequence[tuple[str, str]],
    label_names: Sequence[str] = (),
    file_format: FileFormat = "auto",
    header: bool = True,
    empty: EmptyPolicy = "error",
    mapping_hint: str | None = None,
) -> Dataset:
    """Your own JSON lines / CSV / TSV file, with a column mapping.

    Args:
        columns: field → source column. Single-sentence tasks: ``text_a``, ``label``; pair
            tasks: ``text_a``, ``text_b``, ``label``; multiple choice: ``context``, ``endings``
            (a list column, or comma-separated columns ``"ending0,ending1,ending2,ending3"``),
            ``label``, optional ``ending_prefix``. All: optional ``sample_id`` (unique
            integers; default: the row index). Nested JSON fields are dotted
            (``example.premise``); headerless CSV/TSV columns are ``"0"``, ``"1"``, ...
        label_names: class names in index order; label cells may be names or integer indices.
            Empty: integer labels, number of classes unchecked (single, pair) / = number of
            endings.
        file_format: ``auto`` picks by suffix: ``.jsonl``/``.json`` → jsonl, ``.csv`` → csv,
            ``.tsv`` → tsv; any other suffix (``.txt``) is jsonl if the file starts with ``{``,
            else tsv. ``.bz2``/``.gz`` are decompressed first.
        header: CSV/TSV first line names the columns.
        empty: ``"error"`` (default) or ``"skip"`` rows with an empty text.
        mapping_hint: the fix a "column not found" error suggests (default: ``--column``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mine.csv"
    >>> _ = p.write_text("premise,hypothesis,y\\nA dog runs.,An animal moves.,yes\\n")
    >>> ds = read_table(p, columns={"text_a": "premise", "text_b": "hypothesis", "label": "y"},
    ...                 label_names=("no", "yes"))
    >>> ds[0]
    {'sample_id': 0, 'text_a': 'A dog runs.', 'text_b': 'An animal moves.', 'label': 1}
    >>> read_table(p, columns={"text_a": "hypothesis", "label": "y"}, label_names=("no", "yes"))[0]
    {'sample_id': 0, 'text_a': 'An animal moves.', 'label': 1}
    """
    path, mapping = Path(path), dict(columns)
    mc = check_mapping(path, mapping) == "multiple_choice"
    ends = mapping["endings"].split(",") if mc else []
    fields = [c for f, c in mapping.items() if f != "endings"] + ends
    rows = _load_rows(path, fields, file_format, header=header, mapping_hint=mapping_hint)
    if "sample_id" in mapping:
        _check_id_column(rows, mapping["sample_id"])
        rows.ids = int_ids(rows, mapping["sample_id"])
    if mc:
        return build_mc(
            rows,
            context=mapping["context"],
            endings=ends if len(ends) > 1 else ends[0],
            label=mapping["label"],
            prefix=mapping.get("ending_prefix"),
            num_choices=len(label_names) or None,
            empty=empty,
        )
    return build_pair(
        rows,
        text_a=mapping["text_a"],
        text_b=mapping.get("text_b"),
        label=mapping["label"],
        label_names=tuple(str(n) for n in label_names) or None,
        empty=empty,
    )


def _load_rows(
    path: Path,
    fields: list[str],
    file_format: FileFormat,
    *,
    header: bool,
    mapping_hint: str | None,
) -> Rows:
    """The raw records of your own file: JSON lines (only ``fields``, dotted for nested ones) or
    CSV/TSV (every column); ``mapping_hint`` replaces the default fix of a missing column."""
    fmt = file_format if file_format != "auto" else _format_of(path)
    if fmt == "jsonl":
        rows = load_jsonl(path, fields)
    else:
        rows = load_delimited(path, sep="," if fmt == "csv" else "\t", header=header)
    if mapping_hint:
        rows.mapping_hint = mapping_hint
    return rows


def file_label_names(
    path: str | Path,
    label_column: str,
    *,
    file_format: FileFormat = "auto",
    header: bool = True,
    mapping_hint: str | None = None,
) -> tuple[str, ...] | None:
    """The class names a file's label column holds, when they are names: the distinct labels in
    sorted order (:func:`~tdmixup.data._common.label_names_in`, as ``tdmixup.fit`` infers them);
    None when the labels are integer indices. What ``--task custom`` uses when no
    ``--label-names`` are given.

    Raises:
        DataError: the file has no column ``label_column`` (naming the columns it has).
    """
    path = Path(path)
    rows = _load_rows(path, [label_column], file_format, header=header, mapping_hint=mapping_hint)
    cells = rows.column(label_column)
    names = label_names_in(cells)
    if names is not None:
        warn_rare_classes(cells, rows.lines, path, "--label-names a,b,c")
    return names


def read_all_columns(
    path: str | Path,
    *,
    label_column: str | None = None,
    id_column: str | None = None,
    file_format: FileFormat = "auto",
) -> pd.DataFrame:
    """Every column of your own file, one row per record that :func:`read_table` keeps, indexed
    by the ``sample_id`` it gives that record (its row index, or the integer ``id_column``), so
    that an export can put the user's whole row beside a sample's statistics.

    Values stay as written: JSON lines are parsed with :mod:`json` (no type inference: an int
    column with a null stays ints, a date-like string stays the string), nested objects
    flattened to dotted columns (``example.premise``, as the ``--column`` mapping names them),
    lists kept as lists; CSV/TSV cells are text. Blank rows, and rows whose ``label_column``
    cell means "no gold label" (``-``, empty, …), are dropped, as :func:`read_table` drops them.

    Args:
        path: the file (``.bz2``/``.gz`` are decompressed).
        label_column: the file's label column (``--column label=...``); None keeps every row.
        id_column: the file's ``sample_id`` column (``--column sample_id=...``), if any.
        file_format: as :func:`read_table`.

    Returns:
        DataFrame (object columns) with the file's columns in order of first appearance, index
        ``sample_id`` (int64); ``attrs["source"]`` holds the path (for error messages).

    Raises:
        DataError: a line that is not a JSON object, or a missing, non-integer or repeated id,
            naming the file and line.
    """
    path = Path(path)
    fmt = file_format if file_format != "auto" else _format_of(path)
    if fmt == "jsonl":
        rows = _jsonl_as_written(path)
    else:
        rows = load_delimited(path, sep="," if fmt == "csv" else "\t", header=True)
    if label_column is not None and label_column in rows.frame.columns:
        keep = ~unlabeled_mask(rows.frame[label_column])
        rows = Rows(path, rows.frame[keep].reset_index(drop=True), rows.lines[keep], rows.ids[keep])
    if id_column is not None:
        _check_id_column(rows, id_column)
        rows.ids = int_ids(rows, id_column)
        repeated = pd.Series(rows.ids).duplicated().to_numpy()
        if repeated.any():
            raise rows.row_error(
                repeated, id_column, "duplicate sample_id {value}", "ids must be unique"
            )
    frame = rows.frame.astype(object)
    frame.index = pd.Index(np.asarray(rows.ids, dtype=np.int64), name="sample_id")
    frame.attrs["source"] = str(path)
    return frame


def _jsonl_as_written(path: Path) -> Rows:
    """A JSON-lines file's records with values as :mod:`json` parses them (nested objects as
    dotted columns); ``sample_id`` = 0-based line index, as :func:`load_jsonl` numbers them."""
    data = read_bytes(path)
    decode(path, data)  # bad UTF-8: one line naming the line
    pieces, ids = jsonl_lines(data)
    records = [_flatten(obj) for obj in json_objects(path, pieces, ids)]
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    frame = pd.DataFrame(
        {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns},
        index=pd.RangeIndex(len(records)),
    )
    return Rows(path, frame, ids + 1, ids)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists and scalars as they are)."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def check_mapping(
    source: object,
    mapping: Mapping[str, str],
    hint: str = "e.g. --column text_a=sentence --column label=label "
    "(add --column text_b=COLUMN for sentence pairs)",
) -> TaskKind:
    """The task kind of a field → column mapping (:func:`~tdmixup.data.schema.kind_of_columns`);
    a :class:`~tdmixup.data.schema.DataError` naming ``source`` when a field is missing or
    unknown."""
    kind = kind_of_columns(mapping)
    need = REQUIRED_FIELDS[kind]
    allowed = {*need, "sample_id"} | (
        {"ending_prefix"} if kind == "multiple_choice" else {"text_b"}
    )
    if set(need) - set(mapping) or set(mapping) - allowed:
        raise data_error(
            source,
            None,
            None,
            f"column mapping {dict(mapping)} must give {sorted(need)} "
            f"(optional: {sorted(allowed - set(need))})",
            hint,
        )
    return kind


def _format_of(path: Path) -> FileFormat:
    name = path.name.lower().removesuffix(".bz2").removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv" if name.endswith(".csv") else "tsv"
    return (
        "jsonl" if read_bytes(path).lstrip()[:1] == b"{" else "tsv"
    )  # e.g. D&D's HellaSWAG train.txt


def _check_id_column(rows: Rows, column: str) -> None:
    """Refuse a ``--column sample_id=COLUMN`` that this file does not have, in one line."""
    if not rows.has(column):
        raise data_error(
            rows.path,
            None,
            column,
            f"column '{column}' not found (found: {rows.found_columns()})",
            f"--column sample_id={column} names the training file's id column; give the column "
            "that holds it, or leave sample_id out to number rows",
        )


def split_dataset(
    dataset: Dataset, *, seed: int, dev_size: int, test_fraction: float = 0.2
) -> tuple[Dataset, Dataset, Dataset]:
    """Deterministic seeded split into ``(train, dev, test)``.

    A permutation of the rows with ``numpy.random.default_rng(seed)``: the first
    ``round(test_fraction · N)`` rows are test, the next ``dev_size`` dev, the rest train; each
    part stays in permuted order, so "the first ``n`` training rows" is a random subset that
    only grows with ``n``. ``sample_id`` is unchanged.

    Examples:
        >>> ds = Dataset.from_dict({"sample_id": list(range(10))})
        >>> [len(p) for p in split_dataset(ds, seed=0, dev_size=3)]
        [5, 3, 2]
    """
    n = len(dataset)
    n_test = int(round(test_fraction * n))
    if not 0.0 <= test_fraction < 1.0 or dev_size < 0 or n_test + dev_size >= n:
        raise ValueError(
            f"cannot split {n} rows into test {n_test} (test_fraction={test_fraction}) "
            f"+ dev {dev_size} + a non-empty train"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return (
        dataset.select(perm[n_test + dev_size :]),
        dataset.select(perm[n_test : n_test + dev_size]),
        dataset.select(perm[:n_test]),
    )
