"""Synthetic label noise and the scores of a flagging method against it.

cleanlab ships the noise generator it is tested with; so do we: the tests inject flips with
:func:`inject_label_noise` and check that AUM recovers them (:func:`flag_metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from tdmixup.core.arrays import class_labels

NoiseKind = Literal["symmetric", "flip", "class_conditional"]


def inject_label_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    rate: float,
    seed: int,
    kind: NoiseKind = "symmetric",
    transitions: Mapping[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate · N)`` labels (half rounds up), chosen uniformly at random.

    * ``kind="symmetric"``: each chosen label moves to a class drawn uniformly from the
      ``num_classes − 1`` *other* classes (so it always changes).
    * ``kind="flip"``: class y → (y + 1) mod c (Pleiss et al.'s asymmetric "flip" noise).
    * ``kind="class_conditional"``: only the source classes of ``transitions`` are flipped,
      each to its target (e.g. ``{1: 0}``: SNLI neutral → entailment only). The
      ``round(rate · N)`` flips are drawn uniformly from the rows of the source classes, so
      ``rate`` is still a share of all N rows (a 10 % rate flips ~30 % of one SNLI class).

    Unlike transition-matrix generators (the ``aum`` runner), the number of flips is exact.

    Args:
        labels: ``[N]`` integer labels in ``[0, num_classes)``.
        num_classes: c ≥ 2.
        rate: fraction of samples to flip, in [0, 1].
        seed: seeds the draw; the same inputs give the same output.
        kind: ``"symmetric"``, ``"flip"`` or ``"class_conditional"``.
        transitions: ``{source class: target class}``; required by, and only taken with,
            ``kind="class_conditional"``.

    Returns:
        ``(noisy_labels [N] int64, flipped_mask [N] bool)``;
        ``flipped_mask.sum() == round(rate·N)``.

    >>> noisy, flipped = inject_label_noise(np.array([0, 1, 2, 0]), 3, rate=0.5, seed=0)
    >>> int(flipped.sum()), bool((noisy[flipped] != np.array([0, 1, 2, 0])[flipped]).all())
    (2, True)
    >>> y = np.array([0, 1, 1, 2, 1, 0])
    >>> noisy, flipped = inject_label_noise(y, 3, rate=0.5, seed=0, kind="class_conditional",
    ...                                     transitions={1: 0})
    >>> noisy.tolist(), flipped.tolist()
    ([0, 0, 0, 2, 0, 0], [False, True, True, False, True, False])
    """
    if num_classes < 2:
        raise ValueError(
            f"num_classes: expected >= 2 (a flip needs another class), got {num_classes}"
        )
    labels = class_labels(labels, num_classes)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate: expected a fraction in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    n_flip = int(np.floor(rate * labels.size + 0.5))
    if (kind == "class_conditional") != (transitions is not None):
        raise ValueError(
            f"transitions: required by kind='class_conditional' and only taken with it "
            f"(got kind={kind!r}, transitions={transitions!r})"
        )
    if transitions is not None:
        target = _transition_table(transitions, num_classes)
        pool = np.flatnonzero(target[labels] >= 0)
        if pool.size < n_flip:
            raise ValueError(
                f"rate: {n_flip} flips asked for, but only {pool.size} labels belong to the "
                f"source classes {sorted(transitions)}"
            )
        chosen = rng.choice(pool, size=n_flip, replace=False)
        noisy = labels.astype(np.int64)
        noisy[chosen] = target[noisy[chosen]]
        flipped = np.zeros(labels.size, dtype=bool)
        flipped[chosen] = True
        return noisy, flipped
    chosen = rng.choice(labels.size, size=n_flip, replace=False)
    if kind == "symmetric":
        shift = rng.integers(1, num_classes, size=n_flip)
    elif kind == "flip":
        shift = np.ones(n_flip, dtype=np.int64)
    else:
        raise ValueError(f"kind: expected 'symmetric', 'flip' or 'class_conditional', got {kind!r}")
    noisy = labels.astype(np.int64)
    noisy[chosen] = (noisy[chosen] + shift) % num_classes
    flipped = np.zeros(labels.size, dtype=bool)
    flipped[chosen] = True
    return noisy, flipped


def _transition_table(transitions: Mapping[int, int], num_classes: int) -> np.ndarray:
    """``[c]`` int64: each class's target under ``transitions``, −1 for a class left alone."""
    target = np.full(num_classes, -1, dtype=np.int64)
    for source, dest in transitions.items():
        for name, value in (("source", source), ("target", dest)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"transitions: {name} class {value!r} is not an integer")
            if not 0 <= value < num_classes:
                raise ValueError(f"transitions: {name} class {value} is outside [0, {num_classes})")
        if source == dest:
            raise ValueError(f"transitions: class {source} → itself is no flip")
        target[source] = dest
    if not transitions:
        raise ValueError("transitions: expected at least one {source: target} pair")
    return target


def flag_metrics(flags: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of ``flags`` against the truly mislabelled samples.

    Args:
        flags: ``[N]`` bool, True = flagged as mislabelled.
        truth: ``[N]`` bool, True = really mislabelled (e.g. ``flipped_mask``).

    Returns:
        ``{"precision", "recall", "f1", "n_flagged", "n_true"}``; a ratio whose denominator is
        0 is 0.0 (as scikit-learn's ``zero_division=0``).

    >>> flag_metrics(np.array([True, True, False]), np.array([True, False, False]))
    {'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666, 'n_flagged': 2, 'n_true': 1}
    """
    flags = np.asarray(flags, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if flags.shape != truth.shape or flags.ndim != 1:
        raise ValueError(f"flags {flags.shape} and truth {truth.shape}: expected two [N] arrays")
    hits = int((flags & truth).sum())
    n_flagged, n_true = int(flags.sum()), int(truth.sum())
    precision = hits / n_flagged if n_flagged else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_flagged": n_flagged,
        "n_true": n_true,
    }
