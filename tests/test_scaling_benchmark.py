"""The scaling study's bookkeeping (benchmarks/scaling/): plan order and filters, skipping finished
runs and resuming after a stop, committing one file at a time, and the summary's maths — all on
fake run JSONs, without training anything (seconds)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

SCALING = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling"


@pytest.fixture(scope="module")
def study() -> Any:
    """benchmarks/scaling/run.py as a module (its environment defaults undone afterwards)."""
    saved = dict(os.environ)
    spec = importlib.util.spec_from_file_location("scaling_run", SCALING / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.environ.clear()
    os.environ.update(saved)
    return module


def fake_run(
    size: int,
    row: str,
    seed: int,
    *,
    acc: float = 0.7,
    ece: float = 0.05,
    ece_scaled: float = 0.02,
    settings: dict[str, Any] | None = None,
    rho: float = 0.1,
) -> dict[str, Any]:
    """A run record with the fields the summary reads (values chosen by the test)."""
    metrics = {
        "n": 100,
        "accuracy": acc,
        "ece": ece,
        "ece_scaled": ece_scaled,
        "nll": 0.8,
        "brier": 0.4,
    }
    record: dict[str, Any] = {
        "size": size,
        "row": row,
        "seed": seed,
        "settings": settings or {"model": "m", "test_size": 3000},
        "test_set_notes": {"snli_test": "first 3,000", "mnli_ood": "ChaosNLI MNLI"},
        "label_names": ["entailment", "neutral", "contradiction"],
        "cost_seconds": 0.1 * size,
        "train_seconds": 0.1 * size,
        "wall_seconds": 0.1 * size,
    }
    if row == "datamap_quality":
        record["per_region"] = {
            g: {"mean_entropy": 0.8, "share_of_chaosnli_rows": 0.3}
            for g in ("easy", "ambiguous", "hard", "none")
        }
        record["spearman"] = {
            "variability_vs_entropy": {"rho": rho},
            "confidence_vs_entropy": {"rho": -rho},
        }
        return record
    record.update(
        test_sets={"snli_test": metrics, "mnli_ood": dict(metrics, accuracy=acc - 0.3)},
        temperature=1.5,
        train_sizes=[size],
        class_counts={
            "train": [size // 2, size // 4, size // 4],
            "regions": {"easy": [10, 0, 30], "ambiguous": [20, 20, 0], "hard": [0, 40, 0]},
        },
    )
    return record


def write_runs(results: Path, runs: list[dict[str, Any]]) -> None:
    (results / "runs").mkdir(parents=True, exist_ok=True)
    for r in runs:
        (results / "runs" / f"{r['size']}_{r['row']}_seed{r['seed']}.json").write_text(
            json.dumps(r)
        )


# --- the plan ----------------------------------------------------------------------------------
def test_plan_order_and_filters(study: Any) -> None:
    jobs = [j.name for j in study.plan(study.parse_args([]))]
    assert jobs[:5] == [
        "1500_full_seed1",
        "1500_tdmixup_seed1",
        "1500_random_pairs_seed1",
        "1500_manifold_seed1",
        "1500_full_seed2",
    ]
    assert jobs.index("1500_datamap_quality_seed1") > jobs.index(
        "1500_manifold_seed3"
    )  # rows first, then quality
    assert jobs.index("5000_full_seed1") > jobs.index("1500_datamap_quality_seed3")
    assert not any(j.startswith(("20000_manifold", "50000")) for j in jobs)  # only with their flags
    assert jobs.index("20000_full_seed2") < jobs.index("20000_full_seed3")
    flagged = [j.name for j in study.plan(study.parse_args(["--manifold-20k", "--with-50k"]))]
    assert (
        "20000_manifold_seed3" in flagged
        and flagged[-1].startswith("50000_")
        and "50000_full_seed2" not in flagged
    )
    only = [
        j.name
        for j in study.plan(
            study.parse_args(["--only", "20000", "--max-seeds", "1", "--rows", "full", "tdmixup"])
        )
    ]
    assert only == ["20000_full_seed1", "20000_tdmixup_seed1"]
    smoke = [j.name for j in study.plan(study.parse_args(["--sizes", "64", "--seeds", "1"]))]
    assert smoke == [
        "64_full_seed1",
        "64_tdmixup_seed1",
        "64_random_pairs_seed1",
        "64_manifold_seed1",
        "64_datamap_quality_seed1",
    ]


def test_finished_runs_are_skipped_and_a_stopped_study_resumes(
    study: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Invocations: the first stops after 2 jobs (like a kill between jobs), the second runs only
    the other 3, but one fails: the others still run and the exit status says so; the third runs
    only the failed one. Nothing runs twice, and each run's JSON is written when it finishes."""
    import jobs as jobs_module

    ran: list[str] = []
    pruned: list[str] = []
    failing = {"64_random_pairs_seed1"}

    class FakeRunner:
        def __init__(self, args: Any, settings: dict[str, Any], code: Any, command: str) -> None:
            self.settings = settings

        def run(self, job: Any) -> dict[str, Any]:
            ran.append(job.name)
            if job.name in failing:
                raise RuntimeError("non-finite loss")
            return fake_run(job.size, job.row, job.seed, settings=self.settings)

        def forget_session(self) -> None:
            pass

        def prune_checkpoints(self, job: Any) -> None:
            assert (
                tmp_path / "runs" / f"{job.name}.json"
            ).exists()  # only after its JSON is written
            pruned.append(job.name)

    monkeypatch.setattr(jobs_module, "JobRunner", FakeRunner)
    common = [
        "--sizes",
        "64",
        "--seeds",
        "1",
        "--results",
        str(tmp_path),
        "--run-dir",
        str(tmp_path / "runs_dir"),
    ]
    study.main([*common, "--max-runs", "2"])
    assert ran == ["64_full_seed1", "64_tdmixup_seed1"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "64_full_seed1.json",
        "64_tdmixup_seed1.json",
    ]
    with pytest.raises(SystemExit, match="1 job.s. failed: 64_random_pairs_seed1"):
        study.main(common)
    assert ran[2:] == ["64_random_pairs_seed1", "64_manifold_seed1", "64_datamap_quality_seed1"]
    assert not (tmp_path / "runs" / "64_random_pairs_seed1.json").exists()
    failing.clear()
    study.main(common)
    assert ran[5:] == ["64_random_pairs_seed1"]
    assert (tmp_path / "summary.json").exists() and (
        tmp_path / "scaling.png"
    ).stat().st_size > 10_000
    study.main(common)  # all finished: runs nothing
    assert len(ran) == 6 and sorted(pruned) == sorted(set(ran))
    with pytest.raises(
        SystemExit, match="other study settings"
    ):  # no mixing of test sizes in one folder
        study.main([*common, "--full-test", "--rows", "full", "--sizes", "96"])
    held = study.hold_lock(
        tmp_path / "runs_dir"
    )  # a study already running on these run folders ...
    with pytest.raises(SystemExit, match=f"another run.py works on .* \\(pid {os.getpid()}\\)"):
        study.main([*common, "--sizes", "96"])  # ... is not started twice
    held.close()


# --- the summary -------------------------------------------------------------------------------
def test_summary_uses_the_sample_std_and_shows_seed_counts(study: Any, tmp_path: Path) -> None:
    import scaling_summary as ss

    runs = [
        fake_run(1500, "full", s, acc=a, ece_scaled=e)
        for s, a, e in ((1, 0.70, 0.01), (2, 0.72, 0.02), (3, 0.74, 0.03))
    ]
    runs += [fake_run(1500, "tdmixup", s, acc=a) for s, a in ((1, 0.60), (2, 0.64))]
    runs += [fake_run(20000, "full", 1, acc=0.85)]
    runs += [fake_run(1500, "datamap_quality", s, rho=r) for s, r in ((1, 0.1), (2, 0.3))]
    write_runs(tmp_path, runs)
    summary = ss.summarize(tmp_path)
    full = summary["rows"]["1500"]["full"]["sets"]["snli_test"]["accuracy"]
    assert (
        full["n"] == 3
        and full["mean"] == pytest.approx(0.72)
        and full["std"] == pytest.approx(0.02)
    )  # ddof=1
    td = summary["rows"]["1500"]["tdmixup"]["sets"]["snli_test"]["accuracy"]
    assert td["std"] == pytest.approx(0.0282842712)  # sqrt(0.0008), not the population 0.02
    one = summary["rows"]["20000"]["full"]["sets"]["snli_test"]["accuracy"]
    assert one["n"] == 1 and one["std"] is None
    ts = summary["rows"]["1500"]["full_ts"]["sets"]["snli_test"]["ece"]  # the "100 % + TS" line
    assert ts["mean"] == pytest.approx(0.02)
    q = summary["datamap_quality"]["1500"]
    assert q["spearman"]["variability_vs_entropy"]["mean"] == pytest.approx(0.2)
    assert q["spearman"]["variability_vs_entropy"]["std"] == pytest.approx(0.1414213562)
    assert q["class_share_per_region"]["easy"]["contradiction"]["mean"] == pytest.approx(0.75)
    table = (tmp_path / "table.md").read_text()
    assert "| 1,500 | 100 % fine-tuning | 3 | 72.00 ± 2.00 | 5.00 ± 0.00 | 2.00 ± 1.00 |" in table
    assert "| 20,000 | 100 % fine-tuning | 1 | 85.00 | 5.00 |" in table  # one seed: no ±
    assert "| 1,500 | easy | 25.00 ± 0.00 | 0.00 ± 0.00 | 75.00 ± 0.00 |" in table
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_paired_differences_take_each_seed_against_the_same_seed(
    study: Any, tmp_path: Path
) -> None:
    import scaling_summary as ss

    runs = [fake_run(5000, "full", s, acc=a) for s, a in ((1, 0.70), (2, 0.72), (3, 0.90))]
    runs += [
        fake_run(5000, "tdmixup", s, acc=a, ece=e) for s, a, e in ((1, 0.60, 0.07), (2, 0.64, 0.08))
    ]
    runs += [fake_run(20000, "tdmixup", 1)]  # no 100 % run of that seed: nothing to pair
    write_runs(tmp_path, runs)
    summary = ss.summarize(tmp_path)
    paired = summary["paired_differences"]
    assert list(paired) == ["5000"] and list(paired["5000"]) == ["tdmixup - full"]
    diff = paired["5000"]["tdmixup - full"]
    assert diff["seeds"] == [1, 2]  # seed 3's 100 % run (0.90) has no partner and is left out
    acc = diff["sets"]["snli_test"]["accuracy"]
    assert acc["mean"] == pytest.approx(-0.09) and acc["std"] == pytest.approx(0.0141421356)
    ece = diff["sets"]["mnli_ood"]["ece"]
    assert ece["mean"] == pytest.approx(0.025) and ece["n"] == 2
    table = (tmp_path / "table.md").read_text()
    assert "| 5,000 | TDMixUp − 100 % fine-tuning | 2 | -9.00 ± 1.41 | 2.50 ± 0.71 |" in table


def test_a_control_beside_the_results_joins_the_summary_as_its_own_row(
    study: Any, tmp_path: Path
) -> None:
    import scaling_summary as ss

    results, control = tmp_path / "results", tmp_path / "results_full_1epoch"
    study_settings = {"model": "m", "test_size": 3000, "epochs": 3}
    write_runs(results, [fake_run(5000, "full", 1, acc=0.76, settings=study_settings)])
    write_runs(results, [fake_run(5000, "tdmixup", 1, acc=0.74, settings=study_settings)])
    one_epoch = dict(study_settings, epochs=1)
    write_runs(control, [fake_run(5000, "full", 1, acc=0.72, settings=one_epoch)])
    summary = ss.summarize(results)
    rows = summary["rows"]["5000"]
    assert rows["full_1epoch"]["sets"]["snli_test"]["accuracy"]["mean"] == pytest.approx(0.72)
    assert rows["full"]["sets"]["snli_test"]["accuracy"]["mean"] == pytest.approx(0.76)
    assert rows["tdmixup_ts"]["sets"]["snli_test"]["ece"]["mean"] == pytest.approx(0.02)
    diff = summary["paired_differences"]["5000"]["tdmixup - full_1epoch"]
    assert diff["sets"]["snli_test"]["accuracy"]["mean"] == pytest.approx(0.02)
    assert summary["controls"]["full_1epoch"]["runs"] == 1
    assert "control row" in (results / "table.md").read_text()
    # the control folder summarised on its own does not take itself for its own control
    assert "full_1epoch" not in ss.summarize(control)["rows"]["5000"]
    # a control run with other changes than the control's is refused, naming it
    write_runs(control, [fake_run(5000, "full", 2, settings=dict(one_epoch, test_size=None))])
    with pytest.raises(ValueError, match="5000_full_seed2"):
        ss.summarize(results)


def test_runs_with_other_settings_are_not_averaged(study: Any, tmp_path: Path) -> None:
    import scaling_summary as ss

    write_runs(
        tmp_path,
        [
            fake_run(1500, "full", 1),
            fake_run(1500, "full", 2, settings={"model": "m", "test_size": None}),
        ],
    )
    with pytest.raises(ValueError, match="other study settings"):
        ss.summarize(tmp_path)


def test_runs_of_either_precision_are_averaged_and_listed(study: Any, tmp_path: Path) -> None:
    """Precision is how a run computes (COMPUTE_SETTINGS): bf16 and fp32 runs of one study average
    together, and the summary and table.md say which run trained in which; the runner adds an fp32
    run to a bf16 folder but still refuses another learning rate."""
    import scaling_summary as ss

    bf16 = {"model": "m", "test_size": 3000, "bf16": True}
    fp32 = dict(bf16, bf16=False)
    write_runs(
        tmp_path,
        [
            fake_run(1500, "full", 1, acc=0.70, settings=bf16),
            fake_run(1500, "full", 2, acc=0.74, settings=fp32),
        ],
    )
    summary = ss.summarize(tmp_path)
    assert summary["precision"] == {
        "bf16 autocast": ["1500_full_seed1"],
        "fp32": ["1500_full_seed2"],
    }
    assert "bf16" not in summary["settings"]
    acc = summary["rows"]["1500"]["full"]["sets"]["snli_test"]["accuracy"]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(0.72)
    table = (tmp_path / "table.md").read_text()
    assert "- trained in fp32: 1 runs (1500_full_seed2)" in table
    study.check_results_settings(tmp_path, fp32)  # no SystemExit
    with pytest.raises(SystemExit, match="learning_rate"):
        study.check_results_settings(tmp_path, dict(fp32, learning_rate=1e-4))


@pytest.mark.parametrize(
    ("native", "cuda", "fp32"), [(False, False, True), (True, False, False), (False, True, False)]
)
def test_the_study_trains_in_fp32_where_bf16_would_be_slow(
    study: Any, monkeypatch: Any, capsys: Any, native: bool, cuda: bool, fp32: bool
) -> None:
    import argparse

    import torch

    from tdmixup.training import optim

    monkeypatch.setattr(optim, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    args = argparse.Namespace(fp32=False)
    study.choose_precision(args)
    assert args.fp32 is fp32
    assert ("no native bfloat16" in capsys.readouterr().out) is fp32
    forced = argparse.Namespace(fp32=True)
    study.choose_precision(forced)
    assert forced.fp32 is True


# --- committing --------------------------------------------------------------------------------
def git(repo: Path, *cmd: str) -> str:
    return subprocess.run(
        ["git", *cmd], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def test_commit_takes_only_the_run_file_and_waits_for_the_index_lock(
    study: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "other.txt").write_text("someone else's staged work\n")
    git(repo, "add", "other.txt")
    result = repo / "results" / "runs" / "1500_full_seed1.json"
    result.parent.mkdir(parents=True)
    result.write_text("{}\n")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")  # another git process is busy ...
    threading.Thread(
        target=lambda: (time.sleep(0.5), lock.unlink()), daemon=True
    ).start()  # ... for 0.5 s
    assert study.commit_files([result], "scaling study: 1500_full_seed1", wait_s=0.2)
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split() == [
        "scaling",
        "study:",
        "1500_full_seed1",
        "results/runs/1500_full_seed1.json",
    ]
    assert git(repo, "diff", "--cached", "--name-only").split() == [
        "other.txt"
    ]  # still staged, not committed
    assert study.commit_files([result], "again")  # unchanged file: nothing to commit is fine
    outside = tmp_path / "not_a_repo" / "x.json"
    outside.parent.mkdir()
    outside.write_text("{}")
    assert not study.commit_files([outside], "x")


def test_import_does_not_load_torch() -> None:
    """``run.py plan`` / ``summarize`` answer in about a second: torch loads only to train."""
    code = (
        f"import sys; sys.argv = ['run.py']; sys.path.insert(0, {str(SCALING)!r}); import run; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.stdout.strip() == "False"


def test_precision_check_pairs_a_retrained_stage_one_with_the_committed_run() -> None:
    """precision_check.compare: metric by metric and epoch by epoch, retrained minus committed,
    each side described by its precision and CPU."""
    spec = importlib.util.spec_from_file_location("precision_check", SCALING / "precision_check.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    committed = fake_run(20000, "full", 1, acc=0.80, settings={"bf16": True})
    committed.update(
        machine={"cpu_model": "Xeon"}, history=[{"train_loss": 0.70}, {"train_loss": 0.50}]
    )
    done = {
        "metrics": {
            "sets": {
                s: dict(m, accuracy=m["accuracy"] + 0.01) for s, m in committed["test_sets"].items()
            },
            "temperature": 1.4,
        },
        "history": [{"train_loss": 0.701}, {"train_loss": 0.4995}],
    }
    config = {"config": {"train": {"bf16": False}}, "environment": {"cpu_model": "EPYC"}}
    result = check.compare(done, committed, config)
    assert result["retrained"] == "fp32 on EPYC" and result["committed"] == "bf16 autocast on Xeon"
    acc = result["test_sets"]["snli_test"]["accuracy"]
    assert acc["committed"] == 0.80 and acc["difference"] == pytest.approx(0.01)
    assert result["test_sets"]["mnli_ood"]["ece"]["difference"] == 0
    assert result["train_loss_per_epoch"]["largest_difference"] == pytest.approx(0.001)
    assert result["temperature"] == {"retrained": 1.4, "committed": 1.5}
