"""Class mix of sample sets: per-class counts, and warnings when a set lacks a class.

A data-map region, an AUM kept set or a training set may hold a class far from its share of the
training data (on the Cartography TREC logs the easy region holds none of one class's 78
samples; on 1,500 SNLI pairs the hard third is ~70 % neutral, so easy ∪ ambiguous is short of
it). A model trained on such a set learns to under-predict that class. The pipeline records the
counts of every set in its stage summaries and ``report.md``, and warns through these functions.

Pure functions on arrays; counts are keyed by class name, in class-index order.

>>> counts = class_counts(np.array([0, 0, 1, 3]), ("a", "b", "c", "d"))
>>> counts
{'a': 2, 'b': 1, 'c': 0, 'd': 1}
>>> class_mix_warnings(counts, {"a": 10, "b": 10, "c": 10, "d": 10}, what="the easy region")
["class 'c' is absent from the easy region (0 of 4 samples; 25.0 % of the training set: 10 of 40)"]
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TypedDict

import numpy as np

log = logging.getLogger("tdmixup.core.classmix")

MIN_SHARE_RATIO = 0.5
"""A class whose share of a set is below this fraction of its share of the training set is
reported as far below its share (absent classes are always reported)."""


class ClassMix(TypedDict):
    """What :func:`describe_class_mix` returns (stored as is in stage summaries)."""

    counts: dict[str, dict[str, int]]
    warnings: list[str]


def class_counts(labels: np.ndarray, label_names: Sequence[str]) -> dict[str, int]:
    """Samples per class: ``[N]`` integer labels → ``{name: count}`` for every named class.

    Args:
        labels: ``[N]`` class indices in ``[0, len(label_names))``.
        label_names: class names in index order.

    Raises:
        ValueError: a label outside the named classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(label_names)):
        raise ValueError(
            f"labels: values {labels.min()}..{labels.max()} outside the {len(label_names)} "
            f"named classes {list(label_names)}"
        )
    counts = np.bincount(labels, minlength=len(label_names))
    return {str(name): int(n) for name, n in zip(label_names, counts.tolist(), strict=True)}


def labels_of(ids: np.ndarray, *, sample_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels of samples ``ids`` (``[n]``) looked up in ``sample_ids`` / ``labels`` (``[N]`` each).

    Raises:
        ValueError: an id not in ``sample_ids``.
    """
    sample_ids = np.asarray(sample_ids, dtype=np.int64)
    wanted = np.asarray(ids, dtype=np.int64)
    order = np.argsort(sample_ids, kind="stable")
    pos = np.clip(np.searchsorted(sample_ids, wanted, sorter=order), 0, max(sample_ids.size - 1, 0))
    found = order[pos] if sample_ids.size else pos
    missing = wanted[sample_ids[found] != wanted] if sample_ids.size else wanted
    if missing.size:
        raise ValueError(
            f"{missing.size} sample id(s) not among the labelled samples, "
            f"e.g. {missing[:5].tolist()}"
        )
    return np.asarray(labels, dtype=np.int64)[found]


def class_mix_warnings(
    counts: Mapping[str, int],
    reference: Mapping[str, int],
    *,
    what: str,
    min_ratio: float = MIN_SHARE_RATIO,
) -> list[str]:
    """Sentences naming each class absent from a set, or below ``min_ratio`` × its reference share.

    Args:
        counts: the set's ``{class: count}`` (:func:`class_counts`).
        reference: the training set's ``{class: count}``; classes with no reference sample are
            not expected anywhere and never reported.
        what: how to name the set in the message, e.g. ``"the easy region"``.
        min_ratio: report a class when ``share_in_set < min_ratio · share_in_reference``.

    Returns:
        One message per reported class (empty for an empty set or a fine mix).
    """
    total = sum(counts.values())
    ref_total = sum(reference.values())
    if total == 0 or ref_total == 0:
        return []
    out = []
    for name, ref in reference.items():
        if ref == 0:
            continue
        n, ref_share = counts.get(name, 0), ref / ref_total
        expected = f"{100 * ref_share:.1f} % of the training set: {ref} of {ref_total}"
        if n == 0:
            out.append(f"class {name!r} is absent from {what} (0 of {total} samples; {expected})")
        elif n / total < min_ratio * ref_share:
            out.append(
                f"class {name!r} is far below its share in {what}: {n} of {total} samples "
                f"({100 * n / total:.1f} %; {expected})"
            )
    return out


def describe_class_mix(
    sets: Mapping[str, np.ndarray],
    *,
    sample_ids: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    reference: str | None = None,
    warn_for: Collection[str] | None = None,
    context: str = "",
) -> ClassMix:
    """Counts of several id sets and the warnings for each, as a stage summary records them.

    Args:
        sets: ``{set name: [n] sample ids}``, e.g. ``{"easy": ids, "ambiguous": ids}``.
        sample_ids, labels: ``[N]`` ids and labels of the whole training set (the reference).
        label_names: class names in index order.
        reference: the key under which the whole training set's counts are recorded first
            (e.g. ``"train"``); None records only ``sets``.
        warn_for: the sets to check (:func:`class_mix_warnings`); None checks every set, ``()``
            none (multiple choice: a gold ending's position is no class).
        context: prefixed to every warning, e.g. ``"aum_easy: "``.

    Returns:
        ``{"counts": {name: {class: count}}, "warnings": [message, ...]}`` (log them with
        :func:`log_warnings`).
    """
    ref_counts = class_counts(labels, label_names)
    counts: dict[str, dict[str, int]] = {reference: ref_counts} if reference is not None else {}
    warnings: list[str] = []
    for name, ids in sets.items():
        counts[name] = class_counts(
            labels_of(ids, sample_ids=sample_ids, labels=labels), label_names
        )
        if warn_for is None or name in warn_for:
            warnings += [
                context + m
                for m in class_mix_warnings(counts[name], ref_counts, what=f"the {name} set")
            ]
    return {"counts": counts, "warnings": warnings}


def log_warnings(messages: Sequence[str]) -> None:
    """Log each class-mix message at WARNING level (logger ``tdmixup.core.classmix``)."""
    for message in messages:
        log.warning("class mix: %s", message)
