"""Outputs a person reads without code: region / kept / flagged CSV files, the data map's HTML
(texts, label names, title) and PNG (region outlines, class mix per region).

The command-line flow (``dynamics`` → ``datamap`` → ``aum``) runs on tiny own-data files with a
tiny random BERT; no ``../shared`` needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import FAST, LABELS, data_args, write_pair_files  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.core.samples import sample_table, write_sample_csv  # noqa: E402


def test_sample_csv_round_trips_awkward_text(tmp_path: Path) -> None:
    texts = {5: 'He said "hi", then left.\nNew line ⟂ ünïcode', 2: "plain ⟂ text"}
    stats = pd.DataFrame(
        {
            "gold": [1, 0],
            "prediction": [0, 0],
            "confidence": [0.25, 0.875],
            "variability": [0.125, 0.0],
            "correctness": [0.5, 1.0],
            "aum": [-0.5, 2.0],
        },
        index=pd.Index([5, 2], name="sample_id"),
    )
    table = sample_table(
        [2, 5],
        texts=texts,
        label_names=["no", "yes"],
        stats=stats,
        extra={"aum": {5: -1.5, 2: 3.0}, "threshold": {5: 0.1, 2: 0.1}},
    )
    write_sample_csv(table, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv", keep_default_na=False)
    assert list(back.columns) == [
        "sample_id",
        "text",
        "gold_label",
        "prediction",
        "confidence",
        "variability",
        "correctness",
        "aum",
        "threshold",
    ]
    assert back["sample_id"].tolist() == [2, 5] and back["text"].tolist() == [texts[2], texts[5]]
    assert back["gold_label"].tolist() == ["no", "yes"] and back["prediction"].tolist() == [
        "no",
        "no",
    ]
    assert back["aum"].tolist() == [3.0, -1.5], "an AUM run's own AUM replaces the data map's"
    assert sample_table([2], stats=None).columns.tolist() == [
        "sample_id"
    ]  # unknown columns are left out


def test_class_mix_counts_gold_labels_per_region() -> None:
    from tdmixup.dynamics.datamap_plots import class_mix

    rng = np.random.default_rng(3)
    ids = rng.permutation(1000)[:200] + 7
    gold = rng.integers(0, 3, 200)
    regions = {"easy": ids[:50], "ambiguous": ids[50:90], "hard": ids[150:]}
    mix = class_mix(ids, gold, regions, ["e", "n", "c"])
    for name, members in regions.items():
        labels = gold[np.isin(ids, members)]
        np.testing.assert_allclose(
            mix.loc[name].to_numpy(), [np.mean(labels == k) for k in range(3)]
        )
    assert mix.attrs["counts"] == [50, 40, 50] and list(mix.columns) == ["e", "n", "c"]


def test_region_outline_is_the_convex_hull() -> None:
    from scipy.spatial import ConvexHull

    from tdmixup.dynamics.datamap_plots import _convex_hull

    rng = np.random.default_rng(1)
    for n in (3, 10, 500):
        x, y = rng.random(n), rng.random(n) ** 2
        x[:2] = 0.5  # duplicates and collinear points are allowed
        hull = _convex_hull(x, y)
        reference = ConvexHull(np.column_stack([x, y]))
        want = {tuple(p) for p in np.column_stack([x, y])[reference.vertices]}
        assert {tuple(p) for p in hull} == want
        assert len(hull) == len(want)
        edges = np.roll(hull, -1, axis=0) - hull
        assert (
            edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
            - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
            > 0
        ).all()


def test_png_outlines_regions_and_shows_their_class_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    from tdmixup.dynamics.datamap import assign_regions
    from tdmixup.dynamics.datamap_plots import REGION_COLOURS, plot_datamap_png
    from tdmixup.dynamics.table import TrainingDynamics, compute_statistics

    rng = np.random.default_rng(0)
    dyn = TrainingDynamics(
        np.arange(300),
        rng.integers(0, 3, 300),
        rng.normal(size=(3, 300, 3)).astype(np.float32),
        np.arange(3),
        "epoch_end",
        "snli",
    )
    stats = compute_statistics(dyn)
    figures: list[matplotlib.figure.Figure] = []
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure,
        "savefig",
        lambda fig, *a, **k: (figures.append(fig), savefig(fig, *a, **k)),
    )
    plot_datamap_png(
        stats, tmp_path / "map.png", title="t", regions=assign_regions(stats), gold_names=LABELS
    )
    scatter, *_, mix = figures[0].axes
    outlines = [
        p for p in scatter.patches if p.get_facecolor()[3] == 0
    ]  # the unfilled outline of each region
    assert len(outlines) == 3
    assert {matplotlib.colors.to_hex(p.get_edgecolor()) for p in outlines} == {
        REGION_COLOURS[r] for r in ("easy", "ambiguous", "hard")
    }
    assert [t.get_text() for t in mix.get_legend().get_texts()] == list(LABELS)
    assert [t.get_text() for t in mix.get_yticklabels()] == [
        "easy-to-learn",
        "ambiguous",
        "hard-to-learn",
    ]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tdmixup dynamics`` → ``datamap`` (data options too) → ``aum --subset regions/easy.txt``."""
    from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm

    require_minilm()
    quiet_libraries()
    root = tmp_path_factory.mktemp("flow")
    model = str(build_tiny_model_dir(root / "tiny"))
    train, test = write_pair_files(root / "data")
    data = data_args(train, test)
    dirs = {"train": train, "dyn": root / "dyn", "map": root / "map", "aum": root / "aum"}
    assert main(["dynamics", "--output-dir", str(dirs["dyn"]), "--model", model, *data, *FAST]) == 0
    assert (
        main(
            [
                "datamap",
                "--dynamics",
                str(dirs["dyn"] / "dynamics.parquet"),
                "--output-dir",
                str(dirs["map"]),
                *data_args(train, None, dev_size=None),
            ]
        )
        == 0
    )  # texts need neither the run's tests nor its dev size
    assert (
        main(
            [
                "aum",
                "--subset",
                str(dirs["map"] / "regions" / "easy.txt"),
                "--output-dir",
                str(dirs["aum"]),
                "--model",
                model,
                *data,
                *FAST,
                "--aum-epochs",
                "1",
            ]
        )
        == 0
    )
    return dirs


def _source(train: Path) -> pd.DataFrame:
    """The training file as read by a person: sample_id = line index."""
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    frame = pd.DataFrame(rows)
    frame["text"] = frame["premise"] + " ⟂ " + frame["hypothesis"]
    return frame.rename_axis("sample_id")


def test_region_csvs_hold_the_id_files_samples_with_text_label_and_statistics(
    flow: dict[str, Path],
) -> None:
    source = _source(flow["train"])
    stats = pd.read_parquet(flow["map"] / "statistics.parquet")
    for region in ("easy", "ambiguous", "hard"):
        ids = np.loadtxt(flow["map"] / "regions" / f"{region}.txt", dtype=np.int64, ndmin=1)
        table = pd.read_csv(flow["map"] / "regions" / f"{region}.csv")
        assert (
            table["sample_id"].tolist() == ids.tolist()
        )  # same samples, same order (most typical first)
        assert table["text"].tolist() == source.loc[ids, "text"].tolist()
        assert table["gold_label"].tolist() == source.loc[ids, "label"].tolist()
        assert set(table["prediction"]) <= set(LABELS)
        for column in ("confidence", "variability", "correctness", "aum"):
            np.testing.assert_allclose(table[column], stats.loc[ids, column], rtol=1e-5, atol=1e-6)


def test_standalone_datamap_html_has_texts_label_names_and_a_real_title(
    flow: dict[str, Path],
) -> None:
    html = (flow["map"] / "datamap.html").read_text()
    n = len(pd.read_parquet(flow["map"] / "statistics.parquet"))
    assert f'"custom data map: {n} training samples, 2 epochs (end-of-epoch dynamics)"' in html
    assert str(flow["dyn"]) not in html, "the title was the dynamics file's path"
    assert "A dog runs in the park." in html  # hover text of sample 0
    for name in LABELS:
        assert f"gold: {name}" in html


def test_datamap_takes_label_names_from_the_recorded_task(tmp_path: Path) -> None:
    """Without data options: no texts, but a built-in task's label names (not 0/1/2)."""
    from tdmixup.dynamics.table import append_epoch

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 30)
    for epoch in range(2):
        append_epoch(
            tmp_path / "dynamics.parquet",
            epoch=epoch,
            sample_ids=np.arange(30),
            gold=gold,
            logits=rng.normal(size=(30, 3)).astype(np.float32),
            mode="train_pass",
            task="snli",
        )
    assert (
        main(
            [
                "datamap",
                "--dynamics",
                str(tmp_path / "dynamics.parquet"),
                "--output-dir",
                str(tmp_path / "map"),
                "--title",
                "My SNLI map",
            ]
        )
        == 0
    )
    html = (tmp_path / "map" / "datamap.html").read_text()
    assert '"My SNLI map"' in html and "gold: entailment" in html and "gold: 0<" not in html
    easy = pd.read_csv(tmp_path / "map" / "regions" / "easy.csv")
    assert "text" not in easy.columns and set(easy["gold_label"]) <= {
        "entailment",
        "neutral",
        "contradiction",
    }


def test_flagged_csv_lists_the_lowest_aum_first(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from datasets import Dataset

    from tdmixup.data.collate import TokenizedSet
    from tdmixup.data.schema import TaskSpec
    from tdmixup.run.aum_training import _write_readable

    ids, labels = np.array([10, 11, 12, 13, 14]), np.array([0, 1, 2, 0, 1])
    train = Dataset.from_dict(
        {
            "sample_id": ids,
            "text_a": [f"a{i}" for i in ids],
            "text_b": [f"b{i}" for i in ids],
            "label": labels,
        }
    )
    tokenized = TokenizedSet(ids, labels, [np.ones(3, np.int64)] * 5, None, np.full(5, 3), 0, 0)
    session = SimpleNamespace(
        task=SimpleNamespace(spec=TaskSpec("snli", "pair", LABELS), train=train),
        train=tokenized,
        config=SimpleNamespace(data=SimpleNamespace(columns=(), train_file=None, task="snli")),
        whole_rows=None,
        whole_rows_read=False,
    )
    table = pd.DataFrame(
        {
            "sample_id": [11, 12, 13, 14],
            "aum": [-2.0, np.nan, 0.5, -3.0],
            "threshold": [0.0] * 4,
            "flagged": [True, True, False, True],
        }
    )
    predicted = pd.Series([0, 2, 1], index=[11, 13, 14])  # 12 was never judged
    probability = pd.Series([0.5, 0.9, 0.6], index=[11, 13, 14])
    _write_readable(session, tmp_path, table, None, predicted, probability)
    flagged = pd.read_csv(tmp_path / "flagged.csv")
    assert flagged["sample_id"].tolist() == [
        14,
        11,
        12,
    ]  # lowest AUM first; never judged (NaN) last
    # SNLI's own columns (the task's default mapping), the given label in its label column
    assert flagged["sentence1"].tolist() == ["a14", "a11", "a12"]
    assert flagged["sentence2"].tolist() == ["b14", "b11", "b12"]
    assert flagged["gold_label"].tolist() == ["neutral", "neutral", "contradiction"]
    assert flagged["predicted_label"].tolist()[:2] == ["neutral", "entailment"]
    assert flagged["predicted_probability"].tolist()[:2] == [0.6, 0.5]
    assert flagged["rank"].tolist() == [1, 2, 3]
    assert pd.read_csv(tmp_path / "kept.csv")["sample_id"].tolist() == [13]
    assert "confidence" not in flagged.columns  # no data map statistics given


def test_aum_kept_and_flagged_csvs(flow: dict[str, Path]) -> None:
    source = _source(flow["train"])
    aum = pd.read_parquet(flow["aum"] / "aum.parquet").set_index("sample_id")
    kept = pd.read_csv(flow["aum"] / "kept.csv")
    flagged = pd.read_csv(flow["aum"] / "flagged.csv")
    easy = np.loadtxt(flow["map"] / "regions" / "easy.txt", dtype=np.int64, ndmin=1)
    assert sorted(kept["sample_id"].tolist() + flagged["sample_id"].tolist()) == sorted(
        easy.tolist()
    )
    assert (
        kept["sample_id"].tolist()
        == np.loadtxt(flow["aum"] / "kept.txt", dtype=np.int64, ndmin=1).tolist()
    )
    assert set(flagged["sample_id"]) == set(aum.index[aum["flagged"]])
    assert flagged["aum"].is_monotonic_increasing, "most suspicious first"
    stats = pd.read_parquet(flow["map"] / "statistics.parquet")
    for table in (
        kept,
        flagged,
    ):  # the tiny model may flag none: then flagged.csv is its header line
        ids = table["sample_id"].to_numpy()
        assert {"aum", "threshold", "confidence", "variability"} <= set(table.columns)
        if table is kept:  # a reading table: one text, the gold label by name
            assert table["text"].tolist() == source.loc[ids, "text"].tolist()
            assert table["gold_label"].tolist() == source.loc[ids, "label"].tolist()
        else:  # the relabelling table: the file's own columns
            assert table["premise"].tolist() == source.loc[ids, "premise"].tolist()
            assert table["hypothesis"].tolist() == source.loc[ids, "hypothesis"].tolist()
            assert table["label"].tolist() == source.loc[ids, "label"].tolist()
        np.testing.assert_allclose(
            table["aum"].astype(float), aum.loc[ids, "aum"], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            table["confidence"].astype(float), stats.loc[ids, "confidence"], rtol=1e-5, atol=1e-6
        )
    assert len(kept) > 0
