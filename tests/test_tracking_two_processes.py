"""``--report-to`` under two CPU processes (gloo, ``torchrun --nproc_per_node 2``): the run ends
(no process waits for another at a collective only one of them reaches), only the main process
writes tracker files (one set of TensorBoard event files, one W&B run), and what is logged is
what the run folder records."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cli_data import data_args, write_pair_files  # noqa: E402
from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two torchrun launches, ~30 s each on 2 shared cores
LOOP = ["--batch-size", "8", "--learning-rate", "1e-3", "--max-seq-length", "32", "--epochs", "1"]
STAGES = ["aum_easy/pass1", "aum_easy/pass2", "stage1_full", "stage4_tdmixup"]
EVALUATED = ("stage1_full", "stage4_tdmixup")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--model`` (the tiny random BERT) and the data options: 48 pairs (8 to dev) and 9 test
    pairs in JSON lines."""
    require_minilm()
    quiet_libraries()
    root = tmp_path_factory.mktemp("two_proc_tracking")
    model = build_tiny_model_dir(root / "model", dropout=0.0)
    train, test = write_pair_files(root / "data", train=48, test=9)
    return ["--model", str(model), *data_args(train, test)]


def _torchrun(argv: list[str], out: Path, **env_extra: str) -> None:
    """``torchrun --standalone --nproc_per_node 2 -m tdmixup.cli ARGV --output-dir OUT``; fails
    the test when it exits non-zero or runs past 240 s (a hang: the whole launch is killed)."""
    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip(f"torchrun not found beside {sys.executable}")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO / "src"),
        **env_extra,
    }
    cmd = [str(launcher), "--standalone", "--nproc_per_node", "2", "-m", "tdmixup.cli"]
    child = subprocess.Popen(
        [*cmd, *argv, "--output-dir", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the launcher and its workers: one group to kill on a hang
    )
    try:
        _, err = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate()
        pytest.fail(f"two-process {argv[0]} hung (killed after 240 s):\n{err[-3000:]}")
    assert child.returncode == 0, err[-4000:]
    config = json.loads((out / "config.json").read_text())
    assert config["environment"]["world_size"] == 2  # the two processes joined one group


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard event files directly in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_run_under_two_processes_writes_one_tensorboard_run_per_stage(
    inputs: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    _torchrun(["run", "--report-to", "tensorboard", *inputs, *LOOP], out)
    runs = out / "tracking" / "tensorboard"
    events = sorted(runs.rglob("events.out.tfevents.*"))
    # events.out.tfevents.<time>.<host>.<pid>.<n>: every file written by one process
    pids = {p.name.rsplit(".", 2)[1] for p in events}
    assert len(pids) == 1, f"event files from {len(pids)} processes (pids {sorted(pids)})"
    folders = {p.parent for p in events}
    # a stage's hyperparameters go to a sub-folder of it (SummaryWriter.add_hparams)
    stages = sorted(f.relative_to(runs).as_posix() for f in folders if not set(f.parents) & folders)
    assert stages == STAGES
    for stage in STAGES:
        assert len(list((runs / stage).glob("events.out.tfevents.*"))) == 1, stage
        done: dict[str, Any] = json.loads((out / stage / "done.json").read_text())
        (epoch,) = done["history"]
        scalars = _scalars(runs / stage)
        # per step: the first step's loss (a point every 20 steps) and learning rate (no warm-up)
        ((step, loss),) = scalars["train/loss"]
        assert step == 1 and math.isfinite(loss) and loss > 0, stage
        assert scalars["train/learning_rate"] == [(1, pytest.approx(1e-3))], stage
        # per epoch, at its last step: the numbers of the stage's history (over both processes)
        last = epoch["steps"]
        for name in ("train_loss", "train_accuracy"):
            assert scalars[f"epoch/{name}"] == [(last, pytest.approx(epoch[name], rel=1e-5))]
        final = {t: v for t, v in scalars.items() if t.startswith("final/")}
        if stage not in EVALUATED:  # the AUM passes are not evaluated
            assert not final and "epoch/dev_ece" not in scalars, stage
            continue
        assert scalars["epoch/dev_ece"] == [(last, pytest.approx(epoch["dev_ece"], rel=1e-5))]
        # per stage: the final metrics of its metrics.json, before and after temperature scaling
        metrics = done["metrics"]["sets"]["mine"]
        assert metrics == json.loads((out / stage / "metrics.json").read_text())["sets"]["mine"]
        for name in ("accuracy", "ece", "ece_scaled", "nll"):
            assert math.isfinite(metrics[name]), (stage, name)
            assert final[f"final/mine/{name}"] == [(last, pytest.approx(metrics[name], rel=1e-5))]


def test_wandb_offline_under_two_processes_writes_one_run(
    inputs: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("wandb")
    out = tmp_path / "wb"
    wandb_home = {
        f"WANDB_{name}_DIR": str(tmp_path / f"wandb_{name.lower()}")
        for name in ("CONFIG", "CACHE", "DATA")
    }
    _torchrun(
        ["train", "--report-to", "wandb", *inputs, *LOOP],
        out,
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        **wandb_home,
    )
    runs = list((out / "tracking" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"{len(runs)} W&B runs (one per process?): {runs}"
    (history,) = runs[0].glob("*.wandb")
    # the run's records (protobuf in W&B's log format): its name and the logged keys, verbatim
    records = history.read_bytes()
    for key in ("train_none", "train/loss", "train/learning_rate", "epoch/dev_ece"):
        assert key.encode() in records, key
    for key in ("final/mine/accuracy", "final/mine/ece", "final/mine/ece_scaled"):
        assert key.encode() in records, key
