"""The docs' "Your own data" guide (docs/guides/own-data.md), run as written on the files in
tests/fixtures/own_data with a tiny random BERT; `--label-names a,b,c`; the learning check on a
model that cannot learn."""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm  # noqa: E402
from tdmixup.cli.commands import build_parser, config_from_args, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "own_data"
TINY = ["--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--max-seq-length", "64"]
"""Appended to the README's commands: a smoke-sized loop (the README's options stay as written)."""


def readme_section() -> str:
    """docs/guides/own-data.md up to its "Recording dynamics" section."""
    text = (REPO / "docs" / "guides" / "own-data.md").read_text()
    return text.split("\n## Recording dynamics", 1)[0]


def code_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def readme_commands() -> list[list[str]]:
    """Each ```bash block of the section as one argv (continuation lines joined)."""
    return [
        shlex.split(block.replace("\\\n", " ")) for block in code_blocks(readme_section(), "bash")
    ]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def test_readme_examples_are_the_fixture_files() -> None:
    section = readme_section()
    [jsonl] = code_blocks(section, "jsonl")
    csv_pairs, csv_reviews = code_blocks(section, "csv")
    train = (FIXTURES / "train.jsonl").read_text().splitlines()
    assert jsonl.splitlines() == train[: len(jsonl.splitlines())]
    for block, name in ((csv_pairs, "pairs.csv"), (csv_reviews, "reviews.csv")):
        lines = (FIXTURES / name).read_text().splitlines()
        assert block.splitlines() == lines[: len(block.splitlines())]
    commands = readme_commands()
    assert [c[:2] for c in commands] == [
        ["tdmixup", "run"],
        ["tdmixup", "train"],
        ["tdmixup", "run"],
    ]
    readme = (REPO / "README.md").read_text().split("## Your own data", 1)[1]
    readme_command = shlex.split(code_blocks(readme, "bash")[0].replace("\\\n", " "))
    assert readme_command == commands[2]  # the README's is run here, as the guide's third
    for argv in commands:  # every file a command names is one of the fixtures
        for path in re.findall(r"my_data/[\w.]+", " ".join(argv)):
            assert (FIXTURES / path.removeprefix("my_data/")).is_file(), path


@pytest.mark.parametrize("which", [0, 1, 2], ids=["jsonl_run", "csv_train", "single_csv_run"])
def test_readme_own_data_commands_run_as_written(
    which: int,
    tiny_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    argv = [a.replace("my_data/", f"{FIXTURES}/") for a in readme_commands()[which][1:]]
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, "tdmixup.data")  # what -v shows
    assert main([*argv, "--model", tiny_model, *TINY, "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "profile cpu-small" in captured.err
    config = json.loads((out / "config.json").read_text())["config"]["data"]
    if which == 0:
        assert config["label_names"] == ["entailment", "neutral", "contradiction"]
        done = json.loads((out / "stage1_full" / "done.json").read_text())
        assert (
            list(done["metrics"]["sets"]) == ["test"] and done["metrics"]["sets"]["test"]["n"] == 15
        )
        assert done["train_sizes"] == [60] and (out / "stage4_tdmixup" / "done.json").exists()
        assert (out / "report.md").exists()
    elif which == 1:
        assert config["label_names"] == ["different", "duplicate"]
        done = json.loads((out / "done.json").read_text())
        assert done["train_sizes"] == [200 - 50] and done["metrics"]["sets"]["heldout"]["n"] == 50
    else:  # one sentence per row: a single-sentence task through the whole pipeline
        assert config["label_names"] == [] and config["columns"] == [["text_a", "sentence"]]
        assert "'label' column, in sorted order: negative,positive" in caplog.text
        done = json.loads((out / "stage4_tdmixup" / "done.json").read_text())
        assert done["metrics"]["sets"]["reviews_test"]["n"] == 41  # named by its file
        meta = json.loads((out / "stage4_tdmixup" / "checkpoint" / "classifier.json").read_text())
        assert meta["kind"] == "single" and meta["id2label"] == {"0": "negative", "1": "positive"}
        assert meta["columns"] == {"text_a": "sentence", "label": "label"}
        easy = pd.read_csv(out / "datamap" / "regions" / "easy.csv")
        reviews = pd.read_csv(FIXTURES / "reviews.csv")
        assert easy["text"].tolist() == reviews["sentence"][easy["sample_id"]].tolist()
    assert "test" in captured.out or "heldout" in captured.out


def test_a_model_that_cannot_learn_is_called_out(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lr 1e-12 (lr 0 is refused): the random model stays at chance.

    The CLI, done.json and report.md say so in one line.
    """
    argv = [a.replace("my_data/", f"{FIXTURES}/") for a in readme_commands()[0][1:]]
    out = tmp_path / "lr0"
    assert (
        main(
            [
                *argv,
                "--model",
                tiny_model,
                *TINY,
                "--learning-rate",
                "1e-12",
                "--epochs",
                "1",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    warnings = [
        line
        for line in printed.splitlines()
        if line.startswith("warning: the model has not learned")
    ]
    assert len(warnings) == 2, printed  # stage 1 and stage 4, one line each
    assert (
        "--learning-rate" in warnings[0]
        and "--train-size" in warnings[0]
        and "--epochs" in warnings[0]
    )
    check = json.loads((out / "stage1_full" / "done.json").read_text())["metrics"]["learning_check"]
    assert check["near_chance"] and check["set"] == "dev" and check["n"] == 15
    assert check["accuracy"] < check["threshold"] and check["chance"] >= 1 / 3
    report = (out / "report.md").read_text()
    assert report.count("**Warning — ") == 2 and "data map or AUM" in report


def test_label_names_comma_separated_or_repeated() -> None:
    parser = build_parser()

    def names(*args: str) -> tuple[str, ...]:
        return config_from_args(
            parser.parse_args(["train", "--output-dir", "x", *args])
        ).data.label_names

    assert names("--label-names", "a,b,c") == ("a", "b", "c")
    assert names("--label-names", "a", "--label-names", "b", "--label-names", "c") == (
        "a",
        "b",
        "c",
    )
    assert names("--label-names", "neg, pos") == ("neg", "pos")


@pytest.mark.parametrize("value", ["a,,b", "a,b,a", ","])
def test_bad_label_names_are_one_line_with_a_hint(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--output-dir", "unused", "--label-names", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--label-names entailment,neutral,contradiction" in err


def test_custom_task_hints_use_cli_spellings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["train", "--task", "custom", "--output-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--column text_a=premise" in err and "columns=(" not in err
    assert (
        main(
            [
                "train",
                "--task",
                "custom",
                "--train-file",
                str(FIXTURES / "train.jsonl"),
                "--dev-file",
                str(FIXTURES / "dev.jsonl"),
                "--column",
                "text_a=premise",
                "--column",
                "text_b=hypothesis",
                "--column",
                "label=label",
                "--label-names",
                "entailment,neutral,contradiction",
                "--output-dir",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--test-file PATH (or NAME=PATH)" in err and "test_files=" not in err


def test_unknown_label_names_the_row_and_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text(
        (FIXTURES / "train.jsonl")
        .read_text()
        .replace('"label": "entailment"}', '"label": "maybe"}', 1)
    )
    assert (
        main(
            [
                "train",
                "--task",
                "custom",
                "--train-file",
                str(bad),
                "--dev-file",
                str(FIXTURES / "dev.jsonl"),
                "--test-file",
                f"t={FIXTURES / 'test.jsonl'}",
                "--column",
                "text_a=premise",
                "--column",
                "text_b=hypothesis",
                "--column",
                "label=label",
                "--label-names",
                "entailment,neutral,contradiction",
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "row 1, field 'label': label 'maybe'" in err
        and "--label-names a,b,c" in err
        and "pass label_names" not in err
    )


def test_test_file_is_a_path_or_name_eq_path() -> None:
    import doctest

    from tdmixup.core import config
    from tdmixup.core.config import named_test_file
    from tdmixup.data import _common

    assert doctest.testmod(config, raise_on_error=False).failed == 0
    assert doctest.testmod(_common, raise_on_error=False).failed == 0  # label_names_in
    assert named_test_file(" heldout = data/t.csv") == ("heldout", "data/t.csv")
    assert named_test_file("runs/a=b/test.jsonl.gz") == ("test", "runs/a=b/test.jsonl.gz")
    for bad in ("=t.csv", "heldout=", " "):
        with pytest.raises(ValueError, match="--test-file must be PATH or NAME=PATH"):
            named_test_file(bad)


def test_custom_labels_default_to_the_label_column_and_sorted_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ``--column label=…`` the column ``label`` is read; without ``--label-names`` string
    labels are named in sorted order from the training file (``tdmixup.fit``'s rule), integer
    labels by their digits; a dev or test label outside the training file's names is refused,
    naming the file and row."""
    from tdmixup.core.config import DataConfig
    from tdmixup.data.schema import DataError
    from tdmixup.data.tasks import TaskData, load_task

    def load(train: Path, **kw: Any) -> TaskData:
        cfg = DataConfig(task="custom", train_file=str(train), columns=(("text_a", "text"),),
                         dev_size=2, **kw)  # fmt: skip
        return load_task(cfg, seed=0, require_tests=False)

    named = tmp_path / "named.csv"
    named.write_text("text,label\nfine,pos\nbad,neg\nok,pos\nmeh,neutral\ngreat,pos\n")
    task = load(named)
    assert task.spec.label_names == ("neg", "neutral", "pos")
    assert task.train["label"] == [2, 0, 2]
    given = load(named, label_names=("pos", "neg", "neutral"))
    assert given.train["label"] == [0, 1, 0]
    digits = tmp_path / "digits.jsonl"
    lines = (json.dumps({"text": f"t{i}", "label": i % 3}) + "\n" for i in range(6))
    digits.write_text("".join(lines))
    assert load(digits).spec.label_names == ("0", "1", "2")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nfine,pos\nhm,unsure\n")
    with pytest.raises(DataError, match=r"dev.csv, row 3, field 'label': label 'unsure'"):
        load(named, dev_file=str(dev))
    typo = tmp_path / "typo.csv"  # a class named once among many rows: probably a typo
    rows = "".join(f"t{i},{'pos' if i % 2 else 'neg'}\n" for i in range(30))
    typo.write_text("text,label\n" + rows + "t30,positve\n")
    with caplog.at_level(logging.WARNING, "tdmixup.data"):
        assert load(typo).spec.label_names == ("neg", "pos", "positve")
    assert "typo.csv: class 'positve' has only 1 of 31 labelled rows (first: row 32)" in caplog.text
    assert "name the classes with --label-names a,b,c" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "tdmixup.data"):
        load(named)  # 5 rows: too few to call a class rare
    assert "has only" not in caplog.text
    other = tmp_path / "other.csv"
    other.write_text("text,y\nfine,pos\n")
    hint = r"other.csv.*column 'label' not found \(found: text, y\) \(the labels are read from "
    with pytest.raises(DataError, match=hint + r"the column 'label' by default: name yours with"):
        load(other)
    with pytest.raises(DataError, match=hint):  # also when the classes are named
        load(other, label_names=("pos", "neg"))
