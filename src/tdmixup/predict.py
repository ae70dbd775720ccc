"""Predictions of a classifier on a tokenized set, gathered by ``sample_id`` over processes.

Used by training (dynamics at each epoch end), evaluation and the AUM stage; it sits below all
of them, so none of them imports another for its predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tdmixup.data.collate import TokenizedSet, collate, inference_batches
from tdmixup.model import Classifier


def to_device(batch: dict[str, torch.Tensor], device: Any) -> dict[str, torch.Tensor]:
    """The same batch with every tensor moved to ``device``."""
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_logits(
    model: Classifier,
    data: TokenizedSet,
    *,
    batch_size: int,
    accelerator: Any,
    desc: str = "predict",
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every example, dropout off, gathered over processes.

    Returns:
        ``(sample_ids [N], logits [N, C])`` sorted by sample_id, identical on every process.
    """
    model.eval()
    ids_parts, logit_parts = [], []
    batches = list(
        inference_batches(
            data.lengths,
            batch_size=batch_size,
            world_size=accelerator.num_processes,
            rank=accelerator.process_index,
        )
    )
    for positions in tqdm(batches, desc=desc, disable=not accelerator.is_main_process, leave=False):
        batch = to_device(collate(data, positions), accelerator.device)
        logits = model(**batch).logits
        ids_parts.append(batch["sample_id"].cpu().numpy())
        logit_parts.append(logits.float().cpu().numpy())
    ids, logits = _concat(ids_parts, logit_parts, data)
    return gather_by_id(ids, logits, accelerator, expected=data.sample_ids)


def _concat(
    ids_parts: list[np.ndarray], logit_parts: list[np.ndarray], data: TokenizedSet
) -> tuple[np.ndarray, np.ndarray]:
    if ids_parts:
        return np.concatenate(ids_parts), np.concatenate(logit_parts)
    width = data.num_choices or 0
    return np.zeros(0, np.int64), np.zeros((0, width), np.float32)


def gather_by_id(
    ids: np.ndarray, values: np.ndarray, accelerator: Any, *, expected: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gather per-sample rows from all processes, keep one row per id, check coverage.

    Raises:
        RuntimeError: naming missing ids when some expected id came from no process.
    """
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(ids, values)])
        ids = np.concatenate([p[0] for p in parts])
        values = (
            np.concatenate([p[1] for p in parts if len(p[1])])
            if any(len(p[1]) for p in parts)
            else values
        )
    uniq, first = np.unique(ids, return_index=True)
    missing = np.setdiff1d(expected, uniq)
    if len(missing):
        raise RuntimeError(
            f"{len(missing)} sample ids got no prediction from any process "
            f"(first: {missing[:10].tolist()})"
        )
    return uniq, values[first]
