"""The command line's own behaviour: help text, what finished stages keep, per-epoch log lines.

Runs the real entry point on tiny own-data files with a tiny random BERT (no ../shared needed).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, data_args, write_pair_files  # noqa: E402
from tdmixup.cli.commands import build_parser, main  # noqa: E402


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_names_every_option_with_a_real_placeholder_and_says_defaults_once(
    command: str,
) -> None:
    sub = _commands()[command]
    text = sub.format_help()
    assert "__" not in text, "placeholders must be option names, not DATA__TRAIN_FILE"
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), (
            f"{command} {action.option_strings or action.dest}: no help"
        )
        assert action.help.lower().count("default:") <= 1, (
            f"{command} {action.option_strings}: default said twice"
        )
        if (
            action.option_strings
            and action.nargs is None
            and action.choices is None
            and action.metavar
        ):
            name = action.option_strings[-1].lstrip("-").upper().replace("-", "_")
            assert action.metavar in (name, "[NAME=]PATH", "FIELD=COLUMN", "NAME", "REGION"), (
                action.option_strings,
                action.metavar,
            )


def test_evaluate_and_datamap_list_only_options_they_use() -> None:
    commands = _commands()
    evaluate = commands["evaluate"].format_help()
    assert "--eval-batch-size" in evaluate and "--max-seq-length" in evaluate
    for training_only in (
        "--learning-rate",
        "--epochs",
        "--batch-size",
        "--alpha",
        "--aum-percentile",
        "--model",
    ):
        assert training_only not in evaluate.replace("--eval-batch-size", ""), training_only
    datamap = commands["datamap"].format_help()
    assert "--task" in datamap and "--dynamics-fraction" in datamap and "--title" in datamap
    assert "--dynamics-mode" not in datamap and "--learning-rate" not in datamap
    assert "--aum-subsets" not in commands["aum"].format_help()  # read only by `run`


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm

    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    train, test = write_pair_files(tmp_path_factory.mktemp("data"))
    return data_args(train, test)


@pytest.mark.parametrize("keep", [False, True])
def test_a_finished_stage_keeps_the_model_but_not_the_training_state(
    tiny_model: str, data: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture, keep: bool
) -> None:
    out = tmp_path / "run"
    flag = ["--keep-training-state"] if keep else []
    with caplog.at_level(logging.INFO, logger="tdmixup.training.loop"):
        assert (
            main(["train", "--output-dir", str(out), "--model", tiny_model, *data, *FAST, *flag])
            == 0
        )
    kept = sorted(p.name for p in (out / "checkpoint").iterdir())
    assert {"classifier.json", "encoder", "head.pt", "train_log.json"} <= set(kept), kept
    assert any(p.suffix == ".safetensors" for p in (out / "checkpoint" / "encoder").iterdir())
    assert ("training_state.pt" in kept) == keep, (
        kept
    )  # optimizer + scheduler + RNG: ~2/3 of a checkpoint
    lines = [r.getMessage() for r in caplog.records if r.name == "tdmixup.training.loop"]
    epoch_lines = [m for m in lines if re.search(r": epoch \d/2, loss ", m)]
    assert len(epoch_lines) == 2, lines
    assert re.fullmatch(
        rf"{re.escape(str(out))}: epoch 2/2, loss \d+\.\d{{4}}, "
        r"train accuracy \d+\.\d %, \d+\.\d s",
        epoch_lines[1],
    ), epoch_lines[1]


def test_rerunning_a_finished_stage_drops_its_leftover_training_state(
    tiny_model: str, data: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", "--output-dir", str(out), "--model", tiny_model, *data, *FAST, "--epochs", "1"]
    assert main([*args, "--keep-training-state"]) == 0
    assert (out / "checkpoint" / "training_state.pt").exists()
    done = (out / "done.json").stat().st_mtime
    assert main(args) == 0  # skipped as finished; a folder from before this rule shrinks too
    assert (out / "done.json").stat().st_mtime == done
    assert not (out / "checkpoint" / "training_state.pt").exists()


def test_epoch_line_formats_every_metric() -> None:
    from tdmixup.training.loop import epoch_line

    entry = {
        "epoch": 3,
        "train_loss": 0.81234,
        "train_accuracy": 0.612,
        "steps": 10,
        "dev_accuracy": 0.5,
        "seconds": 14.25,
    }
    assert epoch_line(Path("runs/x/stage1_full"), entry, 3) == (
        "runs/x/stage1_full: epoch 3/3, loss 0.8123, train accuracy 61.2 %, "
        "dev accuracy 0.5, 14.2 s"
    )
    no_accuracy = {
        "epoch": 1,
        "train_loss": 1.0,
        "steps": 4,
        "seconds": 2.0,
    }  # strategy "mixup": no unmixed rows
    assert epoch_line(Path("s"), no_accuracy, 2) == "s: epoch 1/2, loss 1.0000, 2.0 s"
