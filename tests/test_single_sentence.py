"""Single-sentence tasks (``text_a`` and ``label``, no ``text_b``) end to end, on a real task made
from real data: SNLI hypotheses alone (a hypothesis-only classifier is a known learnable task;
Gururangan et al. 2018, Poliak et al. 2018).

The readers (CSV, TSV, JSONL, hub), tokenisation with one segment, the task loader, and the
command line on the hypotheses with a tiny random BERT: ``run`` (the whole pipeline), every
strategy through ``train``, ``datamap`` and ``aum`` on their own, ``run --strategy
aum_saliency``, and the Hugging Face ``Trainer`` with
:class:`~tdmixup.training.hf_trainer.DynamicsCallback`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import (  # noqa: E402
    SMALL,
    SNLI_LABELS,
    build_tiny_model_dir,
    minilm_tokenizer,
    quiet_libraries,
    require_minilm,
    snli_columns,
    tiny_bert_config,
)
from tdmixup.data.schema import SINGLE_COLUMNS, DataError, TaskSpec  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_TRAIN, N_TEST = 64, 24
LABEL_NAMES = ",".join(SNLI_LABELS)
STRATEGIES = ["none", "mixup", "manifold", "kong", "tdmixup", "random_pairs"]


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def hypotheses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SNLI hypotheses alone: the first 64 gold pairs' as CSV (``id, sentence, label`` by name),
    the next 24 as JSON lines (``id``, ``sentence``, ``label``); no premise anywhere."""
    folder = tmp_path_factory.mktemp("hypotheses")
    cols = snli_columns(N_TRAIN + N_TEST)
    rows = [
        {"id": i, "sentence": b, "label": SNLI_LABELS[y]}
        for i, b, y in zip(cols["sample_id"], cols["text_b"], cols["label"], strict=True)
    ]
    train = folder / "train.csv"
    with train.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["id", "sentence", "label"])
        writer.writeheader()
        writer.writerows(rows[:N_TRAIN])
    test = folder / "test.jsonl"
    test.write_text(
        "".join(
            json.dumps({"id": r["id"], "sentence": r["sentence"], "label": r["label"]}) + "\n"
            for r in rows[N_TRAIN:]
        )
    )
    return {"train": train, "test": test, "rows": rows}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_minilm()
    quiet_libraries()
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert")))


def data_args(h: dict[str, Any]) -> list[str]:
    """The README's single-sentence options for the hypothesis files."""
    return [
        "--task",
        "custom",
        "--train-file",
        str(h["train"]),
        "--test-file",
        f"hyp={h['test']}",
        "--column",
        "text_a=sentence",
        "--column",
        "label=label",
        "--column",
        "sample_id=id",
        "--label-names",
        LABEL_NAMES,
    ]


def train_ids(h: dict[str, Any]) -> list[int]:
    """The ids the SMALL profile trains on: the first 48 of the 64 (the last 16 are dev)."""
    return [r["id"] for r in h["rows"][:48]]


# --------------------------------------------------------------------------- readers
def test_every_file_reader_gives_single_sentence_rows(tmp_path: Path) -> None:
    from tdmixup.data.readers import read_table

    rows = [("I loved it.", "pos"), ('Boring, "flat", long.', "neg"), ("Fine.", "pos")]
    csv_path = tmp_path / "r.csv"
    with csv_path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("sentence", "label", "unused"), *[(*r, "x") for r in rows]])
    tsv_path = tmp_path / "r.tsv"
    tsv_path.write_text("sentence\tlabel\n" + "".join(f"{a}\t{b}\n" for a, b in rows))
    jsonl_path = tmp_path / "r.jsonl"
    jsonl_path.write_text("".join(json.dumps({"s": {"t": a}, "y": b}) + "\n" for a, b in rows))
    expected = [
        {"sample_id": i, "text_a": a, "label": ("neg", "pos").index(b)}
        for i, (a, b) in enumerate(rows)
    ]
    for path, text in ((csv_path, "sentence"), (tsv_path, "sentence"), (jsonl_path, "s.t")):
        label = "y" if path.suffix == ".jsonl" else "label"
        ds = read_table(path, columns={"text_a": text, "label": label}, label_names=("neg", "pos"))
        assert tuple(ds.column_names) == SINGLE_COLUMNS, path
        assert ds.to_list() == expected, path


def test_single_sentence_errors_are_one_line(tmp_path: Path) -> None:
    from tdmixup.data.readers import read_table

    path = tmp_path / "r.csv"
    path.write_text("sentence,label\nGood.,pos\n   ,neg\n")
    with pytest.raises(DataError) as err:
        read_table(
            path, columns={"text_a": "sentence", "label": "label"}, label_names=("neg", "pos")
        )
    assert str(err.value).count("\n") == 0
    assert "r.csv, row 3, field 'sentence': empty text" in str(err.value)
    # a text_b that is mapped must exist; one that is not mapped is never looked for
    with pytest.raises(DataError, match="column 'other' not found"):
        read_table(
            path,
            columns={"text_a": "sentence", "text_b": "other", "label": "label"},
            label_names=("neg", "pos"),
        )
    with pytest.raises(DataError, match=r"must give \['label', 'text_a'\]"):
        read_table(path, columns={"text_a": "sentence"})


def test_hub_single_sentence_source_maps_class_label_names() -> None:
    import datasets

    from tdmixup.data.hub import from_hub

    split = datasets.Dataset.from_dict(
        {"idx": [0, 1, 2], "sentence": ["a gem .", "dull .", "unlabelled ."], "label": [1, 0, -1]},
        features=datasets.Features(
            {
                "idx": datasets.Value("int32"),
                "sentence": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["negative", "positive"]),
            }
        ),
    )
    ds = from_hub(split, "stanfordnlp/sst2")
    assert ds.to_list() == [
        {"sample_id": 0, "text_a": "a gem .", "label": 1},
        {"sample_id": 1, "text_a": "dull .", "label": 0},
    ]  # the test split's -1 (no label) is skipped
    flipped = from_hub(split, "sst2", label_names=("positive", "negative"))
    assert flipped["label"] == [0, 1]


def test_load_task_custom_and_builtin_labels(hypotheses: dict[str, Any]) -> None:
    from tdmixup.core.config import DataConfig
    from tdmixup.data.tasks import load_task

    columns = (("text_a", "sentence"), ("label", "label"), ("sample_id", "id"))
    task = load_task(
        DataConfig(
            task="custom",
            train_file=str(hypotheses["train"]),
            test_files=(f"hyp={hypotheses['test']}",),
            columns=columns,
            label_names=SNLI_LABELS,
            dev_size=16,
        ),
        seed=0,
    )
    assert task.spec == TaskSpec("custom", "single", SNLI_LABELS)
    assert task.spec.columns == SINGLE_COLUMNS
    assert tuple(task.train.column_names) == tuple(task.tests["hyp"].column_names) == SINGLE_COLUMNS
    assert task.train["sample_id"] == train_ids(hypotheses)
    # a built-in task's files read with a single-sentence mapping keep its label names
    snli = load_task(
        DataConfig(
            task="snli",
            train_file=str(hypotheses["train"]),
            test_files=(f"hyp={hypotheses['test']}",),
            columns=columns,
            dev_size=16,
        ),
        seed=0,
    )
    assert snli.spec.kind == "single" and snli.spec.label_names == SNLI_LABELS
    with pytest.raises(ValueError, match="give your training file too"):
        load_task(DataConfig(task="snli", columns=columns[:2]), seed=0)


def test_tokenised_single_sentences_have_one_segment(hypotheses: dict[str, Any]) -> None:
    require_minilm()
    import datasets

    from tdmixup.data.collate import collate, tokenize

    tok = minilm_tokenizer()
    rows = hypotheses["rows"][:20]
    ds = datasets.Dataset.from_dict(
        {
            "sample_id": [r["id"] for r in rows],
            "text_a": [r["sentence"] for r in rows],
            "label": [SNLI_LABELS.index(r["label"]) for r in rows],
        }
    )
    data = tokenize(ds, TaskSpec("t", "single", SNLI_LABELS), tok, max_length=64)
    assert data.num_choices == 0 and data.token_type_ids is not None
    for ids, tts, row in zip(data.input_ids, data.token_type_ids, rows, strict=True):
        assert ids.tolist() == tok(row["sentence"])["input_ids"]  # the text alone
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert int((ids == tok.sep_token_id).sum()) == 1  # no second segment
        assert not tts.any()
    batch = collate(data, np.arange(len(rows)))
    assert not batch["token_type_ids"].any()
    assert batch["attention_mask"].sum(1).tolist() == data.lengths.tolist()


def test_sample_texts_and_threshold_labels_of_single_tasks() -> None:
    from tdmixup.core.samples import sample_texts
    from tdmixup.dynamics.aum import relabel_threshold_labels

    texts = sample_texts({"sample_id": [5, 2], "text_a": ["One.", "Two."]}, "single")
    assert texts == {5: "One.", 2: "Two."}
    got = relabel_threshold_labels(
        np.array([0, 2, 1]), np.array([True, False, False]), kind="single", num_classes=3
    )
    assert got.tolist() == [3, 2, 1]  # the extra fake class, as for pairs


# --------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def finished_run(
    hypotheses: dict[str, Any], tiny_model: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from tdmixup.cli.commands import main

    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["run", *data_args(hypotheses), "--model", tiny_model, *SMALL, "--output-dir", str(out)]
    assert main(argv) == 0
    return out


def test_run_pipeline_on_hypotheses_alone(finished_run: Path, hypotheses: dict[str, Any]) -> None:
    from tdmixup.dynamics.table import read_dynamics

    ids = sorted(train_ids(hypotheses))
    text_of = {r["id"]: r["sentence"] for r in hypotheses["rows"]}
    gold_of = {r["id"]: r["label"] for r in hypotheses["rows"]}
    dyn = read_dynamics(finished_run / "stage1_full" / "dynamics.parquet")
    assert dyn.sample_ids.tolist() == ids and dyn.logits.shape == (2, 48, 3)  # every id, each epoch
    assert [SNLI_LABELS[g] for g in dyn.gold] == [gold_of[i] for i in ids]
    stats = pd.read_parquet(finished_run / "datamap" / "statistics.parquet")
    assert sorted(stats.index if stats.index.name == "sample_id" else stats["sample_id"]) == ids
    regions = {
        name: [
            int(x)
            for x in (finished_run / "datamap" / "regions" / f"{name}.txt").read_text().split()
        ]
        for name in ("easy", "ambiguous", "hard")
    }
    flat = [i for r in regions.values() for i in r]
    assert len(flat) == len(set(flat)) and set(flat) <= set(ids)  # disjoint, from the set
    assert all(len(r) == int(0.33 * 48) for r in regions.values())
    table = pd.read_csv(finished_run / "datamap" / "regions" / "easy.csv")
    assert table["sample_id"].tolist() == regions["easy"]
    assert table["text"].tolist() == [text_of[i] for i in regions["easy"]]  # the sentence alone
    assert table["gold_label"].tolist() == [gold_of[i] for i in regions["easy"]]
    kept = [int(x) for x in (finished_run / "aum_easy" / "kept.txt").read_text().split()]
    flagged_csv = pd.read_csv(finished_run / "aum_easy" / "flagged.csv")
    flagged = flagged_csv["id"].tolist()  # the user's id column (--column sample_id=id)
    assert sorted(kept + flagged) == sorted(regions["easy"])
    pass1 = read_dynamics(finished_run / "aum_easy" / "pass1" / "dynamics.parquet")
    assert pass1.logits.shape[2] == 4  # three classes + the threshold samples' fake class
    for stage in ("stage1_full", "stage4_tdmixup"):
        done = json.loads((finished_run / stage / "done.json").read_text())
        assert done["metrics"]["sets"]["hyp"]["n"] == N_TEST
        assert list(done["train_class_counts"][0]) == list(SNLI_LABELS)
    meta = json.loads(
        (finished_run / "stage4_tdmixup" / "checkpoint" / "classifier.json").read_text()
    )
    assert meta["kind"] == "single" and meta["num_labels"] == 3


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_on_hypotheses(
    strategy: str,
    finished_run: Path,
    hypotheses: dict[str, Any],
    tiny_model: str,
    tmp_path: Path,
) -> None:
    from tdmixup.cli.commands import main
    from tdmixup.model.classifier import load_classifier

    regions = finished_run / "datamap" / "regions"
    subsets = (
        ["--subset", str(regions / "easy.txt"), "--subset", str(regions / "ambiguous.txt")]
        if strategy in ("tdmixup", "random_pairs")
        else []
    )
    out = tmp_path / strategy
    argv = [
        "train",
        *data_args(hypotheses),
        "--strategy",
        strategy,
        *subsets,
        "--model",
        tiny_model,
        *SMALL,
        "--epochs",
        "1",
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 0
    done = json.loads((out / "done.json").read_text())
    assert done["strategy"] == strategy
    assert np.isfinite(done["history"][0]["train_loss"])
    sizes = {"tdmixup": [15, 15], "random_pairs": [30]}  # random pairs: one pool of both
    assert done["train_sizes"] == sizes.get(strategy, [48])
    assert done["metrics"]["sets"]["hyp"]["n"] == N_TEST
    model, _ = load_classifier(out / "checkpoint")
    assert model.kind == "single" and model.head.out_features == 3
    if strategy == "none":  # the checkpoint evaluated on its own gives the same numbers
        sizes_only = [*SMALL[:6], "--max-seq-length", "64"]  # evaluate takes no loop options
        argv = ["evaluate", *data_args(hypotheses), *sizes_only]
        argv += ["--checkpoint", str(out / "checkpoint")]
        assert main([*argv, "--output-dir", str(tmp_path / "eval")]) == 0
        metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
        got, trained = metrics["sets"]["hyp"], done["metrics"]["sets"]["hyp"]
        assert got["n"] == N_TEST and got["accuracy"] == pytest.approx(trained["accuracy"])


def test_datamap_and_aum_commands_on_hypotheses(
    finished_run: Path, hypotheses: dict[str, Any], tiny_model: str, tmp_path: Path
) -> None:
    from tdmixup.cli.commands import main

    text_of = {r["id"]: r["sentence"] for r in hypotheses["rows"]}
    dyn = finished_run / "stage1_full" / "dynamics.parquet"
    argv = ["datamap", "--dynamics", str(dyn), *data_args(hypotheses), "--output-dir"]
    assert main([*argv, str(tmp_path / "map")]) == 0
    for name in ("easy", "ambiguous", "hard"):
        table = pd.read_csv(tmp_path / "map" / "regions" / f"{name}.csv")
        assert table["text"].tolist() == [text_of[i] for i in table["sample_id"]]
        assert set(table["gold_label"]) <= set(SNLI_LABELS)
    easy = tmp_path / "map" / "regions" / "easy.txt"
    argv = ["aum", *data_args(hypotheses), "--subset", str(easy), "--model", tiny_model, *SMALL]
    assert main([*argv, "--output-dir", str(tmp_path / "aum")]) == 0
    summary = json.loads((tmp_path / "aum" / "summary.json").read_text())
    assert summary["n"] == len(easy.read_text().split()) == summary["n_kept"] + summary["n_flagged"]
    kept = pd.read_csv(tmp_path / "aum" / "kept.csv")
    assert kept["text"].tolist() == [text_of[i] for i in kept["sample_id"]]


def test_run_aum_saliency_on_hypotheses(
    hypotheses: dict[str, Any], tiny_model: str, tmp_path: Path
) -> None:
    from tdmixup.cli.commands import main

    out = tmp_path / "aums"
    argv = ["run", "--strategy", "aum_saliency", *data_args(hypotheses), "--model", tiny_model]
    assert main([*argv, *SMALL, "--epochs", "1", "--output-dir", str(out)]) == 0
    split = json.loads((out / "aum_saliency_split" / "done.json").read_text())
    assert split["n"] == 48 and split["n_high"] + split["n_low"] == 48
    done = json.loads((out / "stage4_aum_saliency" / "done.json").read_text())
    assert done["train_sizes"] == [split["n_high"], split["n_low"]]
    assert done["metrics"]["sets"]["hyp"]["n"] == N_TEST


# --------------------------------------------------------------------------- HF Trainer
def test_dynamics_callback_records_hypotheses_in_a_trainer(
    hypotheses: dict[str, Any], tmp_path: Path
) -> None:
    require_minilm()
    import torch
    import transformers

    from tdmixup import DynamicsCallback, dataset_from_records
    from tdmixup.dynamics.table import read_dynamics

    tok = minilm_tokenizer()
    records = [
        {"id": 1000 + r["id"], "sentence": r["sentence"], "label": r["label"]}
        for r in hypotheses["rows"][:40]
    ]
    ds, spec = dataset_from_records(records, text="sentence", label="label", sample_id="id")
    assert spec.kind == "single" and spec.label_names == tuple(sorted(SNLI_LABELS))
    ds = ds.map(lambda b: tok(b["text_a"], truncation=True, max_length=64), batched=True)
    assert all(not any(t) for t in ds["token_type_ids"])
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(
        tiny_bert_config(len(tok), num_labels=spec.num_labels)
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=ds,
        data_collator=transformers.DataCollatorWithPadding(tok),
    )
    path = tmp_path / "dynamics.parquet"
    DynamicsCallback.attach(trainer, path, mode="epoch_end", task="snli_hypotheses")
    trainer.train()
    dyn = read_dynamics(path)
    assert dyn.epochs.tolist() == [0, 1] and dyn.logits.shape == (2, 40, 3)
    assert dyn.sample_ids.tolist() == sorted(ds["sample_id"])  # every id once per epoch
    gold = dict(zip(ds["sample_id"], ds["label"], strict=True))
    assert dyn.gold.tolist() == [gold[i] for i in dyn.sample_ids]
