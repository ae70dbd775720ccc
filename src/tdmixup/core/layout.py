"""Where a run's files live: every folder and file name the stages write, and the stage order.

A run folder (``tdmixup run --output-dir runs/x``, or one ``seed_<n>/`` of an experiment), with
the stage that writes each entry (:data:`STAGES`, in order; ``tdmixup run --from-stage S``
deletes the folders of S and every later stage, :meth:`RunLayout.stage_dirs`)::

    runs/x/
    ├── config.json             every setting, versions, seed, world size, device  (open_session)
    ├── stage1_full/            full: fine-tuning on 100 % of the data, the baseline row
    │   ├── checkpoint/         the last finished epoch's model (encoder/ with the tokenizer,
    │   │   │                   head.pt, classifier.json: tdmixup.model), rewritten each epoch
    │   │   ├── train_log.json  one entry per epoch done (loss, accuracy, seconds)
    │   │   └── training_state.pt  optimizer, scheduler, RNG states for an exact resume
    │   │                       (deleted once the stage is done, unless --keep-training-state)
    │   ├── dynamics.parquet    logits per sample and epoch (the training dynamics)
    │   ├── metrics.json        accuracy, ECE, NLL, Brier per test set, before/after scaling
    │   ├── reliability_<set>.png  one reliability diagram per test set
    │   └── done.json           the stage's summary; while it exists the stage is skipped
    ├── datamap/                datamap: read from stage1_full/dynamics.parquet
    │   ├── statistics.parquet  confidence, variability, correctness, AUM per sample
    │   ├── regions/<r>.txt     easy / ambiguous / hard sample ids (a --subset file)
    │   ├── regions/<r>.csv     the same samples with text, labels and statistics
    │   ├── datamap.png, datamap.html
    │   ├── suspects.csv        every row ranked as a likely label issue, the lowest 10 %
    │   │                       flagged (is_label_issue), in the user's columns (relabelling)
    │   └── done.json           region sizes, class counts, suspects per class and warnings
    ├── aum_<subset>/           aum: one per --aum-subsets region (default: easy)
    │   ├── pass1/, pass2/      the threshold-sample trainings: dynamics.parquet, done.json
    │   ├── aum.parquet         AUM, threshold and flag per sample
    │   ├── kept.txt            the ids AUM keeps (a --subset file); kept.csv, flagged.csv
    │   └── summary.json        counts, settings, flags per class and warnings; while it
    │                           exists the run is skipped
    ├── stage4_tdmixup/         tdmixup: MixUp of easy-with-AUM × ambiguous (as stage1_full/,
    │                           without dynamics)
    ├── aum_saliency_split/     aum of --strategy aum_saliency: split.parquet (AUM, half and
    │                           saliency per sample), high.txt, low.txt, done.json
    ├── stage4_aum_saliency/    tdmixup of --strategy aum_saliency (as stage4_tdmixup/)
    ├── rows/<key>/             tdmixup experiment: every other row of a table (as stage1_full/)
    ├── tracking/               --report-to (tdmixup.training.tracking): tensorboard/<stage>/ event
    │                           files, wandb/ runs, mlflow.db + mlartifacts/ (MLflow's local
    │                           store, unless MLFLOW_TRACKING_URI names another)
    └── report.md               report: written from the files above only

The folder of ``tdmixup experiment --output-dir runs/e`` (:class:`ExperimentLayout`)::

    runs/e/
    ├── seed_<n>/               one run folder per seed (above); rows share its stages
    ├── backtranslation_cache/  the back-translated training set, shared by the seeds
    └── <table>/                table.md, table.csv, table.json, accuracy_vs_ece.png

The standalone commands write the same files into their ``--output-dir``: ``train`` and
``dynamics`` a training stage's (plus ``train_args.json``), ``datamap`` a ``datamap/`` folder's
(``summary.json`` for ``done.json``), ``aum`` an ``aum_<subset>/`` folder's.

The folder and file names are fixed: existing run folders are read by them. Change one here and
only here, and only with a way for older folders to keep working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# --- the stages, in order -----------------------------------------------------------------------
STAGES = ("full", "datamap", "aum", "tdmixup", "report")
"""The stages of ``tdmixup run`` in order (the values of ``--from-stage`` and ``--until``)."""

# --- files of the run folder -------------------------------------------------------------------
CONFIG = "config.json"
REPORT = "report.md"

# --- files of any training stage's folder (stage1_full, stage4_*, rows/<key>, aum_*/pass<p>) ----
DONE = "done.json"
"""A finished stage's summary (also in datamap/, aum_saliency_split/); it marks the stage done."""
CHECKPOINT = "checkpoint"
"""The folder of the last finished epoch's model (see :mod:`tdmixup.training.checkpoint`)."""
TRAINING_STATE = "training_state.pt"
"""Optimizer, scheduler, RNG states and epoch count in ``checkpoint/``: an exact resume's needs."""
TRAIN_LOG = "train_log.json"
"""The per-epoch history in ``checkpoint/``."""
DYNAMICS = "dynamics.parquet"
METRICS = "metrics.json"
RELIABILITY_PREFIX = "reliability_"
"""``reliability_<set>.png``: :func:`reliability_png`."""
TRAIN_ARGS = "train_args.json"
"""``tdmixup train``'s own options (strategy, subset files, dynamics) in its folder."""
FIT_DATA = "data"
"""``output_dir/data/``: the rows ``tdmixup.fit`` trained on (``train.jsonl``, ``dev.jsonl``,
``test_<name>.jsonl``), the files its ``config.json`` names."""

# --- stage folders -------------------------------------------------------------------------------
STAGE1 = "stage1_full"
DATAMAP = "datamap"
AUM_PREFIX = "aum_"
"""``aum_<subset>/``: one AUM run per region (and ``aum_saliency_split/``, of the same stage)."""
TDMIXUP_STAGE = "stage4_tdmixup"
AUM_SALIENCY_SPLIT = "aum_saliency_split"
AUM_SALIENCY_STAGE = "stage4_aum_saliency"
ROWS_DIR = "rows"

TRACKING = "tracking"
"""``--report-to``'s local files (:mod:`tdmixup.training.tracking`), one run per training stage."""
TENSORBOARD_DIR = "tensorboard"
"""``tracking/tensorboard/<stage>/``: TensorBoard's event files (``tensorboard --logdir``)."""
MLFLOW_DB = "mlflow.db"
"""``tracking/mlflow.db``: MLflow's local (SQLite) store, used when no tracking URI is set."""
MLFLOW_ARTIFACTS = "mlartifacts"
"""``tracking/mlartifacts/``: the artifact folder of the MLflow experiments tdmixup creates."""

# --- files of datamap/ ---------------------------------------------------------------------------
STATISTICS = "statistics.parquet"
REGIONS_DIR = "regions"
DATAMAP_PNG = "datamap.png"
DATAMAP_HTML = "datamap.html"

# --- files of an AUM run's folder (aum_<subset>/, or `tdmixup aum --output-dir`) -----------------
AUM_TABLE = "aum.parquet"
KEPT = "kept"
"""The id file (``kept.txt``, :func:`id_file`) and readable table (``kept.csv``) of kept samples."""
FLAGGED = "flagged"
"""The relabelling table of flagged samples (``flagged.csv``: the user's own columns, then
prediction, statistics, AUM and rank; :func:`tdmixup.dynamics.suspects.suspect_table`)."""
SUSPECTS = "suspects"
"""The data map's ranked suspects (``datamap/suspects.csv``: every training row ranked, the lowest
``--dynamics-flag-fraction`` flagged ``is_label_issue``, in the user's own columns)."""
AUM_PASS_PREFIX = "pass"
"""``pass1/``, ``pass2/``: :func:`aum_pass_dir`."""
SUMMARY = "summary.json"
"""An AUM run's summary (it marks the run done); ``tdmixup datamap``'s summary."""

# --- files of aum_saliency_split/ ----------------------------------------------------------------
SPLIT_TABLE = "split.parquet"

# --- an experiment's folder ---------------------------------------------------------------------
SEED_PREFIX = "seed_"
BACKTRANSLATION_CACHE = "backtranslation_cache"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
TABLE_JSON = "table.json"
TABLE_PLOT = "accuracy_vs_ece.png"


def id_file(folder: Path, name: str) -> Path:
    """``<folder>/<name>.txt``: sample ids, one per line (regions, ``kept``, ``high``/``low``)."""
    return folder / f"{name}.txt"


def sample_csv(folder: Path, name: str) -> Path:
    """``<folder>/<name>.csv``: an id file's samples with text, labels and statistics."""
    return folder / f"{name}.csv"


def reliability_png(folder: Path, set_name: str) -> Path:
    """``<folder>/reliability_<set>.png``: one test set's reliability diagram."""
    return folder / f"{RELIABILITY_PREFIX}{set_name}.png"


def reliability_pngs(folder: Path) -> dict[str, Path]:
    """The reliability diagrams in ``folder``, by test set name, in file-name order."""
    return {
        png.stem[len(RELIABILITY_PREFIX) :]: png
        for png in sorted(folder.glob(f"{RELIABILITY_PREFIX}*.png"))
    }


def aum_pass_dir(aum_dir: Path, number: int) -> Path:
    """``<aum_dir>/pass<number>/``: the ``number``-th (1-based) threshold-sample training."""
    return aum_dir / f"{AUM_PASS_PREFIX}{number}"


def aum_subset(aum_dir: Path) -> str:
    """The region an ``aum_<subset>/`` folder was run on (``aum_easy`` → ``easy``)."""
    return aum_dir.name[len(AUM_PREFIX) :]


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (see the module's tree); nothing is created or read."""

    run_dir: Path

    @property
    def config(self) -> Path:
        return self.run_dir / CONFIG

    @property
    def report(self) -> Path:
        return self.run_dir / REPORT

    @property
    def tracking(self) -> Path:
        """``tracking/``: the local files of ``--report-to``."""
        return self.run_dir / TRACKING

    # stage full
    @property
    def stage1(self) -> Path:
        return self.run_dir / STAGE1

    @property
    def stage1_dynamics(self) -> Path:
        return self.stage1 / DYNAMICS

    # stage datamap
    @property
    def datamap(self) -> Path:
        return self.run_dir / DATAMAP

    @property
    def statistics(self) -> Path:
        return self.datamap / STATISTICS

    @property
    def regions_dir(self) -> Path:
        return self.datamap / REGIONS_DIR

    def region_file(self, region: str) -> Path:
        """``datamap/regions/<region>.txt``, the region's id file."""
        return id_file(self.regions_dir, region)

    def region_csv(self, region: str) -> Path:
        return sample_csv(self.regions_dir, region)

    @property
    def datamap_png(self) -> Path:
        return self.datamap / DATAMAP_PNG

    @property
    def datamap_html(self) -> Path:
        return self.datamap / DATAMAP_HTML

    # stage aum
    def aum_dir(self, subset: str) -> Path:
        return self.run_dir / f"{AUM_PREFIX}{subset}"

    def aum_table(self, subset: str) -> Path:
        return self.aum_dir(subset) / AUM_TABLE

    def aum_kept(self, subset: str) -> Path:
        """``aum_<subset>/kept.txt``, the ids AUM keeps."""
        return id_file(self.aum_dir(subset), KEPT)

    def aum_summary(self, subset: str) -> Path:
        return self.aum_dir(subset) / SUMMARY

    def aum_dirs(self) -> list[Path]:
        """Every ``aum_*`` folder there is, sorted: the AUM runs and ``aum_saliency_split/``
        (both stage ``aum``'s)."""
        return sorted(self.run_dir.glob(f"{AUM_PREFIX}*"))

    @property
    def aum_saliency_split(self) -> Path:
        return self.run_dir / AUM_SALIENCY_SPLIT

    @property
    def aum_saliency_split_table(self) -> Path:
        return self.aum_saliency_split / SPLIT_TABLE

    # stage tdmixup
    @property
    def tdmixup(self) -> Path:
        return self.run_dir / TDMIXUP_STAGE

    @property
    def aum_saliency_stage(self) -> Path:
        return self.run_dir / AUM_SALIENCY_STAGE

    # tdmixup experiment
    def row_dir(self, key: str) -> Path:
        """``rows/<key>/``: an experiment row that no stage of ``tdmixup run`` trains."""
        return self.run_dir / ROWS_DIR / key

    def stage_dirs(self, stage: str) -> list[Path]:
        """The folders ``stage`` writes (``aum``: those that exist), which ``--from-stage``
        deletes; ``report`` has none (its ``report.md`` is rewritten)."""
        if stage == "aum":
            return self.aum_dirs()
        fixed = {
            "full": [self.stage1],
            "datamap": [self.datamap],
            "tdmixup": [self.tdmixup, self.aum_saliency_stage],
            "report": [],
        }
        return fixed[stage]


@dataclass(frozen=True)
class ExperimentLayout:
    """The paths of one ``tdmixup experiment`` folder (see the module's second tree)."""

    output_dir: Path

    def seed_dir(self, seed: int) -> Path:
        """``seed_<seed>/``, the run folder of one seed."""
        return self.output_dir / f"{SEED_PREFIX}{seed}"

    def run(self, seed: int) -> RunLayout:
        return RunLayout(self.seed_dir(seed))

    def seed_dirs(self) -> dict[int, Path]:
        """The ``seed_<n>/`` folders there are, by seed, in seed order."""
        found = {
            int(m.group(1)): p
            for p in self.output_dir.glob(f"{SEED_PREFIX}*")
            if (m := re.fullmatch(rf"{SEED_PREFIX}(\d+)", p.name))
        }
        return dict(sorted(found.items()))

    def table_dir(self, table: str) -> Path:
        """``<table>/``: ``table.md``, ``table.csv``, ``table.json`` and ``accuracy_vs_ece.png``."""
        return self.output_dir / table

    def table_md(self, table: str) -> Path:
        return self.table_dir(table) / TABLE_MD

    @property
    def backtranslation_cache(self) -> Path:
        return self.output_dir / BACKTRANSLATION_CACHE
