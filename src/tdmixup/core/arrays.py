"""Checks of the arrays users hand to tdmixup's array functions (labels, ids), with errors that
say what was expected and where the first bad value is. One place, so every function that takes
``labels`` refuses the same mistakes with the same words."""

from __future__ import annotations

from typing import Any

import numpy as np


def int_vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D int64 array (torch tensors and lists accepted). An int64 numpy array
    comes back as the same object (no copy): copy it before changing it.

    Raises:
        ValueError: naming ``name`` when ``values`` is not 1-D or not integer.

    >>> int_vector([3, 1], "sample_ids")
    array([3, 1])
    """
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D integer array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be integer class indices or ids, got dtype {arr.dtype}; "
            "convert with .astype(int) if the values are whole numbers"
        )
    return arr.astype(np.int64, copy=False)


def class_labels(
    values: Any, num_classes: int, *, name: str = "labels", n_samples: int | None = None
) -> np.ndarray:
    """``[N]`` class indices in ``[0, num_classes)`` as int64.

    Args:
        values: the labels (numpy array, torch tensor or list).
        num_classes: C ≥ 2 (classes, or endings of a multiple-choice item).
        name: what the caller calls them, for the error message.
        n_samples: N when it is known (the logits' sample count).

    Raises:
        ValueError: wrong shape or dtype, or a value outside ``[0, C)`` (the first one is named).

    >>> class_labels([0, 2], 3)
    array([0, 2])
    """
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    if n_samples is not None and np.shape(values) != (n_samples,):
        swapped = " (the order is labels first, then logits)" if np.ndim(values) == 2 else ""
        raise ValueError(
            f"{name} must have shape [N] = ({n_samples},), got shape {np.shape(values)}{swapped}"
        )
    labels = int_vector(values, name)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{name} must lie in [0, {num_classes}) for C = {num_classes} classes, got "
            f"{labels[bad[0]]} at index {bad[0]} ({bad.size} value(s) outside)"
        )
    return labels
