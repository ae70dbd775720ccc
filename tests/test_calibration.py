"""Tests for tdmixup.evaluation.calibration: torchmetrics parity, properties, D&D reference
numbers."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tdmixup.evaluation import calibration
from tdmixup.evaluation.calibration import (
    accuracy,
    brier_score,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_diagram,
)

DD_PREDICTIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "dd_predictions"
"""Real BERT predictions in Desai & Durrett's format (optional, from ``../shared/data``)."""
DD_SYNTHETIC = Path(__file__).resolve().parent / "fixtures" / "dd_predictions"
"""Synthetic predictions in the same format, 2× overconfident by construction
(tests/fixtures/README.md)."""


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _random_case(seed: int, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities whose confidences stay > 1e-5 away from every 0.1 bin edge."""
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(scale=rng.uniform(0.5, 4.0), size=(n, c))).astype(np.float32)
    labels = rng.integers(0, c, size=n)
    scaled = probs.max(axis=1).astype(np.float64) * 10
    keep = np.abs(scaled - np.round(scaled)) > 1e-4
    return probs[keep], labels[keep]


def test_docstring_examples() -> None:
    result = doctest.testmod(calibration, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "c"), [(37, 2), (1_000, 3), (20_000, 10)])
def test_ece_and_mce_match_torchmetrics(seed: int, n: int, c: int) -> None:
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _random_case(seed, n, c)
    kwargs = {"target": torch.from_numpy(labels), "num_classes": c, "n_bins": 10}
    for norm, ours in [("l1", expected_calibration_error), ("max", maximum_calibration_error)]:
        theirs = multiclass_calibration_error(torch.from_numpy(probs), norm=norm, **kwargs)
        assert ours(labels=labels, probs=probs) == pytest.approx(float(theirs), abs=1e-6)


def test_edge_confidence_one_goes_to_last_bin() -> None:
    # conf 1.0 (wrong) shares bin 9 with conf 0.9 (right): acc 0.5, conf 0.95 → 0.45.
    # torchmetrics instead gives 1.0 a bin of its own: 0.5·1.0 + 0.5·0.1 = 0.55.
    probs = np.array([[1.0, 0.0], [0.9, 0.1]])
    labels = np.array([1, 0])
    assert expected_calibration_error(labels=labels, probs=probs) == pytest.approx(0.45)
    assert maximum_calibration_error(labels=labels, probs=probs) == pytest.approx(0.45)


def test_edge_confidence_half_opens_its_bin() -> None:
    # conf 0.5 (right, argmax takes the first tie) joins 0.55 (wrong) in [0.5, 0.6):
    # acc 0.5, conf 0.525 → 0.025. Had 0.5 gone to [0.4, 0.5) it would be 0.525.
    probs = np.array([[0.5, 0.5], [0.55, 0.45]])
    labels = np.array([0, 1])
    assert expected_calibration_error(labels=labels, probs=probs) == pytest.approx(0.025)


def test_ece_properties() -> None:
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(500, 4))
    labels = rng.integers(0, 4, size=500)
    ece = expected_calibration_error(labels=labels, logits=logits)
    assert 0.0 <= ece <= 1.0
    assert 0.0 <= maximum_calibration_error(labels=labels, logits=logits) <= 1.0
    perm = rng.permutation(500)
    assert expected_calibration_error(labels=labels[perm], logits=logits[perm]) == pytest.approx(
        ece, abs=1e-12
    )
    from_probs = expected_calibration_error(labels=labels, probs=_softmax(logits))
    assert from_probs == pytest.approx(ece, abs=1e-12)
    as_tensors = expected_calibration_error(
        labels=torch.from_numpy(labels), logits=torch.from_numpy(logits).float()
    )
    assert as_tensors == pytest.approx(ece, abs=1e-6)
    as_bfloat16 = expected_calibration_error(
        labels=torch.from_numpy(labels), logits=torch.from_numpy(logits).bfloat16()
    )
    assert as_bfloat16 == pytest.approx(ece, abs=0.05)
    # Always-wrong, fully confident predictions: the worst case, ECE = 1.
    assert (
        expected_calibration_error(labels=np.ones(5, int), probs=np.tile([1.0, 0.0], (5, 1))) == 1
    )


def test_perfectly_calibrated_predictions_have_near_zero_ece() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, size=200_000)
    correct = rng.random(200_000) < confidence
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels = np.where(correct, 0, 1)
    assert expected_calibration_error(labels=labels, probs=probs) < 0.01
    assert accuracy(labels=labels, probs=probs) == pytest.approx(0.75, abs=0.01)


def test_nll_brier_accuracy_against_hand_values() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = np.array([0, 1])
    assert accuracy(labels=labels, probs=probs) == 0.5
    assert negative_log_likelihood(labels=labels, probs=probs) == pytest.approx(
        -(np.log(0.7) + np.log(0.3)) / 2
    )
    assert brier_score(labels=labels, probs=probs) == pytest.approx(
        ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.7**2 + 0.6**2)) / 2
    )
    logits = torch.randn(64, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(1))
    expected = torch.nn.functional.cross_entropy(logits, target).item()
    assert negative_log_likelihood(labels=target, logits=logits) == pytest.approx(expected)
    assert negative_log_likelihood(labels=target, probs=logits.softmax(1)) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"probs": np.full((2, 2), 0.5), "logits": np.zeros((2, 2))},
            "exactly one of probs= or logits=, got both",
        ),
        ({}, "exactly one of probs= or logits=, got neither"),
        ({"probs": np.full(2, 0.5)}, r"shape \[N, C\].*got shape \(2,\)"),
        ({"probs": np.zeros((0, 2))}, "N >= 1"),
        ({"probs": np.array([[0.5, 0.6], [0.5, 0.5]])}, "sum to 1.*got 1.1 in row 0"),
        ({"probs": np.array([[1.5, -0.5], [0.5, 0.5]])}, r"\[0, 1\].*row 0.*logits="),
        ({"logits": np.array([[0.0, np.nan], [1.0, 2.0]])}, "finite.*row 0"),
        (
            {"probs": np.full((2, 2), 0.5), "labels": np.array([0, 2])},
            r"\[0, 2\).*got 2 at index 1",
        ),
        ({"probs": np.full((2, 2), 0.5), "labels": np.array([0.0, 1.0])}, "integer class indices"),
        ({"probs": np.full((2, 2), 0.5), "labels": np.array([0, 1, 1])}, r"shape \[N\] = \(2,\)"),
        ({"probs": np.full((2, 2), 0.5), "n_bins": 0}, "n_bins must be a positive integer"),
    ],
)
def test_invalid_inputs_raise_clear_errors(kwargs: dict, message: str) -> None:
    kwargs = {"labels": np.array([0, 1]), **kwargs}
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(**kwargs)


def test_labels_then_logits_positionally_equal_the_keyword_calls(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    logits, labels = rng.normal(0, 2, size=(200, 3)), rng.integers(0, 3, size=200)
    for metric in (
        expected_calibration_error,
        maximum_calibration_error,
        accuracy,
        negative_log_likelihood,
        brier_score,
    ):
        assert metric(labels, logits) == metric(labels=labels, logits=logits), metric.__name__
    assert expected_calibration_error(labels, logits, n_bins=15) == expected_calibration_error(
        labels=labels, logits=logits, n_bins=15
    )
    assert fit_temperature(labels, logits) == fit_temperature(dev_logits=logits, dev_labels=labels)
    assert calibration_report(labels, logits, temperature=2.0) == calibration_report(
        logits=logits, labels=labels, temperature=2.0
    )
    assert reliability_diagram(labels, logits, path=tmp_path / "r.png").stat().st_size > 0
    with pytest.raises(ValueError, match="labels first, then logits"):
        expected_calibration_error(logits, labels)
    with pytest.raises(ValueError, match="labels first, then logits"):
        fit_temperature(logits, labels)
    with pytest.warns(UserWarning, match="pass probabilities as probs="):
        expected_calibration_error(labels, _softmax(logits))


def test_fit_temperature_recovers_the_sharpening_factor() -> None:
    rng = np.random.default_rng(3)
    true_logits = rng.normal(scale=2.0, size=(4_000, 3))
    cumulative = np.cumsum(_softmax(true_logits), axis=1)
    labels = np.minimum((rng.random((4_000, 1)) > cumulative).sum(axis=1), 2)
    overconfident = 2.0 * true_logits
    grid = fit_temperature(dev_logits=overconfident, dev_labels=labels)
    lbfgs = fit_temperature(
        dev_logits=torch.from_numpy(overconfident), dev_labels=labels, method="lbfgs"
    )
    assert grid == pytest.approx(2.0, abs=0.15)
    assert lbfgs == pytest.approx(grid, abs=0.01)
    with pytest.raises(ValueError, match="method must be 'grid' or 'lbfgs'"):
        fit_temperature(dev_logits=overconfident, dev_labels=labels, method="adam")  # type: ignore[arg-type]


def test_grid_temperature_is_the_argmin_of_nll_over_the_grid() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=3.0, size=(60, 4))
    labels = rng.integers(0, 4, size=60)
    labels[:40] = logits[:40].argmax(axis=1)  # informative enough for an interior optimum
    grid = np.arange(1, 1001) / 100
    nll = [negative_log_likelihood(labels=labels, logits=logits / t) for t in grid]
    assert fit_temperature(dev_logits=logits, dev_labels=labels) == grid[int(np.argmin(nll))]


def test_calibration_report_keys_and_scaling() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=4.0, size=(300, 3))
    labels = rng.integers(0, 3, size=300)
    plain = calibration_report(logits=logits, labels=labels)
    assert set(plain) == {"accuracy", "ece", "mce", "nll", "brier"}
    scaled = calibration_report(logits=logits, labels=labels, temperature=2.0)
    assert {k: scaled[k] for k in plain} == plain
    assert scaled["temperature"] == 2.0
    assert scaled["ece_scaled"] == pytest.approx(
        expected_calibration_error(labels=labels, logits=logits / 2)
    )
    assert set(scaled) - set(plain) == {
        "temperature",
        "ece_scaled",
        "mce_scaled",
        "nll_scaled",
        "brier_scaled",
    }
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        calibration_report(logits=logits, labels=labels, temperature=0.0)


def test_reliability_diagram_writes_png_atomically(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(400, 3))
    labels = rng.integers(0, 3, size=400)
    out = reliability_diagram(
        labels=labels,
        logits=logits,
        path=tmp_path / "plots" / "rd.png",
        title="random",
        temperature=1.5,
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["rd.png"]
    with pytest.raises(ValueError, match="temperature= needs logits="):
        reliability_diagram(
            labels=labels, probs=_softmax(logits), path=tmp_path / "x.png", temperature=1.5
        )
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- real D&D predictions


def _load_predictions(name: str, folder: Path = DD_PREDICTIONS) -> dict[str, np.ndarray]:
    if not folder.is_dir():
        pytest.skip(
            "real-data variant: put the BERT predictions on SNLI in Desai & Durrett's format "
            "(SNLI_{dev,test}_bert-base-uncased_{0,1}.json, see tests/fixtures/README.md) in "
            "../shared/data/dd_predictions/; the synthetic variant ran"
        )
    rows = [json.loads(line) for line in (folder / name).read_text().splitlines() if line]
    return {
        key: np.array([r[key] for r in rows]) for key in ("true", "pred", "conf", "logits", "probs")
    }


def test_dd_format_synthetic_predictions() -> None:
    """The D&D reading path on synthetic predictions whose logits are the calibrated ones ×2
    (labels drawn from softmax(logits / 2)): metrics against direct references, T near 2."""
    dev = _load_predictions("SYN_dev_tiny_0.json", DD_SYNTHETIC)
    test = _load_predictions("SYN_test_tiny_0.json", DD_SYNTHETIC)
    assert len(test["true"]) == 400 and test["logits"].shape == (400, 3)
    np.testing.assert_allclose(test["probs"], _softmax(test["logits"]), atol=1e-12)
    assert np.array_equal(test["conf"], test["probs"].max(axis=1))
    assert accuracy(labels=test["true"], logits=test["logits"]) == np.mean(
        test["pred"] == test["true"]
    )
    conf, hit = test["conf"], test["pred"] == test["true"]
    bins = np.minimum((conf * 10).astype(int), 9)  # 10 equal-width bins, a sample per loop
    reference = sum(
        abs(hit[bins == b].mean() - conf[bins == b].mean()) * np.mean(bins == b)
        for b in range(10)
        if np.any(bins == b)
    )
    assert expected_calibration_error(labels=test["true"], probs=test["probs"]) == pytest.approx(
        reference, abs=1e-9
    )
    temperature = fit_temperature(dev_logits=dev["logits"], dev_labels=dev["true"])
    assert 1.6 <= temperature <= 2.4  # the generating factor, 2, within sampling noise of 400 rows
    report = calibration_report(logits=test["logits"], labels=test["true"], temperature=temperature)
    assert report["ece_scaled"] < report["ece"] / 2 and report["nll_scaled"] < report["nll"]
    lbfgs = fit_temperature(dev_logits=dev["logits"], dev_labels=dev["true"], method="lbfgs")
    assert lbfgs == pytest.approx(temperature, abs=0.01)


@pytest.fixture(scope="module")
def snli_seed0() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return (
        _load_predictions("SNLI_dev_bert-base-uncased_0.json"),
        _load_predictions("SNLI_test_bert-base-uncased_0.json"),
    )


def test_dd_snli_seed0_reference_numbers(snli_seed0: tuple[dict, dict]) -> None:
    dev, test = snli_seed0
    assert len(test["true"]) == 4_921
    assert round(100 * accuracy(labels=test["true"], logits=test["logits"]), 2) == 89.92
    # The stored probs (whose max is the stored conf) and softmax(logits) agree to ~1e-7.
    assert np.array_equal(test["conf"], test["probs"].max(axis=1))
    for scores in ({"probs": test["probs"]}, {"logits": test["logits"]}):
        assert round(100 * expected_calibration_error(labels=test["true"], **scores), 2) == 4.40
    temperature = fit_temperature(dev_logits=dev["logits"], dev_labels=dev["true"])
    assert temperature == 1.34
    report = calibration_report(logits=test["logits"], labels=test["true"], temperature=temperature)
    assert round(100 * report["ece"], 2) == 4.40
    assert round(100 * report["ece_scaled"], 2) == 1.35
    assert report["nll_scaled"] < report["nll"] and report["brier_scaled"] < report["brier"]
    lbfgs = fit_temperature(dev_logits=dev["logits"], dev_labels=dev["true"], method="lbfgs")
    assert lbfgs == pytest.approx(temperature, abs=0.01)


def test_dd_snli_seed1_ece() -> None:
    test = _load_predictions("SNLI_test_bert-base-uncased_1.json")
    assert (
        round(100 * expected_calibration_error(labels=test["true"], probs=test["probs"]), 2) == 2.64
    )
