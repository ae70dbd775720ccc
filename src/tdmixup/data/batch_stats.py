"""How random the planned batches are, and what they cost in padding.

Measures for a plan of batches (lists of row positions, as :func:`tdmixup.data.collate.epoch_order`
returns them), used by ``tests/test_collate.py`` and ``benchmarks/partner_randomness.py``:

* :func:`reoccurrence` — of the pairs of rows that share a batch in one epoch, the share that
  share one again in the next. With batches of B random rows out of N it is about
  (B − 1)/(N − 1); a value far above that means a sample keeps meeting the same few
  neighbours (the only MixUp partners ``mixup``/``manifold`` can draw).
* :func:`paired_length_correlation` — row i of step s in one plan is mixed with row i of step s
  in the other (TDMixUp's pairing, ``random_pairs``' too). Pearson correlation over all pairs of
  the two rows' length ranks inside their batches (or of their lengths); near 0 when partners
  are random, 1 when every batch is sorted longest first.
* :func:`padding_fraction` — share of the padded token slots that are padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def batch_of(batches: Sequence[np.ndarray], n: int) -> np.ndarray:
    """``[n]`` index of the batch each position is in (−1: in none; the last one if in several)."""
    where = np.full(n, -1, dtype=np.int64)
    for k, b in enumerate(batches):
        where[np.asarray(b, dtype=np.int64)] = k
    return where


def reoccurrence(first: Sequence[np.ndarray], second: Sequence[np.ndarray], n: int) -> float:
    """Share of the row pairs sharing a batch in ``first`` that share one in ``second``.

    Args:
        first, second: two plans (e.g. epochs e and e + 1) over positions ``[0, n)``; each
            position at most once per plan.
        n: number of rows of the set.

    Returns:
        A fraction in [0, 1] (NaN when ``first`` has no batch of two rows).
    """
    where = batch_of(second, n)
    pairs = same = 0
    for b in first:
        placed = where[np.asarray(b, dtype=np.int64)]
        pairs += len(b) * (len(b) - 1) // 2
        counts = np.bincount(placed[placed >= 0])
        same += int((counts * (counts - 1) // 2).sum())
    return same / pairs if pairs else float("nan")


def within_batch_ranks(lengths: np.ndarray) -> np.ndarray:
    """Ranks of ``[B]`` lengths scaled to [0, 1] (ties get their mean rank; one row → 0.5).

    >>> within_batch_ranks(np.array([30, 10, 20, 20])).tolist()
    [1.0, 0.0, 0.5, 0.5]
    """
    x = np.asarray(lengths)
    if len(x) < 2:
        return np.full(len(x), 0.5)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x))
    _, tie, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=ranks) / counts)[tie] / (len(x) - 1)


def paired_length_correlation(
    lengths_a: np.ndarray,
    plan_a: Sequence[np.ndarray],
    lengths_b: np.ndarray,
    plan_b: Sequence[np.ndarray],
    *,
    within_batch: bool = True,
) -> float:
    """Correlation of the lengths of partners under row i × row i pairing of two plans.

    Args:
        lengths_a, lengths_b: ``[N_a]``, ``[N_b]`` tokens per row of the two sets.
        plan_a, plan_b: batches per step (positions in the respective set); step s pairs
            ``plan_a[s][i]`` with ``plan_b[s][i]`` for i below the shorter batch's size.
        within_batch: correlate the rows' length ranks inside their own batch (what the
            pairing of sorted batches matches) instead of their lengths.

    Returns:
        Pearson's r over all pairs (NaN when either side has no spread).
    """
    xs, ys = [], []
    for a, b in zip(plan_a, plan_b, strict=False):
        k = min(len(a), len(b))
        la, lb = lengths_a[np.asarray(a)], lengths_b[np.asarray(b)]
        if within_batch:
            la, lb = within_batch_ranks(la), within_batch_ranks(lb)
        xs.append(np.asarray(la[:k], dtype=np.float64))
        ys.append(np.asarray(lb[:k], dtype=np.float64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def padding_fraction(lengths: np.ndarray, plan: Sequence[np.ndarray]) -> float:
    """Padding tokens / all token slots when each batch is padded to its longest row.

    >>> plan = [np.array([0, 1]), np.array([2, 3])]
    >>> round(padding_fraction(np.array([4, 2, 3, 3]), plan), 4)  # 2 of 14
    0.1429
    """
    slots = sum(len(b) * int(lengths[np.asarray(b)].max()) for b in plan if len(b))
    real = sum(int(lengths[np.asarray(b)].sum()) for b in plan)
    return 1.0 - real / slots if slots else 0.0
