"""What a practitioner audit found, each with a test that fails on the code before it: a table
passed to ``predict_proba`` is refused (it used to classify the column names), ``fit()``
evaluates the whole test set it is given (the profile cut it to 2,000 rows), a JSON-lines file's
missing column names the file's columns, a ``DatasetDict`` is refused with what to pass, and a
temperature at the end of the grid is logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tdmixup.data.schema import DataError


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_a_table_is_not_taken_for_a_list_of_inputs(kind: str) -> None:
    import datasets

    from tdmixup.inference.classifier import normalise_items

    frame = pd.DataFrame({"review": ["A lovely film.", "Awful film."]})
    tables = [frame, {"review": "A lovely film."}, datasets.Dataset.from_pandas(frame)]
    for table in tables:
        with pytest.raises(ValueError, match="not a .*column names"):
            normalise_items(table, kind)
    assert normalise_items(frame["review"], "single") == ["A lovely film.", "Awful film."]


def test_fit_evaluates_every_test_row_whatever_the_profile(tmp_path: Path) -> None:
    from tdmixup.run.fitting import _fit_config, _FitData

    data = _FitData(files={}, num_train=1500, label_names=("a", "b"), test_names=["mine"])
    for profile in ("cpu-small", "paper"):
        cfg = _fit_config(
            tmp_path, data, {"text_a": "t", "label": "y"}, profile=profile, has_dev=False
        )
        assert cfg.data.test_size is None and cfg.data.train_size is None


def test_a_missing_jsonl_column_names_the_files_columns(tmp_path: Path) -> None:
    from tdmixup.data.readers import read_table

    path = tmp_path / "new.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "a"}) + "\n" for i in range(3)))
    with pytest.raises(DataError, match=r"column 'review' not found \(found: text, label\)"):
        read_table(path, columns={"text_a": "review", "label": "label"}, label_names=("a", "b"))
    path.write_text('{"text": "t0", "label": "a"}\n{"text": 5, "label": "a", "extra": [1]}\n')
    with pytest.raises(DataError, match=r"found: text, label, extra"):  # the line-by-line reader
        read_table(path, columns={"text_a": "review", "label": "label"}, label_names=("a", "b"))


def test_a_dataset_dict_is_refused_with_the_split_to_pass() -> None:
    import datasets

    from tdmixup.data.inmemory import dataset_from_records

    splits = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"review": ["x"], "label": [0]})}
    )
    with pytest.raises(DataError, match=r"holds splits \('train'\), not rows.*ds\['train'\]"):
        dataset_from_records(splits, text="review", label="label")


def test_a_temperature_at_the_end_of_the_grid_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from tdmixup.evaluation.calibration import fit_temperature

    labels = np.array([0, 1, 0, 1])
    with caplog.at_level(logging.WARNING):
        assert fit_temperature(labels, np.array([[5.0, 0], [0, 5], [4, 0], [0, 4]])) == 0.01
        assert fit_temperature(labels, np.array([[0.1, 0], [0.1, 0], [0, 0.1], [0, 0.1]])) == 10.0
        assert 0.01 < fit_temperature(labels, np.array([[2.0, 0], [0, 2], [0, 1], [0, 2]])) < 10
    [low, high] = [m for m in caplog.messages if "end of the grid" in m]
    assert "100.0 %" in low and "nearly 0/1" in low
    assert "50.0 %" in high and "train longer" in high


def test_a_dev_set_larger_than_what_is_left_to_train_on_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cli_data import LABELS, write_pair_files
    from tdmixup.core.config import DataConfig
    from tdmixup.data.tasks import load_task

    train, _ = write_pair_files(tmp_path, train=30)
    columns = (("text_a", "premise"), ("text_b", "hypothesis"), ("label", "label"))
    messages = {}
    for dev_size, warned in ((20, True), (6, False)):
        config = DataConfig(
            task="custom", train_file=str(train), columns=columns, label_names=LABELS,
            dev_size=dev_size,
        )  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tdmixup.data"):
            task = load_task(config, seed=0, require_tests=False)
        assert len(task.train) == 30 - dev_size
        lines = [m for m in caplog.messages if "holds out" in m]
        assert bool(lines) == warned
        messages[dev_size] = lines
    [line] = messages[20]
    assert "holds out 20 of the training source's 30 rows for dev, leaving 10" in line
    assert "--dev-size (e.g. 6)" in line


def test_predict_input_with_an_unknown_label_says_the_classes_are_fixed(tmp_path: Path) -> None:
    from tdmixup.inference.files import read_inputs

    path = tmp_path / "new.jsonl"
    path.write_text('{"review": "Fine.", "y": "good"}\n{"review": "Meh.", "y": "mixed"}\n')
    with pytest.raises(DataError) as err:
        read_inputs(
            path,
            kind="single",
            columns={"text_a": "review", "label": "y"},
            label_names=("bad", "good"),
        )
    message = str(err.value)
    assert "row 2, field 'y'" in message and "'mixed' is not one of bad, good" in message
    assert "classes are fixed" in message and "--label-names" not in message
