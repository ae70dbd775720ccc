"""AUM, threshold samples and mislabel flagging (tdmixup.dynamics.aum)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tdmixup.dynamics.aum import (
    AUM_TABLE_COLUMNS,
    AUMPass,
    aum_threshold,
    choose_threshold_samples,
    find_mislabeled_with_aum,
    flag_mislabeled,
    read_aum_table,
    relabel_threshold_labels,
    relabel_threshold_samples,
    write_aum_table,
)
from tdmixup.dynamics.noise import flag_metrics, inject_label_noise
from tdmixup.dynamics.table import area_under_margin, margins

# ---------------------------------------------------------------- margins and AUM


def test_margins_and_aum_hand_computed():
    logits = np.array(
        [
            [[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]],
            [[1.0, 1.5, -1.0], [0.0, 0.0, 4.0]],
        ]
    )  # [E=2, N=2, C=3]
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
            calc.update(
                torch.from_numpy(logits[epoch, sl]),
                torch.from_numpy(labels[sl]),
                list(range(30))[sl],
            )
    calc.finalize()
    theirs = pd.read_csv(tmp_path / "aum_values.csv").set_index("sample_id")["aum"].sort_index()
    np.testing.assert_allclose(area_under_margin(logits, labels), theirs.to_numpy(), atol=1e-5)


# ---------------------------------------------------------------- threshold samples


def _balanced_labels(n_per_class: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(c), n_per_class))


def test_threshold_sample_counts_equal_per_class_and_deterministic():
    labels = _balanced_labels(160, 3)  # N = 480: N/(c+1) = 120 = 3 × 40
    pos = choose_threshold_samples(labels, 3, seed=7, balance="equal")
    assert pos.size == 480 // 4
    assert np.bincount(labels[pos], minlength=3).tolist() == [40, 40, 40]
    assert np.unique(pos).size == pos.size and np.all(np.diff(pos) > 0)
    np.testing.assert_array_equal(pos, choose_threshold_samples(labels, 3, seed=7, balance="equal"))
    assert not np.array_equal(pos, choose_threshold_samples(labels, 3, seed=8, balance="equal"))


@pytest.mark.parametrize("balance", ["uniform", "equal"])
def test_second_pass_is_disjoint_and_same_size(balance):
    labels = _balanced_labels(100, 4)  # N = 400, c = 4: 80 = 4 × 20
    first = choose_threshold_samples(labels, 4, seed=0, balance=balance)
    second = choose_threshold_samples(labels, 4, seed=0, exclude=first, balance=balance)
    assert first.size == second.size == 80
    assert np.intersect1d(first, second).size == 0
    if balance == "equal":
        assert np.bincount(labels[second], minlength=4).tolist() == [20] * 4


def test_uniform_draw_is_the_default_and_follows_the_class_mix():
    """Pleiss et al.: N/(c+1) samples uniformly at random from the whole region, so each class
    gives about its share (the paper's code gave each class the same number)."""
    labels = np.repeat([0, 1, 2], [2400, 2050, 500])
    total = labels.size // 4
    pos = choose_threshold_samples(labels, 3, seed=0)
    assert pos.size == total and np.unique(pos).size == total
    share = np.bincount(labels[pos], minlength=3) / total
    np.testing.assert_allclose(share, [2400 / 4950, 2050 / 4950, 500 / 4950], atol=0.03)
    np.testing.assert_array_equal(
        pos, choose_threshold_samples(labels, 3, seed=0, balance="uniform")
    )
    second = choose_threshold_samples(labels, 3, seed=1, exclude=pos)
    assert second.size == total and np.intersect1d(pos, second).size == 0
    with pytest.raises(ValueError, match="threshold samples needed"):
        choose_threshold_samples(np.array([0, 1, 2]), 3, seed=0)


def test_threshold_samples_fraction_and_proportional_balance():
    labels = np.repeat([0, 1], [300, 100])
    pos = choose_threshold_samples(labels, 2, seed=0, fraction=0.25, balance="proportional")
    assert pos.size == 100
    assert np.bincount(labels[pos]).tolist() == [75, 25]


def test_threshold_samples_short_class_raises_clearly():
    labels = np.repeat([0, 1, 2], [200, 200, 20])  # N = 420 → 105 total → 35 per class
    with pytest.raises(ValueError, match=r"class 2: 20 selectable, needs 35.*proportional"):
        choose_threshold_samples(labels, 3, seed=0, balance="equal")
    first = choose_threshold_samples(labels, 3, seed=0, balance="proportional")
    with pytest.raises(ValueError, match="class 2"):  # 20 − 5 left < 35 needed in equal mode
        choose_threshold_samples(labels, 3, seed=0, exclude=first, balance="equal")
    with pytest.raises(ValueError, match="no threshold samples"):
        choose_threshold_samples(np.array([0, 1, 2]), 3, seed=0, balance="equal")


# ---------------------------------------------------------------- relabelling


@pytest.fixture
def pair_dataset():
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict(
        {
            "sample_id": [10, 11, 12, 13, 14, 15],
            "text_a": list("abcdef"),
            "text_b": list("ghijkl"),
            "label": [0, 1, 2, 0, 1, 2],
        }
    )


@pytest.fixture
def mc_dataset():
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict(
        {
            "sample_id": [0, 1, 2, 3],
            "context": ["c0", "c1", "c2", "c3"],
            "endings": [[f"e{i}_{k}" for k in range(4)] for i in range(4)],
            "label": [0, 3, 2, 1],
        }
    )


def test_relabel_pair(pair_dataset):
    out = relabel_threshold_samples(pair_dataset, np.array([11, 15]), kind="pair", num_classes=3)
    assert out.column_names == pair_dataset.column_names
    assert out["label"] == [0, 3, 2, 0, 1, 3]
    assert out["text_a"] == pair_dataset["text_a"] and out["sample_id"] == pair_dataset["sample_id"]
    with pytest.raises(ValueError, match=r"not in the dataset, e.g. \[99\]"):
        relabel_threshold_samples(pair_dataset, np.array([99]), kind="pair", num_classes=3)


def test_relabel_multiple_choice(mc_dataset):
    """A threshold item is re-assigned to a wrong existing ending; endings stay K, others keep
    their label; the wrong ending is seeded."""
    out = relabel_threshold_samples(
        mc_dataset, np.array([1, 2]), kind="multiple_choice", num_classes=4, seed=3
    )
    assert out["endings"] == mc_dataset["endings"]
    gold, new = np.array(mc_dataset["label"]), np.array(out["label"])
    assert new[[0, 3]].tolist() == gold[[0, 3]].tolist()
    assert (new[[1, 2]] != gold[[1, 2]]).all() and ((new >= 0) & (new < 4)).all()
    again = relabel_threshold_samples(
        mc_dataset, np.array([1, 2]), kind="multiple_choice", num_classes=4, seed=3
    )
    assert again["label"] == out["label"]
    many = relabel_threshold_labels(
        np.zeros(4000, dtype=np.int64),
        np.ones(4000, dtype=bool),
        kind="multiple_choice",
        num_classes=4,
        seed=0,
    )
    assert (
        np.bincount(many, minlength=4)[0] == 0 and np.bincount(many)[1:].min() > 1200
    )  # each wrong ending
    with pytest.raises(ValueError, match="3 endings, expected 4"):
        relabel_threshold_samples(
            mc_dataset.map(lambda r: {"endings": r["endings"][:3]}),
            np.array([1]),
            kind="multiple_choice",
            num_classes=4,
        )


def _ending_logits(dataset, score):
    """``[1, N, C]`` logits of a per-ending scorer: ``score(row, ending text)`` for every ending."""
    return np.array([[[score(i, e) for e in row] for i, row in enumerate(dataset["endings"])]])


def test_mc_threshold_items_are_learnable_not_a_forced_tie(mc_dataset):
    """A relabelled item's new label and its gold ending are different inputs, so a scorer that
    memorised the labels as trained gives threshold items a positive margin. The paper code's
    construction (a copy of the gold ending as a 5th choice, labelled as such) makes the label
    and the gold ending the same text: the margin is 0 for that scorer and ≤ 0 for every scorer."""
    th = np.array([1, 2])
    out = relabel_threshold_samples(mc_dataset, th, kind="multiple_choice", num_classes=4)
    is_th = np.isin(out["sample_id"], th)
    labelled = [row[k] for row, k in zip(out["endings"], out["label"], strict=True)]
    gold = [row[k] for row, k in zip(mc_dataset["endings"], mc_dataset["label"], strict=True)]
    assert all((a != b) == t for a, b, t in zip(labelled, gold, is_th, strict=True))
    memorised = _ending_logits(out, lambda i, e: 5.0 if e == labelled[i] else 0.0)
    assert (margins(memorised, out["label"])[0] > 0).all()
    rng = np.random.default_rng(0)
    for _ in range(20):  # random scorers: a threshold item's margin is not capped at 0
        table = {e: rng.normal() for row in out["endings"] for e in row}
        m = margins(_ending_logits(out, lambda i, e, table=table: table[e]), out["label"])[0]
        if (m[is_th] > 0).any():
            break
    else:
        raise AssertionError("no random scorer gave a threshold item a positive margin")


def test_mc_pass_needs_no_extra_class():
    """Multiple-choice passes (threshold items on existing endings) go through the same flagging."""
    rng = np.random.default_rng(0)
    ids, gold = np.arange(200), rng.integers(0, 4, 200)
    pos = choose_threshold_samples(gold, 4, seed=0, fraction=0.2)
    trained = relabel_threshold_labels(
        gold, np.isin(ids, ids[pos]), kind="multiple_choice", num_classes=4, seed=0
    )
    logits = rng.normal(size=(3, 200, 4))
    logits[:, np.arange(200), gold] += 2.0  # learns the gold endings; threshold items stay below
    run = AUMPass(ids, logits, trained, ids[pos], extra_class=False)
    result = find_mislabeled_with_aum([run], percentile=50, procedure="paper")
    assert result.thresholds[0] < -1.0 and result.table["is_threshold"].sum() == pos.size == 40
    with pytest.raises(
        ValueError, match="disagree with threshold_ids"
    ):  # the pair check still applies by default
        find_mislabeled_with_aum(
            [AUMPass(ids, logits, trained, ids[pos])], percentile=50, procedure="paper"
        )


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
    """Logits of a model generalising to the true class and slowly memorising the assigned one."""
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


def _class_level_logits(true, trained, num_outputs, epochs, rng):
    """Logits of a model whose features identify each sample's true class perfectly (clean data):
    for a sample of class y it predicts the labels it was trained on among class-y samples
    (log-frequencies), slowly memorises each sample's own label, plus a little noise."""
    c = num_outputs - 1
    freq = np.zeros((c, num_outputs))
    np.add.at(freq, (true, trained), 1)
    prob = (freq + 0.5) / (freq.sum(axis=1, keepdims=True) + 0.5 * num_outputs)
    logits = np.repeat(np.log(prob)[true][None], epochs, axis=0)
    logits[:, np.arange(true.size), trained] += 0.5 * (np.arange(1, epochs + 1) / epochs)[:, None]
    return logits + rng.normal(0.0, 0.3, size=logits.shape)


def _kept_per_class(labels, choose, c=3, percentile=80):
    """Two-pass AUM on a clean region whose threshold sets come from ``choose(seed, exclude)``."""
    rng = np.random.default_rng(0)
    ids = np.arange(labels.size) + 100
    passes, taken = [], None
    for p in range(2):
        pos = choose(p, taken)
        taken = pos if taken is None else np.union1d(taken, pos)
        trained = labels.copy()
        trained[pos] = c
        passes.append(
            AUMPass(ids, _class_level_logits(labels, trained, c + 1, 3, rng), trained, ids[pos])
        )
    kept = ~find_mislabeled_with_aum(passes, percentile=percentile).table["flagged"].to_numpy()
    return np.bincount(labels[kept], minlength=c)


def test_default_threshold_draw_keeps_the_clean_samples_of_a_small_class():
    """A clean, skewed region [240, 205, 50]: the default (uniform) draw keeps every class; the
    paper code's equal draw relabels 41 of the 50 small-class samples in pass 1, the model learns
    "class 2 → fake class" and clean samples are flagged (the old default)."""
    labels = np.repeat([0, 1, 2], [240, 205, 50])
    sizes = np.bincount(labels)

    def choose(seed, exclude, **balance):
        try:
            return choose_threshold_samples(labels, 3, seed=seed, exclude=exclude, **balance)
        except ValueError:  # a class too short in pass 2: each class gives what it has left
            return choose_threshold_samples(
                labels, 3, seed=seed, exclude=exclude, balance="available"
            )

    kept = _kept_per_class(labels, choose)
    assert (kept >= 0.97 * sizes).all(), kept.tolist()
    equal = _kept_per_class(labels, lambda seed, ex: choose(seed, ex, balance="equal"))
    assert equal[2] <= 0.9 * sizes[2] and equal.sum() < kept.sum(), equal.tolist()


def test_pipeline_choice_is_uniform_by_default_without_fallbacks(caplog):
    """The AUM stage's own choice: the resolved default is uniform, both passes draw it (no
    fallback, nothing logged); equal, kept for old folders, falls back on this skewed region."""
    from tdmixup.core.config import RunConfig
    from tdmixup.run.aum_training import _choose
    from tdmixup.run.pipeline import with_task_defaults

    balance = with_task_defaults(RunConfig()).aum.threshold_balance
    assert balance == "uniform"
    labels = np.repeat([0, 1, 2], [240, 205, 50])
    with caplog.at_level("INFO", logger="tdmixup"):
        first, used1 = _choose(labels, 3, balance=balance, seed=0, exclude=None)
        second, used2 = _choose(labels, 3, balance=balance, seed=101, exclude=first)
    assert (used1, used2) == ("uniform", "uniform") and not caplog.records
    assert first.size == second.size == labels.size // 4 and np.intersect1d(first, second).size == 0
    first, used1 = _choose(labels, 3, balance="equal", seed=0, exclude=None)
    _, used2 = _choose(labels, 3, balance="equal", seed=101, exclude=first)
    assert (used1, used2) == ("equal", "available")  # class 2 has 9 left of the 41 or 12 asked


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
    assert (once["judged_passes"] == 1).all() and (
        t.loc[~t["is_threshold"], "judged_passes"] == 2
    ).all()
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
        choose_threshold_samples(
            labels,
            3,
            seed=1,
            exclude=np.union1d(first, np.flatnonzero(labels == 1)),
            balance="proportional",
        )
    taken = np.union1d(first, np.flatnonzero(labels == 1))
    second = choose_threshold_samples(labels, 3, seed=1, exclude=taken, balance="available")
    assert np.intersect1d(second, taken).size == 0
    assert (labels[second] == 1).sum() == 0  # class 1 had nothing left
    assert (labels[second] == 0).sum() > 0 and (labels[second] == 2).sum() > 0


def test_skip_epochs_leaves_early_epochs_out_of_the_average() -> None:
    """``skip_epochs=E`` averages margins from epoch E on (Pleiss et al.'s runner skips epoch 0)."""
    true = _balanced_labels(60, 3)
    _, passes = _make_passes(true, true, 3, "two_pass", epochs=4)
    passes = [AUMPass(p.sample_ids, p.logits.copy(), p.labels, p.threshold_ids) for p in passes]
    for p in passes:
        p.logits[0] = np.random.default_rng(1).normal(
            0.0, 10.0, size=p.logits.shape[1:]
        )  # a noisy first epoch
    full = find_mislabeled_with_aum(passes, percentile=80)
    skipped = find_mislabeled_with_aum(passes, percentile=80, skip_epochs=1)
    assert full.skip_epochs == 0 and skipped.skip_epochs == 1
    pp = skipped.per_pass[skipped.per_pass["pass"] == 0]
    expected = margins(passes[0].logits[1:], passes[0].labels).mean(axis=0)
    np.testing.assert_allclose(pp.set_index("sample_id").loc[passes[0].sample_ids, "aum"], expected)
    assert not np.allclose(full.table["aum"], skipped.table["aum"])
    assert (
        skipped.table["flagged"].sum() < full.table["flagged"].sum()
    )  # epoch 0's noise no longer flags clean samples
    np.testing.assert_allclose(
        area_under_margin(passes[0].logits, passes[0].labels, skip_epochs=3),
        margins(passes[0].logits[3:], passes[0].labels)[0],
    )
    for bad in (4, -1, 1.5):
        with pytest.raises(ValueError, match="skip_epochs"):
            find_mislabeled_with_aum(passes, percentile=80, skip_epochs=bad)


def test_skip_epochs_is_validated_in_the_config() -> None:
    from tdmixup.core.config import AUMConfig, RunConfig, TrainConfig

    assert AUMConfig().skip_epochs == 0
    with pytest.raises(ValueError, match="--aum-skip-epochs"):
        AUMConfig(skip_epochs=-1)
    with pytest.raises(ValueError, match="--aum-skip-epochs 2 leaves none of the 2 --aum-epochs"):
        AUMConfig(epochs=2, skip_epochs=2)
    with pytest.raises(ValueError, match="leaves none of the AUM run's 3 epochs"):
        RunConfig(aum=AUMConfig(skip_epochs=3))
    RunConfig(train=TrainConfig(epochs=3), aum=AUMConfig(skip_epochs=2))
