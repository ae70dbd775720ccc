"""Which of my labels are wrong? :func:`find_label_issues`, one call on a ``datasets.Dataset``, a
pandas DataFrame or a list of dicts, answered the way cleanlab's ``Datalab.get_issues()`` is: a
DataFrame with one row per input row, ranked by suspicion.

It trains one model with training dynamics on every row (stage 1 of the method, plain
fine-tuning; :func:`tdmixup.fit` with ``strategy="none"``), or reuses a dynamics table recorded
before (checked against the data by its fingerprint), then ranks the rows with
:func:`tdmixup.dynamics.suspects.rank_label_issues` and flags the lowest share.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tdmixup.core.config import RankBy
from tdmixup.core.layout import DYNAMICS
from tdmixup.data.inmemory import Records, dataset_from_records

if TYPE_CHECKING:
    from datasets import Dataset

    from tdmixup.data.schema import TaskSpec

__all__ = ["ISSUE_COLUMNS", "find_label_issues"]

log = logging.getLogger("tdmixup.run.label_issues")

ISSUE_COLUMNS = (
    "given_label",
    "predicted_label",
    "predicted_probability",
    "label_score",
    "is_label_issue",
    "rank",
    "confidence",
    "variability",
    "correctness",
    "aum",
)
"""The columns :func:`find_label_issues` adds after the user's own, in this order."""


def _frame(data: Records) -> pd.DataFrame:
    """The input as a DataFrame with all its columns, rows in input order, indexed by position."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True).copy()
    if hasattr(data, "to_pandas") and hasattr(data, "column_names"):  # datasets.Dataset
        return pd.DataFrame(data.to_pandas())
    return pd.DataFrame(data)  # a list of dicts or a dict of columns


def find_label_issues(
    data: Records,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str = "label",
    context: str | None = None,
    endings: str | Sequence[str] | None = None,
    sample_id: str | None = None,
    label_names: Sequence[str] | None = None,
    dynamics: str | Path | None = None,
    output_dir: str | Path | None = None,
    method: RankBy | None = None,
    fraction: float | None = None,
    model: str | None = None,
    profile: str = "cpu-small",
    seed: int | None = None,
    **training_options: Any,
) -> pd.DataFrame:
    """Rank every labelled row of ``data`` by how likely its label is wrong.

    The default ranking (``method="class_confidence"``: the mean probability of the given
    label over the training epochs, as a percentile within the rows of the same given class,
    lowest first) and flagged share (``fraction=0.1``) follow
    ``benchmarks/results/label_detection.md`` (1,500 SNLI pairs, 10 % of the labels flipped):
    under uniform flips the lowest 10 % reached precision = recall 0.40 ± 0.05 (3 seeds; over
    all rows, ``method="confidence"``: 0.37; ``method="aum"``: 0.36; cleanlab's lowest-quality
    10 % on 5-fold cross-validated probabilities 0.35 for 4x the training); under
    class-conditional flips (neutral → entailment) 0.30 ± 0.03, where the global rankings fell
    below the base rate (0.07, 0.06). Expect roughly a third of the flagged rows to be wrong
    labels at that size and accuracy; read the table from the top.

    Args:
        data: a ``datasets.Dataset``, a pandas DataFrame, a list of dicts or a dict of columns;
            pairs (``text``, ``text_pair``), single sentences (``text``) or multiple choice
            (``context``, ``endings``), as :func:`tdmixup.dataset_from_records`.
        text, text_pair, label, context, endings, sample_id, label_names: the columns.
        dynamics: a dynamics table (``dynamics.parquet``) recorded on exactly these rows, to
            reuse instead of training; a table of other data is refused in one line naming
            the first differing row.
        output_dir: where the training run is kept (a second call reuses it); default: a
            temporary folder, deleted afterwards.
        method: ``"class_confidence"`` (default), ``"confidence"`` or ``"aum"``.
        fraction: share of the rows flagged ``is_label_issue`` (default 0.1); above 0.25 a
            warning is logged, as for any implausibly large flag set.
        model, profile, seed, **training_options: as :func:`tdmixup.fit` (``epochs=3``,
            ``learning_rate=5e-5``, …).

    Returns:
        DataFrame, most suspicious first, indexed like the input: a DataFrame's own index (so
        ``df.loc[issues.index]`` selects the same rows when that index is unique), otherwise
        ``sample_id`` (the row position, or the ``sample_id`` column). Columns: the user's own, then
        :data:`ISSUE_COLUMNS` —
        ``given_label`` and ``predicted_label`` (names; the prediction of the last epoch) with
        its probability, ``label_score`` (the ranking's statistic: higher = more likely
        correct), ``is_label_issue``, ``rank`` (1 = most suspicious), ``confidence``,
        ``variability``, ``correctness`` and ``aum``. An added column whose name the data
        already has is prefixed ``tdmixup_``. Rows without a label are left out.
    """
    from tdmixup.dynamics.suspects import (
        DEFAULT_FLAG_FRACTION,
        DEFAULT_METHOD,
        RANKINGS,
        rank_label_issues,
    )

    method = method or DEFAULT_METHOD
    if method not in RANKINGS:
        raise ValueError(f"method must be one of {', '.join(RANKINGS)}; got {method!r}")
    fraction = DEFAULT_FLAG_FRACTION if fraction is None else fraction
    columns: dict[str, Any] = {
        "text": text,
        "text_pair": text_pair,
        "label": label,
        "context": context,
        "endings": endings,
        "sample_id": sample_id,
        "label_names": label_names,
    }
    ds, spec = dataset_from_records(data, **columns)
    if dynamics is not None:
        stats = _recorded_statistics(ds, dynamics, spec.label_names)
    else:
        stats = _trained_statistics(
            data,
            columns,
            output_dir=output_dir,
            model=model,
            profile=profile,
            seed=seed,
            training_options=training_options,
        )
    ranked, flagged = rank_label_issues(stats, method=method, fraction=fraction)
    _log_flag_warnings(stats, ranked, flagged, fraction=fraction)
    return _issue_table(
        data, ds, spec, stats, ranked, flagged, method=method, sample_id=sample_id, label=label
    )


def _recorded_statistics(
    ds: Dataset, dynamics: str | Path, label_names: tuple[str, ...]
) -> pd.DataFrame:
    """The statistics of a dynamics table recorded before, checked to be of the rows ``ds``."""
    from tdmixup.dynamics.table import compute_statistics, read_dynamics

    dyn = read_dynamics(dynamics)
    dyn.check_data(ds, data="data", table=f"dynamics {dynamics}", label_names=label_names)
    ids = np.asarray(ds["sample_id"], dtype=np.int64)
    absent = ~np.isin(ids, np.asarray(dyn.sample_ids, dtype=np.int64))
    if absent.any():  # one row per input row: a row the table never saw cannot be ranked
        from tdmixup.data.schema import DataError

        raise DataError(
            f"dynamics {dynamics} covers {int((~absent).sum())} of the {len(ids)} labelled rows "
            f"of data: the first it lacks is sample_id {int(ids[absent][0])} (row "
            f"{int(np.flatnonzero(absent)[0])}); pass only the rows it was recorded on, or "
            "train on every row (leave out dynamics=); a table from `tdmixup dynamics` lacks the "
            "rows held out for dev unless --dev-file was given"
        )
    return compute_statistics(dyn)


def _trained_statistics(
    data: Records,
    columns: dict[str, Any],
    *,
    output_dir: str | Path | None,
    model: str | None,
    profile: str,
    seed: int | None,
    training_options: dict[str, Any],
) -> pd.DataFrame:
    """Train one model with dynamics on every row (:func:`tdmixup.fit`); its statistics."""
    from tdmixup.dynamics.table import compute_statistics, read_dynamics
    from tdmixup.run.fitting import fit

    with tempfile.TemporaryDirectory(prefix="tdmixup_label_issues_") as tmp:
        out = Path(output_dir) if output_dir is not None else Path(tmp) / "run"
        fit(  # every row is trained on and judged; dev = the same rows (no row held out)
            data,
            data,
            **columns,
            strategy="none",
            output_dir=out,
            model=model,
            profile=profile,
            seed=seed,
            **training_options,
        )
        return compute_statistics(read_dynamics(out / DYNAMICS))


def _log_flag_warnings(
    stats: pd.DataFrame, ranked: np.ndarray, flagged: np.ndarray, *, fraction: float
) -> None:
    """Log the warnings of an implausible flag set or a model that did not learn."""
    from tdmixup.dynamics.suspects import (
        DEFAULT_FLAG_FRACTION,
        flag_warnings,
        training_learning_check,
    )
    from tdmixup.evaluation.sets import learning_check

    for line in flag_warnings(
        what="find_label_issues",
        n_flagged=len(flagged),
        n_pool=len(ranked),
        fix=f"lower fraction (now {fraction:g}; default {DEFAULT_FLAG_FRACTION:g})",
        learning=training_learning_check(stats, learning_check),
        learn_fix="train longer (epochs=...) or with a higher learning_rate=..., or on more rows",
    ):
        log.warning("%s", line)


def _issue_table(
    data: Records,
    ds: Dataset,
    spec: TaskSpec,
    stats: pd.DataFrame,
    ranked: np.ndarray,
    flagged: np.ndarray,
    *,
    method: RankBy,
    sample_id: str | None,
    label: str,
) -> pd.DataFrame:
    """The user's rows in ``ranked`` order with :data:`ISSUE_COLUMNS` added after their own."""
    from tdmixup.dynamics.suspects import label_scores

    own = _frame(data)
    ids = np.asarray(ds["sample_id"], dtype=np.int64)
    if sample_id is not None:  # the id column → the position of the labelled row with that id
        from tdmixup.data._common import unlabeled_mask

        labelled = np.flatnonzero(~unlabeled_mask(own[label]))
        ids_of = own[sample_id].iloc[labelled].astype(np.int64).to_numpy()
        rows = pd.Series(labelled, index=ids_of).loc[ranked].to_numpy()
    else:
        rows = ranked
    own = own.iloc[rows]
    if isinstance(data, pd.DataFrame):  # the user's own index: df.loc[issues.index] lines up
        own.index = data.index[rows]
    else:
        own.index = pd.Index(ranked, name="sample_id")
    names = list(spec.label_names)

    def name(k: Any) -> Any:
        return names[int(k)] if pd.notna(k) and 0 <= int(k) < len(names) else k

    gold = pd.Series(np.asarray(ds["label"]), index=ids).reindex(ranked)
    added = {
        "given_label": [name(k) for k in gold.tolist()],
        "predicted_label": [name(k) for k in stats["prediction"].reindex(ranked).tolist()],
        "predicted_probability": stats["prediction_probability"].reindex(ranked).to_numpy(),
        "label_score": label_scores(stats, method).reindex(ranked).to_numpy(),
        "is_label_issue": np.isin(ranked, flagged),
        "rank": np.arange(1, len(ranked) + 1),
        **{c: stats[c].reindex(ranked).to_numpy() for c in ISSUE_COLUMNS[6:] if c in stats},
    }
    for column, values in added.items():
        own["tdmixup_" + column if column in own.columns else column] = values
    return own
