"""Running one job of the scaling study and building its result record.

Training goes through the library: :func:`tdmixup.run.experiments.run_row` for the rows (each size
and seed is one run folder, ``<run-dir>/<size>/seed_<s>/``, laid out as ``tdmixup experiment``
lays out a seed), and the pipeline's own stages for the data map's quality run
(``<run-dir>/<size>/seed_<s>_chaosnli/``). Nothing here trains by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import tdmixup.core.config as tc
from tdmixup.core.layout import AUM_PREFIX, AUM_TABLE, CHECKPOINT, DONE, SUMMARY, ExperimentLayout

QUALITY = "datamap_quality"
LIBRARY_ROWS = {
    "full": ("table2", "full"),
    "tdmixup": ("table3", "tdmixup"),
    "random_pairs": ("table3", "random_pairs"),
    "manifold": ("table2", "manifold"),
}
"""Which row of :data:`tdmixup.run.experiments.TABLES` each study row runs (looked up at run time,
so the study runs whatever the library's rows are when it runs)."""
SNLI_TEST_ROWS = 9824
"""Rows of the official SNLI test set with a gold label."""


@dataclass(frozen=True)
class Job:
    """One (size, row, seed) of the study."""

    size: int
    row: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.size}_{self.row}_seed{self.seed}"


class JobRunner:
    """Opens (and keeps, while consecutive jobs share it) the session of a (size, seed) and runs
    the jobs of the plan, returning one record per job."""

    def __init__(
        self, args: argparse.Namespace, settings: dict[str, Any], code: dict[str, Any], command: str
    ) -> None:
        from _session import quiet_logging

        quiet_logging()
        self.args, self.settings, self.code, self.command = args, settings, code, command
        self._key: tuple[int, int, bool] | None = None
        self._session: Any = None
        self._entropy: Any = None

    # --- sessions ------------------------------------------------------------------------------
    def config(self, size: int, seed: int) -> tc.RunConfig:
        """The run configuration of one (size, seed): the study settings, the library's defaults
        for everything else (selection, AUM, MixUp), so the study follows the library."""
        s = self.settings
        model = tc.ModelConfig(num_hidden_layers=s["num_hidden_layers"])
        if s["model"] != tc.DEFAULT_MODEL:
            model = replace(model, name_or_path=s["model"])
        return tc.RunConfig(
            data=tc.DataConfig(
                task="snli", train_size=size, dev_size=s["dev_size"], test_size=s["test_size"]
            ),
            model=model,
            train=tc.TrainConfig(
                epochs=s["epochs"],
                learning_rate=s["learning_rate"],
                batch_size=s["batch_size"],
                seed=seed,
                bf16=s["bf16"],
            ),
        )

    def session(self, job: Job) -> Any:
        from tdmixup.run.pipeline import open_session

        quality = job.row == QUALITY
        key = (job.size, job.seed, quality)
        if key != self._key:
            self._session = None  # free the previous one's data first
            run_dir = ExperimentLayout(self.args.run_dir / str(job.size)).seed_dir(job.seed)
            if quality:
                run_dir = run_dir.with_name(f"{run_dir.name}_chaosnli")
            self._session = open_session(self.config(job.size, job.seed), run_dir)
            self._entropy = self._add_chaos(self._session) if quality else None
            self._key = key
        return self._session

    def forget_session(self) -> None:
        """Drop the open session (after a failed job: the next job opens its own afresh)."""
        self._key, self._session, self._entropy = None, None, None

    def _add_chaos(self, session: Any) -> Any:
        from human_ambiguity import CHAOS_SNLI, ID_OFFSET, add_chaos_rows

        from tdmixup.core.runio import read_json, write_json
        from tdmixup.data.sources import find_data_file

        marker = session.run_dir / "benchmark_settings.json"
        mine = {"chaos_label": self.settings["chaos_label"], "id_offset": ID_OFFSET}
        if marker.exists() and read_json(marker) != mine:
            raise RuntimeError(
                f"{marker} was made with other ChaosNLI settings ({read_json(marker)}); remove "
                f"{session.run_dir} to start it afresh"
            )
        path = find_data_file(CHAOS_SNLI, download=False)
        if path is None:
            raise FileNotFoundError(
                f"{CHAOS_SNLI} not found in ../shared/data: the data map's quality runs need it "
                "(or run with --rows full tdmixup random_pairs manifold)"
            )
        entropy = add_chaos_rows(session, path, self.settings["chaos_label"])
        write_json(marker, mine)
        return entropy

    def prune_checkpoints(self, job: Job) -> list[Path]:
        """Remove the epoch checkpoints (model + optimiser, ~270 MB each for MiniLM) of every
        finished stage of the job's run folder: a finished stage is never trained again (its
        ``done.json`` is reused) and later stages read only its dynamics and regions."""
        import shutil

        session = self.session(job)
        removed = []
        for done in session.run_dir.glob(f"**/{DONE}"):
            ckpt = done.parent / CHECKPOINT
            if ckpt.is_dir():
                shutil.rmtree(ckpt)
                removed.append(ckpt)
        return removed

    # --- one job ------------------------------------------------------------------------------
    def run(self, job: Job) -> dict[str, Any]:
        """Train (or reuse) the job's stages and return its record."""
        start, load_before = time.perf_counter(), os.getloadavg()
        session = self.session(job)
        body = self._quality(session) if job.row == QUALITY else self._row(session, job)
        return {
            "size": job.size,
            "row": job.row,
            "seed": job.seed,
            **body,
            "settings": self.settings,
            "test_set_notes": test_set_notes(session, self.settings),
            "label_names": list(session.task.spec.label_names),
            "wall_seconds": time.perf_counter() - start,
            "load_average_1_5_15min": {"before": list(load_before), "after": list(os.getloadavg())},
            "run_dir": str(session.run_dir),
            "config": tc.to_json_dict(session.config),
            "machine": machine(session),
            "code": self.code,
            "command": self.command,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _row(self, session: Any, job: Job) -> dict[str, Any]:
        from tdmixup.run.experiments import TABLES, run_row
        from tdmixup.run.pipeline import read_regions, stage_datamap

        table, key = LIBRARY_ROWS[job.row]
        row = next((r for r in TABLES.get(table, ()) if r.key == key), None)
        if row is None:
            raise KeyError(
                f"tdmixup.run.experiments.TABLES[{table!r}] has no row {key!r} any more: "
                "update LIBRARY_ROWS in benchmarks/scaling/jobs.py"
            )
        done = run_row(session, row)
        stage_datamap(
            session
        )  # every record reports its regions' class mix (stage 2 is shared and cheap)
        regions = read_regions(session)
        counts = class_counts(session, regions, row)
        metrics = done["metrics"]
        return {
            "label": row.label,
            "library_row": {
                "table": table,
                "key": row.key,
                "strategy": row.strategy,
                "sets": list(row.sets),
                "aum": list(row.aum),
                "epoch": row.epoch,
                "mixup": [list(kv) for kv in row.mixup],
            },
            "test_sets": metrics["sets"],
            "temperature": metrics.get("temperature"),
            "train_sizes": done["train_sizes"],
            "train_seconds": done["train_seconds"],
            "eval_seconds": done.get("eval_seconds"),
            "history": done.get("history", []),
            "class_counts": counts,
            "stage_seconds": stage_seconds(session.run_dir),
            "cost_seconds": cost_seconds(session.run_dir, job.row, done),
        }

    def _quality(self, session: Any) -> dict[str, Any]:
        import pandas as pd
        from human_ambiguity import entropy_by_region

        from tdmixup.run.pipeline import read_regions, stage_datamap, train_and_evaluate

        stage_dir = session.layout.stage1  # where stage_datamap reads the dynamics
        done = train_and_evaluate(
            session,
            stage_dir,
            strategy="none",
            train_sets=[session.train],
            dynamics_mode=session.config.dynamics.mode,
            evaluate=False,
        )
        stage_datamap(session)
        stats = pd.read_parquet(session.layout.statistics)
        regions = read_regions(session)
        chaos, per_region, correlations = entropy_by_region(stats, regions, self._entropy)
        snli_ids = {k: v[~np.isin(v, chaos.index.to_numpy())] for k, v in regions.items()}
        return {
            "label": "data map's quality: dynamics on the size's pairs "
            "+ the 1,514 ChaosNLI SNLI pairs",
            "rows": {
                "snli": int(len(stats) - len(chaos)),
                "chaosnli": int(len(chaos)),
                "chaosnli_mean_entropy": float(chaos["entropy"].mean()),
            },
            "per_region": per_region,
            "spearman": correlations,
            "class_counts": {
                "regions_snli_rows": {k: _bincount(session, v) for k, v in snli_ids.items()},
                "regions_all_rows": {k: _bincount(session, v) for k, v in regions.items()},
            },
            "train_sizes": done["train_sizes"],
            "train_seconds": done["train_seconds"],
            "history": done.get("history", []),
            "cost_seconds": float(done["train_seconds"]),
        }


# --- record pieces ---------------------------------------------------------------------------
def _bincount(session: Any, ids: np.ndarray) -> list[int]:
    labels = session.train.labels[session.train.positions_of(ids)]
    return np.bincount(labels, minlength=session.task.spec.num_labels).tolist()


def class_counts(session: Any, regions: dict[str, np.ndarray], row: Any) -> dict[str, Any]:
    """Per-class counts of the training set, each region, each AUM run's kept and flagged
    samples, and the row's own training sets (in the order the row trains on them)."""
    from tdmixup.core.layout import aum_subset
    from tdmixup.dynamics.aum import read_aum_table
    from tdmixup.run.experiments import _row_sets

    n = session.task.spec.num_labels
    out: dict[str, Any] = {
        "train": np.bincount(session.train.labels, minlength=n).tolist(),
        "regions": {k: _bincount(session, v) for k, v in regions.items()},
        "aum": {},
    }
    for aum_dir in session.layout.aum_dirs():
        if not (path := aum_dir / AUM_TABLE).exists():
            continue  # aum_saliency_split/, or a run in progress
        table = read_aum_table(path)
        out["aum"][aum_subset(aum_dir)] = {
            "kept": _bincount(session, table.loc[~table["flagged"], "sample_id"].to_numpy()),
            "flagged": _bincount(session, table.loc[table["flagged"], "sample_id"].to_numpy()),
        }
    out["row_train_sets"] = [
        np.bincount(s.labels, minlength=n).tolist() for s in _row_sets(session, row, regions)
    ]
    return out


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Training seconds of every finished stage in a (size, seed) folder (shared ones included)."""
    out = {}
    for path in sorted(run_dir.glob(f"**/{DONE}")):  # AUM: its passes' folders
        data = json.loads(path.read_text())
        if "train_seconds" in data:
            name = str(path.parent.relative_to(run_dir))
            out[name] = float(data["train_seconds"]) + float(data.get("eval_seconds") or 0.0)
    return out


def cost_seconds(run_dir: Path, row: str, done: dict[str, Any]) -> float:
    """What the job costs when it runs from scratch after the jobs before it in the plan: its own
    training and evaluation, plus (TDMixUp) the AUM runs it needs (stage 1 is the ``full``
    job's)."""
    total = float(done["train_seconds"]) + float(done.get("eval_seconds") or 0.0)
    if row == "tdmixup":
        for path in run_dir.glob(f"{AUM_PREFIX}*/{SUMMARY}"):
            total += float(json.loads(path.read_text()).get("train_seconds", 0.0))
    return total


def test_set_notes(session: Any, settings: dict[str, Any]) -> dict[str, str]:
    """What each evaluation set is, with the number of rows used."""
    notes = {}
    for name, data in session.tests.items():
        if name == "snli_test":
            notes[name] = (
                f"the official SNLI test set, all {len(data):,} rows with a gold label"
                if settings["test_size"] is None
                else f"the first {len(data):,} rows (of {SNLI_TEST_ROWS:,} with a gold label) "
                "of the official SNLI test set, a fixed subset"
            )
        elif name == "mnli_ood":
            notes[name] = (
                f"out of domain: the {len(data):,} MultiNLI dev-matched pairs of ChaosNLI "
                "(majority of 100 crowd labels), biased toward low-agreement pairs"
            )
        else:
            notes[name] = f"{len(data):,} rows"
    return notes


def machine(session: Any) -> dict[str, Any]:
    from throughput import machine_info

    return {
        **machine_info(),
        "world_size": session.accelerator.num_processes,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
