"""Area Under the Margin (Pleiss et al. 2020) with threshold samples (TDMixUp paper, §2.1).

Pure functions on arrays keyed by ``sample_id``; nothing here trains a model. tdmixup does not
depend on the ``aum`` package at run time (the tests compare against it): that package keeps
one Python record per sample per update and crashes on a batch of one sample.

Call sequence for the pipeline, on one region (e.g. the easy set) with ``c = spec.num_labels``
(for multiple choice ``c`` is the number of endings K)::

    ids, labels = np.asarray(region["sample_id"]), np.asarray(region["label"])
    passes, taken = [], None
    for p in range(2 if cfg.aum.procedure == "two_pass" else 1):
        pos = choose_threshold_samples(labels, c, seed=cfg.train.seed + p, exclude=taken)
        taken = pos if taken is None else np.union1d(taken, pos)
        relabelled = relabel_threshold_samples(region, ids[pos], kind=spec.kind, num_classes=c,
                                               seed=cfg.train.seed + p)
        # train a FRESH model on `relabelled` (single/pair: c + 1 outputs; multiple choice: the
        # same per-ending scorer on the same K endings) for cfg.aum.epochs, recording logits per
        # epoch with the dynamics recorder -> rec_ids [N], logits [E, N, c + 1] / [E, N, K]
        passes.append(AUMPass(sample_ids=rec_ids, logits=logits,
                              labels=labels_as_trained_in_rec_ids_order, threshold_ids=ids[pos],
                              extra_class=is_classification(spec.kind)))
    cfg = tdmixup.run.session.with_task_defaults(cfg)   # k: 80, or 50 for SWAG/HellaSWAG
    result = find_mislabeled_with_aum(passes, percentile=cfg.aum.percentile,
                                      procedure=cfg.aum.procedure, skip_epochs=cfg.aum.skip_epochs)
    write_aum_table(result.table, run_dir / "aum.parquet")
    keep_ids = result.kept_ids  # the region without its flagged samples

Differences from the references (``REFERENCE.md``): the paper's code (one pass) drops every
threshold sample, so ~1/(c+1) of a region disappears whatever its quality; ``two_pass`` (Pleiss
et al.'s runner) trains twice with disjoint threshold sets so every sample is judged. The
paper's code keeps ``aum > sorted(th)[floor(L·k/100) - 1]``; we flag ``aum < percentile`` with
numpy's linear interpolation (less than two order statistics apart; a tie is kept). The paper's
code draws threshold samples in equal numbers per class; we draw them uniformly at random from
the whole region (Pleiss et al.'s ``assign_threshold_samples``), since an equal draw relabels
most of a small class of a skewed region, the model learns "that class → fake class" and the
threshold rises above that class's clean samples (``balance="equal"`` keeps the code's way).
For multiple choice the paper's code appends a copy of the gold ending as a fake 5th ending and
labels the threshold row with it, so a threshold row's margin is never above 0 (a forced tie,
not a learnable mislabel); we relabel a threshold row to a *wrong existing ending* instead (the
paper's text: "re-assign to a different class"), see :func:`relabel_threshold_samples`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from tdmixup.core.arrays import class_labels, int_vector
from tdmixup.core.runio import atomic_output
from tdmixup.data.schema import TaskKind
from tdmixup.dynamics.statistics import area_under_margin
from tdmixup.dynamics.statistics import margins as margins  # importable from here as before

if TYPE_CHECKING:
    import datasets

Procedure = Literal["two_pass", "paper"]
Balance = Literal["uniform", "equal", "proportional", "available"]
ThresholdBalance = Literal["uniform", "equal", "proportional"]
"""Balances a user chooses (``AUMConfig.threshold_balance``); ``"available"`` is the fallback."""

AUM_TABLE_COLUMNS = (
    "sample_id",
    "aum",
    "threshold",
    "flagged",
    "is_threshold",
    "threshold_pass",
    "judged_passes",
)
"""Columns of :attr:`AUMResult.table` and of the file :func:`write_aum_table` writes."""


def _class_quotas(
    labels: np.ndarray, present: np.ndarray, total: int, balance: Balance
) -> np.ndarray:
    if balance == "equal":
        return np.full(present.size, total // present.size, dtype=np.int64)
    if balance not in ("proportional", "available"):
        raise ValueError(
            f"balance: expected 'uniform', 'equal', 'proportional' or 'available', got {balance!r}"
        )
    counts = np.array([(labels == k).sum() for k in present], dtype=np.float64)
    exact = total * counts / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")  # largest remainders first
    quotas[order[: total - int(quotas.sum())]] += 1
    return quotas


def choose_threshold_samples(
    labels: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    exclude: np.ndarray | None = None,
    fraction: float | None = None,
    balance: Balance = "uniform",
) -> np.ndarray:
    """Choose which samples become threshold samples (relabelled to the fake class ``c``).

    ``total = floor(N / (c + 1))`` samples (or ``floor(N · fraction)``). ``balance="uniform"``
    (default; Pleiss et al.'s ``assign_threshold_samples``) draws ``total`` samples uniformly at
    random from all selectable ones, so each class gives about its share. ``"equal"`` (the
    paper's code) spreads them equally over the classes present, ``total // n_present`` each (the
    result may fall a few short of ``total``); on a skewed region that relabels most of a small
    class, which teaches the model "this class → fake class" and flags the class's clean samples.
    ``"proportional"`` takes exactly ``total`` in proportion to class sizes (largest remainders).

    Args:
        labels: ``[N]`` integer labels in ``[0, num_classes)`` (ending index for multiple choice).
        num_classes: ``c``, the number of real classes (endings).
        seed: seeds the draw; the same inputs give the same positions.
        exclude: positions that may not be chosen, e.g. the first pass's choice, so that a
            second pass gets a disjoint set.
        fraction: size of the set as a fraction of N, in (0, 1); default ``1 / (c + 1)``.
        balance: ``"uniform"``, ``"equal"``, ``"proportional"`` (see above) or
            ``"available"``: proportional, but a class contributes at most its selectable
            samples (a tiny class of a skewed region in a second pass), so the set may fall
            short of ``total``.

    Returns:
        ``[T]`` sorted int64 positions into ``labels`` (map to ids with ``sample_ids[pos]``).

    Raises:
        ValueError: a class has fewer selectable samples than its share (say which, and how to
            fix it), or the set would be empty.

    >>> labels = np.repeat([0, 1, 2], 4)  # N = 12, c = 3
    >>> choose_threshold_samples(labels, 3, seed=0).size
    3
    >>> labels[choose_threshold_samples(labels, 3, seed=0, balance="equal")].tolist()
    [0, 1, 2]
    """
    labels = class_labels(labels, num_classes)
    n = labels.size
    if fraction is None:
        total = n // (num_classes + 1)
    elif not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a value in (0, 1), got {fraction}")
    else:
        total = int(np.floor(n * fraction + 1e-9))
    selectable = np.ones(n, dtype=bool)
    if exclude is not None:
        ex = int_vector(exclude, "exclude")
        if ex.size and (ex.min() < 0 or ex.max() >= n):
            raise ValueError(f"exclude: positions must lie in [0, {n}), got {ex.min()}..{ex.max()}")
        selectable[ex] = False
    rng = np.random.default_rng(seed)
    if balance == "uniform":
        pool = np.flatnonzero(selectable)
        if total == 0 or pool.size < total:
            raise ValueError(
                f"choose_threshold_samples: {pool.size} selectable of {n} samples, "
                f"{total} threshold samples needed; use more data or a larger fraction="
            )
        return np.sort(rng.choice(pool, size=total, replace=False)).astype(np.int64)
    present = np.unique(labels)
    quotas = _class_quotas(labels, present, total, balance)
    if quotas.sum() == 0:
        raise ValueError(
            f"choose_threshold_samples: {n} samples over {present.size} classes give no threshold "
            f"samples ({total} in total); use more data or a larger fraction="
        )
    pools = [np.flatnonzero((labels == k) & selectable) for k in present]
    if balance == "available":  # proportional, but a class gives at most what it has left
        quotas = np.minimum(quotas, [pool.size for pool in pools])
    short = [
        f"class {k}: {pool.size} selectable, needs {q}"
        for k, pool, q in zip(present.tolist(), pools, quotas.tolist(), strict=True)
        if pool.size < q
    ]
    if short:
        raise ValueError(
            f"choose_threshold_samples: too few samples for {total} threshold samples "
            f"(balance={balance!r}): {'; '.join(short)}. Use balance='proportional', a smaller "
            "fraction=, or procedure='paper' (one pass, nothing excluded)."
        )
    chosen = [
        rng.choice(pool, size=q, replace=False)
        for pool, q in zip(pools, quotas.tolist(), strict=True)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def relabel_threshold_labels(
    labels: np.ndarray,
    is_threshold: np.ndarray,
    *,
    kind: TaskKind,
    num_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """The labels a threshold-sample run trains on: ``[N]``, ``[N]`` bool → ``[N]`` int64.

    * ``kind="single"`` or ``"pair"``: threshold samples get the extra class ``num_classes`` (the
      classifier needs ``num_classes + 1`` outputs), as the paper's code and Pleiss et al. do.
    * ``kind="multiple_choice"`` (``num_classes`` = K endings): a threshold item is re-assigned
      to a *wrong existing ending*, drawn uniformly from its K − 1 wrong endings (seeded); the
      endings and the model stay as they are (K endings, no extra choice). Its gold ending and
      its new label are different inputs, so the per-ending scorer can learn the new label only
      by memorising the item: a mislabelled sample, whose margin starts negative and may rise
      above 0. The paper's code instead appends a copy of the gold ending as a 5th ending and
      labels the item with it; the copy scores exactly as the gold ending, so the margin is
      ``min(0, …) ≤ 0`` at every epoch (a forced tie) and k = 50 puts the threshold at ≈ 0.

    Other rows keep their labels.

    >>> is_threshold = np.array([False, True, False])
    >>> relabel_threshold_labels(np.array([0, 1, 2]), is_threshold, kind="pair", num_classes=3)
    array([0, 3, 2])
    """
    labels = class_labels(labels, num_classes)
    is_th = np.asarray(is_threshold, dtype=bool)
    if is_th.shape != labels.shape:
        raise ValueError(f"is_threshold: expected shape {labels.shape}, got {is_th.shape}")
    if kind in ("single", "pair"):
        return np.where(is_th, num_classes, labels).astype(np.int64)
    if kind != "multiple_choice":
        raise ValueError(f"kind: expected 'single', 'pair' or 'multiple_choice', got {kind!r}")
    shift = np.random.default_rng(seed).integers(1, num_classes, size=int(is_th.sum()))
    out = labels.copy()
    out[is_th] = (labels[is_th] + shift) % num_classes
    return out


def relabel_threshold_samples(
    dataset: datasets.Dataset,
    threshold_ids: np.ndarray,
    *,
    kind: TaskKind,
    num_classes: int,
    seed: int = 0,
) -> datasets.Dataset:
    """Return ``dataset`` with its threshold samples relabelled (:func:`relabel_threshold_labels`).

    Single and pair tasks: ``label`` → ``num_classes`` (the fake class) for the threshold rows.
    Multiple choice: ``label`` → a seeded wrong existing ending; ``endings`` unchanged.
    ``label`` becomes plain int64; other rows and columns are unchanged.

    Args:
        dataset: rows in the schema of :mod:`tdmixup.data.schema`.
        threshold_ids: ``[T]`` sample ids to relabel; each must occur in ``dataset``.
        kind: ``"single"``, ``"pair"`` or ``"multiple_choice"``.
        num_classes: c (single, pair) or K (multiple choice), the count before relabelling.
        seed: seeds the choice of wrong ending (multiple choice).

    Returns:
        A new :class:`datasets.Dataset` with the same rows and columns.
    """
    from datasets import Value

    ids = int_vector(dataset["sample_id"], "dataset['sample_id']")
    th = int_vector(threshold_ids, "threshold_ids")
    missing = np.setdiff1d(th, ids)
    if missing.size:
        raise ValueError(
            f"threshold_ids: {missing.size} id(s) not in the dataset, e.g. {missing[:5].tolist()}"
        )
    if kind == "multiple_choice":
        counts = np.fromiter((len(e) for e in dataset["endings"]), dtype=np.int64, count=len(ids))
        bad = np.flatnonzero(counts != num_classes)
        if bad.size:
            raise ValueError(
                f"sample_id {ids[bad[0]]}: {counts[bad[0]]} endings, "
                f"expected {num_classes} (num_classes)"
            )
    new_labels = relabel_threshold_labels(
        dataset["label"], np.isin(ids, th), kind=kind, num_classes=num_classes, seed=seed
    )
    features = dataset.features.copy()
    features["label"] = Value("int64")
    return dataset.map(
        lambda batch, idx: {"label": new_labels[idx].tolist()},
        batched=True,
        with_indices=True,
        features=features,
        load_from_cache_file=False,
        desc="relabel threshold samples",
    )


def aum_threshold(
    threshold_aums: np.ndarray, percentile: float, *, method: str = "linear"
) -> float:
    """The k-th percentile of the threshold samples' AUMs.

    Args:
        threshold_aums: ``[T]`` finite AUMs of the threshold samples (T ≥ 1).
        percentile: k in [0, 100] (paper: 80 SNLI/QQP, 50 SWAG; Pleiss et al.: 99).
        method: passed to :func:`numpy.percentile`; ``"linear"`` interpolates between order
            statistics ``x[(T-1)·k/100]``. The paper's code takes ``sorted(x)[floor(T·k/100)-1]``.

    >>> aum_threshold(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 80)
    3.2
    """
    values = np.asarray(threshold_aums, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"threshold_aums: expected a non-empty 1-D array, got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("threshold_aums: contains NaN or inf; pass only judged threshold samples")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile: expected k in [0, 100], got {percentile}")
    return float(np.percentile(values, percentile, method=method))  # type: ignore[call-overload]


def flag_mislabeled(aums: np.ndarray, threshold: float) -> np.ndarray:
    """Flag samples whose AUM is below the threshold: ``[N]`` → ``[N]`` bool (NaN → False).

    >>> flag_mislabeled(np.array([-1.0, 0.5, np.nan]), 0.5)
    array([ True, False, False])
    """
    return np.asarray(aums, dtype=np.float64) < threshold


@dataclass(frozen=True, eq=False)
class AUMPass:
    """One training run on a relabelled dataset.

    Attributes:
        sample_ids: ``[N]`` unique ids, the order of ``logits`` and ``labels``.
        logits: ``[E, N, C]`` logits per epoch; ``C`` = c + 1 (pair) or K (multiple choice).
        labels: ``[N]`` labels as trained (:func:`relabel_threshold_labels`).
        threshold_ids: ``[T]`` the ids that were relabelled in this run.
        extra_class: True (pair tasks): threshold samples carry the extra class ``C - 1`` and the
            others a class ``< C - 1`` (checked). False (multiple choice): threshold samples
            were moved to another existing class, so labels are only checked to lie in [0, C).
    """

    sample_ids: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    threshold_ids: np.ndarray
    extra_class: bool = True


@dataclass(frozen=True, eq=False)
class AUMResult:
    """What :func:`find_mislabeled_with_aum` found.

    Attributes:
        table: one row per sample id, columns :data:`AUM_TABLE_COLUMNS`: ``aum`` (mean AUM over
            the passes in which the sample was judged, NaN if none), ``threshold`` (mean of
            those passes' thresholds), ``flagged`` (``aum < threshold``; True if never judged),
            ``is_threshold`` (a threshold sample in some pass), ``threshold_pass`` (that pass,
            -1 if none), ``judged_passes`` (0, 1 or 2).
        per_pass: one row per (pass, sample id): ``pass, sample_id, aum, is_threshold,
            threshold, flagged`` — threshold samples keep their own AUM (for plots), unflagged.
        thresholds: the threshold of each pass.
        percentile, procedure, skip_epochs: the settings used.
    """

    table: pd.DataFrame
    per_pass: pd.DataFrame
    thresholds: tuple[float, ...]
    percentile: float
    procedure: Procedure
    skip_epochs: int = 0

    @property
    def flagged_ids(self) -> np.ndarray:
        """``[F]`` sorted ids of flagged (or, in paper mode, dropped) samples."""
        return self.table.loc[self.table["flagged"], "sample_id"].to_numpy()

    @property
    def kept_ids(self) -> np.ndarray:
        """``[N - F]`` sorted ids of the samples to keep."""
        return self.table.loc[~self.table["flagged"], "sample_id"].to_numpy()


def _judge_pass(index: int, run: AUMPass, percentile: float, skip_epochs: int) -> pd.DataFrame:
    ids = int_vector(run.sample_ids, f"pass {index}: sample_ids")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"pass {index}: sample_ids contain duplicates")
    logits = np.asarray(run.logits, dtype=np.float64)
    aums = area_under_margin(logits, run.labels, skip_epochs=skip_epochs)
    labels = np.asarray(run.labels, dtype=np.int64)
    th = int_vector(run.threshold_ids, f"pass {index}: threshold_ids")
    missing = np.setdiff1d(th, ids)
    if missing.size or th.size == 0:
        raise ValueError(
            f"pass {index}: need >= 1 threshold id, all in sample_ids; "
            f"missing {missing[:5].tolist()}"
        )
    is_th = np.isin(ids, th)
    fake = logits.shape[2] - 1
    wrong = (
        int((labels[is_th] != fake).sum() + (labels[~is_th] == fake).sum())
        if run.extra_class
        else 0
    )
    if wrong:
        raise ValueError(
            f"pass {index}: {wrong} label(s) disagree with threshold_ids: "
            f"threshold samples must carry the extra class {fake}, the others a class < {fake} "
            "(pass the labels as trained, after relabel_threshold_samples)"
        )
    threshold = aum_threshold(aums[is_th], percentile)
    return pd.DataFrame(
        {
            "pass": np.full(ids.size, index, dtype=np.int64),
            "sample_id": ids,
            "aum": aums,
            "is_threshold": is_th,
            "threshold": np.full(ids.size, threshold),
            "flagged": flag_mislabeled(aums, threshold) & ~is_th,
        }
    )


def find_mislabeled_with_aum(
    passes: Sequence[AUMPass],
    *,
    percentile: float,
    procedure: Procedure = "two_pass",
    skip_epochs: int = 0,
) -> AUMResult:
    """Judge every sample against the AUMs of threshold samples (Pleiss et al. 2020).

    Each pass's threshold is the ``percentile`` of its own threshold samples' AUMs
    (:func:`aum_threshold`). ``procedure="two_pass"``: two passes over the same ids with
    disjoint threshold sets; a sample's AUM and threshold are averaged over the passes in which
    it was not a threshold sample, so it is flagged when its mean excess over the threshold is
    negative (judged once → exactly that pass's rule). ``procedure="paper"``: one pass; the
    threshold samples are dropped (``aum`` NaN, ``flagged`` True, ``is_threshold`` True).

    Args:
        passes: one :class:`AUMPass` (paper) or two (two_pass).
        percentile: k in [0, 100] (a run's resolved ``AUMConfig.percentile``: see
            :func:`tdmixup.run.session.with_task_defaults`).
        procedure: ``"two_pass"`` or ``"paper"``.
        skip_epochs: leave the first epochs out of every AUM (:func:`area_under_margin`;
            ``AUMConfig.skip_epochs``, default 0 as the paper's code; Pleiss et al.'s runner: 1).

    Returns:
        :class:`AUMResult`; ``table`` is sorted by ``sample_id``.
    """
    expected = {"two_pass": 2, "paper": 1}.get(procedure)
    if expected is None:
        raise ValueError(f"procedure: expected 'two_pass' or 'paper', got {procedure!r}")
    if len(passes) != expected:
        raise ValueError(f"procedure={procedure!r} needs {expected} pass(es), got {len(passes)}")
    per_pass = pd.concat(
        [_judge_pass(i, p, percentile, skip_epochs) for i, p in enumerate(passes)],
        ignore_index=True,
    )
    id_sets = [np.sort(g["sample_id"].to_numpy()) for _, g in per_pass.groupby("pass")]
    if any(not np.array_equal(id_sets[0], s) for s in id_sets[1:]):
        raise ValueError("two_pass: both passes must cover the same sample ids")
    th_rows = per_pass[per_pass["is_threshold"]]
    if th_rows["sample_id"].duplicated().any():
        raise ValueError("two_pass: the threshold sets overlap; pass exclude= to the second choice")
    judged = per_pass[~per_pass["is_threshold"]].groupby("sample_id")
    table = pd.DataFrame({"sample_id": id_sets[0]}).set_index("sample_id")
    table["aum"] = judged["aum"].mean()
    table["threshold"] = judged["threshold"].mean()
    table["threshold"] = table["threshold"].fillna(th_rows.set_index("sample_id")["threshold"])
    table["judged_passes"] = judged.size().reindex(table.index, fill_value=0).astype(np.int64)
    table["flagged"] = (table["aum"] < table["threshold"]) | (table["judged_passes"] == 0)
    tp = th_rows.set_index("sample_id")["pass"].reindex(table.index)
    table["is_threshold"] = tp.notna()
    table["threshold_pass"] = tp.fillna(-1).astype(np.int64)
    table = table.reset_index()[list(AUM_TABLE_COLUMNS)]
    thresholds = tuple(float(g["threshold"].iloc[0]) for _, g in per_pass.groupby("pass"))
    return AUMResult(table, per_pass, thresholds, float(percentile), procedure, int(skip_epochs))


def write_aum_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` to Parquet atomically (:func:`tdmixup.core.runio.atomic_output`)."""
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)
    return Path(path)


def read_aum_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_aum_table`; checks the columns."""
    table = pd.read_parquet(path)
    missing = [c for c in AUM_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not an AUM table, missing column(s) {missing}")
    return table
