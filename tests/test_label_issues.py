"""``tdmixup.find_label_issues``: one DataFrame ranked by suspicion (cleanlab ``get_issues()``
style) on pairs, single sentences and multiple choice; a reused dynamics table is checked against
the data. Tiny random BERT, real SNLI rows, no network."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import (  # noqa: E402
    SNLI_LABELS,
    build_tiny_model_dir,
    quiet_libraries,
    require_minilm,
    snli_columns,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LOOP = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "max_seq_length": 48}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def test_pairs_are_ranked_with_the_users_columns_and_a_dynamics_table_is_reused(
    tiny_model: str, tmp_path: Path
) -> None:
    import tdmixup
    from tdmixup.data.schema import DataError

    cols = snli_columns(40)
    df = pd.DataFrame(
        {
            "premise": cols["text_a"],
            "hypothesis": cols["text_b"],
            "gold": [SNLI_LABELS[y] for y in cols["label"]],
            "note": [f"row {i}" for i in range(40)],
        }
    )
    kw = dict(text="premise", text_pair="hypothesis", label="gold", label_names=SNLI_LABELS)
    out = tmp_path / "run"
    issues = tdmixup.find_label_issues(df, **kw, output_dir=out, model=tiny_model, **LOOP)
    assert len(issues) == 40 and sorted(issues.index) == list(range(40))
    assert list(issues.columns[:4]) == ["premise", "hypothesis", "gold", "note"]
    assert list(issues.columns[4:]) == list(tdmixup.run.label_issues.ISSUE_COLUMNS)
    assert issues["rank"].tolist() == list(range(1, 41))
    assert issues["label_score"].is_monotonic_increasing  # the most suspicious first
    # the default: confidence as a percentile within the rows of the same given label
    within = issues.groupby("given_label")["confidence"].rank(pct=True)
    assert (issues["label_score"] - within).abs().max() < 1e-12
    assert issues["is_label_issue"].tolist() == [True] * 4 + [False] * 36  # floor(0.1 · 40)
    assert (issues["given_label"] == issues["gold"]).all()
    assert (issues["note"] == [f"row {i}" for i in issues.index]).all()
    assert set(issues["predicted_label"]) <= set(SNLI_LABELS)
    assert issues["predicted_probability"].between(0, 1).all()

    # the same rows with the table recorded above: nothing trains, the same ranking
    table = out / "dynamics.parquet"
    again = tdmixup.find_label_issues(df, **kw, dynamics=table, method="aum", fraction=0.2)
    assert again["aum"].is_monotonic_increasing and again["is_label_issue"].sum() == 8
    assert np.allclose(again.sort_index()["confidence"], issues.sort_index()["confidence"])
    other = df.copy()
    other.loc[5, "hypothesis"] = "Something else entirely."
    with pytest.raises(DataError, match="sample_id 5") as err:
        tdmixup.find_label_issues(other, **kw, dynamics=table)
    assert "\n" not in str(err.value)

    # more rows than the table saw: refused (one row per input row), not silently dropped
    extra = snli_columns(3, skip=500)
    longer = pd.concat(
        [
            df,
            pd.DataFrame(
                {
                    "premise": extra["text_a"],
                    "hypothesis": extra["text_b"],
                    "gold": [SNLI_LABELS[y] for y in extra["label"]],
                    "note": ["new"] * 3,
                }
            ),
        ],
        ignore_index=True,
    )
    with pytest.raises(DataError, match=r"covers 40 of the 43 labelled rows.*sample_id 40"):
        tdmixup.find_label_issues(longer, **kw, dynamics=table)
    with pytest.raises(ValueError, match="method must be one of class_confidence"):
        tdmixup.find_label_issues(df, **kw, dynamics=table, method="margin")  # type: ignore[arg-type]

    # a shuffled DataFrame with its own index: the result keeps that index, so it lines up
    shuffled = df.sample(frac=1.0, random_state=0).set_index(pd.Index([f"r{i}" for i in range(40)]))
    by_label = shuffled.reset_index(drop=True)
    reference = tdmixup.find_label_issues(by_label, **kw, output_dir=tmp_path / "shuffled",
                                          model=tiny_model, **LOOP)  # fmt: skip
    mine = tdmixup.find_label_issues(
        shuffled, **kw, dynamics=tmp_path / "shuffled" / "dynamics.parquet"
    )
    assert set(mine.index) == set(shuffled.index)
    assert (shuffled.loc[mine.index, "note"] == mine["note"]).all()
    assert mine["rank"].tolist() == reference["rank"].tolist()
    assert (shuffled.index[reference.index] == mine.index).all()


def test_single_sentences_and_multiple_choice(
    tiny_model: str, caplog: pytest.LogCaptureFixture
) -> None:
    import tdmixup

    cols = snli_columns(30, skip=100)
    records = [
        {"id": 1000 + i, "sentence": b, "label": SNLI_LABELS[y]}
        for i, (b, y) in enumerate(zip(cols["text_b"], cols["label"], strict=True))
    ]
    records.insert(7, {"id": 1005, "sentence": "Unlabelled, its id repeated.", "label": "-"})
    with caplog.at_level(logging.WARNING):
        single = tdmixup.find_label_issues(
            records, text="sentence", sample_id="id", fraction=0.4, model=tiny_model, **LOOP
        )
    assert sorted(single.index) == list(range(1000, 1030)) and single["is_label_issue"].sum() == 12
    assert (single["given_label"] == single["label"]).all()
    assert any("flags 12 of 30 samples" in m and "lower fraction" in m for m in caplog.messages)

    rng = np.random.default_rng(0)
    mc = {
        "question": [f"{a} What follows?" for a in cols["text_a"][:24]],
        "options": [[b, "A cat flies.", "Nobody is there."] for b in cols["text_b"][:24]],
        "answer": rng.integers(0, 3, 24).tolist(),
    }
    issues = tdmixup.find_label_issues(
        mc, context="question", endings="options", label="answer", model=tiny_model, **LOOP
    )
    assert len(issues) == 24 and issues["is_label_issue"].sum() == 2
    assert (issues["given_label"].astype(int) == issues["answer"]).all()
