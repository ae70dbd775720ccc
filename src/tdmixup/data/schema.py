"""The one in-memory example format every stage reads.

Every reader returns a :class:`datasets.Dataset` with these columns, so tokenisation, training,
dynamics and evaluation never see a source format:

* single-sentence tasks (``TaskSpec.kind == "single"``: sentiment, topic, intent, ...):
  ``sample_id`` int64, ``text_a`` str, ``label`` int64 in ``[0, num_labels)``
* pair tasks (``kind == "pair"``):
  ``sample_id`` int64, ``text_a`` str, ``text_b`` str, ``label`` int64 in ``[0, num_labels)``
* multiple choice (``kind == "multiple_choice"``):
  ``sample_id`` int64, ``context`` str, ``endings`` list[str] (``num_choices`` long),
  ``label`` int64 in ``[0, num_choices)``

``sample_id`` is stable: by default the 0-based row (line) index in the source file, so it
survives shuffling, subsetting, tokenisation and sharding over processes. Rows skipped for
having no gold label keep the ids of the others unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["single", "pair", "multiple_choice"]
"""A plain string: ``"single"`` and ``"pair"`` are classification over C classes with one linear
head on [CLS] (a single text is tokenised without a second segment); ``"multiple_choice"`` scores
each of K endings."""
TASK_KINDS: tuple[TaskKind, ...] = ("single", "pair", "multiple_choice")

SINGLE_COLUMNS = ("sample_id", "text_a", "label")
PAIR_COLUMNS = ("sample_id", "text_a", "text_b", "label")
MC_COLUMNS = ("sample_id", "context", "endings", "label")


def is_classification(kind: str) -> bool:
    """Whether ``kind`` classifies into named classes (``"single"``, ``"pair"``), as opposed to
    choosing among endings (``"multiple_choice"``).

    >>> tuple(is_classification(k) for k in TASK_KINDS)
    (True, True, False)
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"task kind must be one of {', '.join(TASK_KINDS)}; got {kind!r}")
    return kind != "multiple_choice"


def kind_of_columns(fields: Iterable[str]) -> TaskKind:
    """The task kind a column mapping describes: ``context`` → multiple choice, ``text_b`` →
    pair, otherwise (``text_a`` alone) single-sentence.

    >>> kind_of_columns(["text_a", "label"]), kind_of_columns(["text_a", "text_b", "label"])
    ('single', 'pair')
    """
    names = set(fields)
    if "context" in names or "endings" in names:
        return "multiple_choice"
    return "pair" if "text_b" in names else "single"


DEFAULT_AUM_PERCENTILE = 80.0
"""AUM's k for tasks that name none of their own (the paper's value for SNLI and QQP)."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like to the model.

    Attributes:
        name: registry name, e.g. ``"snli"``.
        kind: ``"single"`` (one text), ``"pair"`` (sentence-pair classification) or
            ``"multiple_choice"``.
        label_names: class names in index order (single and pair tasks); for multiple choice the
            ending indices as strings ("0".."3").
        aum_percentile: the default k of AUM filtering for this task (the paper: 80 for SNLI
            and QQP, 50 for SWAG); ``--aum-percentile`` overrides it.
    """

    name: str
    kind: TaskKind
    label_names: tuple[str, ...]
    aum_percentile: float = DEFAULT_AUM_PERCENTILE

    @property
    def num_labels(self) -> int:
        """Number of output classes (number of endings for multiple choice)."""
        return len(self.label_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The schema's columns for this kind (:data:`SINGLE_COLUMNS`, :data:`PAIR_COLUMNS` or
        :data:`MC_COLUMNS`)."""
        return {"single": SINGLE_COLUMNS, "pair": PAIR_COLUMNS}.get(self.kind, MC_COLUMNS)


class DataError(ValueError):
    """Bad input data. The message names the file, the row (1-based line) and the field."""


def data_error(
    path: object, row: int | None, field: str | None, problem: str, fix: str = ""
) -> DataError:
    """Build a :class:`DataError` with a uniform message.

    >>> problem = "'entailmnet' is not one of entailment, neutral, contradiction"
    >>> err = data_error("train.jsonl", 1043, "gold_label", problem)
    >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
    train.jsonl, row 1043, field 'gold_label':
    'entailmnet' is not one of entailment, neutral, contradiction
    """
    where = str(path)
    if row is not None:
        where += f", row {row}"
    if field is not None:
        where += f", field '{field}'"
    msg = f"{where}: {problem}"
    if fix:
        msg += f" ({fix})"
    return DataError(msg)
