"""Flags you can act on (:mod:`tdmixup.dynamics.suspects`): ranking, the user's own columns,
per-class counts and warnings; plus the docstring examples of it and of
:mod:`tdmixup.dynamics.fingerprint`."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tdmixup.dynamics import fingerprint, suspects
from tdmixup.dynamics.suspects import (
    flag_warnings,
    rank_suspects,
    suspect_table,
    suspects_per_class,
    training_learning_check,
    user_columns,
)
from tdmixup.evaluation.sets import learning_check


@pytest.mark.parametrize("module", [suspects, fingerprint])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_ranking_is_a_total_order_with_missing_values_last() -> None:
    stats = pd.DataFrame(
        {"confidence": [0.2, 0.2, np.nan, 0.1], "aum": [1.0, -1.0, 0.0, np.nan]},
        index=pd.Index([4, 3, 2, 1], name="sample_id"),
    )
    ids = np.array([1, 2, 3, 4])
    assert rank_suspects(ids, stats).tolist() == [1, 3, 4, 2]  # ties by id
    assert rank_suspects(ids, stats, rank_by="aum").tolist() == [3, 2, 4, 1]
    with pytest.raises(ValueError, match="rank_by must be one of"):
        rank_suspects(ids, stats, rank_by="margin")  # type: ignore[arg-type]


def test_user_columns_round_trip_multiple_choice_endings() -> None:
    rows = {
        "sample_id": [7, 8],
        "context": ["c7", "c8"],
        "endings": [["a", "b"], ["c", "d"]],
        "label": [1, 0],
    }
    mapping = {"context": "question", "endings": "o1,o2", "label": "answer", "sample_id": "id"}
    table = user_columns(rows, mapping)
    assert list(table.columns) == ["id", "question", "o1", "o2", "answer"]
    assert table["o2"].tolist() == ["b", "d"] and table["answer"].tolist() == [1, 0]


def test_suspect_table_prefixes_added_columns_the_file_already_uses() -> None:
    rows = {"sample_id": [0, 1], "text_a": ["x", "y"], "label": [0, 1]}
    stats = pd.DataFrame(
        {"confidence": [0.1, 0.9], "prediction": [1, 1], "prediction_probability": [0.8, 0.7]},
        index=pd.Index([0, 1], name="sample_id"),
    )
    table = suspect_table(
        np.array([1, 0]), rows, mapping={"text_a": "rank"}, label_names=("no", "yes"), stats=stats
    )
    assert table["rank"].tolist() == ["y", "x"]  # the user's own column called "rank"
    assert table["tdmixup_rank"].tolist() == [1, 2]
    assert table["predicted_label"].tolist() == ["yes", "yes"]
    assert table["label"].tolist() == ["yes", "no"]


def test_per_class_counts_and_warnings() -> None:
    gold = pd.Series([0, 0, 0, 1, 1, 1], index=range(6))
    per_class = suspects_per_class(np.array([0, 1, 3]), np.arange(6), gold, None, ["a", "b"])
    assert per_class["a"] == {"n": 3, "suspects": 2, "share": pytest.approx(2 / 3)}
    assert flag_warnings(what="x", n_flagged=25, n_pool=100, fix="f") == []  # 25 % is plausible
    [big] = flag_warnings(what="x", n_flagged=26, n_pool=100, fix="do this")
    assert "26 of 100" in big and big.endswith("do this")
    chance = learning_check(np.array([0, 1] * 50), np.zeros((100, 2)), set_name="train")
    [weak] = flag_warnings(what="x", n_flagged=1, n_pool=100, fix="f", learning=chance)
    assert "near chance" in weak and "--epochs" in weak


def test_training_learning_check_reads_the_last_epochs_predictions() -> None:
    stats = pd.DataFrame({"gold": [0, 1, 2] * 40, "prediction": [0, 1, 2] * 40})
    assert not training_learning_check(stats, learning_check)["near_chance"]
    stats["prediction"] = 0
    assert training_learning_check(stats, learning_check)["near_chance"]


def test_report_has_the_suspects_per_class_and_the_warnings(tmp_path: Path) -> None:
    import json

    from tdmixup.evaluation.report import write_run_report

    gold = pd.Series([0, 0, 1, 1], index=range(4))
    pred = pd.Series([1, 0, 0, 1], index=range(4))
    flags = suspects.flag_summary(
        what="the data map's hard-to-learn region",
        file="suspects.csv",
        flagged_ids=np.array([0, 2]),
        pool_ids=np.arange(4),
        gold=gold,
        predicted=pred,
        label_names=["no", "yes"],
        fix="use --dynamics-fraction 0.1",
        rank_by="confidence",
    )
    (tmp_path / "datamap").mkdir()
    done = {"regions": {"easy": 1, "ambiguous": 1, "hard": 2}, "suspects": flags}
    (tmp_path / "datamap" / "done.json").write_text(json.dumps(done))
    report = write_run_report(tmp_path).read_text()
    section = report.split("## Suspected wrong labels", 1)[1]
    assert "**Warning:** the data map's hard-to-learn region flags 2 of 4 samples (50 %)" in section
    assert "| no | 2 | 1 | 50.0 % | yes 1 |" in section
    assert "| yes | 2 | 1 | 50.0 % | no 1 |" in section
