"""Task registry and :func:`load_task`, the one call that turns a :class:`DataConfig` into data.

==============  ======  =====================================================================
task            kind    default sources (train / dev / tests, first test = in-domain)
==============  ======  =====================================================================
``snli``        pair    first 100k SNLI train rows (dev = last ``dev_size`` labelled rows);
                        ``snli_test`` = official test; ``mnli_ood`` = ChaosNLI MNLI-matched
                        pairs (1,599, biased to low agreement) when the file is present
``mnli``        pair    hub ``nyu-mll/multi_nli`` train; ``mnli_test`` = validation_matched;
                        ``snli_ood`` = SNLI test
``qqp``         pair    hub GLUE QQP train; ``qqp_test`` = validation; ``twitterppdb_ood`` =
                        the Twitter URL Corpus test file when present
``twitterppdb`` pair    Twitter URL Corpus test file, seeded split into train/dev/test
``swag``        mc      hub ``allenai/swag`` train; ``swag_test`` = validation;
                        ``hellaswag_ood`` = HellaSWAG val text when present
``hellaswag``   mc      HellaSWAG val (10,042 items), seeded split into train/dev/test
``snli_mc``     mc      SNLI as 3-way multiple choice: a premise with its entailed, neutral and
                        contradicting hypotheses (order shuffled, seeded); pick the entailed one.
                        Train from the SNLI train file, ``snli_mc_test`` from the official test
``custom``      any     your files (``train_file``, ``columns``, ``label_names``): single
                        sentence (``text_a`` and ``label`` mapped), pair (``text_b`` too) or
                        multiple choice (``context``, ``endings``)
==============  ======  =====================================================================

Built-in files are found as described in :mod:`tdmixup.data.sources`; hub sources need
internet or a cache (:mod:`tdmixup.data.hub`). ``train_file`` replaces the default train
source *and* the default tests (then only ``test_files`` are evaluated); those files are read
with :func:`~tdmixup.data.readers.read_table` and the task's usual column names below (override
with ``columns``), which also fit Desai & Durrett's SNLI/MNLI/QQP/SWAG/HellaSWAG files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
from datasets import Dataset

from tdmixup.core.config import DataConfig, named_test_file
from tdmixup.data.hub import read_hub
from tdmixup.data.readers import (
    MC4_LABELS,
    NLI_LABELS,
    PARAPHRASE_LABELS,
    QQP_LABELS,
    check_mapping,
    file_label_names,
    read_all_columns,
    read_chaosnli,
    read_hellaswag_text,
    read_nli_jsonl,
    read_table,
    read_twitter_url_corpus,
    split_dataset,
)
from tdmixup.data.schema import DataError, TaskSpec, is_classification, kind_of_columns
from tdmixup.data.sources import SNLI_TEST, SNLI_TRAIN, find_data_file

logger = logging.getLogger("tdmixup.data")

TASKS: dict[str, TaskSpec] = {
    "snli": TaskSpec("snli", "pair", NLI_LABELS),
    "mnli": TaskSpec("mnli", "pair", NLI_LABELS),
    "qqp": TaskSpec("qqp", "pair", QQP_LABELS),
    "twitterppdb": TaskSpec("twitterppdb", "pair", PARAPHRASE_LABELS),
    "swag": TaskSpec("swag", "multiple_choice", MC4_LABELS, aum_percentile=50.0),
    "hellaswag": TaskSpec("hellaswag", "multiple_choice", MC4_LABELS, aum_percentile=50.0),
    "snli_mc": TaskSpec("snli_mc", "multiple_choice", ("0", "1", "2")),
}
"""Built-in tasks; ``"custom"`` is built from the config."""

_NLI_COLUMNS = (("text_a", "sentence1"), ("text_b", "sentence2"), ("label", "gold_label"))
DEFAULT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "snli": _NLI_COLUMNS,
    "mnli": _NLI_COLUMNS,
    "qqp": (("text_a", "question1"), ("text_b", "question2"), ("label", "is_duplicate")),
    "twitterppdb": (),  # Twitter URL Corpus format, see read_twitter_url_corpus
    "swag": (
        ("context", "sent1"),
        ("ending_prefix", "sent2"),
        ("endings", "ending0,ending1,ending2,ending3"),
        ("label", "label"),
    ),
    "hellaswag": (
        ("context", "ctx_a"),
        ("ending_prefix", "ctx_b"),
        ("endings", "endings"),
        ("label", "label"),
    ),
}
"""Column names used to read ``train_file``/``dev_file``/``test_files`` of a built-in task."""
CHAOSNLI_MNLI = "chaosnli/chaosNLI_mnli_m.jsonl"
TWITTER_URL_TEST = "twitterppdb/Twitter_URL_Corpus_test.txt"
HELLASWAG_VAL = "hellaswag/hellaswag_val_full.txt.bz2"
SPLIT_TEST_FRACTION = 0.2
"""Share of the rows that become the test set when a task splits one file (seeded)."""


@dataclass(frozen=True)
class TaskData:
    """Everything a run trains and evaluates on.

    Attributes:
        spec: the task.
        train: training rows (schema of ``spec.kind``).
        dev: rows for model selection / temperature scaling.
        tests: evaluation sets in order; the first is in-domain, the others out-of-domain.
    """

    spec: TaskSpec
    train: Dataset
    dev: Dataset
    tests: dict[str, Dataset]


@dataclass
class _Sources:
    train: Dataset
    dev: Dataset | None = None  # None: hold out from the end of train
    tests: dict[str, Dataset] | None = None


def _require(name: str) -> str:
    path = find_data_file(name)
    if path is None:
        raise DataError(
            f"built-in data file {name} not found "
            "(looked in $TDMIXUP_DATA_DIR, ../shared/data and the cache; "
            "set TDMIXUP_DATA_DIR to a folder holding it, "
            "or use --train-file PATH --dev-file PATH --test-file NAME=PATH)"
        )
    return str(path)


def _optional(name: str, reader: Callable[[str], Dataset], test_name: str) -> dict[str, Dataset]:
    path = find_data_file(name, download=False)
    if path is None:
        logger.info("out-of-domain set %s: %s not found, skipped", test_name, name)
        return {}
    return {test_name: reader(str(path))}


def _snli(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
    tests = {"snli_test": read_nli_jsonl(_require(SNLI_TEST), label_names=spec.label_names)}
    tests |= _optional(
        CHAOSNLI_MNLI, lambda p: read_chaosnli(p, label_names=spec.label_names), "mnli_ood"
    )
    return _Sources(read_nli_jsonl(_require(SNLI_TRAIN), label_names=spec.label_names), tests=tests)


def _mnli(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
    tests = {
        "mnli_test": read_hub("mnli", split="validation_matched", label_names=spec.label_names),
        "snli_ood": read_nli_jsonl(_require(SNLI_TEST), label_names=spec.label_names),
    }
    return _Sources(read_hub("mnli", split="train", label_names=spec.label_names), tests=tests)


def _qqp(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
    tests = {"qqp_test": read_hub("qqp", split="validation", label_names=spec.label_names)}
    tests |= _optional(TWITTER_URL_TEST, read_twitter_url_corpus, "twitterppdb_ood")
    return _Sources(read_hub("qqp", split="train", label_names=spec.label_names), tests=tests)


def _swag(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
    tests = {"swag_test": read_hub("swag", split="validation")} | _optional(
        HELLASWAG_VAL, read_hellaswag_text, "hellaswag_ood"
    )
    return _Sources(read_hub("swag", split="train"), tests=tests)


def _split_task(
    path: str, reader: Callable[[str], Dataset], test_name: str
) -> Callable[[TaskSpec, int, DataConfig], _Sources]:
    def build(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
        dev_size = 0 if cfg.dev_file else cfg.dev_size
        train, dev, test = split_dataset(
            reader(_require(path)), seed=seed, dev_size=dev_size, test_fraction=SPLIT_TEST_FRACTION
        )
        return _Sources(train, dev=dev, tests={test_name: test})

    return build


def read_snli_multiple_choice(path: str, *, seed: int = 0) -> Dataset:
    """SNLI as multiple choice: per premise (``captionID``) with one entailed, one neutral and one
    contradicting hypothesis, the endings are those three in a seeded random order and the label
    is the position of the entailed one. ``sample_id`` = the line index of the entailed pair."""
    import numpy as np
    import pandas as pd

    frame = pd.read_json(path, lines=True, dtype=False)
    missing = {"captionID", "sentence1", "sentence2", "gold_label"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing field(s) {sorted(missing)} needed for snli_mc")
    frame["line"] = np.arange(len(frame))
    frame = frame[frame["gold_label"].isin(NLI_LABELS)].drop_duplicates(["captionID", "gold_label"])
    wide = frame.pivot(
        index="captionID", columns="gold_label", values=["sentence2", "line"]
    ).dropna()
    premise = frame.drop_duplicates("captionID").set_index("captionID")["sentence1"]
    wide = wide.sort_values(("line", "entailment"))
    hyps = wide["sentence2"][list(NLI_LABELS)].to_numpy()
    order = np.argsort(np.random.default_rng(seed).random(hyps.shape), axis=1)
    endings = np.take_along_axis(hyps, order, axis=1)
    label = np.argmax(order == 0, axis=1)
    if len(wide) == 0:
        raise DataError(
            f"{path}: no premise has an entailed, a neutral and a contradicting hypothesis"
        )
    return Dataset.from_dict(
        {
            "sample_id": wide[("line", "entailment")].to_numpy(dtype=np.int64),
            "context": premise.loc[wide.index].tolist(),
            "endings": endings.tolist(),
            "label": label.astype(np.int64),
        }
    )


def _snli_mc(spec: TaskSpec, seed: int, cfg: DataConfig) -> _Sources:
    tests = {"snli_mc_test": read_snli_multiple_choice(_require(SNLI_TEST), seed=seed)}
    return _Sources(read_snli_multiple_choice(_require(SNLI_TRAIN), seed=seed), tests=tests)


_BUILDERS: dict[str, Callable[[TaskSpec, int, DataConfig], _Sources]] = {
    "snli": _snli,
    "mnli": _mnli,
    "qqp": _qqp,
    "swag": _swag,
    "snli_mc": _snli_mc,
    "twitterppdb": _split_task(TWITTER_URL_TEST, read_twitter_url_corpus, "twitterppdb_test"),
    "hellaswag": _split_task(HELLASWAG_VAL, read_hellaswag_text, "hellaswag_test"),
}


def _check(cfg: DataConfig) -> None:
    if cfg.train_size is not None and cfg.train_size < 1:
        raise ValueError(f"train_size must be >= 1 or None, got {cfg.train_size}")
    if cfg.test_size is not None and cfg.test_size < 1:
        raise ValueError(f"test_size must be >= 1 or None, got {cfg.test_size}")
    if cfg.dev_size < 1 and not cfg.dev_file:
        raise ValueError(f"dev_size must be >= 1 when no dev_file is given, got {cfg.dev_size}")
    names = [named_test_file(item)[0] for item in cfg.test_files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"test set name {twice[0]!r} is used twice in --test-file "
            f"({', '.join(i for i in cfg.test_files if named_test_file(i)[0] == twice[0])}): "
            "name them, e.g. --test-file in_domain=a/test.csv --test-file shifted=b/test.csv"
        )


def _file_reader(
    spec: TaskSpec, cfg: DataConfig, label_names: tuple[str, ...], *, with_ids: bool = True
) -> Callable[[str], Dataset]:
    """The reader of the task's files. ``--column sample_id=…`` names the *training* file's id
    column only (``with_ids``): dev and test rows are numbered by row, as their ids are never
    joined with training dynamics (and a dev/test file need not have that column)."""
    columns = tuple(user_mapping(cfg, spec.name).items())
    if not with_ids:
        columns = tuple((field, col) for field, col in columns if field != "sample_id")
    if _has_own_reader(spec.name, cfg):
        if spec.name == "twitterppdb":
            return read_twitter_url_corpus
        return lambda path: read_snli_multiple_choice(path, seed=cfg.split_seed)
    if not columns:
        raise ValueError(
            f"task {spec.name!r} needs --column FIELD=COLUMN to read your files, "
            "e.g. --column text_a=premise --column text_b=hypothesis --column label=label"
        )
    hint = _default_label_hint(cfg, spec.name)
    return lambda path: read_table(
        path, columns=columns, label_names=label_names, mapping_hint=hint
    )


def _default_label_hint(cfg: DataConfig, task: str) -> str | None:
    """The fix for a missing ``label`` column that no ``--column label=…`` named (``custom``
    reads the column ``label`` by default); None when the mapping names it."""
    if task != "custom" or "label" in dict(cfg.columns):
        return None
    return (
        "the labels are read from the column 'label' by default: name yours with "
        "--column label=COLUMN"
    )


def user_mapping(data: DataConfig, task: str) -> dict[str, str]:
    """The ``--column`` mapping of the run's files (the task's default when none is given), so
    ``suspects.csv`` and ``flagged.csv`` use the columns of the user's own file. A ``custom``
    mapping without ``label`` reads the column ``label`` (as ``tdmixup.fit``'s ``label="label"``).
    """
    mapping = dict(data.columns or DEFAULT_COLUMNS.get(task, ()))
    if task == "custom" and mapping and "label" not in mapping:
        mapping["label"] = "label"
    return mapping


def _has_own_reader(name: str, cfg: DataConfig) -> bool:
    """Whether the task reads its files with a reader of its own (TwitterPPDB's, SNLI multiple
    choice's) rather than :func:`~tdmixup.data.readers.read_table` (only without ``--column``)."""
    return name in ("twitterppdb", "snli_mc") and not cfg.columns


def train_file_rows(config: DataConfig) -> pd.DataFrame | None:
    """Every column of the run's own training file by ``sample_id``
    (:func:`tdmixup.data.readers.read_all_columns`), for exports that keep the user's whole
    rows (``suspects.csv``, ``flagged.csv``); None without a training file, or for a file the
    task reads with its own reader (TwitterPPDB's or SNLI multiple choice's, without
    ``--column``)."""
    if not config.train_file:
        return None
    name = config.task.lower()
    if _has_own_reader(name, config):
        return None
    columns = user_mapping(config, name)
    return read_all_columns(
        config.train_file, label_column=columns.get("label"), id_column=columns.get("sample_id")
    )


def _with_file_label_names(config: DataConfig) -> DataConfig:
    """``config`` with the class names of its training file's label column when they are names
    and no ``--label-names`` were given (sorted, as ``tdmixup.fit`` infers them); the dev and
    test files are then read with the same names, so their labels must be among them."""
    column = user_mapping(config, "custom")["label"]
    names = file_label_names(
        str(config.train_file), column, mapping_hint=_default_label_hint(config, "custom")
    )
    if names is None:
        return config
    logger.info(
        "class names from %s's %r column, in sorted order: %s (--label-names sets them and "
        "their order)", config.train_file, column, ",".join(names),
    )  # fmt: skip
    return replace(config, label_names=names)


def _custom_spec(cfg: DataConfig, train: Dataset) -> TaskSpec:
    if "endings" in train.column_names:
        return TaskSpec(
            "custom", "multiple_choice", tuple(str(i) for i in range(len(train[0]["endings"])))
        )
    names = cfg.label_names or tuple(str(i) for i in range(int(max(train["label"])) + 1))
    return TaskSpec("custom", "pair" if "text_b" in train.column_names else "single", tuple(names))


def _kind_of_files(spec: TaskSpec, cfg: DataConfig) -> TaskSpec:
    """A built-in classification task read from your files with ``--column`` mappings that give
    no ``text_b`` is a single-sentence task with the built-in task's labels (e.g. SNLI
    hypotheses alone); a mapping of the other family is refused."""
    if not cfg.columns or spec.name == "custom":
        return spec
    kind = check_mapping("--column", dict(cfg.columns))
    if is_classification(kind) != is_classification(spec.kind):
        raise ValueError(
            f"task {spec.name!r} is {spec.kind.replace('_', ' ')}, but the --column mapping "
            f"describes a {kind.replace('_', ' ')} task: use --task custom"
        )
    if kind != spec.kind and not cfg.train_file:
        raise ValueError(
            f"the --column mapping makes {spec.name!r} a {kind} task, but its built-in training "
            f"data is {spec.kind}: give your training file too (--train-file PATH)"
        )
    return replace(spec, kind=kind)


def load_task(config: DataConfig, *, seed: int, require_tests: bool = True) -> TaskData:
    """Load, validate and cut the data of one run.

    Args:
        config: which task, files and sizes.
        seed: seeds the train/dev/test split of tasks that split one file (hellaswag,
            twitterppdb); pass a fixed value to keep the same split across training seeds.
        require_tests: refuse a config without a test set (``tdmixup dynamics``, ``aum`` and
            ``datamap`` evaluate no test set and pass False).

    Returns:
        :class:`TaskData`. ``train`` = the first ``train_size`` rows left after holding out
        ``dev_size`` rows for dev from the *end* of the source (so train ids stay the same as
        ``train_size`` grows), unless ``dev_file`` is given. Each test set is cut to its first
        ``test_size`` rows.

    Raises:
        DataError: bad or missing data; ValueError: inconsistent config.
    """
    _check(config)
    name = config.task.lower()
    if name != "custom" and name not in TASKS:
        raise ValueError(
            f"unknown task {config.task!r}; expected one of {', '.join([*TASKS, 'custom'])}"
        )
    if name == "custom" and (not config.train_file or not config.columns):
        raise ValueError(
            "task 'custom' needs --train-file and --column FIELD=COLUMN for its text fields, "
            "e.g. --train-file train.jsonl --column text_a=premise --column text_b=hypothesis "
            "(add --column label=COLUMN when the labels are not in a column named label)"
        )
    spec = TASKS.get(name) or TaskSpec(
        "custom", kind_of_columns(dict(config.columns)), tuple(config.label_names)
    )
    if name == "custom" and not config.label_names and is_classification(spec.kind):
        config = _with_file_label_names(config)
    if config.label_names and is_classification(spec.kind):
        spec = replace(spec, label_names=tuple(config.label_names))
    spec = _kind_of_files(spec, config)
    if config.train_file:
        src = _Sources(_file_reader(spec, config, spec.label_names)(config.train_file), tests={})
        if name == "custom":
            spec = _custom_spec(config, src.train)
    else:
        src = _BUILDERS[name](spec, seed, config)
    read = _file_reader(spec, config, spec.label_names, with_ids=False)
    train, dev = src.train, src.dev
    if config.dev_file:
        dev = read(config.dev_file)
    elif dev is None:
        if config.dev_size >= len(train):
            raise ValueError(
                f"--dev-size {config.dev_size} leaves no training rows out of {len(train)}: "
                "lower --dev-size, or give a separate dev file with --dev-file PATH"
            )
        dev = train.select(range(len(train) - config.dev_size, len(train)))
        train = train.select(range(len(train) - config.dev_size))
        if config.dev_size > len(train):
            logger.warning(
                "--dev-size %d holds out %d of the training source's %d rows for dev, leaving %d "
                "to train on: lower --dev-size (e.g. %d), or give --dev-file",
                config.dev_size, config.dev_size, len(train) + config.dev_size, len(train),
                max(1, (len(train) + config.dev_size) // 5),
            )  # fmt: skip
    if config.train_size is not None and config.train_size < len(train):
        train = train.select(range(config.train_size))
    tests = dict(src.tests or {})
    for item in config.test_files:
        test_name, path = named_test_file(item)
        if test_name in tests:
            raise ValueError(f"test set name {test_name!r} is used twice")
        tests[test_name] = read(path)
    if not tests and require_tests:
        raise ValueError(
            "no test set: with --train-file, give one or more with --test-file PATH (or NAME=PATH)"
        )
    if config.test_size is not None:
        tests = {k: v.select(range(min(config.test_size, len(v)))) for k, v in tests.items()}
    return TaskData(spec=spec, train=train, dev=dev, tests=tests)
