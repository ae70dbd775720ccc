"""Issue 21 with two CPU processes (gloo, ``torchrun``): a shared output folder is checked,
skip/resume decisions are the main process's, MixUp never pairs a row with itself, and
back-translation is shared between the processes. One torchrun launch
(``tests/scripts/multi_process_checks.py``) runs every check; each test reads its part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny import build_tiny_model_dir, require_minilm, require_snli  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "scripts" / "multi_process_checks.py"
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # one torchrun launch for the module: ~60-90 s on 2 shared cores


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    pytest.importorskip("datasets")
    require_snli()
    require_minilm()
    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip(f"torchrun not found beside {sys.executable}")
    root = tmp_path_factory.mktemp("multi")
    model = build_tiny_model_dir(root / "model", dropout=0.0)
    out = root / "out"
    out.mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO / "src"),
    }
    cmd = [str(launcher), "--standalone", "--nproc_per_node", "2", str(SCRIPT)]
    done = subprocess.run(
        [*cmd, "--model-dir", str(model), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return {r: json.loads((out / f"result.rank{r}.json").read_text()) for r in (0, 1)}


def test_processes_that_do_not_share_the_output_folder_all_fail_naming_it(
    results: dict[int, dict[str, Any]],
) -> None:
    for rank in (0, 1):
        assert results[rank]["world"] == 2
        assert results[rank]["shared"] is None
        error = results[rank]["not_shared"]
        assert error is not None and error.startswith("SharedFolderError: process(es) 1 (")
        assert "local" in error and "one shared folder" in error and "\n" not in error


def test_skip_or_train_is_the_main_process_decision_on_every_process(
    results: dict[int, dict[str, Any]],
) -> None:
    """Only process 1 sees a done.json: both processes follow process 0 (train), instead of one
    skipping the stage while the other waits in its collectives."""
    assert results[0]["decided"] is False and results[1]["decided"] is False


def test_mixup_with_one_row_per_process_is_refused_and_never_pairs_a_row_with_itself(
    results: dict[int, dict[str, Any]],
) -> None:
    """Batch 2 over 2 processes (one row each: plain CE before) is refused in one line; batch 4 on
    9 pairs (2 rows each, a last global batch of 1 row) mixes every real row with another."""
    for rank in (0, 1):
        refused = results[rank]["mixup_refused"]
        assert refused is not None and "at least 4" in refused
        steps = results[rank]["partners"]
        assert len(steps) == len(results[1 - rank]["partners"]) > 0
        assert all(real == 0 or (real >= 2 and alone == 0) for real, alone in steps), steps
    real_rows = sum(real for rank in (0, 1) for real, _ in results[rank]["partners"])
    assert real_rows == 2 * 9  # every pair once per epoch


def test_back_translation_is_shared_between_the_processes(
    results: dict[int, dict[str, Any]],
) -> None:
    """17 distinct texts in chunks of 3: process 0 translates chunks 0, 2, 4 (9 texts), process 1
    chunks 1, 3, 5 (8), each in two directions; both get the same augmented set."""
    assert results[0]["backtranslated"]["texts"] == 2 * 9
    assert results[1]["backtranslated"]["texts"] == 2 * 8
    rows = results[0]["backtranslated"]["rows"]
    assert len(rows) == 22 and rows == results[1]["backtranslated"]["rows"]
