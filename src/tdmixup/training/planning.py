"""Which rows each optimiser step of an epoch takes, per training set (the epoch's plan).

*An epoch* is one pass over the training set. With two training sets (``tdmixup``: easy and
ambiguous) it is one pass over the larger one; the smaller one is re-shuffled and cycled.
``random_pairs`` takes two batches of its one set (easy ∪ ambiguous) per step, so its pass has
half as many steps. With ``TrainConfig.steps_per_epoch`` it is that many steps instead, every set
cycled.

The batches themselves (length grouping, exact multi-process sharding, the seed of each epoch's
shuffle) come from :mod:`tdmixup.data.collate`; :func:`plan_epoch` only decides how many steps an
epoch has and which set's batches go together. A plan depends only on the sets, ``cfg`` and the
epoch: every process plans the same global batches and takes its rank's share, and a resumed run
plans an epoch as the first run did.
"""

from __future__ import annotations

import math
from typing import Any

from tdmixup.core.config import Strategy, TrainConfig
from tdmixup.data.collate import (
    Grouping,
    PlannedBatch,
    TokenizedSet,
    cycled_batches,
    epoch_batches,
)
from tdmixup.strategies import step as mixup


def plan_epoch(
    sets: list[TokenizedSet],
    cfg: TrainConfig,
    epoch: int,
    world: int,
    rank: int,
    batch_size: int,
    *,
    per_set: int = 1,
    strategy: Strategy = "none",
    mix_at: str = "cls",
    grouping: Grouping | None = None,
) -> list[list[PlannedBatch]]:
    """Per step, ``per_set`` planned batches from each training set (in ``sets`` order).

    ``strategy`` (and ``mix_at``) set how length-grouped the batches are
    (:func:`tdmixup.strategies.step.batch_grouping`: HF ``Trainer``'s mega-batches where partners do
    not depend on batch-mates) and how few rows a process's share may have
    (:func:`tdmixup.strategies.step.min_rows_per_process`); ``grouping`` overrides the former (for
    measurements).

    By default the largest set defines the epoch (one pass over it) and the others cycle; with
    ``cfg.steps_per_epoch`` every set cycles for exactly that many steps. With ``per_set = 2``
    (``random_pairs``: two batches of one set) step s takes batches 2s and 2s + 1 of the set's
    pass — two random length groups, as TDMixUp's easy and ambiguous batches are — so an epoch is
    one pass over the set in half as many steps; when the pass has an odd number of batches the
    last step's second batch comes from the set's next shuffle (as TDMixUp cycles its smaller set).
    """
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        epoch=epoch,
        world_size=world,
        rank=rank,
        group_by_length=cfg.group_by_length,
        grouping=grouping or mixup.batch_grouping(strategy, mix_at),
        min_rows=mixup.min_rows_per_process(strategy),
    )
    if per_set > 1:
        steps = steps_per_epoch(sets, batch_size, fixed=cfg.steps_per_epoch, per_set=per_set)
        plans = [
            cycled_batches(s.lengths, steps=steps * per_set, seed=cfg.seed + 7919 * i, **common)
            for i, s in enumerate(sets)
        ]
        return [
            [plan[step * per_set + j] for plan in plans for j in range(per_set)]
            for step in range(steps)
        ]
    if cfg.steps_per_epoch is not None:
        plans = [
            cycled_batches(s.lengths, steps=cfg.steps_per_epoch, seed=cfg.seed + 7919 * i, **common)
            for i, s in enumerate(sets)
        ]
        return [list(step) for step in zip(*plans, strict=True)]
    longest = max(range(len(sets)), key=lambda i: len(sets[i]))
    main = epoch_batches(sets[longest].lengths, seed=cfg.seed + 7919 * longest, **common)
    plans = []
    for i, s in enumerate(sets):
        plans.append(
            main
            if i == longest
            else cycled_batches(s.lengths, steps=len(main), seed=cfg.seed + 7919 * i, **common)
        )
    return [list(step) for step in zip(*plans, strict=True)]


def batches_per_set(strategy: str, n_sets: int) -> int:
    """Batches each training set gives one step of ``strategy``: 1, or 2 when ``random_pairs``
    draws both of its batches from one set (:data:`tdmixup.strategies.step.PAIRS_FROM_ONE_SET`).

    Raises:
        ValueError: when the strategy cannot train on ``n_sets`` sets (e.g. ``tdmixup`` on one).
    """
    per_step = mixup.batches_per_step(strategy)  # type: ignore[arg-type]
    if n_sets == per_step:
        return 1
    if n_sets == 1 and strategy in mixup.PAIRS_FROM_ONE_SET:
        return per_step
    one_set = " (or both from one set)" if strategy in mixup.PAIRS_FROM_ONE_SET else ""
    raise ValueError(
        f"strategy {strategy!r} takes {per_step} batch(es) per step, one from each training set"
        f"{one_set}; got {n_sets} sets"
    )


def steps_per_epoch(
    sets: list[TokenizedSet], batch_size: int, *, fixed: int | None = None, per_set: int = 1
) -> int:
    """Optimiser steps in one epoch: ``fixed`` when given, else one pass over the largest set
    (``per_set`` of its batches per step)."""
    if fixed is not None:
        return fixed
    return math.ceil(max(math.ceil(len(s) / batch_size) for s in sets) / per_set)
