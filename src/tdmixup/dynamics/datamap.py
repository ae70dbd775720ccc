"""Data-map regions (easy-to-learn, ambiguous, hard-to-learn), their id files and summary.

Regions follow Dataset Cartography (Swayamdipta et al. 2020) and TDMixUp section 2.1, from the
statistics of :func:`tdmixup.dynamics.table.compute_statistics`. Each region holds ``n`` samples:
``n = count``, or ``n = floor(fraction · N)``.

Plots and the whole data-map folder (:func:`~tdmixup.dynamics.datamap_plots.save_datamap`):
:mod:`tdmixup.dynamics.datamap_plots`, which imports this module (never the other way).

Rankings (total orders: ``sample_id`` ascending breaks any remaining tie):

* **ambiguous** — highest variability first; ties: lower confidence first (a tied sample of
  higher confidence is the better easy-to-learn candidate, so it is left for that region).
* **easy** — highest confidence first; ties: lower variability first (the paper's easy samples
  are "high-confidence, low-variability").
* **hard** — lowest confidence first; ties: lower variability first (consistently unlearnt,
  rather than fluctuating).

Default (``allow_overlap=False``): regions are disjoint. Ambiguous is picked first, from all
samples, so it is exactly Cartography's ambiguous set; easy then takes the best ``n`` of the
rest, and hard the best ``n`` of what is left. A sample that is both highly confident and highly
variable therefore counts as ambiguous: the paper defines easy by high confidence *and* low
variability, and ambiguous by high variability alone. Needs ``3n ≤ N``.

``allow_overlap=True`` reproduces Cartography's selection code: three independent sorts, one
metric each, so easy and ambiguous (or hard and ambiguous) may share samples. Cartography keeps
``int(fraction · N) + 1`` rows and does not break ties; pass ``count=int(0.3319 * N) + 1`` to
get its "33 %" sizes.

``stratify=True`` (the pipeline's default, ``--stratify-regions``) applies the same rules
within each class: class k gives ``n_k ≈ n · N_k / N`` samples to every region (largest
remainders, so the region still holds ``n``), ambiguous by variability first, then easy by
confidence among the rest, then hard among what is left, all within the class. Each region then
has the data's class mix (±1 sample per class). Without it, a class that is hard for the model
gathers in the hard region and is scarce in easy ∪ ambiguous (1,500 SNLI pairs: the hard third
~70 % neutral; the Cartography TREC logs: no sample of one class in the easy region), and
TDMixUp, trained on easy and ambiguous, learns to under-predict it. In disjoint mode a class
gives at most a third of itself to each region, so a region may fall short of ``n`` by a few
samples when a class is tiny.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.core.classmix import ClassMix
from tdmixup.core.layout import id_file
from tdmixup.core.runio import atomic_output

REGIONS = ("easy", "ambiguous", "hard")
REGION_TITLES = {"easy": "easy-to-learn", "ambiguous": "ambiguous", "hard": "hard-to-learn"}
_INTEGER_LINE = re.compile(r"^\s*[+-]?\d+\s*$")


def statistics_columns(stats: pd.DataFrame | Mapping[str, Any], *names: str) -> list[np.ndarray]:
    """``sample_id`` (a column, or else the DataFrame index) and the named columns as arrays."""
    if isinstance(stats, pd.DataFrame) and "sample_id" not in stats.columns:
        ids = stats.index.to_numpy()
    else:
        ids = np.asarray(stats["sample_id"])
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"sample_id must be integers; got dtype {ids.dtype}")
    out = [ids.astype(np.int64)]
    for name in names:
        if name not in stats:
            raise ValueError(
                f"statistics lack the column {name!r}; "
                "use tdmixup.dynamics.table.compute_statistics"
            )
        values = np.asarray(stats[name], dtype=np.float64)
        if values.shape != ids.shape or not np.isfinite(values).all():
            raise ValueError(f"{name!r} must be {len(ids)} finite values; got shape {values.shape}")
        out.append(values)
    return out


def _region_size(num_samples: int, fraction: float | None, count: int | None) -> int:
    if count is not None:
        if int(count) != count or not 0 <= count <= num_samples:
            raise ValueError(f"count must be an integer in [0, {num_samples}]; got {count!r}")
        return int(count)
    if fraction is None or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction!r}")
    return int(np.floor(fraction * num_samples + 1e-9))


def _ranking(
    order: np.ndarray, key: np.ndarray, tie_key: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """Make ``order`` (positions sorted by ``key``, either direction) a total order: within each run
    of equal ``key`` values, sort by ``tie_key`` then ``ids`` ascending. Like ``np.lexsort`` but
    one argsort serves two rankings and only the (usually few) tied samples are re-sorted."""
    values = key[order]
    same = values[1:] == values[:-1]
    if not same.any():
        return order
    order = order.copy()
    in_tie = np.zeros(len(order), dtype=bool)
    in_tie[1:] |= same
    in_tie[:-1] |= same
    slots = np.flatnonzero(in_tie)
    run = np.cumsum(np.r_[True, ~same])[slots]
    tied = order[slots]
    order[slots] = tied[np.lexsort((ids[tied], tie_key[tied], run))]
    return order


def _class_quotas(class_sizes: np.ndarray, n: int, *, disjoint: bool) -> np.ndarray:
    """``[K]`` samples per class for a region of ``n``: ``n · N_k / N`` rounded by largest
    remainders; in disjoint mode a class is never asked for more than a third of itself."""
    exact = n * class_sizes / max(int(class_sizes.sum()), 1)
    quotas = np.floor(exact + 1e-9).astype(np.int64)
    room = quotas + 1 <= (class_sizes // 3 if disjoint else class_sizes)
    order = np.argsort(-(exact - quotas), kind="stable")
    order = order[room[order]]
    quotas[order[: max(n - int(quotas.sum()), 0)]] += 1
    return quotas


def _take_per_class(order: np.ndarray, classes: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    """The first ``quotas[k]`` positions of each class k in ``order``, still in ``order``'s order
    (vectorised: a stable sort by class gives every position its rank within its class)."""
    cls = classes[order]
    by_class = np.argsort(cls, kind="stable")
    sorted_cls = cls[by_class]
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_class] = np.arange(len(order)) - np.searchsorted(sorted_cls, sorted_cls, side="left")
    return order[rank < quotas[cls]]


def assign_regions(
    stats: pd.DataFrame | Mapping[str, Any],
    *,
    fraction: float = 0.33,
    count: int | None = None,
    allow_overlap: bool = False,
    stratify: bool = False,
) -> dict[str, np.ndarray]:
    """Split samples into easy / ambiguous / hard regions (rules in the module docstring).

    Args:
        stats: per-sample ``confidence`` and ``variability`` (``[N]`` each) with ``sample_id``
            as a column or, for a DataFrame, as the index; ``gold`` (``[N]`` class indices)
            when ``stratify``.
        fraction: region size as a fraction of ``N`` (``n = floor(fraction · N)``).
        count: region size in samples; overrides ``fraction``.
        allow_overlap: independent sorts as in Cartography's code (regions may share samples).
        stratify: take each region's samples within every class in proportion to the class's
            size (the pipeline's default; off here, the paper's and Cartography's rule).

    Returns:
        ``{"easy", "ambiguous", "hard"}`` → ``[n]`` int64 sample ids, most typical first.

    Raises:
        ValueError: on missing / non-finite columns, a bad size, or ``3n > N`` without overlap.

    >>> stats = {"sample_id": [10, 11, 12, 13], "confidence": [0.9, 0.5, 0.1, 0.9],
    ...          "variability": [0.0, 0.3, 0.05, 0.3]}
    >>> {k: v.tolist() for k, v in assign_regions(stats, count=1).items()}
    {'easy': [10], 'ambiguous': [11], 'hard': [12]}
    >>> assign_regions(stats, count=1, allow_overlap=True)["easy"].tolist()
    [10]
    >>> skewed = {"sample_id": [10, 11, 12, 13, 14, 15], "gold": [0, 0, 0, 1, 1, 1],
    ...           "confidence": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1],  # class 1 is hard
    ...           "variability": [0.0, 0.02, 0.3, 0.25, 0.01, 0.05]}
    >>> assign_regions(skewed, count=2)["easy"].tolist()  # no sample of class 1
    [10, 11]
    >>> {k: v.tolist() for k, v in assign_regions(skewed, count=2, stratify=True).items()}
    {'easy': [10, 14], 'ambiguous': [12, 13], 'hard': [15, 11]}
    """
    if stratify:
        ids, conf, var, gold = statistics_columns(stats, "confidence", "variability", "gold")
        _, classes = np.unique(gold, return_inverse=True)
    else:
        ids, conf, var = statistics_columns(stats, "confidence", "variability")
        classes = np.zeros(len(ids), dtype=np.int64)
    classes = classes.astype(np.int64)
    n = _region_size(len(ids), fraction, count)
    by_conf = np.argsort(conf)
    orders = {
        "ambiguous": _ranking(np.argsort(var)[::-1], var, conf, ids),
        "easy": _ranking(by_conf[::-1], conf, var, ids),
        "hard": _ranking(by_conf, conf, var, ids),
    }
    if not allow_overlap and 3 * n > len(ids):
        raise ValueError(
            f"cannot pick 3 disjoint regions of {n} samples from {len(ids)}; "
            "use a fraction ≤ 1/3 or allow_overlap=True"
        )
    quotas = (
        _class_quotas(np.bincount(classes), n, disjoint=not allow_overlap) if stratify else None
    )

    def first(order: np.ndarray) -> np.ndarray:
        return order[:n] if quotas is None else _take_per_class(order, classes, quotas)

    if allow_overlap:
        return {name: ids[first(orders[name])] for name in REGIONS}
    taken = np.zeros(len(ids), dtype=bool)
    picked: dict[str, np.ndarray] = {}
    for name in ("ambiguous", "easy", "hard"):
        order = orders[name]
        chosen = first(order[~taken[order]])
        taken[chosen] = True
        picked[name] = ids[chosen]
    return {name: picked[name] for name in REGIONS}


def write_regions(
    regions: Mapping[str, np.ndarray], folder: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``{folder}/{name}.txt`` per region, one sample id per line, each file atomically."""
    paths = {}
    for name, ids in regions.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"region name {name!r} is not a plain file name")
        path = id_file(Path(folder), name)
        lines = np.asarray(ids, dtype=np.int64).astype(str)
        with atomic_output(path) as tmp:
            tmp.write_text("".join(f"{line}\n" for line in lines.tolist()))
        paths[name] = path
    return paths


def read_region_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one sample id per line (blank lines are skipped) → ``[n]`` int64 in file order.

    Raises:
        ValueError: naming the file and line of the first non-integer or repeated id.
    """
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip() and not _INTEGER_LINE.match(line):
            raise ValueError(
                f"{path}, line {number}: {line.strip()[:40]!r} is not an integer sample id"
            )
    numbers = np.array([i for i, line in enumerate(lines, start=1) if line.strip()], dtype=np.int64)
    ids = np.array([int(line) for line in lines if line.strip()], dtype=np.int64)
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        repeated = np.sort(first[counts > 1])
        raise ValueError(
            f"{path}, line {numbers[repeated[0]]}: "
            f"sample id {ids[repeated[0]]} appears more than once"
        )
    return ids


def datamap_summary(
    stats: pd.DataFrame,
    regions: Mapping[str, np.ndarray],
    *,
    stratify: bool,
    class_mix: ClassMix,
    suspects: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a data map's ``done.json`` / ``summary.json`` records: samples, region sizes, whether
    regions were taken within each class, the regions' class counts and warnings, and the
    suspects (``suspects.csv``: :func:`tdmixup.dynamics.suspects.flag_summary`) when given."""
    summary = {
        "n": int(len(stats)),
        "regions": {k: int(len(v)) for k, v in regions.items()},
        "stratify_regions": stratify,
        "class_counts": class_mix["counts"],
        "class_warnings": class_mix["warnings"],
    }
    if suspects is not None:
        summary["suspects"] = dict(suspects)
    return summary


STRATIFIED_NOTE = "regions taken within each class (--stratify-regions), so their outlines overlap"
"""The second title line of a data map whose regions were taken per class: each class has its own
confidence scale, so a region's convex hull spans the other regions' (the overlap is real)."""


def png_title(title: str, *, stratified: bool) -> str:
    """The PNG's title: ``title``, and with class-stratified regions a second line saying why
    their outlines overlap (:data:`STRATIFIED_NOTE`)."""
    return title + (f"\n{STRATIFIED_NOTE}" if stratified else "")


def datamap_title(stats: pd.DataFrame) -> str:
    """A data map's title from its statistics' ``attrs``, e.g.
    ``"snli data map: 2,000 training samples, 3 epochs (end-of-epoch dynamics)"``."""
    attrs = getattr(stats, "attrs", {})
    mode = {"epoch_end": "end-of-epoch dynamics", "train_pass": "training-pass dynamics"}.get(
        attrs.get("mode", "")
    )
    epochs = attrs.get("num_epochs")
    details = [f"{len(stats):,} training samples"] + ([f"{epochs} epochs"] if epochs else [])
    name = f"{attrs['task']} data map" if attrs.get("task") else "Data map"
    return f"{name}: {', '.join(details)}" + (f" ({mode})" if mode else "")
