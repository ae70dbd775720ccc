"""Area Under the Margin (Pleiss et al. 2020) and threshold samples."""

from __future__ import annotations

import numpy as np


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Margin of each sample at each epoch: gold logit − largest other logit.

    Args:
        logits: ``[E, N, C]`` pre-softmax logits (E epochs, N samples, C classes).
        labels: ``[N]`` integer gold labels in ``[0, C)``.

    Returns:
        ``[E, N]`` float64 margins (positive = the gold class wins).

    >>> margins(np.array([[[2.0, 0.5, 1.0]]]), np.array([0]))
    array([[1.]])
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    gold = np.take_along_axis(logits, labels[None, :, None], axis=2)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, labels[None, :, None], -np.inf, axis=2)
    return gold - others.max(axis=2)


def area_under_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUM = mean margin over epochs (paper Eq. 4). ``[E, N, C]``, ``[N]`` → ``[N]``."""
    return margins(logits, labels).mean(axis=0)
