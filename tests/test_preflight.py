"""Command-line errors: one line on stderr naming the option, file, row and field as typed, exit
status 2, nothing written; Ctrl-C says how to resume (130); a traceback only with -v.

Each case drives the real entry point (:func:`tdmixup.cli.commands.main`, or ``python -m
tdmixup.cli.commands`` for Ctrl-C) on tiny own-data files; none needs ``../shared``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, data_args, pair_rows, write_jsonl, write_pair_files  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tiny train/test files in the working directory, named as a user would type them."""
    monkeypatch.chdir(tmp_path)
    write_pair_files(Path("data"))
    return data_args(Path("data/train.jsonl"), Path("data/test.jsonl"))


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr, asserted to be exactly one ``error: …`` line without a traceback (besides the
    ``tdmixup: profile …`` line a training command prints before it reads its inputs)."""
    lines = [
        line
        for line in capsys.readouterr().err.strip().splitlines()
        if not line.startswith("tdmixup: profile ")
    ]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("command", "option", "value", "expected"),
    [
        (
            "train",
            "--batch-size",
            "0",
            "--batch-size must be at least 1, got 0",
        ),  # was ZeroDivisionError
        (
            "train",
            "--batch-size",
            "-4",
            "--batch-size must be at least 1, got -4",
        ),  # was 0 steps, exit 0
        (
            "run",
            "--epochs",
            "0",
            "--epochs must be at least 1, got 0",
        ),  # was: the untrained model evaluated
        ("run", "--max-seq-length", "0", "--max-seq-length must be at least 8, got 0"),
        (
            "run",
            "--eval-batch-size",
            "0",
            "--eval-batch-size must be at least 1, got 0",
        ),  # was: failed after training
        ("dynamics", "--mc-batch-size", "0", "--mc-batch-size must be at least 1, got 0"),
        ("run", "--train-size", "0", "--train-size must be at least 1, got 0"),
        ("run", "--dev-size", "0", "--dev-size must be at least 1 when no --dev-file is given"),
        ("run", "--test-size", "0", "--test-size must be at least 1, got 0"),
        ("aum", "--aum-epochs", "0", "--aum-epochs must be at least 1, got 0"),
        (
            "run",
            "--dynamics-fraction",
            "0.5",
            "--dynamics-fraction must be at most 1/3 for three disjoint regions",
        ),
        ("run", "--aum-percentile", "101", "--aum-percentile must be in [0, 100], got 101.0"),
        ("train", "--learning-rate", "0", "--learning-rate must be greater than 0, got 0.0"),
        ("train", "--warmup-ratio", "1", "--warmup-ratio must be in [0, 1), got 1.0"),
    ],
)
def test_impossible_numbers_are_refused_before_anything_is_written(
    files: list[str],
    capsys: pytest.CaptureFixture[str],
    command: str,
    option: str,
    value: str,
    expected: str,
) -> None:
    code = main([command, "--output-dir", "out", *files, option, value])
    assert code == 2
    assert expected in one_error_line(capsys)
    assert not Path("out").exists()


def test_experiment_needs_a_seed(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "table1", "--output-dir", "out", *files, "--seeds", "0"]) == 2
    assert "--seeds must be at least 1, got 0" in one_error_line(capsys)


def test_non_utf8_jsonl_names_file_and_row(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: pyarrow's raw ``ArrowException: Unknown error: Wrapping … failed``."""
    raw = Path("data/train.jsonl").read_bytes().split(b"\n")
    raw[2] = raw[2].replace(b"park", b"p\xe4rk")  # Latin-1 "ä" in UTF-8 text
    Path("data/train.jsonl").write_bytes(b"\n".join(raw))
    assert main(["train", "--output-dir", "out", *files]) == 2
    line = one_error_line(capsys)
    assert (
        "data/train.jsonl, row 3: not valid UTF-8 (byte 0xe4" in line
        and "save the file as UTF-8" in line
    )
    assert not Path("out").exists()


def test_jsonl_row_missing_a_field_names_file_row_and_field(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``AttributeError: 'float' object has no attribute 'strip'``."""
    rows = pair_rows(40)
    del rows[4]["hypothesis"]
    write_jsonl(Path("data/train.jsonl"), rows)
    assert main(["train", "--output-dir", "out", *files]) == 2
    assert "data/train.jsonl, row 5, field 'hypothesis': missing from this row" in one_error_line(
        capsys
    )
    assert not Path("out").exists()


def test_malformed_json_error_says_at_once(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """json's "Unterminated string starting at" was followed by " at column 7" ("at at")."""
    Path("data/test.jsonl").write_text(
        '{"premise": "A dog runs.", "hypothesis": "x", "label": "neutral"}\n{"premise": "A\n'
    )
    assert main(["train", "--output-dir", "out", *files]) == 2
    line = one_error_line(capsys)
    assert (
        "data/test.jsonl, row 2: malformed JSON (Unterminated string starting at column 13)" in line
    )
    assert "at at" not in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["train", "--train-file", "data/trian.jsonl"],
            "--train-file data/trian.jsonl: file not found",
        ),
        (
            ["train", "--test-file", "other=data/nope.jsonl"],
            "--test-file other=data/nope.jsonl: file not found",
        ),
        (["train", "--subset", "regions/easy.txt"], "--subset regions/easy.txt: file not found"),
        (["aum", "--subset", "data"], "--subset data: is a folder, expected a file"),
        (["train", "--strategy", "tdmixup"], "--strategy tdmixup needs exactly two --subset files"),
    ],
)
def test_missing_input_files_are_named_as_typed(
    files: list[str], capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main([args[0], "--output-dir", "out", *files, *args[1:]]) == 2
    assert expected in one_error_line(capsys)
    assert not Path("out").exists()


def test_subset_file_that_is_not_an_id_list(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    Path("ids.txt").write_text("3\nseven\n")
    assert main(["train", "--output-dir", "out", *files, "--subset", "ids.txt"]) == 2
    assert "--subset ids.txt, line 2: 'seven' is not an integer sample id" in one_error_line(capsys)


def test_datamap_without_its_dynamics_table(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datamap", "--dynamics", "run/dynamics.parquet", "--output-dir", "map"]) == 2
    assert "--dynamics run/dynamics.parquet: file not found" in one_error_line(capsys)
    assert main(["datamap", "--dynamics", "data/train.jsonl", "--output-dir", "map"]) == 2
    assert "--dynamics data/train.jsonl: not a dynamics table written by tdmixup" in one_error_line(
        capsys
    )
    assert not Path("map").exists()


def test_evaluate_without_a_checkpoint_folder(
    files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--checkpoint", "run/checkpoint", *files]) == 2
    assert "--checkpoint run/checkpoint: not found" in one_error_line(capsys)


def test_output_dir_that_is_a_file(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    Path("taken").write_text("not a folder")
    assert main(["train", "--output-dir", "taken", *files]) == 2
    assert "--output-dir taken: is a file, not a folder" in one_error_line(capsys)
    assert main(["train", "--output-dir", "taken/run", *files]) == 2
    assert "--output-dir taken/run: taken is a file" in one_error_line(capsys)


def test_read_only_output_dir(files: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    locked = Path("locked")
    locked.mkdir()
    locked.chmod(0o555)
    target = locked / "run"
    if (
        os.geteuid() == 0
    ):  # root writes through permission bits; sysfs refuses new files even to root
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys: no folder here is read-only to root")
        target = Path("/sys/tdmixup-run")
    try:
        assert main(["train", "--output-dir", str(target), *files]) == 2
    finally:
        locked.chmod(0o755)
    line = one_error_line(capsys)
    assert (
        f"--output-dir {target}: cannot write in this folder" in line
        and "choose a folder you can write to" in line
    )


def test_a_refused_run_writes_nothing_so_the_corrected_rerun_is_accepted(
    files: list[str], capsys: pytest.CaptureFixture[str], tiny_model: str
) -> None:
    """config.json used to be written before the inputs were read: the fixed command was then
    refused as "written by a different configuration"."""
    typo = [a.replace("data/train.jsonl", "data/trian.jsonl") for a in files]
    assert (
        main(["train", "--output-dir", "out", "--model", tiny_model, *typo, *FAST, "--epochs", "1"])
        == 2
    )
    assert "--train-file data/trian.jsonl: file not found" in one_error_line(capsys)
    rows = pair_rows(40)
    rows[7]["label"] = "entailmnet"
    write_jsonl(Path("data/broken.jsonl"), rows)
    broken = [a.replace("data/train.jsonl", "data/broken.jsonl") for a in files]
    assert (
        main(
            ["train", "--output-dir", "out", "--model", tiny_model, *broken, *FAST, "--epochs", "1"]
        )
        == 2
    )
    assert (
        "data/broken.jsonl, row 8, field 'label': label 'entailmnet' is not one of"
        in one_error_line(capsys)
    )
    assert not Path("out").exists()
    assert (
        main(
            ["train", "--output-dir", "out", "--model", tiny_model, *files, *FAST, "--epochs", "1"]
        )
        == 0
    )
    assert Path("out/config.json").exists() and Path("out/done.json").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm

    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_anywhere_shows_the_traceback(
    files: list[str], capsys: pytest.CaptureFixture[str], where: str
) -> None:
    args = ["train", "--output-dir", "out", *files, "--batch-size", "0"]
    args = ["-v", *args] if where == "before" else [*args, "-v"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert (
        err.strip().splitlines()[-1]
        == "error: --batch-size must be at least 1, got 0 (TrainConfig.batch_size)"
    )


def test_an_unexpected_error_is_one_line_that_asks_for_a_report(
    files: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tdmixup.cli.commands

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(tdmixup.cli.commands, "config_from_args", broken)
    assert main(["train", "--output-dir", "out", *files]) == 1
    line = capsys.readouterr().err.strip()
    assert line == (
        "error: unexpected KeyError: 'a bug' "
        "(a bug in tdmixup: run again with -v for the traceback and please report it)"
    )


@pytest.mark.slow
def test_ctrl_c_prints_how_to_resume(files: list[str], tiny_model: str) -> None:
    """Was: a 39-line KeyboardInterrupt traceback. SIGINT lands while the model trains."""
    cmd = [
        sys.executable,
        "-m",
        "tdmixup.cli",
        "train",
        "--output-dir",
        "out",
        "--model",
        tiny_model,
        *files,
        *FAST,
        "--epochs",
        "10000",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    with open(
        "stderr.txt", "w"
    ) as stderr:  # a file: progress bars cannot fill a pipe and block the run
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 180
        while not Path(
            "out/checkpoint/train_log.json"
        ).exists():  # epoch 1 is done: training is under way
            assert proc.poll() is None, Path("stderr.txt").read_text()[-2000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    err = Path("stderr.txt").read_text()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted: run the same command again to resume (finished stages and epochs are kept)"
    )
