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
from tdmixup.model.classifier import Classifier


def autocast_for(precision: str, device: Any) -> Any:
    """``torch.autocast`` on ``device``'s type for ``precision`` (``"bf16"`` / ``"fp16"``); a
    disabled one for ``"fp32"``. Used by training steps
    (:func:`tdmixup.training.optim.step_autocast`) and by every prediction pass
    (:func:`predict_logits`: dynamics, AUM margins, evaluation)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None and precision != "fp32":
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', not {precision!r}")
    return torch.autocast(
        device_type=torch.device(device).type,
        dtype=dtype or torch.bfloat16,
        enabled=dtype is not None,
    )


def to_device(batch: dict[str, torch.Tensor], device: Any) -> dict[str, torch.Tensor]:
    """The same batch with every tensor moved to ``device``.

    To CUDA, each tensor is first copied into pinned (page-locked) host memory and sent with
    ``non_blocking=True``: the copy overlaps the GPU's work instead of stalling the host. On CPU
    the tensors are returned as they are."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {k: v.to(dev) for k, v in batch.items()}
    return {k: v.pin_memory().to(dev, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict_logits(
    model: Classifier,
    data: TokenizedSet,
    *,
    batch_size: int,
    accelerator: Any,
    desc: str = "predict",
    precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every example, dropout off, gathered over processes.

    ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``: the run's, :func:`tdmixup.training.optim.
    precision_of`) autocasts the forward passes as training does; logits come back as float32.
    The batches' logits stay on the device until the last batch (one copy to the host, no sync
    per batch).

    Returns:
        ``(sample_ids [N], logits [N, C])`` sorted by sample_id, identical on every process.
    """
    model.eval()
    ids_parts: list[np.ndarray] = []
    logit_parts: list[torch.Tensor] = []
    batches = list(
        inference_batches(
            data.lengths,
            batch_size=batch_size,
            world_size=accelerator.num_processes,
            rank=accelerator.process_index,
        )
    )
    for positions in tqdm(batches, desc=desc, disable=not accelerator.is_main_process, leave=False):
        host = collate(data, positions)
        batch = to_device(host, accelerator.device)
        with autocast_for(precision, accelerator.device):
            logits = model(**batch).logits
        ids_parts.append(host["sample_id"].numpy())
        logit_parts.append(logits.float())
    on_host = [torch.cat(logit_parts).cpu().numpy()] if logit_parts else []
    ids, logits = _concat(ids_parts, on_host, data)
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
