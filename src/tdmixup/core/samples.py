"""Per-sample tables a person reads without code: sample id, text, gold label name, statistics.

The id files that stages pass on (``datamap/regions/easy.txt``, ``aum_easy/kept.txt``) hold bare
sample ids; beside each, a CSV with the same samples in the same order adds what a reader needs
to judge them: the text, the gold label by name, the data-map statistics and AUM where known.
Spreadsheets and pandas read them as they are (UTF-8, one header line, RFC 4180 quoting).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.core.runio import atomic_output

STAT_COLUMNS = ("confidence", "variability", "correctness", "aum")
"""Statistics copied into a table when known, in this order."""


def sample_texts(dataset: Any, kind: str) -> dict[int, str]:
    """Sample id → one readable string per sample of a schema dataset.

    Single-sentence tasks: ``"text_a"``; pair tasks: ``"text_a ⟂ text_b"``; multiple choice:
    ``"context → ending0 | ending1 | …"``.
    """
    cols = dataset.to_dict() if hasattr(dataset, "to_dict") else dict(dataset)
    texts: Iterable[str]
    if kind == "single":
        texts = (str(a) for a in cols["text_a"])
    elif kind == "pair":
        texts = (f"{a} ⟂ {b}" for a, b in zip(cols["text_a"], cols["text_b"], strict=True))
    else:
        texts = (
            f"{c} → {' | '.join(e)}" for c, e in zip(cols["context"], cols["endings"], strict=True)
        )
    return dict(zip((int(i) for i in cols["sample_id"]), texts, strict=True))


def sample_table(
    sample_ids: Sequence[int] | np.ndarray,
    *,
    texts: Mapping[int, str] | None = None,
    gold: Mapping[int, int] | pd.Series | None = None,
    label_names: Sequence[str] | None = None,
    stats: pd.DataFrame | None = None,
    extra: Mapping[str, Mapping[int, Any] | pd.Series] | None = None,
) -> pd.DataFrame:
    """One row per id of ``sample_ids`` (in that order) with what is known about it.

    Args:
        sample_ids: ``[N]`` ids; the row order of the result.
        texts: id → text (see :func:`sample_texts`); column ``text``.
        gold: id → gold class index; column ``gold_label`` (the name when ``label_names`` is given).
            Default: ``stats["gold"]`` when present.
        label_names: class names in index order; ``prediction`` (from ``stats``) is named too.
        stats: per-sample statistics indexed by ``sample_id``
            (:func:`tdmixup.dynamics.table.compute_statistics`); :data:`STAT_COLUMNS` are copied.
        extra: further columns, each keyed by id (e.g. ``aum`` and ``threshold`` of an AUM run,
            which replace the statistics' ``aum``).

    Returns:
        DataFrame with ``sample_id`` first; a column unknown for every id is left out.

    >>> texts = {1: "a ⟂ b", 3: "c ⟂ d"}
    >>> sample_table([3, 1], texts=texts, gold={1: 0, 3: 1}, label_names=["no", "yes"])
       sample_id   text gold_label
    0          3  c ⟂ d        yes
    1          1  a ⟂ b         no
    """
    ids = pd.Index(np.asarray(sample_ids, dtype=np.int64), name="sample_id")
    table = pd.DataFrame(index=ids)
    if texts is not None:
        table["text"] = pd.Series(texts, dtype=object).reindex(ids)
    if gold is None and stats is not None and "gold" in stats:
        gold = stats["gold"]
    if gold is not None:
        table["gold_label"] = _named(pd.Series(gold).reindex(ids), label_names)
    if stats is not None:
        if "prediction" in stats:
            table["prediction"] = _named(stats["prediction"].reindex(ids), label_names)
        for name in STAT_COLUMNS:
            if name in stats:
                table[name] = stats[name].reindex(ids)
    for name, values in (extra or {}).items():
        table[name] = pd.Series(values).reindex(ids)
    table = table.loc[:, table.notna().any(axis=0)] if len(table) else table
    return table.reset_index()


def _named(indices: pd.Series, names: Sequence[str] | None) -> pd.Series:
    """Class indices → names (indices outside ``names`` stay numbers); unchanged without names."""
    if not names:
        return indices.astype("Int64")
    lookup = {i: str(n) for i, n in enumerate(names)}
    return indices.map(lambda k: lookup.get(int(k), str(int(k))) if pd.notna(k) else None)


def write_sample_csv(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a :func:`sample_table` as UTF-8 CSV, atomically; floats with 6 significant digits."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g", encoding="utf-8")
