"""`--profile`: the values a command uses, options that change only themselves, `--help` that
shows them, and the learning check's arithmetic."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tdmixup.cli.commands import build_parser, config_from_args
from tdmixup.core import config as C
from tdmixup.evaluation.sets import CHANCE_MARGIN, CHANCE_Z, format_metrics, learning_check


def _config(*argv: str) -> C.RunConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def _sizes(cfg: C.RunConfig) -> tuple[object, ...]:
    return cfg.data.train_size, cfg.data.dev_size, cfg.data.test_size, cfg.train.learning_rate


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["train", "--output-dir", "x"],
        ["dynamics", "--output-dir", "x"],
        ["aum", "--output-dir", "x"],
        ["experiment", "table2"],
    ],
)
def test_every_training_command_starts_from_the_cpu_small_profile(command: list[str]) -> None:
    assert _sizes(_config(*command)) == (1000, 500, 2000, 5e-5)
    assert _sizes(_config(*command, "--profile", "paper")) == (None, 1000, None, 1e-5)


def test_an_option_changes_only_itself() -> None:
    """`run --train-size 400` used to drop the small-run defaults and train at lr 1e-5 (paper)."""
    small = _config("run")
    for option, value, field in [
        ("--train-size", "400", ("data", "train_size")),
        ("--learning-rate", "1e-4", ("train", "learning_rate")),
        ("--epochs", "5", ("train", "epochs")),
        ("--train-file", "mine.jsonl", ("data", "train_file")),
    ]:
        changed, before = C.to_json_dict(_config("run", option, value)), C.to_json_dict(small)
        diff = [
            f"{s}.{k}" for s, part in changed.items() for k, v in part.items() if before[s][k] != v
        ]
        assert diff == [".".join(field)], option
    assert _config("run", "--train-size", "all").data.train_size is None
    assert _sizes(_config("run", "--profile", "paper", "--train-size", "400")) == (
        400,
        1000,
        None,
        1e-5,
    )


def test_help_shows_the_values_the_command_uses() -> None:
    for command in (["run"], ["train", "--output-dir", "x"], ["dynamics", "--output-dir", "x"]):
        text = " ".join(
            build_parser()._subparsers._group_actions[0].choices[command[0]].format_help().split()
        )  # type: ignore[union-attr]
        used = _config(*command)
        assert f"(default: {used.train.learning_rate!r}; --profile paper: 1e-05)" in text
        assert f"(default: {used.data.train_size}; --profile paper: all)" in text
        assert f"(default: {used.data.dev_size}; --profile paper: 1000)" in text
        assert re.search(r"--profile \{cpu-small,paper\}.*default: cpu-small", text)


def test_learning_check_uses_the_majority_class_as_chance() -> None:
    y = np.array([0] * 90 + [1] * 10)
    always_zero = np.tile([1.0, 0.0], (100, 1))
    check = learning_check(
        y, always_zero, set_name="dev"
    )  # 90 % accuracy, but no better than guessing 0
    assert (
        check["accuracy"] == pytest.approx(0.9)
        and check["chance"] == pytest.approx(0.9)
        and check["near_chance"]
    )
    assert "--learning-rate" in check["message"] and "\n" not in check["message"]
    perfect = np.eye(2)[y] * 5
    assert not learning_check(y, perfect, set_name="dev")["near_chance"]


@pytest.mark.parametrize(
    ("n", "expected_margin"), [(30, CHANCE_Z * np.sqrt(0.5 * 0.5 / 30)), (100_000, CHANCE_MARGIN)]
)
def test_learning_check_threshold_is_the_larger_of_margin_and_two_standard_errors(
    n: int, expected_margin: float
) -> None:
    y = np.arange(n) % 2
    check = learning_check(y, np.zeros((n, 2)), set_name="dev")
    assert check["chance"] == pytest.approx(0.5) and check["threshold"] == pytest.approx(
        0.5 + expected_margin
    )
    # accuracy just above the threshold passes, just below fails
    hits = int(np.ceil((check["threshold"] + 0.01) * n))
    logits = np.eye(2)[np.where(np.arange(n) < hits, y, 1 - y)]
    assert not learning_check(y, logits, set_name="dev")["near_chance"]
    hits = int(np.floor((check["threshold"] - 0.01) * n))
    logits = np.eye(2)[np.where(np.arange(n) < hits, y, 1 - y)]
    assert learning_check(y, logits, set_name="dev")["near_chance"]


def test_format_metrics_adds_one_warning_line_only_when_near_chance() -> None:
    y = np.array([0, 1, 2] * 50)
    sets = {"t": {"n": 150, "accuracy": 0.3, "ece": 0.1, "nll": 1.1}}
    near = {
        "temperature": None,
        "sets": sets,
        "learning_check": learning_check(y, np.zeros((150, 3)), set_name="dev"),
    }
    lines = format_metrics(near).splitlines()
    assert len(lines) == 2 and lines[1].startswith("warning: the model has not learned")
    fine = {
        "temperature": None,
        "sets": sets,
        "learning_check": learning_check(y, np.eye(3)[y], set_name="dev"),
    }
    assert len(format_metrics(fine).splitlines()) == 1
