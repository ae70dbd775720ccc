"""Data-map plots: a PNG for reports, an interactive offline HTML page for exploring samples;
and :func:`save_datamap`, which writes a data map's whole folder (regions, statistics, plots).

Both plots read the statistics of :func:`tdmixup.dynamics.table.compute_statistics` and the
regions of :func:`tdmixup.dynamics.datamap.assign_regions`, and draw a region in the same colour.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.core.config import RankBy
from tdmixup.core.layout import (
    DATAMAP_HTML,
    DATAMAP_PNG,
    REGIONS_DIR,
    STATISTICS,
    SUSPECTS,
    sample_csv,
)
from tdmixup.core.runio import atomic_output, atomic_write_bytes
from tdmixup.core.samples import sample_table, write_sample_csv
from tdmixup.dynamics.datamap import REGION_TITLES, png_title, statistics_columns, write_regions

REGION_COLOURS = {"easy": "#1b9e77", "ambiguous": "#d95f02", "hard": "#7570b3", "other": "#9a9a9a"}
"""One colour per region in both plots (none of them on the PNG's red–blue correctness scale)."""
_REGION_LINES = {"easy": "-", "ambiguous": "--", "hard": ":"}


HTML_MAX_POINTS = 20_000
"""Points drawn in ``datamap.html`` at most (stratified sample above it, said in its title)."""


def plot_datamap_png(
    stats: pd.DataFrame | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str,
    regions: Mapping[str, np.ndarray] | None = None,
    gold_names: Sequence[str] | None = None,
    max_points: int = 25_000,
    seed: int = 0,
) -> Path:
    """Cartography-style data map as a PNG, written atomically.

    Scatter of confidence (y) against variability (x), coloured by correctness in ``E + 1``
    discrete bins ``0, 1/E, …, 1``. When ``regions`` is given, each region is outlined (the convex
    hull of its plotted samples, in :data:`REGION_COLOURS`) and labelled with its size at its
    median point, and a panel shows each region's gold-label mix (needs a ``gold`` column; names
    from ``gold_names``). Histograms of confidence, variability and correctness cover all
    samples. Above ``max_points`` samples, the scatter shows a seeded random subset and the
    title says so.

    Returns:
        ``Path(path)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids, conf, var, corr = statistics_columns(stats, "confidence", "variability", "correctness")
    epochs = _num_epochs(stats, corr)
    bins = np.rint(corr * epochs).astype(int)
    subset = _subsample(len(ids), max_points, seed)
    shown = np.arange(len(ids)) if subset is None else subset
    if subset is not None:
        title = f"{title}\nscatter: {len(shown):,} of {len(ids):,} samples (random, seed {seed})"
    gold = np.asarray(stats["gold"], dtype=np.int64) if "gold" in stats else None
    with_mix = regions is not None and gold is not None

    fig = plt.figure(figsize=(13, 9))
    grid = fig.add_gridspec(2, 4 if with_mix else 3, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0, :])
    _draw_correctness_scatter(ax, var, conf, bins, shown, epochs)
    ax.set(xlabel="variability", ylabel="confidence", title=title)
    if regions is None:
        _label_region_corners(ax)
    else:
        _draw_region_outlines(ax, ids, var, conf, regions, shown)
    _draw_histograms(fig, grid, conf, var, bins, epochs)
    if regions is not None and gold is not None:
        _plot_class_mix(fig.add_subplot(grid[1, 3]), class_mix(ids, gold, regions, gold_names))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


_LABEL_BOX = {"boxstyle": "round,pad=0.3", "fc": "white", "lw": 2}
"""The box around a region's label in the PNG (its edge colour is the region's)."""


def _draw_correctness_scatter(
    ax: Any,
    var: np.ndarray,
    conf: np.ndarray,
    bins: np.ndarray,
    shown: np.ndarray,
    epochs: int,
) -> None:
    """Scatter the ``shown`` rows, one colour per correctness bin ``k / epochs``, with a legend."""
    import matplotlib

    colours = matplotlib.colormaps["coolwarm_r"](np.linspace(0, 1, epochs + 1))
    size = 4 if len(shown) > 5_000 else 16
    for k in range(epochs + 1):
        sel = shown[bins[shown] == k]
        ax.scatter(
            var[sel], conf[sel], s=size, color=colours[k], label=f"{k / epochs:.2f}", linewidths=0
        )
    ax.legend(title="correctness", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)


def _label_region_corners(ax: Any) -> None:
    """Without regions: name the easy, ambiguous and hard corners at fixed spots of the axes."""
    spots = {"easy": (0.27, 0.85), "ambiguous": (0.9, 0.5), "hard": (0.35, 0.25)}
    for name, (x, y) in spots.items():
        ax.annotate(
            REGION_TITLES[name],
            xy=(x, y),
            xycoords="axes fraction",
            ha="center",
            fontsize=13,
            bbox={**_LABEL_BOX, "ec": REGION_COLOURS[name]},
        )


def _draw_region_outlines(
    ax: Any,
    ids: np.ndarray,
    var: np.ndarray,
    conf: np.ndarray,
    regions: Mapping[str, np.ndarray],
    shown: np.ndarray,
) -> None:
    """Outline each region (hull of its plotted samples); label it with its size at its median."""
    rows_of = _region_rows(ids, regions)
    for name, rows in rows_of.items():
        colour = REGION_COLOURS.get(name, "k")
        drawn = np.intersect1d(rows, shown)
        if len(drawn) >= 3:
            hull = _convex_hull(var[drawn], conf[drawn])
            ax.fill(hull[:, 0], hull[:, 1], facecolor=colour, alpha=0.08, edgecolor="none")
            ax.fill(
                hull[:, 0],
                hull[:, 1],
                facecolor="none",
                edgecolor=colour,
                lw=2,
                linestyle=_REGION_LINES.get(name, "-"),
            )
        if len(rows):
            label = f"{REGION_TITLES.get(name, name)}\n{len(rows):,} ({len(rows) / len(ids):.0%})"
            ax.annotate(
                label,
                xy=(np.median(var[rows]), np.median(conf[rows])),
                ha="center",
                va="center",
                fontsize=11,
                bbox={**_LABEL_BOX, "ec": colour},
            )


def _draw_histograms(
    fig: Any, grid: Any, conf: np.ndarray, var: np.ndarray, bins: np.ndarray, epochs: int
) -> None:
    """The bottom row: histograms of confidence and variability (all samples), correctness bars."""
    hist_specs = [(conf, "confidence", "#622a87"), (var, "variability", "teal")]
    for col, (values, name, colour) in enumerate(hist_specs):
        hist_ax = fig.add_subplot(grid[1, col])
        hist_ax.hist(values, bins=30, color=colour)
        hist_ax.set(xlabel=name, ylabel="samples" if col == 0 else None)
    bar_ax = fig.add_subplot(grid[1, 2])
    bar_ax.bar(
        [f"{k / epochs:.2f}" for k in range(epochs + 1)],
        np.bincount(bins, minlength=epochs + 1),
        color="#86bf91",
    )
    bar_ax.set(xlabel="correctness")


def _region_rows(ids: np.ndarray, regions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Region name → positions in ``ids`` of its members (members not in ``ids`` are ignored)."""
    position = pd.Series(np.arange(len(ids)), index=ids)
    return {
        name: position.reindex(np.asarray(members)).dropna().to_numpy(dtype=np.int64)
        for name, members in regions.items()
    }


def class_mix(
    ids: np.ndarray,
    gold: np.ndarray,
    regions: Mapping[str, np.ndarray],
    gold_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Share of each gold label in each region: rows = regions (in order), columns = labels.

    Args:
        ids: ``[N]`` sample ids; gold: ``[N]`` their gold class indices.
        regions: region name → member ids (from :func:`tdmixup.dynamics.datamap.assign_regions`).
        gold_names: class names in index order (default: the indices as strings).

    Returns:
        DataFrame of fractions (each non-empty row sums to 1); ``attrs["counts"]``: region sizes.

    >>> regions = {"easy": [1, 2], "hard": [3, 4]}
    >>> class_mix(np.array([1, 2, 3, 4]), np.array([0, 1, 1, 1]), regions, ["no", "yes"])
           no  yes
    easy  0.5  0.5
    hard  0.0  1.0
    """
    gold = np.asarray(gold, dtype=np.int64)
    k = max(len(gold_names or ()), int(gold.max(initial=-1)) + 1)
    names = [
        str(gold_names[c]) if gold_names is not None and c < len(gold_names) else str(c)
        for c in range(k)
    ]
    rows = _region_rows(np.asarray(ids), regions)
    counts = (
        np.stack([np.bincount(gold[r], minlength=k) for r in rows.values()])
        if rows
        else np.zeros((0, k))
    )
    sizes = counts.sum(axis=1, keepdims=True)
    mix = pd.DataFrame(counts / np.maximum(sizes, 1), index=list(rows), columns=names)
    mix.attrs["counts"] = sizes[:, 0].astype(int).tolist()
    return mix


def _plot_class_mix(ax: Any, mix: pd.DataFrame) -> None:
    """Stacked horizontal bars: one per region, one segment per gold label, percentages inside."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"](np.arange(10))
    labels = [REGION_TITLES.get(r, r) for r in mix.index]
    left = np.zeros(len(mix))
    for c, name in enumerate(mix.columns):
        share = mix[name].to_numpy()
        ax.barh(labels, share, left=left, color=palette[c % len(palette)], label=name)
        for y, (x0, w) in enumerate(zip(left, share, strict=True)):
            if w >= 0.12:
                ax.text(
                    x0 + w / 2, y, f"{w:.0%}", ha="center", va="center", fontsize=8, color="white"
                )
        left += share
    ax.set(xlim=(0, 1), xlabel="gold labels per region")
    ax.invert_yaxis()
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35),
        ncol=min(len(mix.columns), 3),
        frameon=False,
    )


def _convex_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Convex hull of ``(x[i], y[i])``, ``[H, 2]`` counter-clockwise (Andrew's monotone chain)."""
    points = np.unique(np.column_stack([x, y]), axis=0)  # sorted by x, then y
    if len(points) < 3:
        return points

    def chain(seq: np.ndarray) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for px, py in seq.tolist():
            while (
                len(out) >= 2
                and (
                    (out[-1][0] - out[-2][0]) * (py - out[-2][1])
                    - (out[-1][1] - out[-2][1]) * (px - out[-2][0])
                )
                <= 0
            ):
                out.pop()
            out.append((px, py))
        return out

    lower, upper = chain(points), chain(points[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


_SYMBOLS = ("circle", "square", "diamond", "cross", "x", "triangle-up", "triangle-down", "star")
_POST_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var n = 0;
gd._fullData.forEach(function (t) { n += (t._length != null) ? t._length : t.x.length; });
document.body.setAttribute('data-points', n);
document.body.setAttribute('data-rendered', gd.querySelectorAll('.scatterlayer .point').length);
document.title = %s;
"""


def _escape(values: pd.Series) -> pd.Series:
    return values.str.replace("&", "&amp;").str.replace("<", "&lt;").str.replace(">", "&gt;")


def _per_sample(values: Any, ids: np.ndarray, what: str) -> pd.Series:
    """Mapping / Series keyed by sample id, or array in row order → Series aligned with ``ids``."""
    if isinstance(values, Mapping | pd.Series):
        return pd.Series(values).reindex(ids)
    array = np.asarray(values)
    if array.shape != ids.shape:
        raise ValueError(
            f"{what} must be keyed by sample id or hold {len(ids)} values; got shape {array.shape}"
        )
    return pd.Series(array, index=ids)


def _region_names(ids: np.ndarray, regions: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """Region of each sample: a region name, names joined by '+' if regions overlap, or 'other'."""
    names = list(regions or {})
    code = np.zeros(len(ids), dtype=np.int64)
    for bit, name in enumerate(names):
        code |= np.isin(ids, np.asarray(regions[name])).astype(np.int64) << bit  # type: ignore[index]
    labels = [
        "+".join(n for b, n in enumerate(names) if c >> b & 1) or "other"
        for c in range(1 << len(names))
    ]
    return np.asarray(labels, dtype=object)[code]


def plot_datamap_html(
    stats: pd.DataFrame | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str = "Data map",
    texts: Mapping[int, str] | pd.Series | None = None,
    gold_names: Sequence[str] | None = None,
    predictions: Mapping[int, int] | pd.Series | np.ndarray | None = None,
    regions: Mapping[str, np.ndarray] | None = None,
    max_points: int = HTML_MAX_POINTS,
    webgl_above: int = 20_000,
    seed: int = 0,
) -> Path:
    """Interactive data map as one self-contained offline HTML file (plotly.js inlined), atomically.

    One point per sample up to ``max_points`` (default :data:`HTML_MAX_POINTS`); above it a
    seeded random subset stratified by region (each region keeps its share, and at least
    ``min(its size, max_points // 100)`` points, so a small region stays visible), said in the
    title. Every sample stays in ``statistics.parquet`` and the region CSVs. At 550,000 samples
    the file stays near 8 MB (uncapped it was ~157 MB; ``benchmarks/scale/``).
    ``scattergl`` above ``webgl_above`` points. One trace per (region, gold label): the legend
    toggles each (grouped by region) and a dropdown shows all, one region, one label or one
    (region, label) pair (pairs only when there are at most 60). Hover shows the sample id,
    text, gold label, prediction, confidence, variability, correctness and AUM. After drawing,
    the page sets ``document.title`` and ``<body data-points=…>`` (points held).

    Args:
        stats: statistics with ``confidence``, ``variability``, ``correctness``, ``gold`` (and
            ``aum``, ``prediction`` if present); ``sample_id`` a column or the index.
        path: output ``.html`` file.
        title: plot title.
        texts: sample id → text shown on hover (escaped, cut to 300 characters).
        gold_names: class names in index order (default: the indices).
        predictions: predicted class per sample (keyed by id, or in row order); default the
            ``prediction`` column.
        regions: output of :func:`assign_regions`; samples in none are "other".
        max_points, webgl_above, seed: size cap, WebGL threshold and subsample seed.
    """
    import plotly.graph_objects as go

    ids, conf, var, corr, gold = statistics_columns(
        stats, "confidence", "variability", "correctness", "gold"
    )
    gold = gold.astype(np.int64)
    aum = (
        np.asarray(stats["aum"], dtype=np.float64) if "aum" in stats else np.full(len(ids), np.nan)
    )
    if predictions is None and "prediction" in stats:
        predictions = np.asarray(stats["prediction"])
    names = _checked_class_names(gold, gold_names)
    region = _region_names(ids, regions)
    rows = _subsample_regions(region, max_points, seed)
    if rows is not None:
        title = (
            f"{title} — {len(rows):,} of {len(ids):,} samples shown (random, stratified by "
            f"region, seed {seed}; all in statistics.parquet)"
        )
    rows = np.arange(len(ids)) if rows is None else rows
    hover_at = _hover_texts(ids, rows, texts, predictions, names)
    safe_names = _escape(pd.Series(names, dtype=object).astype(str)).tolist()
    traces, keys = _region_label_traces(
        go.Scattergl if len(rows) > webgl_above else go.Scatter,
        _Points(var=var, conf=conf, corr=corr, aum=aum, gold=gold, region=region, hover=hover_at),
        rows,
        regions,
        safe_names,
    )
    fig = go.Figure(traces)
    fig.update_layout(
        title=title,
        xaxis_title="variability",
        yaxis_title="confidence",
        template="plotly_white",
        legend={"groupclick": "toggleitem"},
        height=750,
        updatemenus=[
            {
                "buttons": _filter_buttons(keys, safe_names),
                "x": 1.0,
                "y": 1.08,
                "xanchor": "right",
                "showactive": True,
            }
        ],
    )
    with atomic_output(path) as tmp:
        fig.write_html(
            tmp,
            include_plotlyjs=True,
            full_html=True,
            include_mathjax=False,
            post_script=_POST_SCRIPT % json.dumps(title).replace("</", "<\\/"),
            config={"displaylogo": False},
        )
    return Path(path)


def _checked_class_names(gold: np.ndarray, gold_names: Sequence[str] | None) -> list[str]:
    """``gold_names`` as a list (default: the indices as strings), checked to cover ``gold``."""
    names = (
        list(gold_names)
        if gold_names is not None
        else [str(k) for k in range(int(gold.max(initial=0)) + 1)]
    )
    if len(gold) and gold.max() >= len(names):
        raise ValueError(f"gold_names has {len(names)} names but gold reaches {gold.max()}")
    return names


def _hover_texts(
    ids: np.ndarray,
    rows: np.ndarray,
    texts: Mapping[int, str] | pd.Series | None,
    predictions: Mapping[int, int] | pd.Series | np.ndarray | None,
    names: list[str],
) -> np.ndarray:
    """``[N]`` object array of hover HTML (id, escaped text, prediction), set at ``rows`` only."""
    shown = ids[rows]  # hover text only for the points drawn (550k strings cost ~10 s)
    hover = "<b>sample " + pd.Series(shown.astype(str), index=shown) + "</b>"
    if texts is not None:
        text = _escape(_per_sample(texts, ids, "texts").iloc[rows].fillna("").astype(str))
        text = text.str.slice(0, 300)
        hover += "<br>" + text.str.wrap(80, break_long_words=False).str.replace("\n", "<br>")
    if predictions is not None:
        pred = _per_sample(predictions, ids, "predictions").iloc[rows]
        pred_names = pred.map(
            lambda k: names[int(k)] if pd.notna(k) and 0 <= int(k) < len(names) else "?"
        )
        hover += "<br>prediction: " + _escape(pred_names.astype(str))
    hover_at = np.empty(len(ids), dtype=object)
    hover_at[rows] = hover.to_numpy()
    return hover_at


@dataclass(frozen=True)
class _Points:
    """The HTML plot's per-sample columns, each ``[N]`` in the statistics' row order."""

    var: np.ndarray
    conf: np.ndarray
    corr: np.ndarray
    aum: np.ndarray
    gold: np.ndarray
    region: np.ndarray  # region name of each sample (:func:`_region_names`)
    hover: np.ndarray  # hover HTML (:func:`_hover_texts`)


def _region_label_traces(
    scatter: Any,
    points: _Points,
    rows: np.ndarray,
    regions: Mapping[str, np.ndarray] | None,
    safe_names: list[str],
) -> tuple[list[Any], list[tuple[str, int]]]:
    """One ``scatter`` trace per (region, gold label) present in ``rows``, and those keys."""
    traces, keys = [], []
    region, gold = points.region, points.gold
    order = {name: i for i, name in enumerate(regions or {})}
    present = sorted(
        pd.unique(region[rows]),
        key=lambda r: (r == "other", r.count("+"), order.get(r.split("+")[0], 0), r),
    )
    for region_name in present:
        group_title = REGION_TITLES.get(region_name, region_name)
        for label in np.unique(gold[rows]):
            sel = rows[(region[rows] == region_name) & (gold[rows] == label)]
            if not len(sel):
                continue
            traces.append(
                scatter(
                    x=points.var[sel],
                    y=points.conf[sel],
                    mode="markers",
                    name=f"{group_title} · {safe_names[label]}",
                    legendgroup=region_name,
                    legendgrouptitle_text=group_title,
                    text=points.hover[sel],
                    customdata=np.column_stack([points.corr[sel], points.aum[sel]]),
                    marker={
                        "color": REGION_COLOURS.get(region_name.split("+")[0], "#9467bd"),
                        "symbol": _SYMBOLS[label % len(_SYMBOLS)],
                        "size": 5,
                        "opacity": 0.7,
                    },
                    hovertemplate=(
                        f"%{{text}}<br>gold: {safe_names[label]}<br>confidence: %{{y:.3f}}"
                        "<br>variability: %{x:.3f}<br>correctness: %{customdata[0]:.2f}"
                        "<br>AUM: %{customdata[1]:.3f}<extra></extra>"
                    ),
                )
            )
            keys.append((region_name, int(label)))
    return traces, keys


def _filter_buttons(keys: list[tuple[str, int]], safe_names: list[str]) -> list[dict[str, Any]]:
    """The dropdown: all, one region, one label, or one (region, label) pair if at most 60."""
    filters: list[tuple[str, Any, Any]] = [("all samples", None, None)]
    filters += [(REGION_TITLES.get(r, r), r, None) for r in dict.fromkeys(k[0] for k in keys)]
    filters += [(f"label {safe_names[g]}", None, g) for g in sorted({k[1] for k in keys})]
    if len(keys) <= 60:
        filters += [(f"{REGION_TITLES.get(r, r)} · {safe_names[g]}", r, g) for r, g in keys]
    return [
        {
            "label": label,
            "method": "restyle",
            "args": [
                {"visible": [(r is None or k[0] == r) and (g is None or k[1] == g) for k in keys]}
            ],
        }
        for label, r, g in filters
    ]


def _num_epochs(stats: pd.DataFrame | Mapping[str, Any], correct: np.ndarray) -> int:
    """``E`` from ``stats.attrs``, else the smallest E making every ``correctness · E`` whole."""
    attrs = getattr(stats, "attrs", {})
    if "num_epochs" in attrs:
        return int(attrs["num_epochs"])
    for epochs in range(1, 101):
        if np.allclose(correct * epochs, np.round(correct * epochs), atol=1e-6):
            return epochs
    raise ValueError(
        "cannot tell the number of epochs from correctness; set stats.attrs['num_epochs']"
    )


def _subsample_regions(region: np.ndarray, max_points: int, seed: int) -> np.ndarray | None:
    """Sorted row positions of at most ``max_points`` samples, drawn per region (seeded): each
    region its proportional share, at least ``min(size, max_points // 100)``; None when all
    samples fit."""
    if len(region) <= max_points:
        return None
    rng = np.random.default_rng(seed)
    names, codes, counts = np.unique(region.astype(str), return_inverse=True, return_counts=True)
    floor = max_points // 100
    quota = np.maximum(np.floor(counts * max_points / len(region)), np.minimum(counts, floor))
    while quota.sum() > max_points:  # the floors pushed it over: trim the largest region
        quota[np.argmax(quota)] -= quota.sum() - max_points
    picked = [
        rng.choice(np.flatnonzero(codes == k), size=int(quota[k]), replace=False)
        for k in range(len(names))
    ]
    return np.sort(np.concatenate(picked))


def _subsample(num_samples: int, max_points: int, seed: int) -> np.ndarray | None:
    if num_samples <= max_points:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_samples, size=max_points, replace=False))


def save_datamap(
    stats: pd.DataFrame,
    regions: Mapping[str, np.ndarray],
    folder: str | os.PathLike[str],
    *,
    title: str = "Data map",
    texts: Mapping[int, str] | pd.Series | None = None,
    gold_names: Sequence[str] | None = None,
    source: Any = None,
    mapping: Mapping[str, str] | None = None,
    rank_by: RankBy = "class_confidence",
    flag_fraction: float = 0.1,
    stratified: bool = False,
    own_rows: pd.DataFrame | None = None,
) -> Path:
    """Write a data map's files to ``folder`` (each atomically).

    ``regions/<name>.txt`` (id files, the ``--subset`` input of later stages),
    ``regions/<name>.csv`` (the same samples in the same order with text, gold label, prediction,
    confidence, variability, correctness and AUM: :func:`tdmixup.core.samples.sample_table`),
    ``statistics.parquet`` (one row per sample, from
    :func:`tdmixup.dynamics.table.compute_statistics`), ``datamap.png``, ``datamap.html`` and
    ``suspects.csv``: every sample ranked by ``rank_by``
    (:func:`tdmixup.dynamics.suspects.rank_label_issues`), the lowest ``flag_fraction`` flagged
    ``is_label_issue``, with ``label_score`` (higher = more likely correct), in the columns of the
    user's file (``source``: its schema rows, checked against the statistics' ``gold`` and
    ``text_hash`` first; ``mapping``: the ``--column`` mapping; without ``source``, sample id and
    label only), with predicted label, probability and statistics
    (:func:`tdmixup.dynamics.suspects.suspect_table`). ``stratified``: the regions were taken within
    each class, which the PNG's title says (their outlines overlap,
    :func:`~tdmixup.dynamics.datamap.png_title`). ``own_rows``: every column of the user's
    training file (:func:`tdmixup.data.readers.read_all_columns`); ``suspects.csv`` then keeps
    the whole row, and a warning says how many rows of the file were not trained on (held out
    for dev, or beyond the training size) and so are not judged.
    """
    from tdmixup.dynamics.suspects import (
        label_scores,
        rank_label_issues,
        suspect_table,
        warn_unjudged,
        write_suspects,
    )

    folder = Path(folder)
    write_regions(regions, folder / REGIONS_DIR)
    if source is not None:  # never put another file's rows beside these statistics
        from tdmixup.dynamics.fingerprint import check_statistics

        check_statistics(stats, source, table="the data map's statistics", data="source")
    if len(stats):
        ranked, flagged = rank_label_issues(stats, method=rank_by, fraction=flag_fraction)
        rows = (
            source
            if source is not None
            else {"sample_id": stats.index.to_numpy(), "label": stats["gold"].to_numpy()}
        )
        if hasattr(rows, "to_dict") and hasattr(rows, "column_names"):  # datasets.Dataset
            rows = rows.to_dict()
        table = suspect_table(
            ranked,
            rows,
            mapping=mapping or {},
            label_names=gold_names or (),
            stats=stats,
            extra={
                "label_score": label_scores(stats, rank_by),
                "is_label_issue": pd.Series(np.isin(ranked, flagged), index=ranked),
            },
            own_rows=own_rows,
        )
        write_suspects(table, sample_csv(folder, SUSPECTS))
        if own_rows is not None:
            warn_unjudged(own_rows, stats.index.to_numpy())
    text_map = dict(texts) if texts is not None else None
    for name, ids in regions.items():
        table = sample_table(ids, texts=text_map, label_names=gold_names, stats=stats)
        write_sample_csv(table, sample_csv(folder / REGIONS_DIR, name))
    atomic_write_bytes(folder / STATISTICS, stats.to_parquet())
    plot_datamap_png(
        stats,
        folder / DATAMAP_PNG,
        title=png_title(title, stratified=stratified),
        regions=regions,
        gold_names=gold_names,
    )
    plot_datamap_html(
        stats,
        folder / DATAMAP_HTML,
        title=title,
        texts=texts,
        gold_names=gold_names,
        regions=regions,
    )
    return folder
