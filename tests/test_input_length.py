"""A ``max_seq_length`` longer than the encoder takes is refused before anything trains (it used to
fail mid-epoch inside the embeddings: "The size of tensor a (131) must match the size of tensor b
(128)"), with the model's limit and the option to lower; RoBERTa's padding offset is counted, and
a tokenizer's lower ``model_max_length`` is not a limit of the model."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import data_args, write_pair_files  # noqa: E402
from _tiny import build_tiny_model_dir, require_minilm  # noqa: E402
from tdmixup.model.classifier import check_input_length, longest_input  # noqa: E402

NO_LIMIT = SimpleNamespace(model_max_length=int(1e30))  # transformers' "no limit" placeholder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_minilm()
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")  # 128 positions


def test_the_limit_is_the_position_embeddings(tiny_dir: Path) -> None:
    assert longest_input(str(tiny_dir), NO_LIMIT) == 128
    # a tokenizer's lower model_max_length only warns in transformers; inputs are cut explicitly
    assert longest_input(str(tiny_dir), SimpleNamespace(model_max_length=64)) == 128
    check_input_length(str(tiny_dir), NO_LIMIT, 128)  # exactly the limit is fine
    with pytest.raises(ValueError, match=r"max_seq_length 256 .*128 tokens.*--max-seq-length 128"):
        check_input_length(str(tiny_dir), NO_LIMIT, 256)


def test_roberta_positions_start_after_the_padding_index(tmp_path: Path) -> None:
    from transformers import RobertaConfig

    RobertaConfig(max_position_embeddings=66, pad_token_id=1).save_pretrained(tmp_path)
    assert longest_input(str(tmp_path), NO_LIMIT) == 64


def test_without_absolute_positions_the_tokenizer_limit_counts(tmp_path: Path) -> None:
    from transformers import T5Config  # relative positions: no max_position_embeddings

    T5Config().save_pretrained(tmp_path)
    assert longest_input(str(tmp_path), SimpleNamespace(model_max_length=512)) == 512
    assert longest_input(str(tmp_path), NO_LIMIT) is None


def test_the_command_line_refuses_it_before_training(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdmixup.cli.commands import main

    train, test = write_pair_files(tmp_path / "data")
    run_dir = tmp_path / "run"
    argv = ["dynamics", *data_args(train, test), "--model", str(tiny_dir)]
    status = main([*argv, "--epochs", "1", "--output-dir", str(run_dir)])  # default length 256
    err = capsys.readouterr().err
    assert status == 2, err
    assert "max_seq_length 256 is longer than model" in err and "--max-seq-length 128" in err
    assert not any(run_dir.rglob("dynamics.parquet"))
