"""A dynamics table knows its data: text hashes, label names and columns recorded with it, and
every join of texts or labels refused in one line when the data is another file."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_data import LABELS, data_args, pair_rows, write_jsonl  # noqa: E402
from tdmixup.cli.commands import main  # noqa: E402
from tdmixup.data.readers import read_table  # noqa: E402
from tdmixup.data.schema import DataError  # noqa: E402
from tdmixup.dynamics.datamap import STRATIFIED_NOTE, png_title  # noqa: E402
from tdmixup.dynamics.fingerprint import DataFingerprint, check_data, text_hashes  # noqa: E402
from tdmixup.dynamics.table import append_epoch, compute_statistics, read_dynamics  # noqa: E402

MAPPING = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}


def _read(path: Path) -> object:
    return read_table(path, columns=MAPPING, label_names=LABELS)


def _record(path: Path, dataset: object, *, epochs: int = 3, fingerprint: bool = True) -> None:
    """A dynamics table of ``dataset``'s rows with seeded logits (no model needed)."""
    ids = np.asarray(dataset["sample_id"])  # type: ignore[index]
    gold = np.asarray(dataset["label"])  # type: ignore[index]
    rng = np.random.default_rng(0)
    extra = (
        DataFingerprint.of(dataset, label_names=LABELS, columns=json.dumps(MAPPING)).append_kwargs(
            ids
        )
        if fingerprint
        else {}
    )
    for epoch in range(epochs):
        logits = rng.normal(size=(len(ids), 3)) + 2.0 * np.eye(3)[gold] * epoch
        append_epoch(
            path, epoch=epoch, sample_ids=ids, gold=gold, logits=logits, mode="epoch_end", **extra
        )


def test_text_hashes_are_per_row_and_vectorised() -> None:
    a = text_hashes({"text_a": ["x", "y", "z"], "text_b": ["1", "2", "3"]})
    b = text_hashes({"text_a": ["x", "y", "z"], "text_b": ["1", "2", "4"]})
    assert a.dtype == np.uint64 and (a[:2] == b[:2]).all() and a[2] != b[2]
    # the field boundary counts: ("ab", "c") is not ("a", "bc")
    assert text_hashes({"text_a": ["ab"], "text_b": ["c"]}) != text_hashes(
        {"text_a": ["a"], "text_b": ["bc"]}
    )
    endings = text_hashes({"context": ["c"], "endings": [["e1", "e2"]]})
    assert endings != text_hashes({"context": ["c"], "endings": [["e2", "e1"]]})


def test_table_round_trips_its_fingerprint_and_old_tables_still_read(tmp_path: Path) -> None:
    train = _read(write_jsonl(tmp_path / "train.jsonl", pair_rows(12)))
    _record(tmp_path / "dyn.parquet", train)
    dyn = read_dynamics(tmp_path / "dyn.parquet")
    assert dyn.label_names == LABELS and json.loads(dyn.columns) == MAPPING
    assert (dyn.text_hash == text_hashes(train.to_dict())).all()  # type: ignore[union-attr]
    assert compute_statistics(dyn).attrs["label_names"] == list(LABELS)
    _record(tmp_path / "old.parquet", train, fingerprint=False)  # as written before
    assert "text_hash" not in pq.read_schema(tmp_path / "old.parquet").names
    assert read_dynamics(tmp_path / "old.parquet").text_hash is None


def test_check_data_names_the_first_differing_row_and_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = pair_rows(12)
    train = _read(write_jsonl(tmp_path / "train.jsonl", rows))
    _record(tmp_path / "dyn.parquet", train)
    dyn = read_dynamics(tmp_path / "dyn.parquet")
    dyn.check_data(train, data="train.jsonl")  # the same file passes
    edited = [dict(r) for r in rows]
    edited[5]["premise"] += " Indeed."
    edited[7]["label"] = LABELS[(LABELS.index(edited[7]["label"]) + 1) % 3]
    other = _read(write_jsonl(tmp_path / "other.jsonl", edited))
    with pytest.raises(DataError) as err:
        dyn.check_data(other, data="other.jsonl", table="dyn.parquet")
    message = str(err.value)
    assert "\n" not in message and "other.jsonl" in message and "dyn.parquet" in message
    assert "sample_id 5 (field 'text')" in message and "2 of 12 rows differ" in message
    shorter = _read(write_jsonl(tmp_path / "short.jsonl", rows[:4]))
    with pytest.raises(DataError, match=r"sample_id 4 \(field 'sample_id'\) is not in the data"):
        dyn.check_data(shorter, data="short.jsonl")
    # an old table (no text hashes): labels are still checked, and a warning says texts are not
    _record(tmp_path / "old.parquet", train, fingerprint=False)
    old = read_dynamics(tmp_path / "old.parquet")
    with caplog.at_level(logging.WARNING, logger="tdmixup.dynamics.fingerprint"):
        with pytest.raises(DataError, match=r"sample_id 7 \(field 'label'\)"):
            old.check_data(other, data="other.jsonl")
    assert "written before tdmixup recorded each row's text hash" in caplog.text


def test_a_larger_file_with_the_same_rows_passes(tmp_path: Path) -> None:
    train = _read(write_jsonl(tmp_path / "train.jsonl", pair_rows(12)))
    dyn_ids = np.arange(8)
    hashes = text_hashes(train.to_dict())[:8]
    check_data(dyn_ids, np.asarray(train["label"])[:8], hashes, train, table="t", data="d")


def test_datamap_refuses_another_file_and_writes_suspects_in_own_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    train_path = write_jsonl(tmp_path / "train.jsonl", pair_rows(30))
    other_path = write_jsonl(tmp_path / "other.jsonl", pair_rows(30, offset=3))
    _record(tmp_path / "dyn.parquet", _read(train_path))
    out = tmp_path / "map"
    args = ["datamap", "--dynamics", str(tmp_path / "dyn.parquet"), "--output-dir", str(out)]
    # the wrong file: one line naming the file and the first differing row, and no data map
    assert main([*args, *data_args(other_path, None, dev_size=None)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other.jsonl" in err and "sample_id 0" in err
    assert not (out / "regions" / "hard.csv").exists()
    # the right file (no --test-file needed): suspects.csv in the file's own columns
    with caplog.at_level(logging.WARNING):
        assert main([*args, *data_args(train_path, None, dev_size=None)]) == 0
    suspects = pd.read_csv(out / "suspects.csv")
    assert list(suspects.columns[:4]) == ["sample_id", "premise", "hypothesis", "label"]
    added = ["predicted_label", "predicted_probability", "confidence", "variability"]
    assert all(c in suspects.columns for c in [*added, "aum", "label_score", "is_label_issue"])
    assert sorted(suspects["sample_id"]) == list(range(30))  # every training row, ranked
    assert suspects["label_score"].is_monotonic_increasing  # the most suspicious first
    # the default ranking: confidence as a percentile within the rows of the same given label
    within = suspects.groupby("label")["confidence"].rank(pct=True)
    assert (suspects["label_score"] - within).abs().max() < 1e-12
    assert suspects["is_label_issue"].tolist() == [True] * 3 + [False] * 27  # the lowest 10 %
    assert set(suspects["predicted_label"]) <= set(LABELS)
    assert suspects["rank"].tolist() == list(range(1, 31))
    # round trip: the file is a training file again, with the same --column mapping
    back = read_table(out / "suspects.csv", columns=MAPPING, label_names=LABELS).to_dict()
    source = pd.DataFrame(_read(train_path).to_dict())
    assert sorted(back["text_a"]) == sorted(source["text_a"])
    assert sorted(back["label"]) == sorted(source["label"])
    summary = json.loads((out / "summary.json").read_text())
    per_class = summary["suspects"]["per_class"]
    assert list(per_class) == list(LABELS)
    assert sum(c["suspects"] for c in per_class.values()) == 3
    oversized = [w for w in summary["suspects"]["warnings"] if "more than the 25 %" in w]
    assert oversized == []  # the default flags 10 %: no warning that always fires
    # --dynamics-rank-by aum, and a flagged share above a plausible one: one line, what to do
    out_aum = tmp_path / "map_aum"
    argv = [*args[:-1], str(out_aum), "--dynamics-rank-by", "aum"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (
            main(
                [
                    *argv,
                    "--dynamics-flag-fraction",
                    "0.4",
                    *data_args(train_path, None, dev_size=None),
                ]
            )
            == 0
        )
    by_aum = pd.read_csv(out_aum / "suspects.csv")
    assert by_aum["aum"].is_monotonic_increasing and by_aum["is_label_issue"].sum() == 12
    summary = json.loads((out_aum / "summary.json").read_text())
    [warning] = [w for w in summary["suspects"]["warnings"] if "more than the 25 %" in w]
    assert "--dynamics-flag-fraction" in warning and warning in caplog.messages


def test_a_bare_datamap_names_the_classes_the_table_recorded(tmp_path: Path) -> None:
    _record(tmp_path / "dyn.parquet", _read(write_jsonl(tmp_path / "t.jsonl", pair_rows(30))))
    out = tmp_path / "map"
    argv = ["datamap", "--dynamics", str(tmp_path / "dyn.parquet"), "--output-dir", str(out)]
    assert main(argv) == 0
    hard = pd.read_csv(out / "regions" / "hard.csv")
    assert set(hard["gold_label"]) <= set(LABELS)
    assert set(pd.read_csv(out / "suspects.csv")["label"]) <= set(LABELS)
    # with the file but without --label-names: the table's classes, in its (unsorted) order
    names = [a for a in data_args(tmp_path / "t.jsonl", None, dev_size=None) if a not in LABELS]
    without = [a for a in names if a != "--label-names"]
    assert main([*argv[:-1], str(tmp_path / "map2"), *without]) == 0
    per_class = json.loads((tmp_path / "map2" / "summary.json").read_text())["suspects"]
    assert list(per_class["per_class"]) == list(LABELS)


def test_stratified_png_title_says_why_outlines_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tdmixup.dynamics.datamap_plots as plots

    titles: list[str] = []
    monkeypatch.setattr(plots, "plot_datamap_png", lambda *a, **k: titles.append(k["title"]))
    _record(tmp_path / "dyn.parquet", _read(write_jsonl(tmp_path / "t.jsonl", pair_rows(30))))
    argv = ["datamap", "--dynamics", str(tmp_path / "dyn.parquet"), "--output-dir"]
    assert main([*argv, str(tmp_path / "a")]) == 0  # stratified regions: the default
    assert main([*argv, str(tmp_path / "b"), "--no-stratify-regions"]) == 0
    assert titles[0].endswith("\n" + STRATIFIED_NOTE) and STRATIFIED_NOTE not in titles[1]
    assert "overlap" in png_title("t", stratified=True)


def test_docs_data_quality_command_runs_as_written(tmp_path: Path) -> None:
    import re
    import shlex

    guide = Path(__file__).resolve().parents[1] / "docs" / "guides" / "data-quality.md"
    section = guide.read_text()
    [block] = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    fixtures = Path(__file__).resolve().parent / "fixtures" / "own_data"
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:2] == ["tdmixup", "datamap"]
    _record(tmp_path / "dyn.parquet", _read(fixtures / "train.jsonl"))
    argv = [
        a.replace("my_data/", f"{fixtures}/")
        .replace("runs/dyn/dynamics.parquet", str(tmp_path / "dyn.parquet"))
        .replace("runs/map", str(tmp_path / "map"))
        for a in argv[1:]
    ]
    assert main(argv) == 0
    suspects = pd.read_csv(tmp_path / "map" / "suspects.csv")
    assert suspects["aum"].is_monotonic_increasing and "premise" in suspects.columns


def test_every_epoch_must_record_the_same_texts(tmp_path: Path) -> None:
    ids, gold, logits = np.arange(4), np.array([0, 1, 2, 0]), np.zeros((4, 3))
    hashes = np.array([1, 2, 3, 4], dtype=np.uint64)
    path = tmp_path / "dyn.parquet"
    common = {"sample_ids": ids, "gold": gold, "logits": logits, "mode": "epoch_end"}
    append_epoch(path, epoch=0, text_hash=hashes, label_names=LABELS, **common)  # type: ignore[arg-type]
    append_epoch(path, epoch=1, text_hash=hashes[::-1][::-1], **common)  # type: ignore[arg-type]
    assert read_dynamics(path).label_names == LABELS  # kept when a later epoch gives none
    changed = hashes.copy()
    changed[2] = 99
    with pytest.raises(ValueError, match=r"texts differ from the earlier epochs for sample ids 2"):
        append_epoch(path, epoch=2, text_hash=changed, **common)  # type: ignore[arg-type]
    # an epoch recorded without hashes (e.g. resumed by an older recorder): the table drops them
    append_epoch(path, epoch=2, **common)  # type: ignore[arg-type]
    dyn = read_dynamics(path)
    assert dyn.text_hash is None and len(dyn.epochs) == 3
