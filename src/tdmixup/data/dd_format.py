"""Desai & Durrett's calibration splits (``calibration_data/{TASK}/{train,dev,test}``).

Their archive (github.com/shreydesai/calibration) holds each split in its task's original
file format, read by column position. Layout ``"dd"`` follows the loaders in their
``train.py``:

==============  =====================================  =========================================
task            file                                   columns (0-based; -1 = last)
==============  =====================================  =========================================
SNLI            GLUE SNLI TSV, header                  sentence1 7, sentence2 8, gold_label -1
MNLI            GLUE MNLI TSV, header                  sentence1 8, sentence2 9, gold_label -1
QQP             GLUE QQP TSV, header                   question1 3, question2 4, is_duplicate 5
TwitterPPDB     Twitter URL Corpus, no header          s1 0, s2 1, (n,6) 2 (n=3 dropped)
SWAG            SWAG CSV (leading index column)        sent1 4, sent2 5, endings 7-10, label -1
HellaSWAG       JSON lines                             ctx_a, ctx_b, endings, label
==============  =====================================  =========================================

Layout ``"tdmixup"`` follows the TDMixUp code (github.com/seoyeon-p/TDMixUp), whose files
were converted to TSV by the authors: SNLI = TSV with header, pairID 1, gold_label 2,
sentence1 4, sentence2 7; SWAG = TSV, sent1 0, endings 1-4, id 5, label 6, sent2 -1; the
other tasks as ``"dd"``. The converted files themselves were not published, so this layout is
inferred from the column indices in that code. For SWAG a first row whose label cell is not
an integer is taken as a header (both codes skip it by a failed ``int()``).

NLI labels default to the GLUE order (:data:`~tdmixup.data.readers.NLI_LABELS`); pass
``label_names=DD_NLI_LABELS`` for Desai & Durrett's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from datasets import Dataset

from tdmixup.data._common import build_mc, build_pair, load_delimited
from tdmixup.data.readers import (
    NLI_LABELS,
    QQP_LABELS,
    read_hellaswag_jsonl,
    read_twitter_url_corpus,
)
from tdmixup.data.schema import data_error

DDTask = Literal["SNLI", "MNLI", "QQP", "TwitterPPDB", "SWAG", "HellaSWAG"]
Layout = Literal["dd", "tdmixup"]
DD_TASKS: tuple[str, ...] = ("SNLI", "MNLI", "QQP", "TwitterPPDB", "SWAG", "HellaSWAG")
_PAIR_LAYOUT = {  # (task, layout) -> (text_a, text_b, label) column positions
    ("SNLI", "dd"): (7, 8, -1),
    ("SNLI", "tdmixup"): (4, 7, 2),
    ("MNLI", "dd"): (8, 9, -1),
    ("MNLI", "tdmixup"): (8, 9, -1),
    ("QQP", "dd"): (3, 4, 5),
    ("QQP", "tdmixup"): (3, 4, 5),
}
_SWAG_LAYOUT = {  # layout -> (context, prefix, endings, label)
    "dd": (4, 5, (7, 8, 9, 10), -1),
    "tdmixup": (0, -1, (1, 2, 3, 4), 6),
}


def _task_name(task: str) -> str:
    for t in DD_TASKS:
        if t.lower() == task.lower():
            return t
    raise ValueError(
        f"unknown Desai & Durrett task {task!r}; expected one of {', '.join(DD_TASKS)}"
    )


def read_calibration_file(
    path: str | Path, task: str, *, layout: Layout = "dd", label_names: Sequence[str] | None = None
) -> Dataset:
    """One split file of Desai & Durrett's calibration data.

    Args:
        path: e.g. ``calibration_data/SNLI/train.txt`` (any suffix).
        task: ``SNLI``, ``MNLI``, ``QQP``, ``TwitterPPDB``, ``SWAG`` or ``HellaSWAG``
            (case-insensitive).
        layout: ``"dd"`` (their archive) or ``"tdmixup"`` (the TDMixUp code's TSVs).
        label_names: pair tasks only; default GLUE NLI order / :data:`QQP_LABELS`.

    Returns:
        A pair or multiple-choice dataset; ``sample_id`` = 0-based data row (header excluded).
    """
    name, path = _task_name(task), Path(path)
    if layout not in ("dd", "tdmixup"):
        raise ValueError(f"layout must be 'dd' or 'tdmixup', got {layout!r}")
    if name == "TwitterPPDB":
        return read_twitter_url_corpus(path)
    if name == "HellaSWAG":
        return read_hellaswag_jsonl(path)
    if name == "SWAG":
        return _read_swag(path, layout)
    rows = load_delimited(path, sep="\t", header=False)
    keep = rows.ids > 0  # the header line
    rows.frame, rows.lines, rows.ids = (
        rows.frame[keep].reset_index(drop=True),
        rows.lines[keep],
        rows.ids[keep] - 1,
    )
    a, b, y = (_col(rows.frame.shape[1], i, path) for i in _PAIR_LAYOUT[name, layout])
    names = label_names or (NLI_LABELS if name in ("SNLI", "MNLI") else QQP_LABELS)
    return build_pair(rows, text_a=a, text_b=b, label=y, label_names=names)


def _col(n_columns: int, position: int, path: Path) -> str:
    index = position % n_columns if position < 0 else position
    if index >= n_columns:
        raise data_error(
            path,
            None,
            None,
            f"expected at least {position + 1} columns, found {n_columns}",
            "is this the right task and layout?",
        )
    return str(index)


def _read_swag(path: Path, layout: Layout) -> Dataset:
    sep = "," if layout == "dd" else "\t"
    rows = load_delimited(path, sep=sep, header=False)
    n = rows.frame.shape[1]
    ctx_at, pre_at, ends_at, y_at = _SWAG_LAYOUT[layout]
    ctx, pre, y = _col(n, ctx_at, path), _col(n, pre_at, path), _col(n, y_at, path)
    ends = [_col(n, e, path) for e in ends_at]
    first = str(rows.frame[y].iloc[0]).strip() if len(rows.frame) else "0"
    shift = 0 if first.lstrip("-").isdigit() else 1
    if shift:  # a header row
        rows.frame, rows.lines, rows.ids = (
            rows.frame.iloc[1:].reset_index(drop=True),
            rows.lines[1:],
            rows.ids[1:] - 1,
        )
    return build_mc(rows, context=ctx, prefix=pre, endings=ends, label=y, num_choices=4)


def read_calibration_data(
    root: str | Path, task: str, *, layout: Layout = "dd", label_names: Sequence[str] | None = None
) -> dict[str, Dataset]:
    """All splits found under ``root/{TASK}/`` as ``{"train": ..., "dev": ..., "test": ...}``.

    Each split is ``{split}.tsv``, ``.txt``, ``.csv`` or ``.jsonl`` (first found). Raises
    :class:`~tdmixup.data.schema.DataError` when none is found.
    """
    name = _task_name(task)
    out: dict[str, Dataset] = {}
    for split in ("train", "dev", "test"):
        for suffix in (".tsv", ".txt", ".csv", ".jsonl"):
            f = Path(root) / name / f"{split}{suffix}"
            if f.is_file():
                out[split] = read_calibration_file(f, name, layout=layout, label_names=label_names)
                break
    if not out:
        raise data_error(
            Path(root) / name,
            None,
            None,
            "no train/dev/test file found",
            "expected calibration_data/{TASK}/{train,dev,test}.tsv (or .txt)",
        )
    return out
