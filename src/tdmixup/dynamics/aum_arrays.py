"""AUM in one call on plain arrays (cleanlab's style), for logits from any training loop.

:func:`find_mislabeled` takes the logits a user already has — from their own loop, or from
:class:`tdmixup.DynamicsCallback` via :func:`tdmixup.read_dynamics` — and returns an ``[N]``
boolean mask. Samples are identified by their position; the work is done by
:func:`tdmixup.dynamics.aum.find_mislabeled_with_aum` (threshold samples) or
:func:`tdmixup.dynamics.statistics.area_under_margin` (plain ranking), so the flags are those of
the pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdmixup.dynamics.aum import AUMPass, find_mislabeled_with_aum
from tdmixup.dynamics.statistics import area_under_margin


def _runs(name: str, value: Any, ndim: int, shape: str) -> list[np.ndarray]:
    """One array per training run: ``value`` is one run (``ndim`` dims), a stack of runs
    (``ndim + 1`` dims) or a list/tuple of runs (whose sizes may differ, e.g. epochs)."""
    if isinstance(value, (list, tuple)) and value and all(np.ndim(v) == ndim for v in value):
        return [np.asarray(v) for v in value]
    arr = np.asarray(value)
    if arr.ndim == ndim:
        return [arr]
    if arr.ndim == ndim + 1:
        return list(arr)
    raise ValueError(
        f"{name}: expected {shape} for one training run, or a list of them (one per threshold "
        f"pass), got shape {arr.shape}"
    )


def _mask(value: np.ndarray, n: int, index: int) -> np.ndarray:
    if value.dtype != np.bool_ or value.shape != (n,):
        raise ValueError(
            f"threshold_mask (pass {index}): expected a boolean mask of shape ({n},) = [N], got "
            f"dtype {value.dtype} shape {value.shape}; from positions: np.isin(np.arange(N), pos)"
        )
    return value


def _lowest(aums: np.ndarray, fraction: float) -> np.ndarray:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a value in (0, 1), got {fraction}")
    flagged = np.zeros(aums.size, dtype=bool)
    flagged[np.argsort(aums, kind="stable")[: int(np.floor(aums.size * fraction + 1e-9))]] = True
    return flagged


def find_mislabeled(
    logits_by_epoch: Any,
    labels: Any,
    *,
    threshold_mask: Any = None,
    percentile: float | None = None,
    fraction: float | None = None,
    aum_below: float | None = None,
    skip_epochs: int = 0,
    extra_class: bool = True,
) -> np.ndarray:
    """Flag likely mislabelled samples by their Area Under the Margin: ``[N]`` bool mask.

    Two ways, chosen by ``threshold_mask``:

    * **Threshold samples** (Pleiss et al. 2020; TDMixUp §2.1; what ``tdmixup run`` does). The
      model was trained with some samples relabelled
      (:func:`tdmixup.dynamics.aum.choose_threshold_samples` and
      :func:`tdmixup.dynamics.aum.relabel_threshold_labels`); a sample is flagged when its AUM is
      below the ``percentile`` of those threshold samples' AUMs. Pass one run (the paper's
      procedure: the threshold samples cannot be judged and are flagged, i.e. dropped, as the
      paper's code does) or two runs over the same samples with disjoint threshold sets (every
      sample judged: AUM and threshold averaged over the runs where it was not a threshold sample).
      Same flags as :func:`tdmixup.dynamics.aum.find_mislabeled_with_aum` with ``sample_ids =
      np.arange(N)``.
    * **Plain ranking** (``threshold_mask=None``; logits of an ordinary run with the labels
      as given): flag the lowest-AUM ``fraction`` of the samples, or those with
      ``AUM < aum_below``. No calibrated threshold: you choose how many to flag.

    Args:
        logits_by_epoch: ``[E, N, C]`` pre-softmax logits of the N samples after each of E
            epochs (same sample order in every epoch); for two runs a list of two such arrays
            (their E may differ) or a ``[2, E, N, C]`` array. With threshold samples of a pair
            (classification) task ``C`` = classes + 1, the extra class last.
        labels: ``[N]`` integer labels *as trained* in ``[0, C)`` (threshold samples carry
            their new label); for two runs ``[2, N]`` or a list of two.
        threshold_mask: ``[N]`` bool, True for the threshold samples of the run (``[2, N]`` or
            a list of two for two runs); None for the plain ranking.
        percentile: k in [0, 100], required with ``threshold_mask`` (paper: 80 for SNLI/QQP,
            50 for SWAG/HellaSWAG; Pleiss et al.: 99).
        fraction: plain ranking only: flag the ``floor(N · fraction)`` lowest AUMs (ties by
            position), ``fraction`` in (0, 1).
        aum_below: plain ranking only: flag ``AUM < aum_below`` (a margin, in logits).
        skip_epochs: leave the first epochs out of every AUM (Pleiss et al.'s runner: 1).
        extra_class: True (pair tasks): threshold samples carry the extra class ``C - 1`` and
            the others a class below it (checked). False (multiple choice, where a threshold
            sample was moved to a wrong existing ending): labels only checked to lie in
            ``[0, C)``.

    Returns:
        ``[N]`` bool, True = flagged (in sample order). For the AUMs, thresholds and per-run
        table call :func:`tdmixup.dynamics.aum.find_mislabeled_with_aum` or
        :func:`tdmixup.dynamics.statistics.area_under_margin` directly.

    Raises:
        ValueError: wrong shapes or dtypes (naming the argument and the expected shape), a
            number of runs other than 1 or 2, labels that disagree with the mask, or options
            of the other way (``fraction`` with ``threshold_mask``, ``percentile`` without).

    >>> labels = np.array([0, 1, 0, 1])
    >>> logits = np.array([[[3.0, 0.0], [0.0, 2.0], [1.0, 0.0], [1.0, 0.0]]])  # E = 1 epoch
    >>> find_mislabeled(logits, labels, fraction=0.25)  # the lowest AUM: sample 3 (margin -1)
    array([False, False, False,  True])
    >>> th = np.array([False, False, False, True])     # sample 3 was relabelled to class 2
    >>> as_trained = np.array([0, 1, 0, 2])
    >>> logits = np.array([[[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.5], [0.5, 0.0, 0.0]]])
    >>> find_mislabeled(logits, as_trained, threshold_mask=th, percentile=50)  # 2: -1 < -0.5
    array([False, False,  True,  True])
    """
    logits_runs = _runs("logits_by_epoch", logits_by_epoch, 3, "[E, N, C]")
    label_runs = _runs("labels", labels, 1, "[N]")
    if threshold_mask is None:
        return _flag_lowest_aums(
            logits_runs,
            label_runs,
            percentile=percentile,
            fraction=fraction,
            aum_below=aum_below,
            skip_epochs=skip_epochs,
        )
    return _flag_below_threshold_samples(
        logits_runs,
        label_runs,
        threshold_mask,
        percentile=percentile,
        fraction=fraction,
        aum_below=aum_below,
        skip_epochs=skip_epochs,
        extra_class=extra_class,
    )


def _flag_lowest_aums(
    logits_runs: list[np.ndarray],
    label_runs: list[np.ndarray],
    *,
    percentile: float | None,
    fraction: float | None,
    aum_below: float | None,
    skip_epochs: int,
) -> np.ndarray:
    """The plain ranking of :func:`find_mislabeled`: ``[N]`` bool, lowest ``fraction`` or below."""
    if percentile is not None:
        raise ValueError(
            "percentile= needs threshold_mask= (the run's threshold samples); "
            "without them pass fraction= or aum_below="
        )
    if len(logits_runs) != 1 or len(label_runs) != 1:
        raise ValueError(
            f"got {len(logits_runs)} run(s) of logits and {len(label_runs)} of "
            "labels: several runs need threshold_mask=; the plain ranking takes "
            "one"
        )
    if (fraction is None) == (aum_below is None):
        raise ValueError(
            "pass exactly one of fraction= (flag the lowest-AUM share) or "
            "aum_below= (flag AUM below a margin), or threshold_mask= and "
            "percentile="
        )
    aums = area_under_margin(logits_runs[0], label_runs[0], skip_epochs=skip_epochs)
    return _lowest(aums, fraction) if fraction is not None else aums < aum_below


def _flag_below_threshold_samples(
    logits_runs: list[np.ndarray],
    label_runs: list[np.ndarray],
    threshold_mask: Any,
    *,
    percentile: float | None,
    fraction: float | None,
    aum_below: float | None,
    skip_epochs: int,
    extra_class: bool,
) -> np.ndarray:
    """The threshold-sample way of :func:`find_mislabeled`: ``[N]`` bool, one or two runs."""
    if fraction is not None or aum_below is not None:
        raise ValueError(
            "fraction= and aum_below= are for the plain ranking (threshold_mask="
            "None); with threshold samples the threshold comes from percentile="
        )
    if percentile is None:
        raise ValueError(
            "percentile: required with threshold_mask= (paper: 80 for SNLI/QQP, "
            "50 for SWAG/HellaSWAG; Pleiss et al.: 99)"
        )
    mask_runs = _runs("threshold_mask", threshold_mask, 1, "[N]")
    runs = {len(logits_runs), len(label_runs), len(mask_runs)}
    if len(runs) != 1 or not runs <= {1, 2}:
        raise ValueError(
            f"expected 1 or 2 runs of each: got {len(logits_runs)} of "
            f"logits_by_epoch, {len(label_runs)} of labels, {len(mask_runs)} of "
            "threshold_mask"
        )
    passes = _threshold_passes(logits_runs, label_runs, mask_runs, extra_class=extra_class)
    result = find_mislabeled_with_aum(
        passes,
        percentile=percentile,
        skip_epochs=skip_epochs,
        procedure="two_pass" if len(passes) == 2 else "paper",
    )
    return result.table["flagged"].to_numpy(dtype=bool)


def _threshold_passes(
    logits_runs: list[np.ndarray],
    label_runs: list[np.ndarray],
    mask_runs: list[np.ndarray],
    *,
    extra_class: bool,
) -> list[AUMPass]:
    """One :class:`AUMPass` per run, samples identified by position, shapes checked."""
    passes = []
    for i, (z, y, m) in enumerate(zip(logits_runs, label_runs, mask_runs, strict=True)):
        if z.ndim != 3 or y.shape != (z.shape[1],):
            raise ValueError(
                f"pass {i}: labels of shape {y.shape} for logits_by_epoch of shape "
                f"{z.shape}; expected [N] labels for [E, N, C] logits"
            )
        n = z.shape[1]
        th = np.flatnonzero(_mask(m, n, i))
        passes.append(
            AUMPass(
                sample_ids=np.arange(n),
                logits=z,
                labels=y,
                threshold_ids=th,
                extra_class=extra_class,
            )
        )
    return passes
