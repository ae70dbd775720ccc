"""Hugging Face hub datasets, mapped to the tdmixup schema (needs internet or a warm cache).

================  ==========================  =============================================
name              hub repository (config)     mapping
================  ==========================  =============================================
``snli``          ``stanfordnlp/snli``        premise, hypothesis, label (-1 = no label)
``mnli``          ``nyu-mll/multi_nli``       premise, hypothesis, label
``qqp``           ``nyu-mll/glue`` (qqp)      question1, question2, label
``sst2``          ``stanfordnlp/sst2``        sentence, label (single sentence: negative, positive)
``swag``          ``allenai/swag`` (regular)  context = sent1, ending = sent2 + " " + ending_k
``hellaswag``     ``Rowan/hellaswag``         context = ctx_a, ending = ctx_b + " " + endings[k]
================  ==========================  =============================================

Integer hub labels are turned into their ``ClassLabel`` names and re-indexed by the
``label_names`` you ask for, so the label order stays configurable. ``sample_id`` = row index
in the hub split. Rows with an empty text are skipped (logged), since some hub splits hold a
few.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from datasets import ClassLabel, Dataset

from tdmixup.data._common import Rows, build_mc, build_pair
from tdmixup.data.readers import MC4_LABELS, NLI_LABELS, QQP_LABELS, SST2_LABELS
from tdmixup.data.schema import DataError


@dataclass(frozen=True)
class HubSource:
    """Where a hub dataset lives and which of its columns feed which schema field."""

    path: str
    config: str | None
    columns: tuple[tuple[str, str], ...]
    label_names: tuple[str, ...]


_NLI = (("text_a", "premise"), ("text_b", "hypothesis"), ("label", "label"))
HUB_SOURCES: dict[str, HubSource] = {
    "snli": HubSource("stanfordnlp/snli", None, _NLI, NLI_LABELS),
    "mnli": HubSource("nyu-mll/multi_nli", None, _NLI, NLI_LABELS),
    "qqp": HubSource(
        "nyu-mll/glue",
        "qqp",
        (("text_a", "question1"), ("text_b", "question2"), ("label", "label")),
        QQP_LABELS,
    ),
    "sst2": HubSource(
        "stanfordnlp/sst2", None, (("text_a", "sentence"), ("label", "label")), SST2_LABELS
    ),
    "swag": HubSource(
        "allenai/swag",
        "regular",
        (
            ("context", "sent1"),
            ("prefix", "sent2"),
            ("endings", "ending0,ending1,ending2,ending3"),
            ("label", "label"),
        ),
        MC4_LABELS,
    ),
    "hellaswag": HubSource(
        "Rowan/hellaswag",
        None,
        (("context", "ctx_a"), ("prefix", "ctx_b"), ("endings", "endings"), ("label", "label")),
        MC4_LABELS,
    ),
}
_ALIASES = {
    "stanfordnlp/snli": "snli",
    "nyu-mll/multi_nli": "mnli",
    "multi_nli": "mnli",
    "glue/qqp": "qqp",
    "stanfordnlp/sst2": "sst2",
    "glue/sst2": "sst2",
    "allenai/swag": "swag",
    "rowan/hellaswag": "hellaswag",
}


def _source(name: str) -> tuple[str, HubSource]:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in HUB_SOURCES:
        raise ValueError(
            f"unknown hub dataset {name!r}; known: {', '.join(HUB_SOURCES)} "
            f"(or {', '.join(_ALIASES)})"
        )
    return key, HUB_SOURCES[key]


def from_hub(
    dataset: Dataset, name: str, *, label_names: Sequence[str] | None = None, split: str = ""
) -> Dataset:
    """Map an already-loaded hub split to the tdmixup schema (no network).

    Args:
        dataset: the split as returned by ``datasets.load_dataset`` (or built in memory with
            the same columns).
        name: a key of :data:`HUB_SOURCES` or an alias such as ``"stanfordnlp/snli"``.
        label_names: class order of the result (single and pair tasks); default the source's.
    """
    key, src = _source(name)
    cols = dict(src.columns)
    ends = cols["endings"].split(",") if "endings" in cols else []
    needed = [c for f, c in src.columns if f != "endings"] + ends
    missing = [c for c in needed if c not in dataset.column_names]
    where = f"hub:{src.path}" + (f"[{split}]" if split else "")
    if missing:
        raise DataError(
            f"{where}: columns {missing} not found (found: {dataset.column_names}); "
            f"is this the {key} dataset?"
        )
    frame = dataset.select_columns(needed).to_pandas().astype(object)
    feature = dataset.features[cols["label"]]
    if isinstance(feature, ClassLabel):  # ints -> the hub's names; -1 (no label) -> None
        hub_names = np.array(feature.names, dtype=object)
        y = frame[cols["label"]].to_numpy(dtype=np.int64)
        frame[cols["label"]] = np.where(y >= 0, hub_names[np.clip(y, 0, None)], None)
    ids = np.arange(len(frame), dtype=np.int64)
    rows = Rows(where, frame, ids + 1, ids)
    if "context" in cols:
        return build_mc(
            rows,
            context=cols["context"],
            prefix=cols["prefix"],
            endings=ends if len(ends) > 1 else ends[0],
            label=cols["label"],
            num_choices=len(src.label_names),
            empty="skip",
        )
    return build_pair(
        rows,
        text_a=cols["text_a"],
        text_b=cols.get("text_b"),
        label=cols["label"],
        label_names=tuple(label_names or src.label_names),
        empty="skip",
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def _offline_if_asked() -> Iterator[bool]:
    """Honour ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` even if set after import."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    # datasets >= 2.19 reads HF_HUB_OFFLINE; 2.18 its own HF_DATASETS_OFFLINE
    flag = "HF_HUB_OFFLINE" if hasattr(datasets.config, "HF_HUB_OFFLINE") else "HF_DATASETS_OFFLINE"
    offline = (
        _env_true("HF_HUB_OFFLINE")
        or _env_true("HF_DATASETS_OFFLINE")
        or bool(getattr(datasets.config, flag))
    )
    saved = getattr(datasets.config, flag), hub_constants.HF_HUB_OFFLINE
    if offline:
        setattr(datasets.config, flag, True)
        hub_constants.HF_HUB_OFFLINE = True
    try:
        yield offline
    finally:
        setattr(datasets.config, flag, saved[0])
        hub_constants.HF_HUB_OFFLINE = saved[1]


def read_hub(name: str, *, split: str, label_names: Sequence[str] | None = None) -> Dataset:
    """Download (or read from the cache) a hub split and map it to the schema.

    Args:
        name: ``snli``, ``mnli``, ``qqp``, ``sst2``, ``swag``, ``hellaswag`` or a hub alias.
        split: e.g. ``"train"``, ``"validation"``, ``"validation_matched"``.

    Raises:
        DataError: when the hub cannot be reached (offline mode, no network) and the split
            is not cached, with what to do instead.
    """
    import datasets

    key, src = _source(name)
    with _offline_if_asked() as offline:
        try:
            ds = datasets.load_dataset(src.path, src.config, split=split)
        except (OSError, ValueError) as e:
            why = (
                "offline mode is on (HF_HUB_OFFLINE=1) and it is not cached"
                if offline
                else f"{type(e).__name__}: {e}"
            )
            raise DataError(
                f"hub:{src.path}[{split}]: cannot load the {key} dataset from the Hugging Face "
                f"hub: {why} (connect once to cache it, or use local files: "
                "--train-file PATH --dev-file PATH --test-file PATH)"
            ) from e
    return from_hub(ds, key, label_names=label_names, split=split)
