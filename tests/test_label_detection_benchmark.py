"""benchmarks/label_detection.py on a tiny random BERT and 150 real SNLI pairs (seconds): the
flipped labels reach every place that joins labels to the dynamics (the data map's fingerprint
check and suspects.csv, not only the tokenised set), and a run outside the committed results
folder leaves the committed summary alone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from _tiny import SNLI_LABELS, build_tiny_model_dir, require_minilm, require_snli, snli_columns

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "label_detection.py"
COMMITTED_SUMMARY = ROOT / "benchmarks" / "results" / "label_detection.json"


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_class_conditional_flips_reach_the_data_map_and_its_csv(tmp_path: Path) -> None:
    require_snli()
    require_minilm()
    model = build_tiny_model_dir(tmp_path / "tiny")
    results, runs, size = tmp_path / "ld", tmp_path / "runs", 150
    before = _digest(COMMITTED_SUMMARY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable, str(SCRIPT), "--sizes", str(size), "--seeds", "1",
        "--noises", "class_conditional", "--methods", "stage1", "--model", str(model),
        "--max-seq-length", "128", "--learning-rate", "1e-3", "--epochs", "1",
        "--dev-size", "40", "--test-size", "40",
        "--results-dir", str(results), "--run-root", str(runs),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    job = json.loads((results / f"{size}_class_conditional_seed1_stage1.json").read_text())
    assert job["noise"]["flipped"] > 0
    # the summary goes beside the results folder, never over the committed one
    assert (tmp_path / "ld.json").exists() and (tmp_path / "ld.md").exists()
    assert _digest(COMMITTED_SUMMARY) == before

    clean = pd.DataFrame(snli_columns(size)).set_index("sample_id")["label"]
    run_dir = runs / f"{size}_class_conditional_seed1"
    suspects = pd.read_csv(run_dir / "datamap" / "suspects.csv").set_index("sample_id")
    assert len(suspects) == size
    given = suspects["gold_label"].map(SNLI_LABELS.index).loc[clean.index].to_numpy()
    changed = given != clean.to_numpy()
    # exactly the benchmark's flips, and only neutral → entailment
    assert int(changed.sum()) == job["noise"]["flipped"]
    names = np.asarray(SNLI_LABELS)
    assert set(names[clean.to_numpy()[changed]]) == {"neutral"}
    assert set(names[given[changed]]) == {"entailment"}
