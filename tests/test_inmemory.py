"""dataset_from_records: a datasets.Dataset, a pandas DataFrame, a list of dicts or a dict of
columns in the schema, with the file readers' checks (single, pair and multiple choice)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pytest

from tdmixup import dataset_from_records
from tdmixup.data.readers import read_table
from tdmixup.data.schema import MC_COLUMNS, PAIR_COLUMNS, SINGLE_COLUMNS, DataError

ROWS = [
    {"premise": "A dog runs.", "sentence": "An animal moves.", "y": "yes", "key": 10},
    {"premise": "A cat sleeps.", "sentence": "The cat is running.", "y": "no", "key": 4},
    {"premise": "Two men talk.", "sentence": "People speak.", "y": "yes", "key": 7},
]
MC_ROWS = [
    {"q": "The sky is", "opts": ["blue.", "loud.", "a cat."], "answer": 0},
    {"q": "Water is", "opts": ["dry.", "wet.", "square."], "answer": 1},
]
KINDS = ["records", "dataframe", "dataset", "columns"]


def as_kind(rows: list[dict[str, Any]], kind: str) -> Any:
    """The same rows as a list of dicts, a DataFrame, a Dataset or a dict of columns."""
    if kind == "records":
        return rows
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    if kind == "dataframe":
        return pd.DataFrame(columns)
    if kind == "dataset":
        return datasets.Dataset.from_dict(columns)
    return columns


@pytest.mark.parametrize("kind", KINDS)
def test_single_sentence_from_every_container(kind: str) -> None:
    ds, spec = dataset_from_records(as_kind(ROWS, kind), text="sentence", label="y")
    assert spec.kind == "single" and spec.label_names == ("no", "yes")  # sorted names
    assert tuple(ds.column_names) == SINGLE_COLUMNS == spec.columns
    assert ds.to_list() == [
        {"sample_id": 0, "text_a": "An animal moves.", "label": 1},
        {"sample_id": 1, "text_a": "The cat is running.", "label": 0},
        {"sample_id": 2, "text_a": "People speak.", "label": 1},
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_pair_with_ids_and_given_label_order(kind: str) -> None:
    ds, spec = dataset_from_records(
        as_kind(ROWS, kind),
        text="premise",
        text_pair="sentence",
        label="y",
        sample_id="key",
        label_names=["yes", "no"],
    )
    assert spec.kind == "pair" and spec.label_names == ("yes", "no")
    assert tuple(ds.column_names) == PAIR_COLUMNS
    assert ds["sample_id"] == [10, 4, 7] and ds["label"] == [0, 1, 0]
    assert ds["text_b"] == [r["sentence"] for r in ROWS]


@pytest.mark.parametrize("kind", KINDS)
def test_multiple_choice_from_every_container(kind: str) -> None:
    ds, spec = dataset_from_records(
        as_kind(MC_ROWS, kind), context="q", endings="opts", label="answer"
    )
    assert spec.kind == "multiple_choice" and spec.label_names == ("0", "1", "2")
    assert tuple(ds.column_names) == MC_COLUMNS
    assert ds["endings"] == [r["opts"] for r in MC_ROWS] and ds["label"] == [0, 1]
    wide = [{"q": r["q"], **{f"e{k}": e for k, e in enumerate(r["opts"])}} for r in MC_ROWS]
    ds2, _ = dataset_from_records(
        as_kind(wide, kind), context="q", endings=["e0", "e1", "e2"], label=None
    )
    assert ds2["endings"] == ds["endings"] and ds2["label"] == [-1, -1]


def test_same_dataset_as_the_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    columns = {"text_a": "premise", "text_b": "sentence", "label": "y", "sample_id": "key"}
    from_file = read_table(path, columns=columns, label_names=("no", "yes"))
    ds, _ = dataset_from_records(
        pd.DataFrame(ROWS), text="premise", text_pair="sentence", label="y", sample_id="key"
    )
    assert ds.to_list() == from_file.to_list()


def test_label_names_from_class_label_integers_and_no_labels() -> None:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
        }
    )
    hub = datasets.Dataset.from_dict(
        {"text": ["great", "awful", "unlabelled"], "label": [1, 0, -1]}, features=features
    )
    ds, spec = dataset_from_records(hub, text="text")
    assert spec.label_names == ("neg", "pos") and ds["label"] == [1, 0]  # -1 rows skipped
    assert ds["sample_id"] == [0, 1]
    ds, spec = dataset_from_records(hub, text="text", label_names=["pos", "neg"])
    assert ds["label"] == [0, 1]  # re-indexed by the names asked for
    ds, spec = dataset_from_records([{"t": "a", "label": 2}, {"t": "b", "label": 0}], text="t")
    assert spec.label_names == ("0", "1", "2") and ds["label"] == [2, 0]
    ds, spec = dataset_from_records(
        [{"t": "a"}, {"t": "b"}], text="t", label=None, label_names=["x", "y"]
    )
    assert ds["label"] == [-1, -1] and spec.label_names == ("x", "y")


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (
            [{"s": "ok", "label": "a"}, {"s": " ", "label": "b"}],
            {},
            "records (rows from 0), row 1, field 's': empty text",
        ),
        (
            [{"s": "ok", "label": "a"}, {"label": "b"}],
            {},
            "row 1, field 's': missing from this row",
        ),
        (
            [{"s": "ok", "label": "a"}, {"s": "fine", "label": "c"}],
            {"label_names": ["a", "b"]},
            "row 1, field 'label': label 'c' is not one of a, b (fix the label, or give the "
            "class names in class-index order: label_names=[...])",
        ),
        (
            [{"s": "x", "label": "a", "i": 3}, {"s": "y", "label": "a", "i": 3}],
            {"sample_id": "i"},
            "row 1, field 'sample_id': duplicate sample_id 3",
        ),
        (
            [{"s": "x", "label": "a", "i": 1.5}],
            {"sample_id": "i"},
            "row 0, field 'i': sample_id 1.5 is not an integer",
        ),
        (
            [{"s": "x", "label": "a"}],
            {"text_pair": "other"},
            "field 'other': column 'other' not found (found: s, label) (name an existing column",
        ),
        ([{"s": "x", "label": "a"}, "not a dict"], {}, "row 1: expected a dict, found str"),
    ],
)
def test_bad_rows_are_one_line_naming_row_and_column(
    rows: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError) as err:
        dataset_from_records(rows, text="s", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_mapping_without_text_says_what_to_give() -> None:
    with pytest.raises(DataError, match="give text="):
        dataset_from_records([{"s": "x", "label": "a"}])
    with pytest.raises(TypeError, match="list of dicts"):
        dataset_from_records("not rows", text="s")  # type: ignore[arg-type]


def test_a_label_named_once_among_many_is_warned_about_as_a_likely_typo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [{"t": f"text {i}", "y": "pos" if i % 2 else "neg"} for i in range(25)]
    rows[7]["y"] = "negatve"
    with caplog.at_level(logging.WARNING, "tdmixup.data"):
        _, spec = dataset_from_records(rows, text="t", label="y")
    assert spec.label_names == ("neg", "negatve", "pos")
    assert "label column 'y': class 'negatve' has only 1 of 25 labelled rows (first: row 7)" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, "tdmixup.data"):
        dataset_from_records(rows, text="t", label="y", label_names=["neg", "negatve", "pos"])
    assert "has only" not in caplog.text  # the classes were named: nothing is guessed
