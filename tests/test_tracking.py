"""``--report-to``: each training stage is one tracked run (TensorBoard read back from its event
files; W&B offline; MLflow in a file store); a missing tracker package is a one-line error."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, data_args, write_pair_files  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.training.tracking import (  # noqa: E402
    TrackingError,
    flat_config,
    mlflow_store,
    require_tracker,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def readme_tracking_commands() -> dict[str, tuple[dict[str, str], list[str]]]:
    """The ``tdmixup`` lines of the "Experiment tracking" guide (docs/guides/tracking.md) by
    ``--report-to`` value: ``(environment assignments before the command, its arguments after
    'tdmixup')``."""
    section = (REPO / "docs" / "guides" / "tracking.md").read_text()
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = {}
    for line in block.splitlines():
        words = shlex.split(line.split("  #", 1)[0])
        if "tdmixup" not in words:
            continue
        at = words.index("tdmixup")
        env = dict(w.split("=", 1) for w in words[:at])
        argv = words[at + 1 :]
        commands[argv[argv.index("--report-to") + 1]] = (env, argv)
    return commands


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm

    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    # 176 rows - 8 dev = 168 training rows = 21 steps of 8: tracker points at steps 1 and 21
    train, test = write_pair_files(tmp_path_factory.mktemp("data"), train=176, test=9)
    return data_args(train, test)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard event files in ``folder``: ``[(step, value)]``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _train(out: Path, model: str, data: list[str], *extra: str) -> dict[str, Any]:
    loop = [*FAST, "--epochs", "1"]
    assert main(["train", "--output-dir", str(out), "--model", model, *data, *loop, *extra]) == 0
    return dict(json.loads((out / "done.json").read_text()))


def test_train_logs_steps_epochs_and_final_metrics_to_tensorboard(
    tiny_model: str, data: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    plain = _train(tmp_path / "plain", tiny_model, data)
    done = _train(tmp_path / "tb", tiny_model, data, "--report-to", "tensorboard")
    runs = tmp_path / "tb" / "tracking" / "tensorboard"
    assert [p.name for p in runs.iterdir()] == ["train_none"]
    scalars = _scalars(runs / "train_none")
    # every 20 steps: the mean loss since the last point, and the learning rate
    loss = scalars["train/loss"]
    assert [step for step, _ in loss] == [1, 21]
    (epoch,) = done["history"]
    assert epoch["steps"] == 21
    mean = (loss[0][1] * 1 + loss[1][1] * 20) / 21  # float32 in the event file
    assert mean == pytest.approx(epoch["train_loss"], rel=1e-5)
    # the rate each logged step used: no warm-up (cpu-small), then linear decay over 21 steps
    lr = [value for _, value in scalars["train/learning_rate"]]
    assert lr == [pytest.approx(1e-3), pytest.approx(1e-3 / 21)]
    # per epoch (at its last step): training accuracy and dev metrics, as in the history
    for name in ("train_loss", "train_accuracy", "dev_accuracy", "dev_ece"):
        assert scalars[f"epoch/{name}"] == [(21, pytest.approx(epoch[name], rel=1e-5))], name
    # per stage: the final metrics of metrics.json, before and after temperature scaling
    final = done["metrics"]["sets"]["mine"]
    for name in ("accuracy", "ece", "ece_scaled"):
        assert scalars[f"final/mine/{name}"] == [(21, pytest.approx(final[name], rel=1e-5))]
    # tracking changes no number: the same training without it
    assert plain["metrics"] == done["metrics"]
    drop = ("seconds", "dev_accuracy", "dev_ece")
    assert [{k: v for k, v in h.items() if k not in drop} for h in done["history"]] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in plain["history"]
    ]


def test_readme_run_tracks_each_stage_as_a_named_run(
    tiny_model: str, data: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    env, argv = readme_tracking_commands()["tensorboard"]
    assert argv[0] == "run" and not env
    monkeypatch.chdir(tmp_path)  # the command writes to runs/...
    assert main([*argv, "--model", tiny_model, *data, *FAST]) == 0
    out = tmp_path / argv[argv.index("--output-dir") + 1]
    runs = out / "tracking" / "tensorboard"
    folders = {p.parent for p in runs.rglob("events.out.tfevents.*")}
    # a run's hyperparameters go to a sub-folder of it (SummaryWriter.add_hparams)
    stages = sorted(f.relative_to(runs).as_posix() for f in folders if not set(f.parents) & folders)
    assert stages == ["aum_easy/pass1", "aum_easy/pass2", "stage1_full", "stage4_tdmixup"]
    for stage in ("stage1_full", "stage4_tdmixup"):
        tags = _scalars(runs / stage)
        assert {"train/loss", "epoch/train_accuracy", "epoch/dev_ece", "final/mine/ece"} <= set(
            tags
        ), stage
    aum_pass = _scalars(runs / "aum_easy" / "pass1")  # not evaluated: no dev or final metrics
    assert "train/loss" in aum_pass and not any(t.startswith("final/") for t in aum_pass)


def test_readme_wandb_offline_writes_a_run_folder(
    tiny_model: str, data: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    env, argv = readme_tracking_commands()["wandb"]
    assert env == {"WANDB_MODE": "offline"} and argv[0] == "train"
    for name, value in {**env, "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    loop = [*FAST, "--epochs", "1"]
    assert main([*argv, "--model", tiny_model, *data, *loop]) == 0
    out = tmp_path / argv[argv.index("--output-dir") + 1]
    offline = list((out / "tracking" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((out / "tracking").rglob("*"))
    assert list(offline[0].glob("*.wandb")), "the run's history file"


def test_mlflow_logs_to_a_local_store_in_the_run_folder(
    tiny_model: str, data: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "ml"
    done = _train(out, tiny_model, data, "--report-to", "mlflow")
    store = mlflow_store(out)
    assert store.endswith("/tracking/mlflow.db") and store.startswith("sqlite:///")
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "ml"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "train_none"
    assert run.data.metrics["final/mine/ece_scaled"] == pytest.approx(
        done["metrics"]["sets"]["mine"]["ece_scaled"]
    )
    assert run.data.params["train.batch_size"] == "8"


@pytest.mark.parametrize("report_to,package", [("wandb", "wandb"), ("mlflow", "mlflow-skinny")])
def test_a_missing_tracker_package_is_one_clear_line(
    report_to: str,
    package: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == report_to else real(name, *a),
    )
    with pytest.raises(TrackingError, match=f"pip install 'tdmixup\\[tracking\\]'.*{package}"):
        require_tracker(report_to)  # type: ignore[arg-type]
    out = tmp_path / "never"
    assert main(["train", "--output-dir", str(out), "--report-to", report_to]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --report-to {report_to} needs the package")
    assert not out.exists()  # refused before anything is written


def test_flat_config_keeps_scalars_and_names_sections() -> None:
    flat = flat_config({"train": {"lr": 1e-3, "size": None, "bf16": False}, "sets": ["a", "b"]})
    assert flat == {
        "train.lr": 1e-3,
        "train.size": "None",
        "train.bf16": False,
        "sets": "['a', 'b']",
    }
