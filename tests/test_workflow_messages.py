"""What the data-quality workflow says to its user: errors that name the real columns and labels,
refusals that leave nothing behind, a start-up line and summaries that say what a command does."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, LABELS, data_args, pair_rows, write_jsonl  # noqa: E402
from _tiny import require_minilm  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.data.readers import read_table  # noqa: E402
from tdmixup.data.schema import DataError  # noqa: E402
from tdmixup.dynamics.fingerprint import DataFingerprint  # noqa: E402
from tdmixup.dynamics.table import append_epoch  # noqa: E402

MAPPING = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}


def _record(path: Path, dataset: object) -> None:
    """A 2-epoch dynamics table of ``dataset``'s rows (class names :data:`LABELS`), no model."""
    ids = np.asarray(dataset["sample_id"])  # type: ignore[index]
    gold = np.asarray(dataset["label"])  # type: ignore[index]
    extra = DataFingerprint.of(dataset, label_names=LABELS).append_kwargs(ids)
    rng = np.random.default_rng(0)
    for epoch in range(2):
        logits = rng.normal(size=(len(ids), 3))
        append_epoch(
            path, epoch=epoch, sample_ids=ids, gold=gold, logits=logits, mode="epoch_end", **extra
        )


# --- 1. a missing column ---------------------------------------------------------------------
def test_missing_column_error_lists_the_inputs_own_columns() -> None:
    from tdmixup import find_label_issues

    frame = pd.DataFrame(
        {
            "review_id": [7, 8],
            "source": ["web", "web"],
            "sentence": ["A lovely film.", "Dull."],
            "label": ["pos", "neg"],
        }
    )
    for data in (frame, frame.to_dict("records"), frame.to_dict("list")):
        with pytest.raises(DataError) as err:
            find_label_issues(data, text="text", label="label", dynamics="unused.parquet")
        message = str(err.value)
        assert "column 'text' not found (found: review_id, source, sentence, label)" in message


# --- 2. a dynamics table of other data -------------------------------------------------------
def test_label_mismatch_names_the_classes_and_a_hint_for_both_apis(tmp_path: Path) -> None:
    rows = pair_rows(12)
    train = read_table(write_jsonl(tmp_path / "t.jsonl", rows), columns=MAPPING, label_names=LABELS)
    _record(tmp_path / "dyn.parquet", train)
    edited = [dict(r) for r in rows]
    edited[1]["label"] = "entailment"  # was neutral
    frame = pd.DataFrame(edited)
    from tdmixup import find_label_issues

    with pytest.raises(DataError) as err:
        find_label_issues(
            frame,
            text="premise",
            text_pair="hypothesis",
            label="label",
            label_names=LABELS,
            dynamics=tmp_path / "dyn.parquet",
        )
    message = str(err.value)
    assert "\n" not in message
    assert (
        "sample_id 1 (field 'label') has gold label 0 ('entailment') in the data "
        "but 1 ('neutral') in the table; 1 of 12 rows differ" in message
    )
    assert "--column mapping" not in message and "training file" not in message
    assert "pass the rows the dynamics were recorded on" in message


def test_the_same_labels_in_another_order_are_called_that(tmp_path: Path) -> None:
    rows = pair_rows(12)
    train = read_table(write_jsonl(tmp_path / "t.jsonl", rows), columns=MAPPING, label_names=LABELS)
    _record(tmp_path / "dyn.parquet", train)
    from tdmixup import find_label_issues

    # string labels, no label_names: sorted, so contradiction, entailment, neutral
    with pytest.raises(DataError) as err:
        find_label_issues(
            pd.DataFrame(rows),
            text="premise",
            text_pair="hypothesis",
            label="label",
            dynamics=tmp_path / "dyn.parquet",
        )
    message = str(err.value)
    assert "\n" not in message
    assert (
        "the same classes in another order: label names contradiction, entailment, neutral in "
        "the data but entailment, neutral, contradiction in the table, so 12 of 12 rows differ"
    ) in message
    assert "label_names=" in message and "--label-names" in message


# --- 3. a refused command leaves no folder that refuses the corrected one ---------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from _tiny import build_tiny_model_dir, quiet_libraries

    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


@pytest.mark.usefixtures("one_torch_thread")
def test_a_refused_aum_does_not_block_the_corrected_command(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(24))
    other = write_jsonl(tmp_path / "other.jsonl", pair_rows(24, offset=3))  # same ids, other rows
    _record(tmp_path / "dyn.parquet", read_table(train, columns=MAPPING, label_names=LABELS))
    datamap = ["datamap", "--dynamics", str(tmp_path / "dyn.parquet")]
    assert main([*datamap, "--output-dir", str(tmp_path / "map")]) == 0
    out = tmp_path / "aum"
    aum = ["aum", "--model", tiny_model, *FAST, "--epochs", "1", "--output-dir", str(out)]
    aum += ["--subset", str(tmp_path / "map" / "regions" / "easy.txt"), "--aum-percentile", "99"]
    aum += ["--dev-file", str(write_jsonl(tmp_path / "dev.jsonl", pair_rows(6, offset=30)))]
    capsys.readouterr()
    # statistics of train.jsonl beside the subset, --train-file other.jsonl: refused ...
    assert main([*aum, *data_args(other, None, dev_size=None)]) == 2
    err = capsys.readouterr().err
    assert "other.jsonl is not the data" in err and "statistics.parquet" in err
    assert not (out / "pass1").exists()
    # ... and the right file is not refused for the config.json the refused command wrote
    assert main([*aum, *data_args(train, None, dev_size=None)]) == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())["config"]["data"]
    assert saved["train_file"] == str(train) and (out / "summary.json").exists()
    # what it printed: a few lines (the full summary is summary.json) and the next command
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    n, flagged = summary["n"], summary["n_flagged"]
    assert printed[0] == (
        f"AUM (two_pass: 2 passes of 1 epoch, k = 99): {flagged} of {n} samples flagged, "
        f"{n - flagged} kept → {out}"
    )
    assert not any(line.startswith(("{", "}", '  "')) for line in printed), printed
    assert printed[-1] == (
        f"next: tdmixup train --task custom --train-file {train} … --strategy tdmixup "
        f"--subset {out}/kept.txt --subset {tmp_path}/map/regions/ambiguous.txt "
        f"--output-dir {tmp_path}/td"
    )
    # once a folder has trained, another configuration is refused as before
    assert main([*aum, *data_args(other, None, dev_size=None)]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.usefixtures("one_torch_thread")
def test_a_refused_train_subset_does_not_block_the_corrected_command(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(24))
    test = write_jsonl(tmp_path / "test.jsonl", pair_rows(6, offset=24))
    (tmp_path / "wrong.txt").write_text("1\n2\n999\n")  # 999 is no training id
    (tmp_path / "right.txt").write_text("".join(f"{i}\n" for i in range(12)))
    out = tmp_path / "run"
    argv = ["train", *data_args(train, test), "--model", tiny_model, *FAST, "--epochs", "1"]
    argv += ["--output-dir", str(out), "--strategy", "none"]
    capsys.readouterr()
    assert main([*argv, "--subset", str(tmp_path / "wrong.txt")]) == 2
    assert "999" in capsys.readouterr().err
    assert main([*argv, "--epochs", "2", "--subset", str(tmp_path / "right.txt")]) == 0


@pytest.mark.usefixtures("one_torch_thread")
def test_dynamics_ends_with_what_it_wrote_and_the_next_command(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(24))
    out = tmp_path / "dyn"
    argv = ["dynamics", *data_args(train, None), "--model", tiny_model, *FAST, "--epochs", "1"]
    capsys.readouterr()
    assert main([*argv, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-2] == (
        f"dynamics of 16 training samples over 1 epoch → {out}/dynamics.parquet "
        f"(model: {out}/checkpoint)"
    )
    assert printed[-1] == (
        f"next: tdmixup datamap --dynamics {out}/dynamics.parquet --output-dir {tmp_path}/map "
        f"--task custom --train-file {train} …"
    )


# --- 4. the start-up line says what the command trains ---------------------------------------
@pytest.mark.parametrize(
    ("argv", "trains", "tests"),
    [
        (["aum", "--epochs", "3", "--aum-epochs", "2"], "2 epochs in each of 2 AUM passes", False),
        (["aum", "--aum-procedure", "paper", "--epochs", "1"], "1 epoch in 1 AUM pass", False),
        (["dynamics", "--epochs", "3"], "3 epochs", False),
        (["train", "--epochs", "3"], "3 epochs", True),
        (["run", "--epochs", "3", "--aum-epochs", "2"], "3 epochs (2 epochs in each of 2", True),
    ],
)
def test_startup_line_names_the_epochs_trained_and_tests_only_when_evaluated(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    trains: str,
    tests: bool,
) -> None:
    (tmp_path / "t.jsonl").write_text('{"x": 1}\n')  # no --column mapping: refused on loading
    unmapped = ["--task", "custom", "--train-file", str(tmp_path / "t.jsonl")]
    assert main([*argv, *unmapped, "--output-dir", str(tmp_path / "out")]) == 2
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("tdmixup: profile")]
    assert f", {trains}" in line, line
    assert ("rows per set" in line) == tests, line
    assert not (tmp_path / "out").exists()


# --- 5. quiet, readable command output -------------------------------------------------------
def test_only_the_unused_pooler_load_report_is_dropped(tmp_path: Path) -> None:
    require_minilm()
    import transformers
    from transformers import BertModel

    from _tiny import minilm_tokenizer, tiny_bert_config
    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import LOAD_REPORT_MARKERS, build_classifier

    def is_report(message: str) -> bool:
        return any(marker in message for marker in LOAD_REPORT_MARKERS)

    tokenizer = minilm_tokenizer()
    BertModel(tiny_bert_config(len(tokenizer))).save_pretrained(tmp_path)  # with a pooler
    tokenizer.save_pretrained(tmp_path)
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.modeling_utils")
    before = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_warning()
    logger.addHandler(collect)
    try:
        build_classifier(ModelConfig(name_or_path=str(tmp_path)), "pair", 3)
        assert not [r for r in records if is_report(r.getMessage())]  # expected: dropped
        # one layer fewer than the checkpoint: its weights are unexpected, and that is reported
        build_classifier(ModelConfig(name_or_path=str(tmp_path), num_hidden_layers=1), "pair", 3)
        [report] = [r.getMessage() for r in records if is_report(r.getMessage())]
        assert "encoder.layer.1." in report  # transformers 5 says UNEXPECTED, 4 "not used"
    finally:
        logger.removeHandler(collect)
        transformers.logging.set_verbosity(before)


def test_summary_lines_docstring_example() -> None:
    import doctest

    from tdmixup.cli import summaries

    result = doctest.testmod(summaries, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_datamap_prints_a_short_summary_and_the_next_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", pair_rows(30))
    _record(tmp_path / "dyn.parquet", read_table(train, columns=MAPPING, label_names=LABELS))
    out = tmp_path / "map"
    argv = ["datamap", "--dynamics", str(tmp_path / "dyn.parquet"), "--output-dir", str(out)]
    capsys.readouterr()
    assert main([*argv, *data_args(train, None, dev_size=None)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert not printed[0].startswith("{") and len(printed) <= 8, printed
    assert printed[0] == f"data map of 30 training samples → {out}"
    assert "easy 9, ambiguous 9, hard 9" in printed[1] and "each 33 % of every class" in printed[1]
    assert "3 of 30 flagged (ranked by class_confidence" in printed[2]
    assert str(out / "suspects.csv") in printed[2]
    warnings = [line for line in printed if line.startswith("warning: ")]
    summary = json.loads((out / "summary.json").read_text())  # the full figures stay there
    assert [w.removeprefix("warning: ") for w in warnings] == summary["suspects"]["warnings"]
    assert printed[-1] == (
        f"next: tdmixup aum --task custom --train-file {train} … "
        f"--subset {out}/regions/easy.txt --output-dir {tmp_path}/aum_easy"
    )
