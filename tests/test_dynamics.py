"""Tests for tdmixup.dynamics.table: storage, Cartography import/export, statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tdmixup.dynamics import table as dynamics
from tdmixup.dynamics.table import (
    TrainingDynamics,
    append_epoch,
    area_under_margin,
    compute_statistics,
    confidence,
    correctness,
    export_cartography,
    forgetting_events,
    gold_probabilities,
    read_cartography,
    read_dynamics,
    variability,
)

CARTOGRAPHY_DIR = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cartography_dynamics"
)
"""Real Cartography logs (BERT on TREC, 4,894 samples × 6 classes); optional."""
SYNTHETIC_LOGS = Path(__file__).resolve().parent / "fixtures" / "cartography_dynamics"
"""Synthetic logs in the same format (60 samples × 6 classes, shuffled guids;
tests/fixtures/README.md)."""
LN3 = math.log(3.0)


@pytest.fixture
def tiny_logits() -> tuple[np.ndarray, np.ndarray]:
    """E = 3, N = 2, C = 2 logits whose gold probabilities are 1/4, 1/2 or 3/4.

    Sample 0 (gold 0): p = .5 (tie → argmax 0, correct), .75 (correct), .25 (wrong).
    Sample 1 (gold 1): p = .25 (wrong), .75 (correct), .25 (wrong).
    """
    logits = np.array(
        [
            [[0.0, 0.0], [LN3, 0.0]],
            [[LN3, 0.0], [0.0, LN3]],
            [[0.0, LN3], [LN3, 0.0]],
        ]
    )
    return logits, np.array([0, 1])


def test_statistics_match_hand_computed_values(tiny_logits):
    logits, gold = tiny_logits
    probs = gold_probabilities(logits, gold)
    np.testing.assert_allclose(probs, [[0.5, 0.25], [0.75, 0.75], [0.25, 0.25]])
    np.testing.assert_allclose(confidence(probs), [0.5, 5 / 12])
    np.testing.assert_allclose(variability(probs), [math.sqrt(0.125 / 3), math.sqrt(1 / 18)])
    np.testing.assert_allclose(correctness(logits, gold), [2 / 3, 1 / 3])
    np.testing.assert_array_equal(forgetting_events(logits, gold), [1, 1])
    np.testing.assert_allclose(area_under_margin(logits, gold), [0.0, -LN3 / 3], atol=1e-12)


def test_forgetting_counts_every_correct_to_wrong_transition():
    right, wrong = [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]
    trends = [
        (right, wrong, right, wrong, right),
        (wrong,) * 5,
        (right,) * 5,
        (wrong, right, right, right, wrong),
    ]
    logits = np.array(trends).transpose(1, 0, 2)
    np.testing.assert_array_equal(forgetting_events(logits, np.zeros(4, int)), [2, 0, 0, 1])


def test_gold_probabilities_stable_for_huge_logits():
    logits = np.array([[[1e4, -1e4, 0.0]], [[-1e4, 1e4, 0.0]]], dtype=np.float32)
    probs = gold_probabilities(logits, np.array([0]))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs[:, 0], [1.0, 0.0])


def test_compute_statistics_agrees_with_functions():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 50, 3)).astype(np.float32)
    gold = rng.integers(0, 3, 50)
    dyn = TrainingDynamics(np.arange(100, 150), gold, logits, np.arange(4), "epoch_end", "t")
    stats = compute_statistics(dyn)
    probs = gold_probabilities(logits, gold)
    assert stats.index.name == "sample_id" and stats.index.tolist() == list(range(100, 150))
    np.testing.assert_allclose(stats["confidence"], confidence(probs))
    np.testing.assert_allclose(stats["variability"], variability(probs))
    np.testing.assert_allclose(stats["correctness"], correctness(logits, gold))
    np.testing.assert_array_equal(stats["forgetting_events"], forgetting_events(logits, gold))
    np.testing.assert_allclose(stats["aum"], area_under_margin(logits, gold))
    np.testing.assert_array_equal(stats["prediction"], logits[-1].argmax(axis=1))
    assert stats.attrs == {"num_epochs": 4, "mode": "epoch_end", "task": "t"}


def test_aum_agrees_with_aum_package():
    aum = pytest.importorskip(
        "aum", reason="the aum package (pip install aum==1.0.2) is not installed"
    )
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(4, 200, 5)).astype(np.float32)
    gold = rng.integers(0, 5, 200)
    ids = np.arange(200) * 7
    calculator = aum.AUMCalculator(save_dir="unused", compressed=True)
    for epoch_logits in logits:
        for start in range(0, 200, 64):  # last batch holds 8 samples (the package fails on 1)
            batch = slice(start, start + 64)
            calculator.update(
                torch.from_numpy(epoch_logits[batch]),
                torch.from_numpy(gold[batch]),
                ids[batch].tolist(),
            )
    expected = np.array([calculator.sums[i] / calculator.counts[i] for i in ids.tolist()])
    np.testing.assert_allclose(area_under_margin(logits, gold), expected, atol=1e-5)


def _write_epochs(
    path: Path, logits: np.ndarray, gold: np.ndarray, ids: np.ndarray, rng: np.random.Generator
) -> None:
    for epoch, epoch_logits in enumerate(logits):
        order = rng.permutation(len(ids))  # recorders see samples in shuffled order
        append_epoch(
            path,
            epoch=epoch,
            sample_ids=ids[order],
            gold=gold[order],
            logits=epoch_logits[order],
            mode="train_pass",
            task="snli",
        )


def test_parquet_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    ids = rng.choice(10_000, size=40, replace=False)
    gold = rng.integers(0, 3, 40)
    logits = rng.normal(size=(3, 40, 3)).astype(np.float32)
    path = tmp_path / "dyn.parquet"
    _write_epochs(path, logits, gold, ids, rng)

    schema = pq.read_schema(path)
    assert schema.field("sample_id").type == pa.int64() and schema.field("epoch").type == pa.int32()
    assert schema.field("gold").type == pa.int32()
    assert schema.field("logits").type.value_type == pa.float32()
    assert {
        k: schema.metadata[k.encode()].decode()
        for k in ("schema_version", "mode", "num_classes", "task")
    } == {"schema_version": "1", "mode": "train_pass", "num_classes": "3", "task": "snli"}
    assert pq.read_table(path).num_rows == 120

    dyn = read_dynamics(path)
    order = np.argsort(ids)
    np.testing.assert_array_equal(dyn.sample_ids, ids[order])
    np.testing.assert_array_equal(dyn.gold, gold[order])
    np.testing.assert_array_equal(dyn.logits, logits[:, order])
    np.testing.assert_array_equal(dyn.epochs, [0, 1, 2])
    assert (dyn.mode, dyn.task, dyn.num_classes, dyn.logits.dtype) == (
        "train_pass",
        "snli",
        3,
        np.float32,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn.parquet"]  # no temp files left


def _write_raw(path: Path, rows: list[tuple[int, int, int, list[float]]]) -> Path:
    """A table as another tool might write it: rows in any order, logits as a plain list<float>."""
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        {
            "sample_id": pa.array(columns[0], pa.int64()),
            "epoch": pa.array(columns[1], pa.int32()),
            "gold": pa.array(columns[2], pa.int32()),
            "logits": pa.array(columns[3], pa.list_(pa.float32())),
        }
    ).replace_schema_metadata(
        {"schema_version": "1", "mode": "epoch_end", "num_classes": "2", "task": ""}
    )
    pq.write_table(table, path)
    return path


def test_read_accepts_unsorted_rows_and_plain_lists(tmp_path):
    rng = np.random.default_rng(4)
    rows = [
        (i, e, i % 2, rng.normal(size=2).astype(np.float32).tolist())
        for e in (1, 0)
        for i in (5, 3, 9)
    ]
    dyn = read_dynamics(_write_raw(tmp_path / "d.parquet", rows))
    np.testing.assert_array_equal(dyn.sample_ids, [3, 5, 9])
    np.testing.assert_array_equal(dyn.gold, [1, 1, 1])
    assert dyn.logits[0, 1].tolist() == rows[3][3] and dyn.logits[1, 0].tolist() == rows[1][3]


def test_read_rejects_incomplete_or_repeated_rows(tmp_path):
    rows = [(i, 0, 0, [0.0, 1.0]) for i in (1, 2, 3)] + [(i, 1, 0, [0.0, 1.0]) for i in (1, 3)]
    with pytest.raises(ValueError, match=r"epoch 1: the sample ids differ .* 1 missing \(2\)"):
        read_dynamics(_write_raw(tmp_path / "a.parquet", rows))
    rows = [(i, 0, 0, [0.0, 1.0]) for i in (2, 1, 2)]
    with pytest.raises(ValueError, match="recorded twice in one epoch: 2"):
        read_dynamics(_write_raw(tmp_path / "b.parquet", rows))
    pq.write_table(pa.table({"x": [1]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="not a tdmixup dynamics table"):
        read_dynamics(tmp_path / "c.parquet")


def test_append_replaces_an_epoch_and_keeps_order(tmp_path):
    rng = np.random.default_rng(5)
    ids, gold = np.arange(30), rng.integers(0, 4, 30)
    logits = rng.normal(size=(3, 30, 4)).astype(np.float32)
    path = tmp_path / "dyn.parquet"
    for epoch in (0, 2, 1):  # out of order
        append_epoch(
            path, epoch=epoch, sample_ids=ids, gold=gold, logits=logits[epoch], mode="epoch_end"
        )
    new = logits[1] + 10
    append_epoch(
        path, epoch=1, sample_ids=ids[::-1], gold=gold[::-1], logits=new[::-1], mode="epoch_end"
    )
    dyn = read_dynamics(path)
    np.testing.assert_array_equal(dyn.epochs, [0, 1, 2])
    np.testing.assert_array_equal(dyn.logits, np.stack([logits[0], new, logits[2]]))
    assert pq.read_table(path).num_rows == 90


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    ids, gold, logits = np.arange(5), np.zeros(5, int), np.ones((5, 2), np.float32)
    path = tmp_path / "dyn.parquet"
    append_epoch(path, epoch=0, sample_ids=ids, gold=gold, logits=logits, mode="epoch_end")
    before = path.read_bytes()

    def broken_write(table, where, **kwargs):
        Path(where).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(dynamics.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        append_epoch(path, epoch=1, sample_ids=ids, gold=gold, logits=logits, mode="epoch_end")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["dyn.parquet"]


def test_append_names_missing_and_extra_ids(tmp_path):
    path = tmp_path / "dyn.parquet"
    gold, logits = np.zeros(10, int), np.zeros((10, 2), np.float32)
    append_epoch(
        path, epoch=0, sample_ids=np.arange(10), gold=gold, logits=logits, mode="epoch_end"
    )
    ids = np.array([0, 1, 2, 4, 5, 6, 8, 9, 77, 10])
    with pytest.raises(ValueError, match=r"2 missing \(3, 7\), 2 extra \(10, 77\)"):
        append_epoch(path, epoch=1, sample_ids=ids, gold=gold, logits=logits, mode="epoch_end")
    with pytest.raises(ValueError, match=r"exactly once; repeated: 4"):
        append_epoch(
            path, epoch=1, sample_ids=np.r_[0:9, 4], gold=gold, logits=logits, mode="epoch_end"
        )
    with pytest.raises(ValueError, match=r"gold labels differ .* sample ids 6"):
        append_epoch(
            path,
            epoch=1,
            sample_ids=np.arange(10),
            gold=np.eye(10, dtype=int)[6],
            logits=logits,
            mode="epoch_end",
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "train_pass"}, "mode is 'train_pass' but the table holds 'epoch_end'"),
        ({"logits": np.zeros((4, 3))}, "num_classes is '3' but the table holds '2'"),
        ({"task": "qqp"}, "task is 'qqp'"),
        (
            {"gold": np.array([0, 2, 0, 0])},
            r"gold must be in \[0, 2\); out of range for sample ids 1",
        ),
        ({"logits": np.array([[0, 0], [0, np.nan], [0, 0], [0, 0]])}, "NaN/inf for sample ids 1"),
        ({"logits": np.zeros(4)}, r"expected sample_ids \[N\], gold \[N\] and logits \[N, C\]"),
        ({"mode": "eval"}, "mode must be one of"),
        ({"epoch": -1}, "non-negative"),
    ],
)
def test_append_rejects_inconsistent_input(tmp_path, kwargs, message):
    path = tmp_path / "dyn.parquet"
    base = {
        "epoch": 1,
        "sample_ids": np.arange(4),
        "gold": np.zeros(4, int),
        "logits": np.zeros((4, 2)),
        "mode": "epoch_end",
    }
    append_epoch(path, **{**base, "epoch": 0})
    with pytest.raises(ValueError, match=message):
        append_epoch(path, **{**base, **kwargs})


@pytest.fixture(scope="module", params=["synthetic", "real"])
def cartography(request: pytest.FixtureRequest) -> tuple[Path, str, TrainingDynamics, int]:
    """(folder, prefix, dynamics, number of samples) of the synthetic logs shipped in tests/, and
    of Cartography's real TREC logs when ``../shared/data`` holds them."""
    if request.param == "synthetic":
        return SYNTHETIC_LOGS, "SYN_", read_cartography(SYNTHETIC_LOGS, task="synthetic"), 60
    if not CARTOGRAPHY_DIR.is_dir():
        pytest.skip(
            "real-data variant: put Dataset Cartography's TREC logs "
            "(TREC_dynamics_epoch_{0,1,2}.jsonl, see tests/fixtures/README.md) "
            "in ../shared/data/cartography_dynamics/; the synthetic variant ran"
        )
    return CARTOGRAPHY_DIR, "TREC_", read_cartography(CARTOGRAPHY_DIR, task="trec"), 4894


def test_read_cartography_logs(cartography):
    folder, prefix, dyn, n = cartography
    assert dyn.logits.shape == (3, n, 6) and dyn.mode == "train_pass"
    assert read_cartography(folder, prefix=prefix).logits.shape == (3, n, 6)
    assert np.all(np.diff(dyn.sample_ids) > 0)
    with (folder / f"{prefix}dynamics_epoch_2.jsonl").open() as lines:
        record = json.loads(next(lines))
    row = np.searchsorted(dyn.sample_ids, record["guid"])
    assert dyn.sample_ids[row] == record["guid"] and dyn.gold[row] == record["gold"]
    np.testing.assert_array_equal(dyn.logits[2, row], np.float32(record["logits_epoch_2"]))


def test_cartography_statistics_match_a_per_sample_reference(cartography):
    """Cartography's per-sample recipe (softmax, np.std, count of hits), on ~50 samples."""
    _, _, dyn, n = cartography
    stats = compute_statistics(dyn)
    for row in range(0, n, max(1, n // 50)):
        z, label = dyn.logits[:, row].astype(np.float64), dyn.gold[row]
        probs = [np.exp(e[label]) / np.exp(e).sum() for e in z]
        hits = [int(np.argmax(e) == label) for e in z]
        expected = stats.iloc[row]
        assert expected["confidence"] == pytest.approx(np.mean(probs), abs=1e-9)
        assert expected["variability"] == pytest.approx(np.std(probs), abs=1e-9)
        assert expected["correctness"] == pytest.approx(sum(hits) / 3)


def test_cartography_export_round_trip(cartography, tmp_path):
    _, prefix, dyn, _ = cartography
    paths = export_cartography(dyn, tmp_path, prefix=prefix)
    assert [p.name for p in paths] == [f"{prefix}dynamics_epoch_{e}.jsonl" for e in range(3)]
    first = json.loads(paths[1].read_text().splitlines()[0])
    assert set(first) == {"guid", "logits_epoch_1", "gold"}
    again = read_cartography(tmp_path)
    np.testing.assert_array_equal(again.sample_ids, dyn.sample_ids)
    np.testing.assert_array_equal(again.gold, dyn.gold)
    np.testing.assert_array_equal(again.logits, dyn.logits)
    np.testing.assert_array_equal(
        compute_statistics(again).to_numpy(), compute_statistics(dyn).to_numpy()
    )


def test_cartography_parquet_round_trip(cartography, tmp_path):
    dyn = cartography[2]
    path = tmp_path / "logs.parquet"
    for e, epoch in enumerate(dyn.epochs):
        append_epoch(
            path,
            epoch=int(epoch),
            sample_ids=dyn.sample_ids,
            gold=dyn.gold,
            logits=dyn.logits[e],
            mode="train_pass",
            task=dyn.task,
        )
    np.testing.assert_array_equal(read_dynamics(path).logits, dyn.logits)


def test_read_cartography_errors(tmp_path):
    with pytest.raises(ValueError, match="found no files"):
        read_cartography(tmp_path)
    for prefix in ("A_", "B_"):
        (tmp_path / f"{prefix}dynamics_epoch_0.jsonl").write_text(
            '{"guid": 1, "logits_epoch_0": [0.0, 1.0], "gold": 0}\n'
        )
    with pytest.raises(ValueError, match=r"prefixes \['A_', 'B_'\]; pass prefix="):
        read_cartography(tmp_path)
    assert read_cartography(tmp_path, prefix="B_").sample_ids.tolist() == [1]
    (tmp_path / "C_dynamics_epoch_0.jsonl").write_text(
        '{"guid": "x1", "logits_epoch_0": [0.0, 1.0], "gold": 0}\n'
    )
    with pytest.raises(ValueError, match="guid values must be integers"):
        read_cartography(tmp_path, prefix="C_")
