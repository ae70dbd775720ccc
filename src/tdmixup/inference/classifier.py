"""A trained classifier as a Python object: calibrated probabilities and label names for new text.

>>> clf = TextClassifier.from_checkpoint("runs/x/stage4_tdmixup/checkpoint")  # doctest: +SKIP
>>> clf.predict_proba([("A man plays.", "A person plays.")])                  # doctest: +SKIP
array([[0.91, 0.07, 0.02]], dtype=float32)
>>> clf.predict([("A man plays.", "A person plays.")])                        # doctest: +SKIP
['entailment']

Inputs follow the task kind the classifier was trained on: sentence pairs take ``(a, b)`` tuples,
multiple choice ``(context, [ending_1, ..., ending_K])``, and a single-sentence classifier plain
strings. Batches are sorted by length (least padding,
:func:`tdmixup.data.collate.inference_batches`) and the results come back in input order.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tdmixup.data.collate import TokenizedSet, tokenize
from tdmixup.data.schema import TaskSpec
from tdmixup.model.classifier import CheckpointInfo, Classifier, load_classifier
from tdmixup.model.predict import predict_logits

DEFAULT_MAX_LENGTH = 256
"""Truncation length for a checkpoint that records none (the training default)."""


@dataclasses.dataclass
class _OneProcess:
    """What :func:`tdmixup.model.predict.predict_logits` reads of an Accelerator, for one
    process."""

    device: torch.device
    num_processes: int = 1
    process_index: int = 0
    is_main_process: bool = True


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TextClassifier:
    """A trained tdmixup classifier with its tokenizer, label names and temperature.

    Args:
        model: the :class:`~tdmixup.model.classifier.Classifier` (its ``info`` holds the label
            names, columns and temperature).
        tokenizer: its tokenizer.
        device: where to run (default: the GPU when there is one, else the CPU).
        accelerator: an :class:`accelerate.Accelerator` to shard prediction over processes
            (every process gets all results); default: this process alone.
    """

    def __init__(
        self,
        model: Classifier,
        tokenizer: Any,
        *,
        device: str | torch.device | None = None,
        accelerator: Any = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.accelerator = accelerator or _OneProcess(torch.device(device or _default_device()))
        self.model.to(self.accelerator.device)

    # --- loading -----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls, directory: str | Path, *, device: str | torch.device | None = None, **kw: Any
    ) -> TextClassifier:
        """Load a tdmixup checkpoint folder (``runs/x/stage4_tdmixup/checkpoint``)."""
        model, tokenizer = load_classifier(directory)
        return cls(model, tokenizer, device=device, **kw)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device | None = None, **kw: Any
    ) -> TextClassifier:
        """Load a folder written by ``tdmixup export`` (or a checkpoint folder).

        The exported head has the temperature folded in; it is multiplied back out, so
        ``predict_proba(..., temperature=False)`` still gives the raw probabilities.
        """
        directory = Path(directory)
        if (directory / "classifier.json").exists():
            return cls.from_checkpoint(directory, device=device, **kw)
        model, tokenizer = load_exported(directory)
        return cls(model, tokenizer, device=device, **kw)

    # --- what it knows -----------------------------------------------------------------------
    @property
    def info(self) -> CheckpointInfo:
        """Label names, task, columns, truncation length and temperature."""
        return self.model.info

    @property
    def kind(self) -> str:
        """``"pair"``, ``"multiple_choice"`` (or a single-sentence kind): what inputs it takes."""
        return str(self.model.kind)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names in class-index order (``id2label``)."""
        return self.info.label_names

    @property
    def temperature(self) -> float | None:
        """T fitted on dev (None when the checkpoint was never evaluated)."""
        return self.info.temperature

    # --- predicting --------------------------------------------------------------------------
    def tokenize(self, items: Any, *, max_length: int | None = None) -> TokenizedSet:
        """Tokenise inputs once (ids ``0..N-1`` in input order); see the module docstring."""
        rows = normalise_items(items, self.kind)
        n = len(rows)
        cols: dict[str, Any] = {"sample_id": np.arange(n), "label": np.full(n, -1)}
        if self.kind == "multiple_choice":
            sizes = {len(r[1]) for r in rows}
            if len(sizes) > 1:
                raise ValueError(
                    f"every item needs the same number of endings, got {sorted(sizes)}"
                )
            cols["context"] = [r[0] for r in rows]
            cols["endings"] = [list(r[1]) for r in rows]
        else:
            cols["text_a"] = [r[0] if isinstance(r, tuple) else r for r in rows]
            if self.kind == "pair":
                cols["text_b"] = [r[1] for r in rows]
        spec = TaskSpec(self.info.task or "custom", self.model.kind, self.label_names)
        length = max_length or self.info.max_seq_length or DEFAULT_MAX_LENGTH
        return tokenize(cols, spec, self.tokenizer, max_length=length)

    def predict_logits(
        self, items: Any, *, batch_size: int = 32, max_length: int | None = None
    ) -> np.ndarray:
        """Raw logits ``[N, C]`` (multiple choice ``[N, K]``), float32, in input order."""
        data = (
            items
            if isinstance(items, TokenizedSet)
            else self.tokenize(items, max_length=max_length)
        )
        if len(data) == 0:
            return np.zeros((0, len(self.label_names)), np.float32)
        _, logits = predict_logits(
            self.model, data, batch_size=batch_size, accelerator=self.accelerator
        )
        return logits

    def predict_proba(
        self,
        items: Any,
        *,
        temperature: bool | float = True,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> np.ndarray:
        """Class probabilities ``[N, C]`` (rows sum to 1), in input order.

        Args:
            items: one input or a list of them: strings (single-sentence), ``(a, b)`` pairs,
                or ``(context, [endings])`` multiple-choice items.
            temperature: ``True`` (default): ``softmax(logits / T)`` with the T fitted on dev;
                ``False``: the raw ``softmax(logits)``; a number: that T.
            batch_size: inputs per forward pass.
            max_length: truncation (tokens); default: the length used in training.
        """
        logits = self.predict_logits(items, batch_size=batch_size, max_length=max_length)
        return probabilities(logits, self.resolve_temperature(temperature))

    def predict(
        self, items: Any, *, batch_size: int = 32, max_length: int | None = None
    ) -> list[str]:
        """The predicted label name of each input (multiple choice: the ending's index as a
        string), in input order."""
        logits = self.predict_logits(items, batch_size=batch_size, max_length=max_length)
        return [self.label_names[i] for i in logits.argmax(axis=1)]

    def predict_table(
        self,
        data: Any,
        *,
        text: str | None = None,
        text_pair: str | None = None,
        context: str | None = None,
        endings: str | Sequence[str] | None = None,
        temperature: bool | float = True,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> pd.DataFrame:
        """Classify the rows of a table: a pandas DataFrame, a ``datasets.Dataset``, a list of
        dicts or a dict of columns (as :func:`tdmixup.fit` takes them).

        Args:
            data: the rows; the texts are read from the columns the model was trained on
                (:attr:`CheckpointInfo.columns`) unless named here.
            text, text_pair, context, endings: the columns to read instead (as
                :func:`tdmixup.dataset_from_records`; ``endings``: one list column, or one
                column per ending).
            temperature, batch_size, max_length: as :meth:`predict_proba`.

        Returns:
            A DataFrame with every column of ``data`` (a DataFrame keeps its index), then
            ``prediction`` (label name), ``probability`` (its probability) and ``prob_<name>``
            per class (calibrated by default), as ``tdmixup predict`` writes a file.

        Raises:
            DataError: a missing column or an empty text, naming the row (0-based) and column.
        """
        from tdmixup.data.inmemory import dataset_from_records
        from tdmixup.inference.files import input_columns, with_predictions

        given = {"text_a": text, "text_b": text_pair, "context": context}
        if endings is not None:
            given["endings"] = endings if isinstance(endings, str) else ",".join(endings)
        cols = input_columns(
            self.info.columns, self.kind, {k: v for k, v in given.items() if v is not None}
        )
        if _no_rows(data):  # nothing to classify: the columns, with none of the rows
            empty = np.zeros((0, len(self.label_names)), np.float32)
            return with_predictions(_as_frame(data), empty, self.label_names, source="the table")
        mc = self.kind == "multiple_choice"
        ends = cols.get("endings", "")
        ds, _ = dataset_from_records(
            data,
            text=None if mc else cols.get("text_a"),
            text_pair=cols.get("text_b") if self.kind == "pair" else None,
            context=cols.get("context") if mc else None,
            endings=(ends.split(",") if "," in ends else ends) if mc else None,
            ending_prefix=cols.get("ending_prefix") if mc else None,
            label=None,
        )
        if mc:
            items: list[Any] = list(zip(ds["context"], ds["endings"], strict=True))
        elif self.kind == "pair":
            items = list(zip(ds["text_a"], ds["text_b"], strict=True))
        else:
            items = list(ds["text_a"])
        probs = self.predict_proba(
            items, temperature=temperature, batch_size=batch_size, max_length=max_length
        )
        return with_predictions(_as_frame(data), probs, self.label_names, source="the table")

    def resolve_temperature(self, temperature: bool | float) -> float:
        """The T that ``temperature=`` means (1.0 for raw probabilities)."""
        if temperature is False:
            return 1.0
        if temperature is True:
            return float(self.temperature) if self.temperature is not None else 1.0
        t = float(temperature)
        if not np.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        return t


def _no_rows(data: Any) -> bool:
    """Whether ``data`` (a table as :meth:`TextClassifier.predict_table` takes it) has no rows; a
    dict of Datasets (splits, not rows) is left to the reader's refusal."""
    if isinstance(data, Mapping):
        values = list(data.values())
        return all(
            hasattr(v, "__len__") and not hasattr(v, "column_names") for v in values
        ) and all(len(v) == 0 for v in values)
    return hasattr(data, "__len__") and len(data) == 0


def _as_frame(data: Any) -> pd.DataFrame:
    """The rows of ``data`` as a DataFrame (a copy; a DataFrame keeps its index)."""
    if isinstance(data, pd.DataFrame):
        return data.copy()
    if hasattr(data, "to_pandas"):  # datasets.Dataset
        return data.to_pandas()
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    return pd.DataFrame(list(data))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise, float64 → float32, ``[N, C]``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def normalise_items(items: Any, kind: str) -> list[Any]:
    """A list of inputs for a classifier of ``kind``; a single input is wrapped.

    Raises:
        ValueError: an input of the wrong shape, naming its position and what the kind takes;
            a table (DataFrame, ``datasets.Dataset``, dict), whose iteration would give its
            column names, not its rows.
    """
    if isinstance(items, Mapping) or hasattr(items, "columns") or hasattr(items, "column_names"):
        example = {
            "pair": "list(zip(df['premise'], df['hypothesis']))",
            "multiple_choice": "list(zip(df['context'], df['endings']))",
        }.get(kind, "df['review'].tolist()")
        raise ValueError(
            f"pass the inputs themselves, not a {type(items).__name__} (iterating it gives its "
            f"column names): e.g. {example}; or predict_table(table) for its rows with the "
            "predictions beside them; for a file: tdmixup predict --input FILE"
        )
    single = isinstance(items, str) or (
        isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], str)
    )
    rows = [items] if single else list(items)
    takes = {
        "pair": "(text_a, text_b) pairs of strings",
        "multiple_choice": "(context, [ending, ...]) items",
    }.get(kind, "strings")
    for i, r in enumerate(rows):
        if kind == "multiple_choice":
            ok = (
                isinstance(r, tuple | list)
                and len(r) == 2
                and isinstance(r[0], str)
                and isinstance(r[1], Sequence)
                and not isinstance(r[1], str)
                and all(isinstance(e, str) for e in r[1])
            )
        elif kind == "pair":
            ok = isinstance(r, tuple | list) and len(r) == 2 and all(isinstance(t, str) for t in r)
        else:
            ok = isinstance(r, str)
        if not ok:
            raise ValueError(
                f"input {i}: {type(r).__name__} {str(r)[:60]!r} is not what this {kind} "
                f"classifier takes: {takes}"
            )
    return [tuple(r) if isinstance(r, list) else r for r in rows]


def load_exported(directory: str | Path) -> tuple[Classifier, Any]:
    """A :class:`Classifier` from a ``tdmixup export`` folder, with the raw (unscaled) head."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from tdmixup.model.classifier import ModelLoadError

    directory = Path(directory)
    raw = (
        json.loads((directory / "config.json").read_text())
        if (directory / "config.json").exists()
        else {}
    )
    if "tdmixup_kind" not in raw:
        raise ModelLoadError(f"{directory} is not a folder written by tdmixup export")
    if "tdmixup_encoder_type" in raw:  # model_type "tdmixup": no remote code needed here
        from tdmixup.inference.hf_modeling import encoder_config

        config = encoder_config(raw)
    else:  # exported by tdmixup 0.3.0: the encoder's own config.json
        config = AutoConfig.from_pretrained(directory)
    state = load_file(str(directory / "model.safetensors"))
    prefix = raw["tdmixup_encoder_prefix"] + "."
    encoder = AutoModel.from_config(config)
    result = encoder.load_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=False
    )
    lacking = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if lacking:
        raise ModelLoadError(
            f"{directory}: model.safetensors lacks {len(lacking)} encoder weights "
            f"(first: {lacking[0]}); export the checkpoint again"
        )
    t = float(raw.get("tdmixup_temperature") or 1.0)
    model = Classifier(
        encoder, raw["tdmixup_kind"], int(raw["tdmixup_num_labels"]), raw["tdmixup_dropout"]
    )
    with torch.no_grad():
        model.head.weight.copy_(state["classifier.weight"] * t)
        model.head.bias.copy_(state["classifier.bias"] * t)
    model.info = CheckpointInfo(
        label_names=tuple(
            str(raw["tdmixup_label_names"][i]) for i in range(len(raw["tdmixup_label_names"]))
        ),
        task=raw.get("tdmixup_task", ""),
        columns=tuple((k, v) for k, v in (raw.get("tdmixup_columns") or {}).items()),
        max_seq_length=raw.get("tdmixup_max_seq_length"),
        temperature=raw.get("tdmixup_temperature"),
        temperature_fitted_on=raw.get("tdmixup_temperature_fitted_on"),
    )
    return model, AutoTokenizer.from_pretrained(directory, config=config)  # no remote code
