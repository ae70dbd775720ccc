"""Synthetic label noise and the scores of a flagging method against it.

cleanlab ships the noise generator it is tested with; so do we: the tests inject flips with
:func:`inject_label_noise` and check that AUM recovers them (:func:`flag_metrics`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tdmixup.arrays import class_labels

NoiseKind = Literal["symmetric", "flip"]


def inject_label_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    rate: float,
    seed: int,
    kind: NoiseKind = "symmetric",
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate · N)`` labels (half rounds up), chosen uniformly at random.

    * ``kind="symmetric"``: each chosen label moves to a class drawn uniformly from the
      ``num_classes − 1`` *other* classes (so it always changes).
    * ``kind="flip"``: class y → (y + 1) mod c (Pleiss et al.'s asymmetric "flip" noise).

    Unlike transition-matrix generators (the ``aum`` runner), the number of flips is exact.

    Args:
        labels: ``[N]`` integer labels in ``[0, num_classes)``.
        num_classes: c ≥ 2.
        rate: fraction of samples to flip, in [0, 1].
        seed: seeds the draw; the same inputs give the same output.
        kind: ``"symmetric"`` or ``"flip"``.

    Returns:
        ``(noisy_labels [N] int64, flipped_mask [N] bool)``;
        ``flipped_mask.sum() == round(rate·N)``.

    >>> noisy, flipped = inject_label_noise(np.array([0, 1, 2, 0]), 3, rate=0.5, seed=0)
    >>> int(flipped.sum()), bool((noisy[flipped] != np.array([0, 1, 2, 0])[flipped]).all())
    (2, True)
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
    chosen = rng.choice(labels.size, size=n_flip, replace=False)
    if kind == "symmetric":
        shift = rng.integers(1, num_classes, size=n_flip)
    elif kind == "flip":
        shift = np.ones(n_flip, dtype=np.int64)
    else:
        raise ValueError(f"kind: expected 'symmetric' or 'flip', got {kind!r}")
    noisy = labels.astype(np.int64)
    noisy[chosen] = (noisy[chosen] + shift) % num_classes
    flipped = np.zeros(labels.size, dtype=bool)
    flipped[chosen] = True
    return noisy, flipped


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
