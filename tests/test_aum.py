"""AUM, threshold samples and mislabel flagging (tdmixup.aum)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tdmixup.aum import (
    AUM_TABLE_COLUMNS,
    AUMPass,
    area_under_margin,
    aum_threshold,
    choose_threshold_samples,
    find_mislabeled_with_aum,
    flag_mislabeled,
    margins,
    read_aum_table,
    relabel_threshold_samples,
    write_aum_table,
)
from tdmixup.noise import flag_metrics, inject_label_noise

# ---------------------------------------------------------------- margins and AUM


def test_margins_and_aum_hand_computed():
    logits = np.array([
        [[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]],
        [[1.0, 1.5, -1.0], [0.0, 0.0, 4.0]],
    ])  # [E=2, N=2, C=3]
    labels = np.array([0, 2])
    expected = np.array([[1.0, -2.0], [-0.5, 4.0]])
    np.testing.assert_allclose(margins(logits, labels), expected)
    np.testing.assert_allclose(area_under_margin(logits, labels), [0.25, 1.0])


def test_margins_validate_inputs():
    with pytest.raises(ValueError, match="outside"):
        margins(np.zeros((1, 2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        margins(np.zeros((1, 3, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[E, N, C\]"):
        margins(np.zeros((3, 3)), np.array([0, 1, 2]))


def test_aum_matches_aum_package(tmp_path):
    torch = pytest.importorskip("torch")
    aum_pkg = pytest.importorskip("aum")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 30, 5)).astype(np.float32)  # [E, N, C]
    labels = rng.integers(0, 5, size=30)
    calc = aum_pkg.AUMCalculator(save_dir=str(tmp_path), compressed=True)
    for epoch in range(logits.shape[0]):
        for start in range(0, 30, 7):  # batches of 7, 7, 7, 7, 2 (the package fails on 1)
            sl = slice(start, start + 7)
            calc.update(torch.from_numpy(logits[epoch, sl]), torch.from_numpy(labels[sl]),
                        list(range(30))[sl])
    calc.finalize()
    theirs = pd.read_csv(tmp_path / "aum_values.csv").set_index("sample_id")["aum"].sort_index()
    np.testing.assert_allclose(area_under_margin(logits, labels), theirs.to_numpy(), atol=1e-5)


# ---------------------------------------------------------------- threshold samples


def _balanced_labels(n_per_class: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(c), n_per_class))


def test_threshold_sample_counts_equal_per_class_and_deterministic():
    labels = _balanced_labels(160, 3)  # N = 480: N/(c+1) = 120 = 3 × 40
    pos = choose_threshold_samples(labels, 3, seed=7)
    assert pos.size == 480 // 4
    assert np.bincount(labels[pos], minlength=3).tolist() == [40, 40, 40]
    assert np.unique(pos).size == pos.size and np.all(np.diff(pos) > 0)
    np.testing.assert_array_equal(pos, choose_threshold_samples(labels, 3, seed=7))
    assert not np.array_equal(pos, choose_threshold_samples(labels, 3, seed=8))


def test_second_pass_is_disjoint_and_same_size():
    labels = _balanced_labels(100, 4)  # N = 400, c = 4: 80 = 4 × 20
    first = choose_threshold_samples(labels, 4, seed=0)
    second = choose_threshold_samples(labels, 4, seed=0, exclude=first)
    assert first.size == second.size == 80
    assert np.intersect1d(first, second).size == 0
    assert np.bincount(labels[second], minlength=4).tolist() == [20] * 4


def test_threshold_samples_fraction_and_proportional_balance():
    labels = np.repeat([0, 1], [300, 100])
    pos = choose_threshold_samples(labels, 2, seed=0, fraction=0.25, balance="proportional")
    assert pos.size == 100
    assert np.bincount(labels[pos]).tolist() == [75, 25]


def test_threshold_samples_short_class_raises_clearly():
    labels = np.repeat([0, 1, 2], [200, 200, 20])  # N = 420 → 105 total → 35 per class
    with pytest.raises(ValueError, match=r"class 2: 20 selectable, needs 35.*proportional"):
        choose_threshold_samples(labels, 3, seed=0)
    first = choose_threshold_samples(labels, 3, seed=0, balance="proportional")
    with pytest.raises(ValueError, match="class 2"):  # 20 − 5 left < 35 needed in equal mode
        choose_threshold_samples(labels, 3, seed=0, exclude=first)
    with pytest.raises(ValueError, match="no threshold samples"):
        choose_threshold_samples(np.array([0, 1, 2]), 3, seed=0)


# ---------------------------------------------------------------- relabelling


@pytest.fixture
def pair_dataset():
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict({
        "sample_id": [10, 11, 12, 13, 14, 15],
        "text_a": list("abcdef"),
        "text_b": list("ghijkl"),
        "label": [0, 1, 2, 0, 1, 2],
    })


@pytest.fixture
def mc_dataset():
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict({
        "sample_id": [0, 1, 2, 3],
        "context": ["c0", "c1", "c2", "c3"],
        "endings": [[f"e{i}_{k}" for k in range(4)] for i in range(4)],
        "label": [0, 3, 2, 1],
    })


def test_relabel_pair(pair_dataset):
    out = relabel_threshold_samples(pair_dataset, np.array([11, 15]), kind="pair", num_classes=3)
    assert out.column_names == pair_dataset.column_names
    assert out["label"] == [0, 3, 2, 0, 1, 3]
    assert out["text_a"] == pair_dataset["text_a"] and out["sample_id"] == pair_dataset["sample_id"]
    with pytest.raises(ValueError, match=r"not in the dataset, e.g. \[99\]"):
        relabel_threshold_samples(pair_dataset, np.array([99]), kind="pair", num_classes=3)


def test_relabel_multiple_choice(mc_dataset):
    out = relabel_threshold_samples(mc_dataset, np.array([1, 2]), kind="multiple_choice", num_classes=4)
    assert all(len(e) == 5 for e in out["endings"])
    assert out["label"] == [0, 4, 4, 1]
    for old, new, old_label, is_th in zip(mc_dataset["endings"], out["endings"], mc_dataset["label"],
                                          [False, True, True, False], strict=True):
        assert new[:4] == old
        assert new[4] == (old[old_label] if is_th else old[(old_label + 1) % 4])
    with pytest.raises(ValueError, match="3 endings, expected 4"):
        relabel_threshold_samples(mc_dataset.map(lambda r: {"endings": r["endings"][:3]}),
                                  np.array([1]), kind="multiple_choice", num_classes=4)


def test_mc_extra_ending_keeps_margins_and_caps_threshold_margins(mc_dataset):
    """A per-ending scorer gives identical endings identical logits: the wrong-ending copy leaves
    the margin unchanged, the threshold rows' gold copy caps theirs at 0."""
    rng = np.random.default_rng(0)
    score = {e: rng.normal() for row in mc_dataset["endings"] for e in row}
    out = relabel_threshold_samples(mc_dataset, np.array([1, 2]), kind="multiple_choice", num_classes=4)
    before = np.array([[[score[e] for e in row] for row in mc_dataset["endings"]]])
    after = np.array([[[score[e] for e in row] for row in out["endings"]]])
    m_before, m_after = margins(before, mc_dataset["label"])[0], margins(after, out["label"])[0]
    np.testing.assert_allclose(m_after[[0, 3]], m_before[[0, 3]])
    np.testing.assert_allclose(m_after[[1, 2]], np.minimum(0.0, m_before[[1, 2]]))


# ---------------------------------------------------------------- threshold and flags


def test_aum_threshold_percentile():
    assert aum_threshold(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 80) == pytest.approx(3.2)
    values = np.random.default_rng(0).normal(size=101)
    assert aum_threshold(values, 99) == pytest.approx(np.percentile(values, 99))
    assert aum_threshold(values, 50, method="lower") == pytest.approx(np.sort(values)[50])
    for bad in (np.array([]), np.array([1.0, np.nan])):
        with pytest.raises(ValueError):
            aum_threshold(bad, 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        aum_threshold(values, 101)


def test_flag_mislabeled_strictly_below():
    flags = flag_mislabeled(np.array([-2.0, 0.9999, 1.0, 3.0, np.nan]), 1.0)
    assert flags.tolist() == [True, True, False, False, False]


# ---------------------------------------------------------------- full procedure


def _simulate_logits(true, assigned, num_outputs, epochs, rng):
    """Logits of a model that generalises to the true class and slowly memorises the assigned one."""
    n = true.size
    logits = rng.normal(0.0, 1.0, size=(epochs, n, num_outputs))
    e = np.arange(1, epochs + 1, dtype=np.float64)[:, None]
    logits[:, np.arange(n), true] += 1.5 + 0.5 * e
    logits[:, np.arange(n), assigned] += 0.3 * e
    return logits


def _make_passes(true, noisy, c, procedure, seed=0, epochs=4):
    rng = np.random.default_rng(seed)
    ids = np.arange(1000, 1000 + true.size)
    passes, taken = [], None
    for p in range(2 if procedure == "two_pass" else 1):
        pos = choose_threshold_samples(noisy, c, seed=seed + p, exclude=taken)
        taken = pos if taken is None else np.union1d(taken, pos)
        trained = noisy.copy()
        trained[pos] = c
        order = rng.permutation(true.size)  # the recorder's order need not be the dataset's
        logits = _simulate_logits(true[order], trained[order], c + 1, epochs, rng)
        passes.append(AUMPass(ids[order], logits, trained[order], ids[pos]))
    return ids, passes


def test_two_pass_judges_every_sample():
    true = _balanced_labels(100, 3)
    ids, passes = _make_passes(true, true, 3, "two_pass")
    result = find_mislabeled_with_aum(passes, percentile=80, procedure="two_pass")
    t = result.table
    assert list(t.columns) == list(AUM_TABLE_COLUMNS)
    assert t["sample_id"].tolist() == ids.tolist()
    assert t["aum"].notna().all() and (t["judged_passes"] >= 1).all()
    assert t["is_threshold"].sum() == 2 * 75 and set(t["threshold_pass"]) == {-1, 0, 1}
    once = t[t["is_threshold"]]
    assert (once["judged_passes"] == 1).all() and (t.loc[~t["is_threshold"], "judged_passes"] == 2).all()
    np.testing.assert_array_equal(t["flagged"], t["aum"] < t["threshold"])
    assert len(result.thresholds) == 2 and len(result.per_pass) == 2 * 300
    # a sample that was a threshold sample in pass 0 gets its AUM and threshold from pass 1
    row = once[once["threshold_pass"] == 0].iloc[0]
    pp = result.per_pass.set_index(["pass", "sample_id"])
    assert row["aum"] == pytest.approx(pp.loc[(1, row["sample_id"]), "aum"])
    assert row["threshold"] == pytest.approx(result.thresholds[1])


def test_paper_mode_drops_threshold_samples():
    true = _balanced_labels(100, 3)
    _, passes = _make_passes(true, true, 3, "paper")
    result = find_mislabeled_with_aum(passes, percentile=80, procedure="paper")
    t = result.table
    th = t["is_threshold"]
    assert th.sum() == 75
    assert t.loc[th, "aum"].isna().all() and t.loc[th, "flagged"].all()
    assert (t.loc[th, "judged_passes"] == 0).all() and t.loc[~th, "aum"].notna().all()
    assert set(result.flagged_ids) >= set(t.loc[th, "sample_id"])
    assert len(result.kept_ids) + len(result.flagged_ids) == len(t)


def test_find_mislabeled_validates_inputs():
    true = _balanced_labels(40, 3)
    _, passes = _make_passes(true, true, 3, "two_pass")
    with pytest.raises(ValueError, match="needs 1 pass"):
        find_mislabeled_with_aum(passes, percentile=80, procedure="paper")
    unrelabelled = AUMPass(passes[0].sample_ids, passes[0].logits, true, passes[0].threshold_ids)
    with pytest.raises(ValueError, match="disagree with threshold_ids"):
        find_mislabeled_with_aum([unrelabelled], percentile=80, procedure="paper")
    with pytest.raises(ValueError, match="overlap"):
        find_mislabeled_with_aum([passes[0], passes[0]], percentile=80, procedure="two_pass")


@pytest.mark.parametrize("procedure", ["two_pass", "paper"])
def test_injected_flips_are_recovered(procedure):
    c = 3
    true = _balanced_labels(400, c, seed=1)
    noisy, flipped = inject_label_noise(true, c, rate=0.1, seed=1)
    ids, passes = _make_passes(true, noisy, c, procedure, seed=2)
    result = find_mislabeled_with_aum(passes, percentile=99, procedure=procedure)
    t = result.table.set_index("sample_id").loc[ids]
    judged = t["judged_passes"].to_numpy() > 0
    scores = flag_metrics(t["flagged"].to_numpy()[judged], flipped[judged])
    assert scores["precision"] > 0.8 and scores["recall"] > 0.8, scores


def test_end_to_end_with_relabelled_dataset(pair_dataset):
    """The labels the pipeline trains on come straight from relabel_threshold_samples."""
    ids = np.asarray(pair_dataset["sample_id"])
    pos = choose_threshold_samples(np.asarray(pair_dataset["label"]), 3, seed=0, fraction=0.5)
    relabelled = relabel_threshold_samples(pair_dataset, ids[pos], kind="pair", num_classes=3)
    logits = np.random.default_rng(0).normal(size=(2, len(ids), 4))
    run = AUMPass(ids, logits, np.asarray(relabelled["label"]), ids[pos])
    result = find_mislabeled_with_aum([run], percentile=50, procedure="paper")
    assert result.table["is_threshold"].sum() == pos.size == 3


def test_aum_table_parquet_roundtrip(tmp_path):
    true = _balanced_labels(20, 3)
    _, passes = _make_passes(true, true, 3, "two_pass")
    table = find_mislabeled_with_aum(passes, percentile=80).table
    path = tmp_path / "sub" / "aum.parquet"
    write_aum_table(table, path)
    write_aum_table(table, path)  # overwrite in place
    pd.testing.assert_frame_equal(read_aum_table(path), table)
    assert [p.name for p in path.parent.iterdir()] == ["aum.parquet"]
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not an AUM table"):
        read_aum_table(tmp_path / "other.parquet")


def test_available_balance_caps_a_tiny_class_in_a_second_pass() -> None:
    labels = np.array([0] * 120 + [1] * 5 + [2] * 80)
    first = choose_threshold_samples(labels, 3, seed=0, balance="proportional")
    with pytest.raises(ValueError, match="class 1"):
        choose_threshold_samples(labels, 3, seed=1, exclude=np.union1d(first, np.flatnonzero(labels == 1)),
                                 balance="proportional")
    taken = np.union1d(first, np.flatnonzero(labels == 1))
    second = choose_threshold_samples(labels, 3, seed=1, exclude=taken, balance="available")
    assert np.intersect1d(second, taken).size == 0
    assert (labels[second] == 1).sum() == 0  # class 1 had nothing left
    assert (labels[second] == 0).sum() > 0 and (labels[second] == 2).sum() > 0
