"""The "stages one by one" commands of docs/guides/method.md, chained as written (each reads the
previous one's files), on SNLI with a tiny random BERT and smoke sizes appended."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm, require_snli  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = ["--train-size", "96", "--dev-size", "32", "--test-size", "32", "--max-seq-length", "64"]
LOOP = ["--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3"]


def readme_stage_commands() -> list[list[str]]:
    """The ``tdmixup`` lines under ``# the stages one by one`` in docs/guides/method.md, split
    like a shell."""
    lines = (
        (REPO / "docs" / "guides" / "method.md")
        .read_text()
        .split("# the stages one by one", 1)[1]
        .split("\n\n", 1)[0]
        .splitlines()
    )
    return [shlex.split(line.split("  #", 1)[0]) for line in lines if line.startswith("tdmixup ")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_readme_stage_commands_chain_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = readme_stage_commands()
    assert [c[1] for c in commands] == ["dynamics", "datamap", "aum", "train", "evaluate"]
    assert all(
        "--profile" not in c and "--train-size" not in c for c in commands
    )  # the default profile, as written
    require_snli()
    require_minilm()
    quiet_libraries()
    model = str(build_tiny_model_dir(tmp_path / "tiny"))
    monkeypatch.chdir(tmp_path)  # the commands write to runs/...
    for argv in commands:
        extra = {"datamap": [], "evaluate": SIZES}.get(argv[1], ["--model", model, *SIZES, *LOOP])
        assert main([*argv[1:], *extra]) == 0, argv
    assert "profile cpu-small" in capsys.readouterr().err
    assert (tmp_path / "runs/map/regions/easy.txt").exists() and (
        tmp_path / "runs/aum_easy/kept.txt"
    ).exists()
    done = json.loads((tmp_path / "runs/td/done.json").read_text())
    assert done["strategy"] == "tdmixup" and len(done["train_sizes"]) == 2
