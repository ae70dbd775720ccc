"""Tests for tdmixup.dynamics.datamap: regions, region files, PNG and HTML data maps."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from tdmixup.dynamics import datamap, datamap_plots
from tdmixup.dynamics.datamap import assign_regions, read_region_file, write_regions
from tdmixup.dynamics.datamap_plots import plot_datamap_html, plot_datamap_png
from tdmixup.dynamics.table import TrainingDynamics, compute_statistics


@pytest.fixture
def random_stats() -> pd.DataFrame:
    """Statistics of 300 samples (ids 1000, 1003, …) from random 3-epoch, 3-class logits."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(3, 300, 3)).astype(np.float32)
    dyn = TrainingDynamics(
        1000 + 3 * np.arange(300), rng.integers(0, 3, 300), logits, np.arange(3), "epoch_end", "t"
    )
    return compute_statistics(dyn)


def _stats(
    conf: list[float], var: list[float], ids: list[int] | None = None
) -> dict[str, np.ndarray]:
    return {
        "sample_id": np.array(ids if ids is not None else range(len(conf))),
        "confidence": np.array(conf),
        "variability": np.array(var),
    }


def test_sizes_and_no_overlap_by_default(random_stats):
    regions = assign_regions(random_stats)
    assert list(regions) == ["easy", "ambiguous", "hard"]
    assert all(
        len(ids) == 99 and ids.dtype == np.int64 for ids in regions.values()
    )  # floor(0.33 · 300)
    union = np.concatenate(list(regions.values()))
    assert len(np.unique(union)) == 297 and np.isin(union, random_stats.index).all()
    assert {k: len(v) for k, v in assign_regions(random_stats, count=40).items()} == dict.fromkeys(
        regions, 40
    )
    assert {
        k: len(v) for k, v in assign_regions(random_stats, fraction=0.1, count=7).items()
    } == dict.fromkeys(regions, 7)
    assert all(len(v) == 0 for v in assign_regions(random_stats, fraction=0.0).values())


def test_default_rule_ambiguous_first_then_easy_then_hard():
    # sample 0 is the most confident AND the most variable: it counts as ambiguous
    stats = _stats(conf=[0.95, 0.9, 0.5, 0.1, 0.2, 0.6], var=[0.4, 0.01, 0.3, 0.02, 0.05, 0.2])
    regions = assign_regions(stats, count=2)
    assert regions["ambiguous"].tolist() == [0, 2]
    assert regions["easy"].tolist() == [1, 5]
    assert regions["hard"].tolist() == [3, 4]
    overlap = assign_regions(stats, count=2, allow_overlap=True)
    assert overlap["easy"].tolist() == [0, 1] and overlap["ambiguous"].tolist() == [0, 2]


def test_tie_rules():
    # easy: equal confidence → lower variability first, then lower sample id
    easy = assign_regions(
        _stats([0.9, 0.9, 0.9, 0.1], [0.2, 0.1, 0.1, 0.0], ids=[7, 9, 8, 1]),
        count=3,
        allow_overlap=True,
    )
    assert easy["easy"].tolist() == [8, 9, 7]
    # ambiguous: equal variability → lower confidence first, then lower id
    amb = assign_regions(
        _stats([0.8, 0.4, 0.4, 0.9], [0.3, 0.3, 0.3, 0.0], ids=[1, 6, 5, 2]),
        count=3,
        allow_overlap=True,
    )
    assert amb["ambiguous"].tolist() == [5, 6, 1]
    # hard: equal confidence → lower variability first, then lower id
    hard = assign_regions(
        _stats([0.1, 0.1, 0.1, 0.9], [0.05, 0.01, 0.01, 0.0], ids=[4, 3, 2, 1]),
        count=3,
        allow_overlap=True,
    )
    assert hard["hard"].tolist() == [2, 3, 4]


def test_overlap_mode_reproduces_cartography_independent_sorts(random_stats):
    n = int(0.3319 * len(random_stats)) + 1  # Cartography's "33 %": head(int(fraction · N) + 1)
    regions = assign_regions(random_stats, count=n, allow_overlap=True)
    frame = random_stats.reset_index()
    expected = {
        "easy": frame.sort_values("confidence", ascending=False).head(n),
        "ambiguous": frame.sort_values("variability", ascending=False).head(n),
        "hard": frame.sort_values("confidence", ascending=True).head(n),
    }
    for name, rows in expected.items():
        np.testing.assert_array_equal(regions[name], rows["sample_id"].to_numpy())
    assert len(np.intersect1d(regions["easy"], regions["ambiguous"])) > 0


def test_deterministic_and_input_forms(random_stats):
    as_column = random_stats.reset_index()
    shuffled = as_column.sample(frac=1.0, random_state=3)
    mapping = {c: as_column[c].to_numpy() for c in ("sample_id", "confidence", "variability")}
    results = [
        assign_regions(s, fraction=0.2) for s in (random_stats, as_column, shuffled, mapping)
    ]
    for other in results[1:]:
        for name in results[0]:
            np.testing.assert_array_equal(results[0][name], other[name])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 0.34}, "cannot pick 3 disjoint regions of 102 samples from 300"),
        ({"fraction": 1.5}, r"fraction must be in \[0, 1\]"),
        ({"count": 301, "allow_overlap": True}, r"count must be an integer in \[0, 300\]"),
    ],
)
def test_region_size_errors(random_stats, kwargs, message):
    with pytest.raises(ValueError, match=message):
        assign_regions(random_stats, **kwargs)


def test_missing_or_bad_columns():
    with pytest.raises(ValueError, match="lack the column 'variability'"):
        assign_regions({"sample_id": [1], "confidence": [0.5]}, count=0)
    with pytest.raises(ValueError, match="'confidence' must be 2 finite values"):
        assign_regions(_stats([0.5, np.nan], [0.1, 0.1]), count=0)


def test_region_files_round_trip(random_stats, tmp_path):
    regions = assign_regions(random_stats)
    paths = write_regions(regions, tmp_path / "regions")
    assert sorted(p.name for p in (tmp_path / "regions").iterdir()) == [
        "ambiguous.txt",
        "easy.txt",
        "hard.txt",
    ]
    for name, path in paths.items():
        assert path.read_text().splitlines()[0] == str(regions[name][0])
        np.testing.assert_array_equal(read_region_file(path), regions[name])


def test_read_region_file_errors(tmp_path):
    path = tmp_path / "easy.txt"
    path.write_text("12\n\n 13 \n")
    assert read_region_file(path).tolist() == [12, 13]
    path.write_text("12\n13\n1.5\nabc\n")
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(path))}, line 3: '1.5' is not an integer sample id"
    ):
        read_region_file(path)
    path.write_text("12\n\n13\n12\n")
    with pytest.raises(ValueError, match="line 1: sample id 12 appears more than once"):
        read_region_file(path)


def test_png_datamap(random_stats, tmp_path, monkeypatch):
    titles = []
    savefig = matplotlib.figure.Figure.savefig

    def recording_savefig(fig, *args, **kwargs):
        titles.append(fig.axes[0].get_title())
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording_savefig)
    path = plot_datamap_png(
        random_stats, tmp_path / "map.png", title="SNLI", regions=assign_regions(random_stats)
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and titles[-1] == "SNLI"
    plot_datamap_png(random_stats, tmp_path / "sub.png", title="SNLI", max_points=100, seed=1)
    assert "100 of 300 samples (random, seed 1)" in titles[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "sub.png"]


def test_num_epochs_inferred_without_attrs(random_stats):
    assert datamap_plots._num_epochs({}, random_stats["correctness"].to_numpy()) == 3


def test_html_is_self_contained(random_stats, tmp_path):
    texts = {int(i): f"<b>premise</b> & hypothesis {i}" for i in random_stats.index}
    path = plot_datamap_html(
        random_stats,
        tmp_path / "map.html",
        texts=texts,
        gold_names=["entailment", "neutral", "contradiction"],
        regions=assign_regions(random_stats),
    )
    html = path.read_text()
    assert not re.search(r"<script[^>]+src=", html), (
        "the page must not load scripts from the network"
    )
    # plotly writes "<", "/" and "·" as \u003c, \u002f and \u00b7 inside its JSON
    assert r"&lt;b&gt;premise&lt;\u002fb&gt; &amp; hypothesis 1000" in html
    assert "<b>premise" not in html and r"\u003cb\u003epremise" not in html
    assert r"easy-to-learn \u00b7 entailment" in html and "data-points" in html


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")


def _render(html: Path, tmp_path: Path) -> dict[str, str]:
    """Load ``html`` in headless Chromium, no host name resolvable; return the <body> attributes."""
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        html.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) | {
        "title": "".join(re.findall(r"<title>([^<]*)</title>", dom)[:1])
    }


@pytest.mark.slow
def test_html_renders_one_point_per_sample_offline(random_stats, tmp_path):
    regions = assign_regions(random_stats, fraction=0.4, allow_overlap=True)
    svg = plot_datamap_html(random_stats, tmp_path / "svg.html", title="SVG map", regions=regions)
    page = _render(svg, tmp_path)
    assert (page["title"], page["data-points"], page["data-rendered"]) == ("SVG map", "300", "300")

    capped = plot_datamap_html(
        random_stats, tmp_path / "gl.html", title="GL map", max_points=250, webgl_above=100
    )
    page = _render(capped, tmp_path)
    assert page["data-points"] == "250" and page["title"].startswith("GL map — 250 of 300 samples")


def test_ranking_equals_lexsort_with_many_ties():
    rng = np.random.default_rng(7)
    primary, secondary = rng.integers(0, 20, 5000) / 4.0, rng.integers(0, 3, 5000) / 2.0
    ids = rng.permutation(10_000)[:5000]
    for key in (primary, rng.normal(size=5000)):
        ascending = datamap._ranking(np.argsort(key), key, secondary, ids)
        descending = datamap._ranking(np.argsort(key)[::-1], key, secondary, ids)
        np.testing.assert_array_equal(ascending, np.lexsort((ids, secondary, key)))
        np.testing.assert_array_equal(descending, np.lexsort((ids, secondary, -key)))


# ---------------------------------------------------------------- stratified regions and class mix


def _skewed_stats(sizes: tuple[int, ...] = (1600, 1000, 400), seed: int = 0) -> pd.DataFrame:
    """Statistics where the last class is hard for the model (low confidence), the others easy."""
    rng = np.random.default_rng(seed)
    gold = np.repeat(np.arange(len(sizes)), sizes)
    conf = np.where(
        gold == len(sizes) - 1, rng.uniform(0.0, 0.5, gold.size), rng.uniform(0.3, 1.0, gold.size)
    )
    var = rng.uniform(0.0, 0.4, gold.size)
    ids = rng.permutation(gold.size) * 7 + 3
    return pd.DataFrame(
        {"gold": gold, "confidence": conf, "variability": var},
        index=pd.Index(ids, name="sample_id"),
    )


def _per_class_reference(stats: pd.DataFrame, n: int) -> dict[str, set[int]]:
    """The stratified rule written as a plain per-class loop, for comparison."""
    from tdmixup.dynamics.datamap import _class_quotas

    classes, sizes = np.unique(stats["gold"], return_counts=True)
    quotas = _class_quotas(sizes, n, disjoint=True)
    out: dict[str, set[int]] = {r: set() for r in ("easy", "ambiguous", "hard")}
    for k, q in zip(classes, quotas, strict=True):
        part = stats[stats["gold"] == k]
        regions = assign_regions(part, count=int(q))  # the unstratified rule inside one class
        for name in out:
            out[name] |= set(regions[name].tolist())
    return out


def test_stratified_regions_keep_the_class_mix():
    stats = _skewed_stats()
    n, sizes = int(0.33 * len(stats)), np.array([1600, 1000, 400])
    plain = assign_regions(stats)
    assert (
        np.isin(plain["easy"], stats.index[stats["gold"] == 2]).sum() == 0
    )  # the hard class misses easy
    regions = assign_regions(stats, stratify=True)
    union = np.concatenate(list(regions.values()))
    assert len(np.unique(union)) == len(union) == 3 * n  # disjoint, n each
    for name, ids in regions.items():
        counts = np.bincount(stats.loc[ids, "gold"], minlength=3)
        assert (np.abs(counts - n * sizes / sizes.sum()) <= 1).all(), (name, counts)
        assert set(ids.tolist()) == _per_class_reference(stats, n)[name]
        ranked = assign_regions(stats, stratify=True, allow_overlap=True)[name]
        assert (
            np.abs(
                np.bincount(stats.loc[ranked, "gold"], minlength=3) - n * sizes / sizes.sum()
            ).max()
            <= 1
        )
    amb = stats.loc[regions["ambiguous"]]
    assert (np.diff(amb["variability"].to_numpy()) <= 0).all()  # still most typical first


def test_stratified_regions_with_a_tiny_class_and_errors():
    stats = _skewed_stats(
        (200, 150, 2)
    )  # class 2 cannot give a sample to each of 3 regions... it has 2
    regions = assign_regions(stats, fraction=0.33, stratify=True)
    union = np.concatenate(list(regions.values()))
    assert len(np.unique(union)) == len(union)
    assert all(abs(len(v) - int(0.33 * 352)) <= 1 for v in regions.values())
    with pytest.raises(ValueError, match="lack the column 'gold'"):
        assign_regions(_stats([0.5, 0.4, 0.3], [0.1, 0.2, 0.3]), count=1, stratify=True)


def test_take_per_class_equals_a_loop():
    from tdmixup.dynamics.datamap import _take_per_class

    rng = np.random.default_rng(1)
    order, classes = rng.permutation(5000), rng.integers(0, 7, 5000)
    quotas = rng.integers(0, 900, 7)
    got = _take_per_class(order, classes, quotas)
    expected = np.concatenate([order[classes[order] == k][:q] for k, q in enumerate(quotas)])
    assert set(got.tolist()) == set(expected.tolist()) and len(got) == len(expected)
    assert (np.diff(np.flatnonzero(np.isin(order, got))) > 0).all()  # in the order's order


def test_a_region_without_a_class_is_reported():
    """TREC-like: the plain ranking leaves the hard class out of the easy region; the class-mix
    check names the class and its counts; stratified regions give no such warning."""
    from tdmixup.core.classmix import describe_class_mix

    stats = _skewed_stats()
    names = ("loc", "num", "desc")

    def mix(regions):
        return describe_class_mix(
            regions,
            sample_ids=stats.index.to_numpy(),
            labels=stats["gold"].to_numpy(),
            label_names=names,
            reference="train",
        )

    plain = mix(assign_regions(stats))
    assert plain["counts"]["train"] == {"loc": 1600, "num": 1000, "desc": 400}
    assert plain["counts"]["easy"]["desc"] == 0 and sum(plain["counts"]["easy"].values()) == 990
    assert any(
        "class 'desc' is absent from the easy set "
        "(0 of 990 samples; 13.3 % of the training set: 400 of 3000)" == w
        for w in plain["warnings"]
    )
    assert mix(assign_regions(stats, stratify=True))["warnings"] == []


def test_real_trec_logs_easy_region_lacks_a_class_unless_stratified():
    from tdmixup.core.classmix import describe_class_mix
    from tdmixup.dynamics.table import read_cartography

    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "cartography_dynamics"
    if not (folder / "TREC_dynamics_epoch_0.jsonl").exists():
        pytest.skip(
            "real-data variant: put Dataset Cartography's TREC logs "
            "(TREC_dynamics_epoch_{0,1,2}.jsonl, see tests/fixtures/README.md) "
            "in ../shared/data/cartography_dynamics/; "
            "test_a_region_without_a_class_is_reported ran on synthetic dynamics"
        )
    stats = compute_statistics(read_cartography(folder, task="trec"))
    names = [str(k) for k in range(6)]

    def mix(regions):
        return describe_class_mix(
            regions,
            sample_ids=stats.index.to_numpy(),
            labels=stats["gold"].to_numpy(),
            label_names=names,
            reference="train",
        )

    plain = mix(assign_regions(stats))
    assert plain["counts"]["easy"]["2"] == 0 and any(
        "class '2' is absent from the easy set" in w for w in plain["warnings"]
    )
    strat = mix(assign_regions(stats, stratify=True))
    sizes = np.array(list(strat["counts"]["train"].values()))
    n = int(0.33 * len(stats))
    for name in ("easy", "ambiguous", "hard"):
        assert (
            np.abs(np.array(list(strat["counts"][name].values())) - n * sizes / sizes.sum()) <= 1
        ).all()
    assert strat["warnings"] == []


def test_html_of_550k_samples_is_capped_and_stratified_by_region(tmp_path):
    """At SNLI's full size the HTML draws a stratified 20,000-point sample (under 20 MB; the
    uncapped map was ~157 MB): a 300-sample region keeps 200 points, each region its share,
    and the title says how many of how many are shown."""
    n, rng = 550_000, np.random.default_rng(0)
    stats = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "confidence": rng.random(n),
            "variability": rng.random(n) / 2,
            "correctness": rng.integers(0, 4, n) / 3,
            "gold": rng.integers(0, 3, n),
        }
    )
    stats.attrs["num_epochs"] = 3
    regions = {"easy": np.arange(0, 183_000), "ambiguous": np.arange(183_000, 366_000)}
    regions["hard"] = np.arange(549_700, n)  # a small region
    path = plot_datamap_html(stats, tmp_path / "datamap.html", title="SNLI", regions=regions)
    html = path.read_text()
    assert path.stat().st_size < 20_000_000
    assert re.search(
        r"SNLI (—|\\u2014) (19,9\d\d|20,000) of 550,000 samples shown \(random, stratified", html
    )
    rows = datamap_plots._subsample_regions(
        datamap_plots._region_names(stats["sample_id"].to_numpy(), regions), 20_000, 0
    )
    assert rows is not None and 19_900 <= len(rows) <= 20_000
    region = datamap_plots._region_names(rows, regions)
    assert (region == "hard").sum() == 200  # the floor: 1 % of the cap
    assert abs((region == "easy").sum() - 183_000 * 20_000 / n) <= 1
