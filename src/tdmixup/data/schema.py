"""The one in-memory example format every stage reads.

Every reader returns a :class:`datasets.Dataset` with these columns, so tokenisation, training,
dynamics and evaluation never see a source format:

* pair tasks (``TaskSpec.kind == "pair"``):
  ``sample_id`` int64, ``text_a`` str, ``text_b`` str, ``label`` int64 in ``[0, num_labels)``
* multiple choice (``kind == "multiple_choice"``):
  ``sample_id`` int64, ``context`` str, ``endings`` list[str] (``num_choices`` long),
  ``label`` int64 in ``[0, num_choices)``

``sample_id`` is stable: by default the 0-based row (line) index in the source file, so it
survives shuffling, subsetting, tokenisation and sharding over processes. Rows skipped for
having no gold label keep the ids of the others unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["pair", "multiple_choice"]

PAIR_COLUMNS = ("sample_id", "text_a", "text_b", "label")
MC_COLUMNS = ("sample_id", "context", "endings", "label")


DEFAULT_AUM_PERCENTILE = 80.0
"""AUM's k for tasks that name none of their own (the paper's value for SNLI and QQP)."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like to the model.

    Attributes:
        name: registry name, e.g. ``"snli"``.
        kind: ``"pair"`` (sentence-pair classification) or ``"multiple_choice"``.
        label_names: class names in index order (pair tasks); for multiple choice the ending
            indices as strings ("0".."3").
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
        return PAIR_COLUMNS if self.kind == "pair" else MC_COLUMNS


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
