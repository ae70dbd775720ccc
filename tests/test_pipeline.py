"""`tdmixup run` end to end on real SNLI slices with a tiny random BERT: stages, skipping,
resume after kill -9, inconsistent inputs; plus `evaluate`, `train --subset`, `env`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import SMALL, build_tiny_model_dir, quiet_libraries, require_snli  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_snli()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(scope="module")
def finished_run(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "snli"
    assert main(["run", "--output-dir", str(out), "--model", tiny_model, *SMALL]) == 0
    return out


def _mtimes(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime for p in run.rglob("done.json")}


def test_run_writes_every_stage(finished_run: Path) -> None:
    run = finished_run
    for rel in [
        "config.json",
        "stage1_full/done.json",
        "stage1_full/dynamics.parquet",
        "stage1_full/metrics.json",
        "stage1_full/reliability_snli_test.png",
        "datamap/regions/easy.txt",
        "datamap/datamap.png",
        "datamap/datamap.html",
        "aum_easy/aum.parquet",
        "aum_easy/summary.json",
        "stage4_tdmixup/done.json",
        "report.md",
    ]:
        assert (run / rel).exists(), rel
    full = json.loads((run / "stage1_full/done.json").read_text())
    td = json.loads((run / "stage4_tdmixup/done.json").read_text())
    assert full["train_sizes"] == [48]
    aum = pd.read_parquet(run / "aum_easy/aum.parquet")
    easy = np.loadtxt(run / "datamap/regions/easy.txt", dtype=np.int64)
    assert set(aum["sample_id"]) == set(easy.tolist())
    assert aum["aum"].notna().all(), "two-pass AUM judges every sample"
    kept = int((~aum["flagged"]).sum())
    amb = np.loadtxt(run / "datamap/regions/ambiguous.txt", dtype=np.int64)
    assert td["train_sizes"] == [kept, len(amb)]
    k = json.loads((run / "config.json").read_text())["config"]["aum"]["percentile"]
    assert (
        k == json.loads((run / "aum_easy/summary.json").read_text())["percentile"] == 80.0
    )  # SNLI's k, recorded
    for summary in (full, td):
        for m in summary["metrics"]["sets"].values():
            assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["ece"] <= 1.0
    report = (run / "report.md").read_text()
    assert "100% train" in report and "TDMixUp" in report and "datamap.png" in report


def test_run_records_the_class_mix_of_every_set(finished_run: Path) -> None:
    """Per-class counts (by label name) of the regions, the AUM sets and the training sets, in the
    stage summaries and the report; the new defaults recorded in config.json."""
    run = finished_run
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["dynamics"]["stratify_regions"] is True
    assert (cfg["aum"]["threshold_balance"], cfg["aum"]["skip_epochs"]) == ("uniform", 0)
    names = ["entailment", "neutral", "contradiction"]
    dm = json.loads((run / "datamap/done.json").read_text())
    assert dm["stratify_regions"] is True and list(dm["class_counts"]) == [
        "train",
        "easy",
        "ambiguous",
        "hard",
    ]
    train = np.array([dm["class_counts"]["train"][c] for c in names])
    assert list(dm["class_counts"]["train"]) == names and train.sum() == 48
    for region in ("easy", "ambiguous", "hard"):
        ids = np.loadtxt(run / f"datamap/regions/{region}.txt", dtype=np.int64)
        counts = np.array([dm["class_counts"][region][c] for c in names])
        assert counts.sum() == len(ids) and (np.abs(counts - len(ids) * train / 48) <= 1).all(), (
            region,
            counts,
        )
    aum = json.loads((run / "aum_easy/summary.json").read_text())
    assert (aum["threshold_balance"], aum["threshold_balance_per_pass"], aum["skip_epochs"]) == (
        "uniform",
        ["uniform"] * 2,
        0,
    )
    mix = aum["class_counts"]
    assert mix["region"] == dm["class_counts"]["easy"]
    assert all(mix["kept"][c] + mix["flagged"][c] == mix["region"][c] for c in names)
    assert (
        sum(mix["threshold_pass1"].values())
        == sum(mix["threshold_pass2"].values())
        == len(np.loadtxt(run / "datamap/regions/easy.txt")) // 4
    )
    td = json.loads((run / "stage4_tdmixup/done.json").read_text())
    assert td["train_class_counts"] == [mix["kept"], dm["class_counts"]["ambiguous"]]
    assert json.loads((run / "stage1_full/done.json").read_text())["train_class_counts"] == [
        dm["class_counts"]["train"]
    ]
    report = (run / "report.md").read_text()
    assert (
        "## Class mix" in report
        and "| easy region |" in report
        and "| AUM on easy: kept |" in report
    )
    assert "regions taken within each class" in report


def test_second_run_skips_finished_stages(finished_run: Path, tiny_model: str) -> None:
    before = _mtimes(finished_run)
    start = time.perf_counter()
    assert main(["run", "--output-dir", str(finished_run), "--model", tiny_model, *SMALL]) == 0
    assert _mtimes(finished_run) == before
    assert time.perf_counter() - start < 30


def test_from_stage_reruns_only_later_stages(
    finished_run: Path, tiny_model: str, tmp_path: Path
) -> None:
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    before = _mtimes(run)
    assert (
        main(
            [
                "run",
                "--output-dir",
                str(run),
                "--model",
                tiny_model,
                "--from-stage",
                "tdmixup",
                *SMALL,
            ]
        )
        == 0
    )
    after = _mtimes(run)
    assert after["stage1_full/done.json"] == before["stage1_full/done.json"]
    assert after["stage4_tdmixup/done.json"] > before["stage4_tdmixup/done.json"]


def test_other_config_in_same_folder_is_refused(
    finished_run: Path, tiny_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--output-dir",
            str(finished_run),
            "--model",
            tiny_model,
            *SMALL[:-2],
            "--max-seq-length",
            "32",
        ]
    )
    assert code == 2
    assert "max_seq_length: 64 → 32" in capsys.readouterr().err


def test_region_file_from_another_dataset_is_an_error(
    finished_run: Path, tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "easy.txt"
    bad.write_text("0\n99999999\n")
    code = main(
        [
            "train",
            "--output-dir",
            str(tmp_path / "t"),
            "--model",
            tiny_model,
            "--subset",
            str(bad),
            *SMALL,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "99999999" in err and str(bad) in err


def test_empty_easy_set_after_aum_is_an_error(
    finished_run: Path, tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdmixup.dynamics.aum import read_aum_table, write_aum_table

    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    table = read_aum_table(run / "aum_easy/aum.parquet")
    table["flagged"] = True
    write_aum_table(table, run / "aum_easy/aum.parquet")
    code = main(
        ["run", "--output-dir", str(run), "--model", tiny_model, "--from-stage", "tdmixup", *SMALL]
    )
    assert code == 2
    assert "easy set is empty after AUM filtering" in capsys.readouterr().err


def test_train_on_subsets_and_evaluate_checkpoint(
    finished_run: Path, tiny_model: str, tmp_path: Path
) -> None:
    regions = finished_run / "datamap" / "regions"
    out = tmp_path / "easy_amb"
    assert (
        main(
            [
                "train",
                "--output-dir",
                str(out),
                "--model",
                tiny_model,
                "--subset",
                str(regions / "easy.txt"),
                "--subset",
                str(regions / "ambiguous.txt"),
                *SMALL,
            ]
        )
        == 0
    )
    done = json.loads((out / "done.json").read_text())
    union = set(np.loadtxt(regions / "easy.txt", dtype=np.int64)) | set(
        np.loadtxt(regions / "ambiguous.txt", dtype=np.int64)
    )
    assert done["train_sizes"] == [len(union)]
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "checkpoint"),
                "--output-dir",
                str(ev),
                *SMALL[:6],
                *SMALL[-2:],
            ]
        )
        == 0
    )
    again = json.loads((ev / "metrics.json").read_text())
    for name, m in done["metrics"]["sets"].items():
        assert again["sets"][name]["accuracy"] == pytest.approx(m["accuracy"])
        assert again["sets"][name]["ece"] == pytest.approx(m["ece"], abs=1e-6)


def test_killed_run_resumes_without_redoing_finished_stages(
    tiny_model: str, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "tdmixup.cli",
        "run",
        "--output-dir",
        str(out),
        "--model",
        tiny_model,
        *SMALL,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "datamap" / "done.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stage1 = (out / "stage1_full" / "done.json").stat().st_mtime
    assert not (out / "stage4_tdmixup" / "done.json").exists()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    assert (out / "stage1_full" / "done.json").stat().st_mtime == stage1
    assert (out / "stage4_tdmixup" / "done.json").exists() and (out / "report.md").exists()


def test_env_prints_versions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["torch"] and info["world_size"] >= 1 and "cpu_count" in info


def test_missing_model_path_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(
        ["train", "--output-dir", str(tmp_path / "x"), "--model", str(tmp_path / "nope"), *SMALL]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_hub_name_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from tdmixup.model.classifier import ModelLoadError, resolve_model_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        resolve_model_path("some-org/some-model-that-is-not-cached")
    assert time.perf_counter() - start < 5


def test_from_stage_may_change_only_later_options(
    finished_run: Path, tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    assert (
        main(
            [
                "run",
                "--output-dir",
                str(run),
                "--model",
                tiny_model,
                *SMALL,
                "--from-stage",
                "aum",
                "--aum-percentile",
                "50",
                "--aum-skip-epochs",
                "1",
            ]
        )
        == 0
    )
    assert json.loads((run / "config.json").read_text())["config"]["aum"]["percentile"] == 50
    aum = json.loads((run / "aum_easy" / "summary.json").read_text())
    assert (aum["percentile"], aum["skip_epochs"]) == (50, 1)
    assert json.loads((run / "config.json").read_text())["config"]["aum"]["skip_epochs"] == 1
    kept = np.loadtxt(run / "aum_easy" / "kept.txt", dtype=np.int64, ndmin=1)
    assert json.loads((run / "stage4_tdmixup" / "done.json").read_text())["train_sizes"][0] == len(
        kept
    )
    code = main(
        [
            "run",
            "--output-dir",
            str(run),
            "--model",
            tiny_model,
            *SMALL[:-6],
            "--epochs",
            "3",
            *SMALL[-6:],
            "--from-stage",
            "aum",
        ]
    )
    assert code == 2
    assert "--from-stage aum may change only aum., mixup." in capsys.readouterr().err


def test_a_folder_keeps_its_aum_k_when_none_is_given(
    finished_run: Path, tiny_model: str, tmp_path: Path
) -> None:
    """Folders made before k depended on the task stored k = 80 for every task (and no
    steps_per_epoch): re-running them without --aum-percentile keeps their k."""
    run = tmp_path / "older"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    saved = json.loads((run / "config.json").read_text())
    saved["config"]["aum"]["percentile"] = 70.0
    del saved["config"]["train"]["steps_per_epoch"]
    (run / "config.json").write_text(json.dumps(saved))
    assert (
        main(["run", "--output-dir", str(run), "--model", tiny_model, *SMALL]) == 0
    )  # every stage reused
    assert json.loads((run / "config.json").read_text())["config"]["aum"]["percentile"] == 70.0


def test_a_folder_written_before_stratified_regions_keeps_its_rule(
    finished_run: Path,
    tiny_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A config.json without the newer fields ran with unstratified regions and equal-per-class
    threshold samples: re-running its data map without options keeps that rule; switching needs
    --from-stage, which records the new value."""
    from tdmixup.dynamics.datamap import assign_regions

    run = tmp_path / "older"
    subprocess.run(["cp", "-r", str(finished_run), str(run)], check=True)
    saved = json.loads((run / "config.json").read_text())
    del saved["config"]["dynamics"]["stratify_regions"], saved["config"]["aum"]["threshold_balance"]
    del saved["config"]["aum"]["skip_epochs"]
    (run / "config.json").write_text(json.dumps(saved))
    with caplog.at_level("WARNING", logger="tdmixup.run.pipeline"):
        assert (
            main(
                [
                    "run",
                    "--output-dir",
                    str(run),
                    "--model",
                    tiny_model,
                    *SMALL,
                    "--from-stage",
                    "datamap",
                    "--until",
                    "datamap",
                ]
            )
            == 0
        )
    assert "dynamics.stratify_regions = False, aum.threshold_balance = 'equal'" in caplog.text
    assert json.loads((run / "datamap/done.json").read_text())["stratify_regions"] is False
    stats = pd.read_parquet(run / "datamap/statistics.parquet")
    for name, ids in assign_regions(stats, fraction=0.33, stratify=False).items():
        np.testing.assert_array_equal(
            np.loadtxt(run / f"datamap/regions/{name}.txt", dtype=np.int64), ids
        )
    assert (
        main(["run", "--output-dir", str(run), "--model", tiny_model, *SMALL, "--stratify-regions"])
        == 2
    )
    assert "dynamics.stratify_regions: False → True" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--output-dir",
                str(run),
                "--model",
                tiny_model,
                *SMALL,
                "--stratify-regions",
                "--from-stage",
                "datamap",
                "--until",
                "datamap",
            ]
        )
        == 0
    )
    assert (
        json.loads((run / "config.json").read_text())["config"]["dynamics"]["stratify_regions"]
        is True
    )
    assert json.loads((run / "datamap/done.json").read_text())["stratify_regions"] is True


def test_train_folder_keeps_its_options(
    finished_run: Path, tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regions = finished_run / "datamap" / "regions"
    out = tmp_path / "t"
    assert (
        main(
            [
                "train",
                "--output-dir",
                str(out),
                "--model",
                tiny_model,
                "--subset",
                str(regions / "hard.txt"),
                *SMALL,
            ]
        )
        == 0
    )
    code = main(
        [
            "train",
            "--output-dir",
            str(out),
            "--model",
            tiny_model,
            "--subset",
            str(regions / "easy.txt"),
            *SMALL,
        ]
    )
    assert code == 2
    assert "trained with other --strategy/--subset" in capsys.readouterr().err


def test_mixup_cannot_record_training_pass_dynamics(
    tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            "--output-dir",
            str(tmp_path / "m"),
            "--model",
            tiny_model,
            "--strategy",
            "mixup",
            "--record-dynamics",
            "train_pass",
            *SMALL,
        ]
    )
    assert code == 2
    assert "use dynamics mode 'epoch_end'" in capsys.readouterr().err
