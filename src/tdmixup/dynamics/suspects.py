"""Flags you can act on: ranked suspects in the user's own columns, per-class counts, warnings.

A flag set (the data map's ranking of every training row, AUM's flagged samples) becomes a CSV
a person can relabel: the rows in the columns of the user's own file (so a corrected file is a
training file again, read with the same ``--column`` mapping), plus the model's predicted label
and its probability, the training-dynamics statistics, AUM and a rank. cleanlab's
``Datalab.get_issues()`` (given label, predicted label, a label score, an issue flag per row) is
the model for the columns.

:func:`flag_warnings` says, in one line each, when a flag set is implausibly large
(:data:`PLAUSIBLE_SHARE` of the data) or when the model behind it is near chance
(:func:`tdmixup.evaluation.sets.learning_check`), and what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.core.config import RankBy
from tdmixup.core.runio import atomic_output

DEFAULT_FLAG_FRACTION = 0.10
"""The share of the rows that ``suspects.csv`` and :func:`tdmixup.find_label_issues` flag
(``is_label_issue``) by default: the lowest-ranked 10 %. On 1,500 SNLI pairs with 150 labels
flipped (``benchmarks/results/label_detection.md``, seed 1), the lowest 10 % of stage-1
confidence found 0.34 / 0.34 precision / recall, AUM's 0.32 / 0.32, cleanlab's lowest-quality
10 % on 5-fold probabilities 0.35 / 0.35 at 2.7x the training, while AUM's own threshold
flagged 654 rows at precision 0.18 (k = 80) and 379 at 0.23 (k = 50)."""
DEFAULT_METHOD: RankBy = "class_confidence"
"""The default ranking: the mean probability of the given label over the epochs (Dataset
Cartography's confidence) as a percentile *within each given class*, lowest first. Chosen on
``benchmarks/results/label_detection.md`` (1,500 SNLI pairs, 10 % flips, the lowest 10 %
flagged): under uniform flips precision 0.40 ± 0.05 (3 seeds; global confidence 0.37, stage-1
AUM 0.36, cleanlab's lowest-quality 10 % on 5-fold probabilities 0.35 at 4x the training); under
class-conditional flips (neutral → entailment, 3 seeds) 0.30 ± 0.03, where the global rankings
fall below the base rate (confidence 0.07, AUM 0.06): they flag the class the model finds
hard, not the flipped rows. At 5,000 pairs it is again the best or tied (0.535 ± 0.008 uniform,
0.331 ± 0.008 class-conditional; docs/guides/data-quality.md has cleanlab's 5-fold figures)."""

PLAUSIBLE_SHARE = 0.25
"""A flag set above this share of the data it was drawn from gets a warning: real datasets hold
a few to ~20 % wrong labels (SNLI's validation: ~2 %; web-crawled sets up to ~20 %)."""

ADDED_COLUMNS = (
    "predicted_label",
    "predicted_probability",
    "confidence",
    "variability",
    "correctness",
    "aum",
    "threshold",
    "label_score",
    "is_label_issue",
    "rank",
)
"""Columns added after the user's own, in this order (those known)."""

RANKINGS: dict[str, tuple[str, bool]] = {
    "class_confidence": ("confidence", True),
    "confidence": ("confidence", True),
    "aum": ("aum", True),
}
"""``rank_by`` → (statistic, ascending): the most suspicious sample first. ``class_confidence``
ranks ``confidence`` within each given class (:func:`ranking_statistic`)."""


def ranking_statistic(stats: pd.DataFrame, rank_by: RankBy) -> pd.Series:
    """The per-sample value ``rank_by`` sorts on (lower = more suspicious), indexed like
    ``stats``: the ``confidence`` or ``aum`` column, or for ``class_confidence`` each
    confidence's percentile among the samples of its given class (``gold``), in (0, 1].

    >>> stats = pd.DataFrame({"gold": [0, 0, 1, 1], "confidence": [0.9, 0.5, 0.2, 0.1]},
    ...                      index=pd.Index([1, 2, 3, 4], name="sample_id"))
    >>> ranking_statistic(stats, "class_confidence").tolist()
    [1.0, 0.5, 1.0, 0.5]
    """
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {sorted(RANKINGS)}; got {rank_by!r}")
    column, _ = RANKINGS[rank_by]
    if column not in stats:
        raise ValueError(f"ranking by {rank_by} needs a {column!r} column in the statistics")
    if rank_by != "class_confidence":
        return stats[column]
    if "gold" not in stats:
        raise ValueError("ranking by class_confidence needs a 'gold' column in the statistics")
    return stats.groupby("gold")[column].rank(pct=True, method="average")


def rank_suspects(
    sample_ids: np.ndarray, stats: pd.DataFrame, *, rank_by: RankBy = "confidence"
) -> np.ndarray:
    """``sample_ids`` ordered most suspicious first: ``[F]`` → ``[F]`` int64.

    Args:
        sample_ids: the flagged ids.
        stats: per-sample statistics indexed by ``sample_id`` with the ``rank_by`` column
            (``confidence``: the mean probability of the given label; ``aum``: area under the
            margin); lower is more suspicious. Ties (and missing values, last) by id.
        rank_by: ``"confidence"`` or ``"aum"``.

    >>> stats = pd.DataFrame({"confidence": [0.9, 0.1, 0.5], "aum": [-1.0, 2.0, 0.0]},
    ...                      index=pd.Index([7, 8, 9], name="sample_id"))
    >>> rank_suspects(np.array([7, 8, 9]), stats).tolist()
    [8, 9, 7]
    >>> rank_suspects(np.array([7, 8, 9]), stats, rank_by="aum").tolist()
    [7, 9, 8]
    """
    ids = np.asarray(sample_ids, dtype=np.int64)
    key = ranking_statistic(stats, rank_by).reindex(ids).to_numpy(dtype=np.float64)
    _, ascending = RANKINGS[rank_by]  # rank_by checked by ranking_statistic
    key = np.where(np.isnan(key), np.inf, key if ascending else -key)
    return ids[np.lexsort((ids, key))]


def flag_count(n: int, fraction: float) -> int:
    """How many of ``n`` ranked rows a ``fraction`` flags: ``floor(fraction · n)``.

    >>> flag_count(1500, 0.1), flag_count(29, 0.1)
    (150, 2)
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"the flagged fraction must be in [0, 1], got {fraction}")
    return int(np.floor(n * fraction + 1e-9))


def label_scores(stats: pd.DataFrame, method: RankBy = DEFAULT_METHOD) -> pd.Series:
    """Per ``sample_id``, how likely its given label is correct under ``method`` (higher = more
    likely): the confidence's percentile within its given class (``class_confidence``), the
    ``confidence`` (a probability) or the ``aum`` (a logit margin)."""
    return ranking_statistic(stats, method).rename("label_score")


def rank_label_issues(
    stats: pd.DataFrame,
    *,
    method: RankBy = DEFAULT_METHOD,
    fraction: float = DEFAULT_FLAG_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Every sample of ``stats`` ranked most suspicious first, and the flagged head.

    Args:
        stats: per-sample statistics indexed by ``sample_id``
            (:func:`tdmixup.dynamics.table.compute_statistics`).
        method: ``"class_confidence"`` (default, :data:`DEFAULT_METHOD`), ``"confidence"`` or
            ``"aum"``.
        fraction: share flagged (:func:`flag_count`).

    Returns:
        ``(ranked [N], flagged [floor(fraction · N)])`` int64 sample ids.

    >>> stats = pd.DataFrame({"confidence": [0.9, 0.1, 0.5, 0.7]},
    ...                      index=pd.Index([1, 2, 3, 4], name="sample_id"))
    >>> ranked, flagged = rank_label_issues(stats, method="confidence", fraction=0.5)
    >>> ranked.tolist()
    [2, 3, 4, 1]
    >>> flagged.tolist()
    [2, 3]
    """
    ranked = rank_suspects(stats.index.to_numpy(), stats, rank_by=method)
    return ranked, ranked[: flag_count(len(ranked), fraction)]


def user_columns(
    rows: Mapping[str, Any] | pd.DataFrame,
    mapping: Mapping[str, str],
    *,
    label_names: Sequence[str] = (),
) -> pd.DataFrame:
    """Schema rows back in the columns of the user's file, one row per sample, in ``rows``' order.

    Args:
        rows: schema columns (``sample_id``, ``label`` and the text fields), e.g. a
            ``datasets.Dataset.to_dict()``.
        mapping: field → the user's column (``--column``); comma-separated ``endings`` become one
            column each. Fields not mapped keep their schema names; ``sample_id`` is written
            under its mapped column, else as ``sample_id``.
        label_names: class names; the label column holds names when given, as the file did.

    Returns:
        DataFrame whose columns the same mapping reads again
        (:func:`tdmixup.data.readers.read_table`).
    """
    cols = dict(rows) if not isinstance(rows, pd.DataFrame) else rows
    out: dict[str, Any] = {mapping.get("sample_id", "sample_id"): np.asarray(cols["sample_id"])}
    for field in ("text_a", "text_b", "context", "endings", "label"):
        if field not in cols:
            continue
        values = list(cols[field])
        target = mapping.get(field, field)
        if field == "endings":
            names = target.split(",")
            if len(names) > 1:
                for k, name in enumerate(names):
                    out[name] = [e[k] if k < len(e) else "" for e in values]
            else:
                out[target] = [json.dumps(list(e), ensure_ascii=False) for e in values]
        elif field == "label" and label_names:
            out[target] = [
                label_names[int(v)] if 0 <= int(v) < len(label_names) else int(v) for v in values
            ]
        else:
            out[target] = values
    return pd.DataFrame(out)


def suspect_table(
    ranked_ids: np.ndarray,
    rows: Mapping[str, Any] | pd.DataFrame,
    *,
    mapping: Mapping[str, str],
    label_names: Sequence[str] = (),
    stats: pd.DataFrame | None = None,
    predicted: pd.Series | None = None,
    probability: pd.Series | None = None,
    extra: Mapping[str, pd.Series] | None = None,
    own_rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The relabelling table: one row per id of ``ranked_ids`` (most suspicious first).

    Columns: the user's own (:func:`user_columns`; the label column holds the given label, the
    one to correct), then :data:`ADDED_COLUMNS` that are known: ``predicted_label`` (by name)
    and ``predicted_probability`` (from ``predicted`` / ``probability``, default the statistics'
    ``prediction`` / ``prediction_probability``), ``confidence``, ``variability``,
    ``correctness`` and ``aum`` from ``stats``, columns of ``extra`` (``aum``, ``threshold`` of an
    AUM run replace the statistics'), and ``rank`` (1 = most suspicious). An added column whose
    name the user's file already uses is prefixed ``tdmixup_``.

    Args:
        ranked_ids: ``[F]`` sample ids, in rank order.
        rows: schema rows holding at least those ids.
        mapping, label_names: as :func:`user_columns`.
        stats: per-sample statistics indexed by ``sample_id``
            (:func:`tdmixup.dynamics.table.compute_statistics`).
        predicted, probability: per-id predicted class index and its probability.
        extra: further per-id columns.
        own_rows: every column of the user's file by ``sample_id``
            (:func:`tdmixup.data.readers.read_all_columns`): when given, the table starts with
            the whole of each row (columns the mapping does not read too) instead of the mapped
            ones, after checking that its mapped text is the text of ``rows``.

    Raises:
        DataError: ``own_rows`` lacks a ranked id, or its text differs from ``rows`` (the file
            changed since it was read), naming the file, the sample and the column.
    """
    ids = np.asarray(ranked_ids, dtype=np.int64)
    own = user_columns(rows, mapping, label_names=label_names)
    id_column = mapping.get("sample_id", "sample_id")
    own = own.set_index(own[id_column].astype(np.int64)).reindex(ids).reset_index(drop=True)
    if own_rows is not None:
        own = _whole_rows(ids, own_rows, own, mapping)
    added: dict[str, Any] = {}
    if predicted is None and stats is not None and "prediction" in stats:
        predicted = stats["prediction"]
    if probability is None and stats is not None and "prediction_probability" in stats:
        probability = stats["prediction_probability"]
    if predicted is not None:
        pred = pd.Series(predicted).reindex(ids)
        added["predicted_label"] = [
            label_names[int(k)] if pd.notna(k) and 0 <= int(k) < len(label_names) else k
            for k in pred.tolist()
        ]
    if probability is not None:
        added["predicted_probability"] = pd.Series(probability).reindex(ids).to_numpy()
    for name in ("confidence", "variability", "correctness", "aum"):
        if stats is not None and name in stats:
            added[name] = stats[name].reindex(ids).to_numpy()
    for name, values in (extra or {}).items():
        added[name] = pd.Series(values).reindex(ids).to_numpy()
    added["rank"] = np.arange(1, len(ids) + 1)
    for name in ADDED_COLUMNS:
        if name in added:
            own["tdmixup_" + name if name in own.columns else name] = added[name]
    return own


_FILE_CHANGED = "the file changed since it was read; run the command again on the file as it is"
"""The fix of every refusal of whole rows that no longer match the trained text."""


def _whole_rows(
    ids: np.ndarray, own_rows: pd.DataFrame, mapped: pd.DataFrame, mapping: Mapping[str, str]
) -> pd.DataFrame:
    """``own_rows`` at ``ids`` (in that order) as export columns, checked against ``mapped``
    (:func:`user_columns` at the same ids): list and object cells as JSON, a ``sample_id``
    column first unless the file has its own id column."""
    from tdmixup.data.schema import data_error

    source = own_rows.attrs.get("source", "the training file")
    absent = ~np.isin(ids, own_rows.index.to_numpy())
    if absent.any():
        raise data_error(
            source,
            None,
            None,
            f"sample_id {int(ids[absent][0])} is not in the file any more "
            f"({int(absent.sum())} of {len(ids)} ranked rows are missing)",
            _FILE_CHANGED,
        )
    whole = own_rows.loc[ids]
    for field in ("text_a", "text_b", "context"):
        column = mapping.get(field)
        if column is None or column not in mapped.columns:
            continue
        if column not in whole.columns:
            raise data_error(
                source,
                None,
                column,
                f"column '{column}' not found in the whole rows",
                _FILE_CHANGED,
            )
        differs = whole[column].astype(str).to_numpy() != mapped[column].astype(str).to_numpy()
        if differs.any():
            raise data_error(
                source,
                None,
                column,
                f"sample_id {int(ids[differs][0])} has other text than when it was read "
                f"({int(differs.sum())} rows differ)",
                _FILE_CHANGED,
            )
    whole = whole.copy()
    for column in whole.select_dtypes(include="object").columns:
        whole[column] = whole[column].map(_cell).astype(object)  # floats as written, not %.6g
    if mapping.get("sample_id") in whole.columns:
        return whole.reset_index(drop=True)
    whole.index.name = "tdmixup_sample_id" if "sample_id" in whole.columns else "sample_id"
    return whole.reset_index()


def _cell(value: Any) -> Any:
    """A CSV cell: lists, tuples, arrays and objects as JSON, anything else as it is."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return value


def warn_unjudged(own_rows: pd.DataFrame, judged_ids: np.ndarray) -> str | None:
    """Warn, in one logged line (also returned; None when every row is judged), when rows of
    the user's file have no statistics (held out for dev, beyond the training size): how many,
    the first, and how to judge every row."""
    import logging

    missing = ~np.isin(own_rows.index.to_numpy(), np.asarray(judged_ids))
    if not missing.any():
        return None
    source = own_rows.attrs.get("source", "the training file")
    first = int(own_rows.index.to_numpy()[missing][0])
    line = (
        f"{int(missing.sum())} of {len(own_rows)} rows of {source} were not trained on (held out "
        f"for dev, or beyond --train-size; the first: sample_id {first}), so they are not judged "
        "and not in suspects.csv: to judge every row give a separate --dev-file (or the same "
        "file) and --train-size all"
    )
    logging.getLogger("tdmixup.dynamics.suspects").warning("%s", line)
    return line


def write_suspects(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a :func:`suspect_table` as UTF-8 CSV, atomically (6 significant digits)."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g", encoding="utf-8")


def suspects_per_class(
    flagged_ids: np.ndarray,
    pool_ids: np.ndarray,
    gold: pd.Series,
    predicted: pd.Series | None,
    label_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per given label: samples in the pool, suspects among them, their share, and what the model
    predicted for the suspects (those with a prediction).

    Args:
        flagged_ids: ``[F]`` suspect ids; pool_ids: ``[N]`` ids they were drawn from.
        gold: id → given class index; predicted: id → predicted class index (or None).
        label_names: class names (class k is named ``label_names[k]``, else ``str(k)``).

    Returns:
        ``{name: {"n", "suspects", "share", "predicted": {name: count}}}`` in class order.

    >>> gold = pd.Series([0, 0, 1, 1], index=[1, 2, 3, 4])
    >>> pred = pd.Series([1, 0, 0, 1], index=[1, 2, 3, 4])
    >>> suspects_per_class(np.array([1, 3]), np.array([1, 2, 3, 4]), gold, pred, ["a", "b"])
    {'a': {'n': 2, 'suspects': 1, 'share': 0.5, 'predicted': {'b': 1}}, \
'b': {'n': 2, 'suspects': 1, 'share': 0.5, 'predicted': {'a': 1}}}
    """
    pool_gold = gold.reindex(np.asarray(pool_ids, dtype=np.int64)).to_numpy(dtype=np.int64)
    flag_gold = gold.reindex(np.asarray(flagged_ids, dtype=np.int64)).to_numpy(dtype=np.int64)
    k = max(len(label_names), int(pool_gold.max(initial=-1)) + 1)
    names = [str(label_names[c]) if c < len(label_names) else str(c) for c in range(k)]
    n = np.bincount(pool_gold, minlength=k)
    f = np.bincount(flag_gold, minlength=k)
    preds = (
        predicted.reindex(np.asarray(flagged_ids, dtype=np.int64)).to_numpy()
        if predicted is not None
        else None
    )
    out: dict[str, dict[str, Any]] = {}
    for c in range(k):
        entry: dict[str, Any] = {
            "n": int(n[c]),
            "suspects": int(f[c]),
            "share": float(f[c] / n[c]) if n[c] else 0.0,
        }
        if preds is not None:  # samples without a prediction (never judged by AUM) are left out
            mine = np.asarray(preds[flag_gold == c], dtype=np.float64)
            counts = np.bincount(mine[np.isfinite(mine)].astype(np.int64), minlength=k)
            entry["predicted"] = {names[j]: int(counts[j]) for j in np.flatnonzero(counts)}
        out[names[c]] = entry
    return out


def flag_warnings(
    *,
    what: str,
    n_flagged: int,
    n_pool: int,
    fix: str,
    learning: Mapping[str, Any] | None = None,
    learn_fix: str = "train longer (--epochs), on more data (--train-size) or with a higher "
    "--learning-rate",
) -> list[str]:
    """One line per problem with a flag set: larger than :data:`PLAUSIBLE_SHARE` of its pool, or
    made by a model near chance (``learning``: a :func:`tdmixup.evaluation.sets.learning_check`;
    ``learn_fix`` says what to do, in the caller's words: options or keywords).

    >>> flag_warnings(what="AUM on easy", n_flagged=40, n_pool=100, fix="lower --aum-percentile")
    ['AUM on easy flags 40 of 100 samples (40 %), more than the 25 % of wrong labels a dataset \
plausibly holds: most flags are clean samples; lower --aum-percentile']
    """
    lines = []
    if n_pool and n_flagged / n_pool > PLAUSIBLE_SHARE:
        lines.append(
            f"{what} flags {n_flagged} of {n_pool} samples ({n_flagged / n_pool:.0%}), more "
            f"than the {PLAUSIBLE_SHARE:.0%} of wrong labels a dataset plausibly holds: most "
            f"flags are clean samples; {fix}"
        )
    if learning and learning.get("near_chance"):
        lines.append(
            f"{what}: the model behind these flags is near chance "
            f"({learning['set']} accuracy {learning['accuracy']:.1%}, chance "
            f"{learning['chance']:.1%}), so they mean little; {learn_fix}"
        )
    return [line.replace(" %", "%").replace("%", " %") for line in lines]


def per_class_markdown(title: str, per_class: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A markdown table of :func:`suspects_per_class` (for ``report.md``)."""
    lines = [
        f"**{title}**",
        "",
        "| given label | samples | suspects | share | predicted as |",
        "|---|---|---|---|---|",
    ]
    for name, entry in per_class.items():
        predicted = ", ".join(f"{k} {v}" for k, v in (entry.get("predicted") or {}).items())
        lines.append(
            f"| {name} | {entry['n']} | {entry['suspects']} | {100 * entry['share']:.1f} % "
            f"| {predicted or '–'} |"
        )
    return lines


def flag_summary(
    *,
    what: str,
    file: str,
    flagged_ids: np.ndarray,
    pool_ids: np.ndarray,
    gold: pd.Series,
    predicted: pd.Series | None,
    label_names: Sequence[str],
    fix: str,
    rank_by: str,
    learning: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``summary.json`` records of a flag set: its file, ranking, size, per-class table
    (:func:`suspects_per_class`) and warnings (:func:`flag_warnings`)."""
    return {
        "file": file,
        "rank_by": rank_by,
        "n_flagged": int(len(flagged_ids)),
        "n_pool": int(len(pool_ids)),
        "per_class": suspects_per_class(flagged_ids, pool_ids, gold, predicted, label_names),
        "warnings": flag_warnings(
            what=what, n_flagged=len(flagged_ids), n_pool=len(pool_ids), fix=fix, learning=learning
        ),
    }


def training_learning_check(stats: pd.DataFrame, learning_check: Any) -> dict[str, Any]:
    """``learning_check`` (:func:`tdmixup.evaluation.sets.learning_check`, passed in to keep this
    module below the evaluation layer) of the last recorded epoch's predictions on the training
    set, from statistics with ``gold`` and ``prediction``."""
    gold = stats["gold"].to_numpy(np.int64)
    pred = stats["prediction"].to_numpy(np.int64)
    classes = max(int(gold.max(initial=0)), int(pred.max(initial=0))) + 1
    result: dict[str, Any] = learning_check(
        gold, np.eye(max(classes, 2))[pred], set_name="training set (last recorded epoch)"
    )
    return result
