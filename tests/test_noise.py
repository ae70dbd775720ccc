"""Label-noise injection and flag scores (tdmixup.dynamics.noise)."""

from __future__ import annotations

import numpy as np
import pytest

from tdmixup.dynamics.noise import flag_metrics, inject_label_noise


@pytest.mark.parametrize(
    ("n", "rate", "expected"), [(1000, 0.1, 100), (10, 0.25, 3), (7, 0.0, 0), (7, 1.0, 7)]
)
def test_exact_number_of_flips(n, rate, expected):
    labels = np.arange(n) % 3
    noisy, flipped = inject_label_noise(labels, 3, rate=rate, seed=0)
    assert flipped.sum() == expected
    np.testing.assert_array_equal(noisy != labels, flipped)


def test_symmetric_flips_never_keep_the_class_and_reach_every_other_class():
    labels = np.arange(4000) % 4
    noisy, flipped = inject_label_noise(labels, 4, rate=0.5, seed=3)
    assert (noisy[flipped] != labels[flipped]).all()
    assert (noisy[~flipped] == labels[~flipped]).all()
    assert noisy.min() >= 0 and noisy.max() < 4
    for k in range(4):
        targets = np.bincount(noisy[flipped & (labels == k)], minlength=4)
        assert targets[k] == 0 and (targets[np.arange(4) != k] > 100).all()


def test_flip_kind_moves_to_next_class():
    labels = np.arange(100) % 3
    noisy, flipped = inject_label_noise(labels, 3, rate=0.3, seed=0, kind="flip")
    np.testing.assert_array_equal(noisy[flipped], (labels[flipped] + 1) % 3)


def test_seeded_reproducibility():
    labels = np.arange(500) % 5
    a = inject_label_noise(labels, 5, rate=0.2, seed=11)
    b = inject_label_noise(labels, 5, rate=0.2, seed=11)
    c = inject_label_noise(labels, 5, rate=0.2, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_noise_validates_inputs():
    with pytest.raises(ValueError, match="rate"):
        inject_label_noise(np.array([0, 1]), 2, rate=1.5, seed=0)
    with pytest.raises(ValueError, match="num_classes"):
        inject_label_noise(np.array([0, 0]), 1, rate=0.5, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        inject_label_noise(np.array([0, 2]), 2, rate=0.5, seed=0)
    with pytest.raises(ValueError, match="kind"):
        inject_label_noise(np.array([0, 1]), 2, rate=0.5, seed=0, kind="pairwise")  # type: ignore[arg-type]


def test_flag_metrics_hand_computed_and_edge_cases():
    flags = np.array([True, True, True, False, False])
    truth = np.array([True, True, False, True, False])
    m = flag_metrics(flags, truth)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and (m["n_flagged"], m["n_true"]) == (3, 3)
    none = flag_metrics(np.zeros(3, bool), np.array([True, False, False]))
    assert none == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n_flagged": 0, "n_true": 1}
    with pytest.raises(ValueError):
        flag_metrics(np.zeros(3, bool), np.zeros(4, bool))


def test_flag_metrics_match_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    flags, truth = rng.random(200) < 0.3, rng.random(200) < 0.2
    p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(truth, flags, average="binary")
    m = flag_metrics(flags, truth)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((p, r, f))


def test_class_conditional_flips_only_the_source_class_to_its_target():
    labels = np.arange(3000) % 3  # 1,000 per class
    noisy, flipped = inject_label_noise(
        labels, 3, rate=0.1, seed=5, kind="class_conditional", transitions={1: 0}
    )
    assert flipped.sum() == 300  # a share of all rows, not of the source class
    np.testing.assert_array_equal(noisy != labels, flipped)
    assert (labels[flipped] == 1).all() and (noisy[flipped] == 0).all()
    again, _ = inject_label_noise(
        labels, 3, rate=0.1, seed=5, kind="class_conditional", transitions={1: 0}
    )
    np.testing.assert_array_equal(noisy, again)
    two, moved = inject_label_noise(
        labels, 3, rate=0.2, seed=1, kind="class_conditional", transitions={1: 0, 2: 1}
    )
    assert set(zip(labels[moved].tolist(), two[moved].tolist(), strict=True)) == {(1, 0), (2, 1)}


def test_class_conditional_noise_validates_transitions():
    labels = np.arange(30) % 3
    for bad, match in [
        ({1: 1}, "itself"),
        ({1: 3}, r"outside \[0, 3\)"),
        ({}, "at least one"),
        (None, "transitions: required"),
    ]:
        with pytest.raises(ValueError, match=match):
            inject_label_noise(
                labels, 3, rate=0.1, seed=0, kind="class_conditional", transitions=bad
            )
    with pytest.raises(ValueError, match="only 10 labels belong"):
        inject_label_noise(
            labels, 3, rate=0.5, seed=0, kind="class_conditional", transitions={1: 0}
        )
    with pytest.raises(ValueError, match="only taken with it"):
        inject_label_noise(labels, 3, rate=0.1, seed=0, transitions={1: 0})
