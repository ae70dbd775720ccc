"""tdmixup.dynamics.aum_arrays.find_mislabeled: the one-call AUM API on plain arrays.

Checked against the two-pass procedure of :func:`tdmixup.dynamics.aum.find_mislabeled_with_aum` fed
the same runs as the pipeline feeds it (AUMPass objects with non-positional ids in shuffled order),
and the plain ranking against :func:`tdmixup.dynamics.table.area_under_margin`.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from tdmixup.dynamics import aum_arrays
from tdmixup.dynamics.aum import (
    AUMPass,
    area_under_margin,
    choose_threshold_samples,
    find_mislabeled_with_aum,
    relabel_threshold_labels,
)
from tdmixup.dynamics.aum_arrays import find_mislabeled

N, C, E = 80, 3, 4


def _run(
    labels: np.ndarray, noisy: np.ndarray, pos: np.ndarray, seed: int, *, extra: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits [E, N, C(+1)] of a run trained on relabelled labels: clean samples' trained label
    wins more each epoch, noisy ones' (planted) and threshold samples' stay behind."""
    rng = np.random.default_rng(seed)
    mask = np.isin(np.arange(N), pos)
    trained = relabel_threshold_labels(
        labels, mask, kind="pair" if extra else "multiple_choice", num_classes=C, seed=seed
    )
    width = C + 1 if extra else C
    z = rng.normal(0.0, 1.0, size=(E, N, width))
    growth = np.where(noisy | mask, rng.uniform(-1.0, 0.5, N), rng.uniform(0.5, 2.0, N))
    z[:, np.arange(N), trained] += np.arange(1, E + 1)[:, None] * growth[None, :]
    return z, trained, mask


Runs = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]


def _two_runs(extra: bool) -> Runs:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, N)
    noisy = rng.random(N) < 0.15
    first = choose_threshold_samples(labels, C, seed=1)
    second = choose_threshold_samples(labels, C, seed=2, exclude=first)
    runs = [_run(labels, noisy, pos, seed, extra=extra) for pos, seed in ((first, 1), (second, 2))]
    return [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs], noisy


def _reference(
    logits: list[np.ndarray],
    trained: list[np.ndarray],
    masks: list[np.ndarray],
    *,
    extra: bool,
    percentile: float,
    skip: int = 0,
) -> np.ndarray:
    """find_mislabeled_with_aum on the same runs, with ids 1000 + 7·position in a shuffled
    order per pass, mapped back to positions."""
    ids = 1000 + 7 * np.arange(N)
    passes = []
    for p, (z, y, m) in enumerate(zip(logits, trained, masks, strict=True)):
        order = np.random.default_rng(10 + p).permutation(N)
        passes.append(
            AUMPass(
                sample_ids=ids[order],
                logits=z[:, order],
                labels=y[order],
                threshold_ids=ids[m],
                extra_class=extra,
            )
        )
    result = find_mislabeled_with_aum(
        passes,
        percentile=percentile,
        skip_epochs=skip,
        procedure="two_pass" if len(passes) == 2 else "paper",
    )
    return np.isin(ids, result.flagged_ids)


@pytest.mark.parametrize("extra", [True, False], ids=["pair", "multiple_choice"])
@pytest.mark.parametrize(("percentile", "skip"), [(80.0, 0), (50.0, 1), (99.0, 0)])
def test_two_pass_flags_equal_find_mislabeled_with_aum(
    extra: bool, percentile: float, skip: int
) -> None:
    logits, trained, masks, noisy = _two_runs(extra)
    flags = find_mislabeled(
        logits,
        trained,
        threshold_mask=masks,
        percentile=percentile,
        skip_epochs=skip,
        extra_class=extra,
    )
    expected = _reference(logits, trained, masks, extra=extra, percentile=percentile, skip=skip)
    assert flags.dtype == np.bool_ and flags.shape == (N,)
    np.testing.assert_array_equal(flags, expected)
    assert 0 < flags.sum() < N  # a comparison that can fail: neither all nor none flagged
    if percentile == 80.0:
        assert flags[noisy].mean() > 0.8 > flags[~noisy].mean()
    stacked = find_mislabeled(
        np.stack(logits),
        np.stack(trained),
        threshold_mask=np.stack(masks),
        percentile=percentile,
        skip_epochs=skip,
        extra_class=extra,
    )
    np.testing.assert_array_equal(stacked, flags)


def test_one_pass_flags_equal_the_papers_procedure_and_drop_threshold_samples() -> None:
    logits, trained, masks, _ = _two_runs(True)
    flags = find_mislabeled(logits[0], trained[0], threshold_mask=masks[0], percentile=80)
    np.testing.assert_array_equal(
        flags, _reference(logits[:1], trained[:1], masks[:1], extra=True, percentile=80)
    )
    assert flags[masks[0]].all() and not flags[~masks[0]].all()


def test_plain_ranking_by_fraction_and_by_aum() -> None:
    logits, _, _, _ = _two_runs(True)
    z = logits[0][:, :, :C]  # an ordinary run: C classes, the labels as given
    labels = z[-1].argmax(axis=1)
    labels[:10] = (labels[:10] + 1) % C  # these disagree with the model
    aums = area_under_margin(z, labels)
    flags = find_mislabeled(z, labels, fraction=0.125)
    assert flags.sum() == 10
    assert aums[flags].max() <= aums[~flags].min()
    np.testing.assert_array_equal(find_mislabeled(z, labels, aum_below=0.0), aums < 0.0)
    as_lists = find_mislabeled(z.tolist(), labels.tolist(), aum_below=0.0)
    np.testing.assert_array_equal(as_lists, aums < 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"percentile": 80}, "percentile= needs threshold_mask="),
        ({}, "exactly one of fraction="),
        ({"fraction": 0.1, "aum_below": 0.0}, "exactly one of fraction="),
        ({"fraction": 1.5}, r"fraction: expected a value in \(0, 1\)"),
        ({"threshold_mask": "mask", "fraction": 0.1}, "for the plain ranking"),
        ({"threshold_mask": "mask"}, "percentile: required"),
        ({"threshold_mask": "positions", "percentile": 80}, "boolean mask of shape"),
        ({"threshold_mask": "three", "percentile": 80}, "expected 1 or 2 runs"),
    ],
)
def test_bad_options_are_refused_with_the_argument_named(kwargs: dict, match: str) -> None:
    logits, trained, masks, _ = _two_runs(True)
    special = {"mask": masks[0], "positions": np.flatnonzero(masks[0]), "three": masks + masks[:1]}
    if "threshold_mask" in kwargs:
        kwargs = {**kwargs, "threshold_mask": special[kwargs["threshold_mask"]]}
    with pytest.raises(ValueError, match=match):
        find_mislabeled(logits[0], trained[0], **kwargs)


def test_bad_shapes_are_refused() -> None:
    logits, trained, masks, _ = _two_runs(True)
    with pytest.raises(ValueError, match=r"logits_by_epoch: expected \[E, N, C\]"):
        find_mislabeled(logits[0][0], trained[0], fraction=0.1)  # [N, C]: one epoch without E
    with pytest.raises(ValueError, match="labels: 79 labels for 80 samples"):
        find_mislabeled(logits[0], trained[0][:-1], aum_below=0.0)
    with pytest.raises(ValueError, match=r"pass 1: labels of shape \(79,\)"):
        find_mislabeled(logits, [trained[0], trained[1][:-1]], threshold_mask=masks, percentile=80)
    with pytest.raises(ValueError, match="several runs need threshold_mask="):
        find_mislabeled(logits, trained, fraction=0.1)
    with pytest.raises(ValueError, match="disagree with threshold_ids"):  # original labels given
        find_mislabeled(
            logits[0], np.minimum(trained[0], C - 1), threshold_mask=masks[0], percentile=80
        )


def test_docstring_examples() -> None:
    result = doctest.testmod(aum_arrays, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
