"""report.md: accuracy with its standard error, which differences exceed noise, the learning
warning and the small-scale pointer — from hand-made stage files (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tdmixup.evaluation.report import accuracy_se, write_run_report


def _stage(
    path: Path, sizes: list[int], sets: dict[str, tuple[float, int]], near_chance: bool = False
) -> None:
    path.mkdir(parents=True)
    metrics = {
        "temperature": 1.2,
        "sets": {
            name: {"n": n, "accuracy": acc, "ece": 0.05, "ece_scaled": 0.03}
            for name, (acc, n) in sets.items()
        },
        "learning_check": {
            "set": "dev",
            "n": 500,
            "accuracy": 0.35,
            "chance": 0.34,
            "threshold": 0.38,
            "near_chance": near_chance,
            "message": "the model has not learned: … mean nothing; …",
        },
    }
    (path / "done.json").write_text(
        json.dumps({"strategy": "none", "train_sizes": sizes, "metrics": metrics})
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(
        json.dumps({"config": {"data": {"task": "snli", "train_size": 1000}}})
    )
    _stage(tmp_path / "stage1_full", [1000], {"snli_test": (0.70, 2000), "mnli_ood": (0.40, 1599)})
    _stage(
        tmp_path / "stage4_tdmixup",
        [300, 330],
        {"snli_test": (0.60, 2000), "mnli_ood": (0.41, 1599)},
        near_chance=True,
    )
    return tmp_path


def test_accuracy_se_is_the_binomial_standard_error() -> None:
    assert accuracy_se(0.5, 100) == pytest.approx(0.05)
    assert math.isnan(accuracy_se(0.5, 0))


def test_report_shows_noise_and_says_which_differences_exceed_it(run_dir: Path) -> None:
    text = write_run_report(run_dir).read_text()
    assert f"70.00 ± {100 * math.sqrt(0.7 * 0.3 / 2000):.2f}" in text  # 1.02
    assert f"41.00 ± {100 * math.sqrt(0.41 * 0.59 / 1599):.2f}" in text
    se_test = math.hypot(accuracy_se(0.7, 2000), accuracy_se(0.6, 2000))
    assert (
        "on snli_test (n = 2,000) TDMixUp differs from the baseline by -10.00 points "
        f"(standard error of the difference ±{100 * se_test:.2f}): larger than noise" in text
    )
    assert "on mnli_ood (n = 1,599) TDMixUp differs from the baseline by +1.00 points" in text
    assert "within noise" in text.split("on mnli_ood")[1]
    assert "benchmarks/cpu_reproduction/README.md" in text and "1,000 rows" in text
    assert text.count("**Warning — ") == 1 and "**Warning — TDMixUp" in text


def test_no_small_scale_pointer_for_a_large_run(run_dir: Path) -> None:
    done = run_dir / "stage1_full" / "done.json"
    summary = json.loads(done.read_text())
    done.write_text(json.dumps(summary | {"train_sizes": [98_890]}))
    assert "cpu_reproduction" not in write_run_report(run_dir).read_text()
