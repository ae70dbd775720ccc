"""Data-map regions (easy-to-learn, ambiguous, hard-to-learn) and data-map plots.

Regions follow Dataset Cartography (Swayamdipta et al. 2020) and TDMixUp section 2.1, from the
statistics of :func:`tdmixup.dynamics.compute_statistics`. Each region holds ``n`` samples:
``n = count``, or ``n = floor(fraction · N)``.

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

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tdmixup.runio import atomic_output, atomic_write_bytes

REGIONS = ("easy", "ambiguous", "hard")
REGION_TITLES = {"easy": "easy-to-learn", "ambiguous": "ambiguous", "hard": "hard-to-learn"}
_INTEGER_LINE = re.compile(r"^\s*[+-]?\d+\s*$")


def _columns(stats: pd.DataFrame | Mapping[str, Any], *names: str) -> list[np.ndarray]:
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
            raise ValueError(f"statistics lack the column {name!r}; use tdmixup.dynamics.compute_statistics")
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


def _ranking(order: np.ndarray, key: np.ndarray, tie_key: np.ndarray, ids: np.ndarray) -> np.ndarray:
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
    >>> skewed = {"sample_id": [10, 11, 12, 13, 14, 15], "gold": [0, 0, 0, 1, 1, 1],  # class 1 is hard
    ...           "confidence": [0.9, 0.8, 0.7, 0.3, 0.2, 0.1], "variability": [0.0, 0.02, 0.3, 0.25, 0.01, 0.05]}
    >>> assign_regions(skewed, count=2)["easy"].tolist()  # no sample of class 1
    [10, 11]
    >>> {k: v.tolist() for k, v in assign_regions(skewed, count=2, stratify=True).items()}
    {'easy': [10, 14], 'ambiguous': [12, 13], 'hard': [15, 11]}
    """
    if stratify:
        ids, conf, var, gold = _columns(stats, "confidence", "variability", "gold")
        _, classes = np.unique(gold, return_inverse=True)
    else:
        ids, conf, var = _columns(stats, "confidence", "variability")
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
    quotas = _class_quotas(np.bincount(classes), n, disjoint=not allow_overlap) if stratify else None

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


def write_regions(regions: Mapping[str, np.ndarray], folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``{folder}/{name}.txt`` per region, one sample id per line, each file atomically."""
    paths = {}
    for name, ids in regions.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"region name {name!r} is not a plain file name")
        path = Path(folder) / f"{name}.txt"
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
            raise ValueError(f"{path}, line {number}: {line.strip()[:40]!r} is not an integer sample id")
    numbers = np.array([i for i, line in enumerate(lines, start=1) if line.strip()], dtype=np.int64)
    ids = np.array([int(line) for line in lines if line.strip()], dtype=np.int64)
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        repeated = np.sort(first[counts > 1])
        raise ValueError(f"{path}, line {numbers[repeated[0]]}: sample id {ids[repeated[0]]} appears more than once")
    return ids


def _num_epochs(stats: pd.DataFrame | Mapping[str, Any], correct: np.ndarray) -> int:
    """``E`` from ``stats.attrs`` or, failing that, the smallest E making every ``correctness · E`` whole."""
    attrs = getattr(stats, "attrs", {})
    if "num_epochs" in attrs:
        return int(attrs["num_epochs"])
    for epochs in range(1, 101):
        if np.allclose(correct * epochs, np.round(correct * epochs), atol=1e-6):
            return epochs
    raise ValueError("cannot tell the number of epochs from correctness; set stats.attrs['num_epochs']")


def _subsample(num_samples: int, max_points: int, seed: int) -> np.ndarray | None:
    if num_samples <= max_points:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_samples, size=max_points, replace=False))


def plot_datamap_png(
    stats: pd.DataFrame | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str,
    regions: Mapping[str, np.ndarray] | None = None,
    max_points: int = 25_000,
    seed: int = 0,
) -> Path:
    """Cartography-style data map as a PNG, written atomically.

    Scatter of confidence (y) against variability (x), coloured by correctness in ``E + 1``
    discrete bins ``0, 1/E, …, 1``, with the three regions annotated (at each region's median
    point when ``regions`` is given) and histograms of confidence, variability and correctness
    over all samples. Above ``max_points`` samples, the scatter shows a seeded random subset
    and the title says so.

    Returns:
        ``Path(path)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids, conf, var, corr = _columns(stats, "confidence", "variability", "correctness")
    epochs = _num_epochs(stats, corr)
    bins = np.rint(corr * epochs).astype(int)
    subset = _subsample(len(ids), max_points, seed)
    shown = np.arange(len(ids)) if subset is None else subset
    if subset is not None:
        title = f"{title}\nscatter: {len(shown):,} of {len(ids):,} samples (random, seed {seed})"

    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(2, 3, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0, :])
    colours = matplotlib.colormaps["coolwarm_r"](np.linspace(0, 1, epochs + 1))
    size = 4 if len(shown) > 5_000 else 16
    for k in range(epochs + 1):
        sel = shown[bins[shown] == k]
        ax.scatter(var[sel], conf[sel], s=size, color=colours[k], label=f"{k / epochs:.2f}", linewidths=0)
    ax.legend(title="correctness", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
    ax.set(xlabel="variability", ylabel="confidence", title=title)
    box = {"boxstyle": "round,pad=0.3", "fc": "white", "lw": 2}
    if regions is None:
        spots = {"easy": (0.27, 0.85, "r"), "ambiguous": (0.9, 0.5, "k"), "hard": (0.35, 0.25, "b")}
        for name, (x, y, edge) in spots.items():
            ax.annotate(REGION_TITLES[name], xy=(x, y), xycoords="axes fraction", ha="center", fontsize=13, bbox={**box, "ec": edge})
    else:
        position = pd.Series(np.arange(len(ids)), index=ids)
        for name, members in regions.items():
            rows = position.reindex(np.asarray(members)).dropna().to_numpy(dtype=np.int64)
            if len(rows):
                label = f"{REGION_TITLES.get(name, name)}\n{len(rows):,} ({len(rows) / len(ids):.0%})"
                ax.annotate(label, xy=(np.median(var[rows]), np.median(conf[rows])), ha="center", va="center", fontsize=11, bbox={**box, "ec": "k"})
    hist_specs = [(conf, "confidence", "#622a87"), (var, "variability", "teal")]
    for col, (values, name, colour) in enumerate(hist_specs):
        hist_ax = fig.add_subplot(grid[1, col])
        hist_ax.hist(values, bins=30, color=colour)
        hist_ax.set(xlabel=name, ylabel="samples" if col == 0 else None)
    bar_ax = fig.add_subplot(grid[1, 2])
    bar_ax.bar([f"{k / epochs:.2f}" for k in range(epochs + 1)], np.bincount(bins, minlength=epochs + 1), color="#86bf91")
    bar_ax.set(xlabel="correctness")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


_REGION_COLOURS = {"easy": "#d62728", "ambiguous": "#2ca02c", "hard": "#1f77b4", "other": "#9a9a9a"}
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
    """A Mapping / Series keyed by sample id, or an array in row order → Series aligned with ``ids``."""
    if isinstance(values, Mapping | pd.Series):
        return pd.Series(values).reindex(ids)
    array = np.asarray(values)
    if array.shape != ids.shape:
        raise ValueError(f"{what} must be keyed by sample id or hold {len(ids)} values; got shape {array.shape}")
    return pd.Series(array, index=ids)


def _region_names(ids: np.ndarray, regions: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """Region of each sample: a region name, names joined by '+' when regions overlap, or 'other'."""
    names = list(regions or {})
    code = np.zeros(len(ids), dtype=np.int64)
    for bit, name in enumerate(names):
        code |= np.isin(ids, np.asarray(regions[name])).astype(np.int64) << bit  # type: ignore[index]
    labels = ["+".join(n for b, n in enumerate(names) if c >> b & 1) or "other" for c in range(1 << len(names))]
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
    max_points: int = 1_000_000,
    webgl_above: int = 20_000,
    seed: int = 0,
) -> Path:
    """Interactive data map as one self-contained offline HTML file (plotly.js inlined), atomically.

    One point per sample (a seeded random subset only above ``max_points``, said in the title),
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

    ids, conf, var, corr, gold = _columns(stats, "confidence", "variability", "correctness", "gold")
    gold = gold.astype(np.int64)
    aum = np.asarray(stats["aum"], dtype=np.float64) if "aum" in stats else np.full(len(ids), np.nan)
    if predictions is None and "prediction" in stats:
        predictions = np.asarray(stats["prediction"])
    names = list(gold_names) if gold_names is not None else [str(k) for k in range(int(gold.max(initial=0)) + 1)]
    if len(ids) and gold.max() >= len(names):
        raise ValueError(f"gold_names has {len(names)} names but gold reaches {gold.max()}")
    hover = "<b>sample " + pd.Series(ids.astype(str), index=ids) + "</b>"
    if texts is not None:
        text = _escape(_per_sample(texts, ids, "texts").fillna("").astype(str).str.slice(0, 300))
        hover += "<br>" + text.str.wrap(80, break_long_words=False).str.replace("\n", "<br>")
    if predictions is not None:
        pred = _per_sample(predictions, ids, "predictions")
        pred_names = pred.map(lambda k: names[int(k)] if pd.notna(k) and 0 <= int(k) < len(names) else "?")
        hover += "<br>prediction: " + _escape(pred_names.astype(str))
    region = _region_names(ids, regions)
    rows = _subsample(len(ids), max_points, seed)
    if rows is not None:
        title = f"{title} — {len(rows):,} of {len(ids):,} samples (random, seed {seed})"
    rows = np.arange(len(ids)) if rows is None else rows
    scatter = go.Scattergl if len(rows) > webgl_above else go.Scatter
    safe_names = _escape(pd.Series(names, dtype=object).astype(str)).tolist()
    traces, keys = [], []
    order = {name: i for i, name in enumerate(regions or {})}
    present = sorted(pd.unique(region[rows]), key=lambda r: (r == "other", r.count("+"), order.get(r.split("+")[0], 0), r))
    for region_name in present:
        group_title = REGION_TITLES.get(region_name, region_name)
        for label in np.unique(gold[rows]):
            sel = rows[(region[rows] == region_name) & (gold[rows] == label)]
            if not len(sel):
                continue
            traces.append(scatter(
                x=var[sel], y=conf[sel], mode="markers", name=f"{group_title} · {safe_names[label]}",
                legendgroup=region_name, legendgrouptitle_text=group_title,
                text=hover.to_numpy()[sel], customdata=np.column_stack([corr[sel], aum[sel]]),
                marker={"color": _REGION_COLOURS.get(region_name.split("+")[0], "#9467bd"),
                        "symbol": _SYMBOLS[label % len(_SYMBOLS)], "size": 5, "opacity": 0.7},
                hovertemplate=(f"%{{text}}<br>gold: {safe_names[label]}<br>confidence: %{{y:.3f}}"
                               "<br>variability: %{x:.3f}<br>correctness: %{customdata[0]:.2f}"
                               "<br>AUM: %{customdata[1]:.3f}<extra></extra>"),
            ))
            keys.append((region_name, int(label)))
    filters: list[tuple[str, Any, Any]] = [("all samples", None, None)]
    filters += [(REGION_TITLES.get(r, r), r, None) for r in dict.fromkeys(k[0] for k in keys)]
    filters += [(f"label {safe_names[g]}", None, g) for g in sorted({k[1] for k in keys})]
    if len(keys) <= 60:
        filters += [(f"{REGION_TITLES.get(r, r)} · {safe_names[g]}", r, g) for r, g in keys]
    buttons = [
        {"label": label, "method": "restyle",
         "args": [{"visible": [(r is None or k[0] == r) and (g is None or k[1] == g) for k in keys]}]}
        for label, r, g in filters
    ]
    fig = go.Figure(traces)
    fig.update_layout(
        title=title, xaxis_title="variability", yaxis_title="confidence", template="plotly_white",
        legend={"groupclick": "toggleitem"}, height=750,
        updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.08, "xanchor": "right", "showactive": True}],
    )
    with atomic_output(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True, include_mathjax=False,
                       post_script=_POST_SCRIPT % json.dumps(title).replace("</", "<\\/"), config={"displaylogo": False})
    return Path(path)


def save_datamap(
    stats: pd.DataFrame,
    regions: Mapping[str, np.ndarray],
    folder: str | os.PathLike[str],
    *,
    title: str = "Data map",
    texts: Mapping[int, str] | pd.Series | None = None,
    gold_names: Sequence[str] | None = None,
) -> Path:
    """Write a data map's files to ``folder`` (each atomically).

    ``regions/<name>.txt`` (id files), ``statistics.parquet`` (one row per sample, from
    :func:`tdmixup.dynamics.compute_statistics`), ``datamap.png`` and ``datamap.html``.
    """
    folder = Path(folder)
    write_regions(regions, folder / "regions")
    atomic_write_bytes(folder / "statistics.parquet", stats.to_parquet())
    plot_datamap_png(stats, folder / "datamap.png", title=title, regions=regions)
    plot_datamap_html(stats, folder / "datamap.html", title=title, texts=texts, gold_names=gold_names, regions=regions)
    return folder
